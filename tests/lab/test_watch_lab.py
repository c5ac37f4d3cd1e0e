"""`watch --capture` on the lab target's link: three short periods, a leak in the second.

The lab stands up around the reference target (air-gapped, perimeter open so a leak is
answered). Shell stimuli in the target's namespace start `ucx-conformance watch --capture eth0`
(dumpcap's ring, 1 s files, 5 s periods) and, once its ring has a file, send the ntp-public
fault's traffic (NTP to the outside canary 203.0.113.123) one second into the next period: the
reference target's fault switches are fixed for its lifetime, so the fault is switched on for
one period from the target's own namespace. A last stimulus stops the watch with SIGTERM.

The chain must verify; the period with the leak fails AG-EGRESS, the one before and the one
after it do not.
"""

from __future__ import annotations

import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main
from conformance.lab import run_lab
from conformance.profile import parse_profile
from conformance.sign.keys import generate_key

pytestmark = pytest.mark.lab

PROFILE = Path(__file__).resolve().parents[2] / "fixtures" / "profiles" / "lab-air-gapped.yaml"
REPO = Path(__file__).resolve().parents[2]
PERIOD = 5
WINDOW = 34  # watch start-up, a partial first period, three whole periods, their reports
STOP_AT = 32  # SIGTERM to the watch, before the lab's teardown
CANARY_NTP = "203.0.113.123"


def _leak_script(period_file: Path) -> str:
    """Python: sleep to one second into the next period, write its start, send NTP out."""
    return (
        "import socket,time;"
        f"p={PERIOD};t=time.time();k=int(t//p)+1;"
        f"open({str(period_file)!r},'w').write(str(k*p));"
        "time.sleep(max(0.0,k*p+1.0-t));"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        "[s.sendto(b'\\x23'+bytes(47),"
        f"({CANARY_NTP!r},123)) or time.sleep(0.3) for _ in range(3)]"
    )


def test_watch_capture_over_three_periods_with_a_fault_in_the_second(tmp_path: Path) -> None:
    root = tmp_path / "chain"
    root.mkdir()
    key = generate_key(tmp_path / "signer.pem")
    python = shlex.quote(sys.executable)
    watch = [
        python, "-m", "conformance.cli", "watch", "--profile", str(PROFILE),
        "--capture", "eth0", "--report-root", str(root), "--period", f"{PERIOD}s",
        "--ring-seconds", "1s", "--poll", "0.2s", "--settle", "0.3s", "--grace", "1s",
        "--gap-tolerance", "2s", "--executor", "serial", "--sign-key", str(key),
    ]  # fmt: skip
    log = tmp_path / "watch.log"
    pid = tmp_path / "watch.pid"
    leak_at = tmp_path / "leak-period"
    env = f"cd {shlex.quote(str(REPO))} && PYTHONPATH={shlex.quote(str(REPO))}"
    start = f"{env} nohup {' '.join(watch)} > {log} 2>&1 < /dev/null & echo $! > {pid}"
    ring = root / ".watch" / "ring"
    leak = (
        f'( while [ -z "$(ls {ring} 2>/dev/null)" ]; do sleep 0.1; done;'
        f" {python} -c {shlex.quote(_leak_script(leak_at))} ) > /dev/null 2>&1 < /dev/null &"
    )
    data: dict[str, Any] = yaml.safe_load(PROFILE.read_text())
    data.update(
        window=f"{WINDOW}s",
        lab={"perimeter": "open", "scanner": False},
        probes={"perimeter": False},
        stimuli=[
            {"at": "0.5s", "shell": start},
            {"at": "0.7s", "shell": leak},
            {"at": f"{STOP_AT}s", "shell": f"kill -TERM $(cat {pid})"},
        ],
    )
    profile = parse_profile(data, PROFILE)
    run_lab(profile, (), tmp_path / "lab")
    assert "watch stopped; state saved" in log.read_text(), log.read_text()
    assert main(["verify-chain", str(root), "--key", f"{key}.pub"]) == 0
    periods = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    documents = {p.name: json.loads((p / "report.json").read_text()) for p in periods}
    leak_start = float(leak_at.read_text())
    names = list(documents)
    egress = {
        n: next(c["verdict"] for c in d["controls"] if c["id"] == "AG-EGRESS")
        for n, d in documents.items()
    }
    leak_id = datetime.fromtimestamp(leak_start, UTC).strftime("%Y%m%dT%H%M%SZ")
    leaky = [n for n in names if n == leak_id]
    assert len(leaky) == 1, (names, leak_start)
    at = names.index(leaky[0])
    assert 1 <= at <= len(names) - 2, names  # a period before it and one after it
    assert egress[names[at]] == "fail", egress
    assert egress[names[at - 1]] != "fail", egress
    assert egress[names[at + 1]] != "fail", egress
