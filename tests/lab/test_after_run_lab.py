"""diff and run --baseline on real lab runs: a fault that adds a destination is a regression,
two clean runs of the reference target show nothing new (three lab runs, about 30 s each)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.sign.keys import generate_key

pytestmark = pytest.mark.lab

NTP_PUBLIC = "203.0.113.123:123/udp"  # what the ntp-public fault asks (lab faults)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_key(tmp_path_factory.mktemp("keys") / "signer.pem")


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, key: Path) -> Path:
    report = tmp_path_factory.mktemp("lab-clean") / "report"
    assert main(["run", "--lab", "--report-dir", str(report), "--sign-key", str(key)]) == 0
    return report


def test_two_clean_lab_runs_show_nothing_new(
    tmp_path: Path, key: Path, clean: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    again = tmp_path / "again"
    assert main(["run", "--lab", "--report-dir", str(again), "--sign-key", str(key)]) == 0
    capsys.readouterr()
    code = main(["diff", str(clean), str(again), "--key", f"{key}.pub", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc["regressions"]
    assert not doc["destinations"]["new"] and not doc["names"]["new"]


def test_a_fault_that_adds_a_destination_is_a_regression(
    tmp_path: Path, key: Path, clean: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faulty = tmp_path / "ntp-public"
    code = main(
        [
            "run",
            "--lab",
            "--fault",
            "ntp-public",
            "--report-dir",
            str(faulty),
            "--sign-key",
            str(key),
            "--baseline",
            str(clean),
        ]
    )
    assert code == 1
    capsys.readouterr()
    baseline = json.loads((faulty / "report.json").read_text())["baseline"]
    assert [d["destination"] for d in baseline["destinations"]["new"]] == [NTP_PUBLIC]
    code = main(["diff", str(clean), str(faulty), "--key", f"{key}.pub", "--format", "markdown"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"| `{NTP_PUBLIC}` |" in out and "| `AG-EGRESS` | pass | fail |" in out
