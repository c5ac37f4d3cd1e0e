"""`rejudge` of lab reports: every kind of evidence the lab keeps (probes, impostors and their
capture, the endpoint scan, the cloud side's record, stimuli) is read again from the signed
report alone and gives the same verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.sign.keys import generate_key

pytestmark = pytest.mark.lab

PROFILES = Path(__file__).resolve().parents[2] / "fixtures" / "profiles"


def verdicts(report: Path) -> dict[str, str]:
    document = json.loads((report / "report.json").read_text())
    return {c["id"]: c["verdict"] for c in document["controls"]}


@pytest.mark.parametrize(
    ("profile", "faults"),
    [("lab-air-gapped.yaml", ("ntp-public",)), ("lab-hybrid.yaml", ())],
)
def test_a_lab_report_judged_again_gives_the_same_verdicts(
    tmp_path: Path, profile: str, faults: tuple[str, ...]
) -> None:
    key = generate_key(tmp_path / "keys" / "signer.pem")
    first, again = tmp_path / "first", tmp_path / "again"
    args = ["run", "--lab", "--profile", str(PROFILES / profile)]
    for fault in faults:
        args += ["--fault", fault]
    main([*args, "--report-dir", str(first), "--sign-key", str(key)])
    document = json.loads((first / "report.json").read_text())
    assert document["evidence_logs"], "the report names the logs it kept"
    main(
        [
            "rejudge", str(first), "--key", f"{key}.pub", "--report-dir", str(again),
            "--sign-key", str(key),
        ]
    )  # fmt: skip
    assert verdicts(again) == verdicts(first)
    judged = [c for c, v in verdicts(first).items() if v not in ("not-applicable",)]
    assert len(judged) > 5
