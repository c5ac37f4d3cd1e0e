"""`ucx-conformance run --lab --host lab`, end to end over real ssh: host judgements go through
the plugin into the signed report beside the capture's, a control judged by both keeps the
worse verdict, and host findings link to the raw command output in the evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.cli import main
from tests.lab.conftest import PROFILES, leftovers

pytestmark = pytest.mark.lab


def test_host_findings_reach_the_signed_report(tmp_path: Path) -> None:
    profile: dict[str, Any] = yaml.safe_load((PROFILES / "lab-air-gapped.yaml").read_text())
    profile["window"] = "4s"
    profile["lab"] = {"perimeter": "closed", "scanner": False}  # nothing knocks from outside
    profile["probes"] = {"perimeter": False}
    profile["stimuli"] = []
    profile_file = tmp_path / "profile.yaml"
    profile_file.write_text(yaml.safe_dump(profile))
    key, report = tmp_path / "key.pem", tmp_path / "report"
    assert main(["keygen", str(key)]) == 0
    faults = ["listen-outside", "hosts-override", "proxy-mismatch"]
    args = ["run", "--lab", "--host", "lab", "--profile", str(profile_file)]
    args += [arg for fault in faults for arg in ("--fault", fault)]
    code = main([*args, "--report-dir", str(report), "--sign-key", str(key)])
    document = json.loads((report / "report.json").read_text())
    controls = {c["id"]: c for c in document["controls"]}
    assert code == 1, {i: c["verdict"] for i, c in controls.items()}
    assert controls["HOST-HOSTS"]["verdict"] == "fail"
    assert controls["HOST-PROXY"]["verdict"] == "fail"
    assert controls["HOST-TELEMETRY"]["verdict"] == "pass"
    # No packet came in from outside, but the host listens on every interface with its
    # firewall dropped: the host's judgement is the worse one and is kept.
    ingress = controls["AG-INGRESS"]
    assert ingress["verdict"] == "fail", ingress
    assert any(":9443" in f["summary"] for f in ingress["findings"]), ingress
    link = next(f["evidence"] for f in ingress["findings"] if ":9443" in f["summary"])
    raw, _, line = link.partition("#L")
    assert raw.startswith("evidence/host/") and line.isdigit()
    assert ":9443" in (report / raw).read_text().splitlines()[int(line) - 1]
    hashes = {e["path"] for e in document["evidence"]}
    assert {"evidence/host/facts.json", "evidence/host/hosts.txt"} <= hashes
    assert main(["verify", str(report), "--key", f"{key}.pub"]) == 0
    assert leftovers(tmp_path) == []
