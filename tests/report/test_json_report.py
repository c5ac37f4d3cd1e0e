"""report.json: the interface.md shape, links into the evidence, hashes of every evidence file."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tests.report.builders import SignedReport


def load(report: SignedReport) -> dict[str, Any]:
    data = (report.report_dir / "report.json").read_bytes()
    assert data.endswith(b"\n") and not data.endswith(b"\n\n")
    document: dict[str, Any] = json.loads(data.decode("utf-8"))
    return document


def test_top_level_shape(written: SignedReport) -> None:
    document = load(written)
    assert list(document)[:2] == ["format", "verdict"]
    assert document["verdict"] == "fail"
    assert document["profile"] == {
        "name": "report-test <site>",
        "mode": "air-gapped",
        "source": str(written.report_dir.parent / "inputs" / "site.yaml"),
    }
    assert document["summary"] == {
        "pass": 2, "fail": 1, "inconclusive": 1, "not-applicable": 1, "error": 1,
    }  # fmt: skip
    assert document["harness"]["started"] == "2024-05-01T12:00:00.000000Z"
    assert document["harness"]["finished"] == "2024-05-01T12:00:07.250000Z"
    assert document["signer"] == {"fingerprint": written.summary.fingerprint}


def test_controls_carry_clause_reason_and_evidence_links(written: SignedReport) -> None:
    controls = {c["id"]: c for c in load(written)["controls"]}
    egress = controls["AG-EGRESS"]
    assert egress["verdict"] == "fail" and egress["clause"] == "HA 2.2, HA 1"
    assert egress["clause_text"].startswith("HA 2.2: No component")
    assert egress["reason"] == "1 flow leaves the environment"
    violation, warning = egress["findings"]
    assert violation["severity"] == "violation"
    assert violation["evidence"] == "evidence/flows.csv#L3"  # flow 2 is line 3
    assert violation["packets"] == {
        "capture": "evidence/capture-0.pcapng", "capture_index": 0, "numbers": [20, 21, 22],
    }  # fmt: skip
    assert warning["evidence"] == "evidence/probes.log#L2"
    assert egress["facts"] == {"flows judged": 4, "outside": ["198.51.100.7"]}
    assert controls["AG-CLOUD-NAMES"]["verdict"] == "inconclusive"


def test_flow_link_points_at_that_flow(written: SignedReport) -> None:
    egress = load(written)["controls"][0]
    path, line = egress["findings"][0]["evidence"].split("#L")
    row = (written.report_dir / path).read_text().splitlines()[int(line) - 1]
    assert row.startswith("2,") and "198.51.100.7,443" in row


def test_evidence_lists_every_evidence_file_with_its_hash(written: SignedReport) -> None:
    listed = {e["path"]: e for e in load(written)["evidence"]}
    on_disk = {
        p.relative_to(written.report_dir).as_posix(): p
        for p in (written.report_dir / "evidence").rglob("*")
        if p.is_file()
    }
    assert set(listed) == set(on_disk)
    for name, path in on_disk.items():
        data = path.read_bytes()
        assert listed[name]["sha256"] == hashlib.sha256(data).hexdigest()
        assert listed[name]["bytes"] == len(data)


def test_completeness_reports_drops_truncation_and_malformed(written: SignedReport) -> None:
    completeness = load(written)["completeness"]
    assert completeness["complete"] is True
    (capture,) = completeness["captures"]
    assert capture["capture"] == "evidence/capture-0.pcapng"
    assert (capture["packets"], capture["drops"], capture["truncated"], capture["malformed"]) == (
        64, 0, False, 1,
    )  # fmt: skip


def test_evidence_side_files(written: SignedReport) -> None:
    evidence = written.report_dir / "evidence"
    captures = json.loads((evidence / "captures.json").read_bytes())["captures"]
    assert captures[0]["evidence"] == "evidence/capture-0.pcapng"
    assert captures[0]["anomalies"] == [
        {"capture": 0, "packet": 33, "reason": "bad IPv4 header length <5>"}
    ]
    tools = json.loads((evidence / "tool-versions.json").read_bytes())
    assert tools == {"python": "3.11", "ucx-conformance": "0.1.0"}
    assert "ünïcode" in (evidence / "profile.yaml").read_text(encoding="utf-8")


def test_completeness_accounts_for_every_frame(written: SignedReport) -> None:
    (capture,) = load(written)["completeness"]["captures"]
    assert capture["decoded"] == 63
    assert capture["not_understood"] == [
        {"reason": "bad IPv4 header length <5>", "count": 1, "packets": [33]}
    ]
    assert capture["payload_not_understood"] == []
