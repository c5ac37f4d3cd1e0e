"""`ucx-conformance run --lab` in proxy mode, end to end. With telemetry on and a fault: the
suites judge PX-* and TM-* through the plugin, the report's evidence holds the interceptor's
decrypted request log with its hash, a finding links to its line, and the signed report
verifies. Clean, with telemetry off: every applicable control passes, HY-CERT and HY-ENDPOINT
included (the impostors and the scan go through the proxy after the interceptor stops), and
the run exits 0."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main
from conformance.lab.netns import existing_namespaces
from conformance.lab.topology import PREFIX
from tests.lab.conftest import PROFILES

pytestmark = pytest.mark.lab


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_proxy_lab_report_holds_the_decrypted_requests(tmp_path: Path) -> None:
    profile: dict[str, Any] = yaml.safe_load((PROFILES / "lab-proxy-telemetry.yaml").read_text())
    profile["window"] = "4s"
    profile["stimuli"] = [{"at": "2s", "action": "licence-refresh"}]
    profile_file = tmp_path / "profile.yaml"
    profile_file.write_text(yaml.safe_dump(profile))
    key, report = tmp_path / "key.pem", tmp_path / "report"
    assert main(["keygen", str(key)]) == 0
    code = main(
        [
            "run",
            "--lab",
            "--profile",
            str(profile_file),
            "--fault",
            "pii-in-telemetry",
            "--report-dir",
            str(report),
            "--sign-key",
            str(key),
        ]
    )
    document = json.loads((report / "report.json").read_text())
    controls = {c["id"]: c for c in document["controls"]}
    assert code == 1, {i: c["verdict"] for i, c in controls.items()}
    for control_id in ("PX-ONLY", "PX-CONNECT", "PX-DNS", "TM-CHANNEL"):
        assert controls[control_id]["verdict"] == "pass", controls[control_id]
    assert controls["TM-MINIMAL"]["verdict"] == "fail"
    assert controls["TM-OPTOUT"]["verdict"] == "not-applicable"

    hashes = {e["path"]: e["sha256"] for e in document["evidence"]}
    log = report / "evidence" / "lab" / "decrypted-requests.jsonl"
    assert hashes["evidence/lab/decrypted-requests.jsonl"] == sha256(log)
    assert {"evidence/lab/squid-access.log", "evidence/lab/cloud-requests.jsonl"} <= set(hashes)
    assert any(n.startswith("content-level evidence: ") for n in document["notes"])

    text = json.dumps(controls["TM-MINIMAL"])
    assert "[e-mail redacted]" in text and "mario.rossi@example.com" not in text
    assert "lab/decrypted-requests.jsonl" in text
    assert main(["verify", str(report), "--key", f"{key}.pub"]) == 0
    topology = json.loads((report / "evidence" / "lab" / "topology.json").read_text())
    assert not [n for n in existing_namespaces() if n.startswith(f"{PREFIX}{topology['run_id']}-")]


def test_clean_proxy_lab_exits_0(tmp_path: Path) -> None:
    profile: dict[str, Any] = yaml.safe_load((PROFILES / "lab-proxy.yaml").read_text())
    profile["window"] = "4s"
    profile["stimuli"] = [
        {"at": "1.5s", "action": "licence-refresh"},
        {"at": "2.5s", "action": "restart"},
        {"at": "3s", "action": "telemetry-beat"},
    ]
    profile_file = tmp_path / "profile.yaml"
    profile_file.write_text(yaml.safe_dump(profile))
    key, report = tmp_path / "key.pem", tmp_path / "report"
    assert main(["keygen", str(key)]) == 0
    argv = ["run", "--lab", "--profile", str(profile_file), "--report-dir", str(report)]
    code = main([*argv, "--sign-key", str(key)])
    document = json.loads((report / "report.json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in document["controls"]}
    assert code == 0, {i: c["reason"] for i, c in ((c["id"], c) for c in document["controls"])}
    for control_id in ("HY-CERT", "HY-ENDPOINT", "HY-DEST", "PX-ONLY", "PX-CONNECT", "PX-DNS"):
        assert verdicts[control_id] == "pass", control_id
    hashes = {e["path"] for e in document["evidence"]}
    # the phases' own proxy log is evidence; the judged access.log holds the window only
    assert "evidence/lab/squid-access-after-window.log" in hashes
    judged = (report / "evidence" / "lab" / "squid-access.log").read_text()
    assert "HIER_DIRECT" not in judged  # in the window squid went to the interceptor only
    assert main(["verify", str(report), "--key", f"{key}.pub"]) == 0
