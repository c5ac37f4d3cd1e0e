"""export --format sarif: valid SARIF 2.1.0, one result per violation, stable fingerprints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conformance.export.sarif import FINGERPRINT_KEY, SarifExporter, sarif_log
from tests import defects
from tests.after_run import UDP_LEAK, controls, tcp_and_udp_leak
from tests.export.conftest import WAIVER, Reports, sarif_validator, schema_errors


def test_every_report_exports_schema_valid_sarif(reports: Reports) -> None:
    for path in (reports.clean, reports.leak, reports.silent):
        document = json.loads(SarifExporter().export(reports.open(path), None))
        assert schema_errors(sarif_validator(), document) == [], path


def test_one_result_per_violation_with_rule_and_location(reports: Reports) -> None:
    log = sarif_log(reports.open(reports.leak))
    run = log["runs"][0]
    violations = [
        (c["id"], f["summary"])
        for c in controls(reports.leak).values()
        for f in c["findings"]
        if f["severity"] == "violation"
    ]
    assert [(r["ruleId"], r["message"]["text"]) for r in run["results"]] == violations
    rules = run["tool"]["driver"]["rules"]
    egress = next(r for r in run["results"] if "123 udp" in r["message"]["text"])
    assert rules[egress["ruleIndex"]]["id"] == "AG-EGRESS"
    assert "HA 2.2" in rules[egress["ruleIndex"]]["help"]["text"]
    location = egress["locations"][0]["physicalLocation"]
    flow_row = controls(reports.leak)["AG-EGRESS"]["findings"]
    link = next(f["evidence"] for f in flow_row if "123 udp" in f["summary"])
    assert f"{location['artifactLocation']['uri']}#L{location['region']['startLine']}" == link
    # The waived leak is a suppressed result, not a dropped one.
    assert egress["suppressions"][0]["status"] == "accepted"
    assert "CHG-1234" in egress["suppressions"][0]["justification"]
    assert run["properties"]["reportEnvelopeSha256"] == reports.open(reports.leak).envelope_sha256


def test_clean_report_has_no_results(reports: Reports) -> None:
    assert sarif_log(reports.open(reports.clean))["runs"][0]["results"] == []
    silent = sarif_log(reports.open(reports.silent))["runs"][0]
    assert silent["results"] == [] and "AG-EGRESS" in silent["properties"]["notProven"]


def test_fingerprints_are_stable_across_runs(reports: Reports, tmp_path: Path) -> None:
    # The same leaks on other source ports, in another run: the same alerts for GitHub.
    packets = tcp_and_udp_leak()
    for packet in packets:
        if packet.haslayer("TCP") and packet["TCP"].sport == 51234:
            packet["TCP"].sport = 61234
        if packet.haslayer("TCP") and packet["TCP"].dport == 51234:
            packet["TCP"].dport = 61234
    waivers = tmp_path / "w.yaml"
    waivers.write_text(WAIVER)
    code, again = reports.lab.run("again", packets, "--waivers", waivers)
    assert code == 1
    first = sarif_log(reports.open(reports.leak))["runs"][0]["results"]
    second = sarif_log(reports.open(again))["runs"][0]["results"]
    assert "61234" in " ".join(r["message"]["text"] for r in second)
    assert [r["partialFingerprints"] for r in first] == [r["partialFingerprints"] for r in second]
    assert len({r["partialFingerprints"][FINGERPRINT_KEY] for r in first}) == len(first)
    shutil.rmtree(again)
    assert UDP_LEAK and defects.OUTSIDE
