"""export --format oscal: valid OSCAL 1.1.3 assessment-results, one observation per control."""

from __future__ import annotations

import json

from conformance.export.oscal import OscalExporter, assessment_results
from tests.after_run import controls
from tests.export.conftest import Reports, oscal_validator, schema_errors


def test_every_report_exports_schema_valid_oscal(reports: Reports) -> None:
    for path in (reports.clean, reports.leak, reports.silent):
        document = json.loads(OscalExporter().export(reports.open(path), None))
        assert schema_errors(oscal_validator(), document) == [], path


def test_one_observation_per_control_and_findings_with_evidence(reports: Reports) -> None:
    report = reports.open(reports.leak)
    ar = assessment_results(report)["assessment-results"]
    result = ar["results"][0]
    judged = controls(reports.leak)
    assert [o["title"].split(":")[0] for o in result["observations"]] == list(judged)
    egress = next(o for o in result["observations"] if o["title"].startswith("AG-EGRESS:"))
    hrefs = [e.get("href") for e in egress["relevant-evidence"]]
    assert "evidence/flows.csv#L7" in hrefs or any(
        h and h.startswith("evidence/flows.csv#L") for h in hrefs
    )
    waived = [e for e in egress["relevant-evidence"] if "remarks" in e]
    assert len(waived) == 1 and "Jane Roe, CISO" in waived[0]["remarks"]
    status = {f["title"].split()[0]: f["target"]["status"] for f in result["findings"]}
    assert status["AG-EGRESS"] == {"state": "not-satisfied", "reason": "fail"}
    assert status["AG-INGRESS"] == {"state": "satisfied", "reason": "pass"}
    # Not-applicable controls have no finding and are excluded from the selection.
    selection = result["reviewed-controls"]["control-selections"][0]
    excluded = {c["control-id"] for c in selection["exclude-controls"]}
    assert "HY-DEST" in excluded and "HY-DEST" not in status


def test_inconclusive_is_never_satisfied(reports: Reports) -> None:
    result = assessment_results(reports.open(reports.silent))["assessment-results"]["results"][0]
    status = {f["title"].split()[0]: f["target"]["status"] for f in result["findings"]}
    assert status["AG-EGRESS"]["state"] == "not-satisfied"
    assert status["AG-EGRESS"]["reason"] == "other"


def test_report_digest_is_a_back_matter_resource(reports: Reports) -> None:
    report = reports.open(reports.leak)
    ar = assessment_results(report)["assessment-results"]
    first = ar["back-matter"]["resources"][0]
    assert first["rlinks"][0]["href"] == "report.intoto.json"
    assert first["rlinks"][0]["hashes"] == [
        {"algorithm": "SHA-256", "value": report.envelope_sha256}
    ]
    hrefs = {r["rlinks"][0]["href"]: r for r in ar["back-matter"]["resources"]}
    assert set(hrefs) == {"report.intoto.json", *report.subjects}
    assert ar["import-ap"]["href"] == f"#{hrefs['evidence/profile.yaml']['uuid']}"


def test_export_is_reproducible_and_ids_follow_the_report(reports: Reports) -> None:
    first = OscalExporter().export(reports.open(reports.leak), None)
    assert OscalExporter().export(reports.open(reports.leak), None) == first
    other = OscalExporter().export(reports.open(reports.clean), None)
    assert (
        json.loads(first)["assessment-results"]["uuid"]
        != json.loads(other)["assessment-results"]["uuid"]
    )
