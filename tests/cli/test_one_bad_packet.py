"""Decision 10 through the CLI: a packet that breaks a parser is counted, never an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cli import main
from tests import defects
from tests import hidden_defects as hidden


@pytest.mark.parametrize("bad", ["nbns", "dns", "tls"])
def test_a_malformed_packet_beside_a_leak_exits_1(
    bad: str, tmp_path: Path, profile_file: Path, sign_key: Path
) -> None:
    capture = defects.write_pcap(tmp_path / "c.pcap", hidden.leak_beside(bad))
    report = tmp_path / "report"
    args = ["run", "--profile", profile_file, "--pcap", capture, "--report-dir", report]
    code = main([str(a) for a in [*args, "--sign-key", sign_key]])
    found = {c["id"]: c for c in json.loads((report / "report.json").read_text())["controls"]}
    assert code == 1, found
    assert found["AG-EGRESS"]["verdict"] == "fail"
    assert not [c for c in found.values() if c["verdict"] == "error"]
    captures = json.loads((report / "evidence" / "captures.json").read_text())["captures"]
    assert captures[0]["payload_not_understood"][0]["count"] == 1
