"""Waivers: strict parsing (one-line errors naming file and key) and fail-closed application."""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conformance.catalog import load_catalog
from conformance.errors import WaiverError
from conformance.judge import air_gapped
from conformance.judge.result import ControlResult, Finding, Severity
from conformance.observe.builder import observe_captures
from conformance.observe.records import Observations
from conformance.verdict import Verdict
from conformance.waivers import (
    EVIDENCE_NAME,
    WaiverFile,
    WaiverOutcome,
    apply_waivers,
    load_waivers,
    parse_waivers,
)
from tests import defects
from tests.after_run import TCP_LEAK, UDP_LEAK, tcp_and_udp_leak

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
IDS = load_catalog().ids()


def waivers(text: str) -> WaiverFile:
    return parse_waivers(text.encode(), "w.yaml", IDS)


def entry(
    control: str = "AG-EGRESS",
    match: str | None = None,
    expires: str = "2026-12-31",
    justification: str = "known, being fixed (CHG-1)",
) -> str:
    lines = [f"- control: {control}"]
    if match is not None:
        lines.append(f"  match: {match}")
    lines += [
        f"  justification: {justification}",
        "  approved_by: Jane Roe, CISO",
        f"  expires: {expires}",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def two_leaks(tmp_path_factory: pytest.TempPathFactory) -> Observations:
    path = defects.write_pcap(tmp_path_factory.mktemp("w") / "leaks.pcap", tcp_and_udp_leak())
    return observe_captures([path])


@pytest.fixture(scope="module")
def egress(two_leaks: Observations) -> ControlResult:
    result = air_gapped.egress(two_leaks, defects.defect_profile())
    assert result.verdict is Verdict.FAIL and len(result.violations) == 2
    return result


def apply(
    result: ControlResult, text: str, observations: Observations | None, now: datetime = NOW
) -> tuple[ControlResult, WaiverOutcome]:
    outcome = apply_waivers((result,), waivers(text), now, observations)
    return outcome.results[0], outcome


# --- parsing -----------------------------------------------------------------------------


def test_a_full_waiver_file_parses(tmp_path: Path) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text(
        entry(match=f'{{destination: "{UDP_LEAK}"}}')
        + entry("AG-CLOUD-NAMES", match='{name: "*.microsoft.com"}', expires="2026-07-01T18:00:00Z")
        + entry("AG-ONPREM")
    )
    parsed = load_waivers(path, IDS)
    assert [w.number for w in parsed.waivers] == [1, 2, 3]
    assert [w.line for w in parsed.waivers] == [1, 6, 11]
    first, second, third = parsed.waivers
    assert str(first.destination) == UDP_LEAK and first.name is None
    assert second.name == "*.microsoft.com" and second.destination is None
    assert third.match_text == "every finding"
    # A date is valid through that day (UTC); a datetime until that instant.
    assert first.expires == datetime(2027, 1, 1, tzinfo=UTC)
    assert second.expires == datetime(2026, 7, 1, 18, 0, tzinfo=UTC)
    assert parsed.data == path.read_bytes()


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (entry("AG-EGRES"), "[0].control", "unknown control 'AG-EGRES' (did you mean AG-EGRESS"),
        (entry().replace("  approved_by: Jane Roe, CISO\n", ""), "[0]", "missing 'approved_by'"),
        (entry().replace("  expires: 2026-12-31\n", ""), "[0]", "missing 'expires'"),
        (entry(justification='""'), "[0].justification", "non-empty string"),
        (entry(expires="next week"), "[0].expires", "not an ISO date"),
        (entry(expires="2026-13-01"), "[0].expires", "not an ISO date"),
        (entry(match="{destination: example.com}"), "[0].match.destination", "not an IP"),
        (entry(match='{destination: "198.51.100.7:443/sctp"}'), "[0].match.destination", "tcp"),
        (entry(match='{destination: "198.51.100.7:0/tcp"}'), "[0].match.destination", "port 0"),
        (entry(match='{destination: "2001:db8::1:443/tcp"}'), "[0].match.destination", "["),
        (entry(match='{name: "*"}'), "[0].match.name", "every name"),
        (entry(match="{host: x}"), "[0].match", "unknown key 'host'"),
        (entry(match="[]"), "[0].match", "a mapping"),
        (entry() + "  expiry: 2026-01-01\n", "[0]", "unknown key 'expiry'"),
        ("control: AG-EGRESS\n", "<top>", "must be a list of waivers"),
        ("", "<top>", "empty"),
        ("- [unclosed\n", "line 2", "not valid YAML"),
        (entry() + "  control: AG-INGRESS\n", "line 5", "duplicate key 'control'"),
        ("- 42\n", "[0]", "must be a mapping"),
    ],
)
def test_bad_waiver_file_is_one_line_naming_file_and_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(WaiverError) as caught:
        waivers(text)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"w.yaml: {key}"), message
    assert problem in message, message


def test_missing_and_non_utf8_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WaiverError, match="no such file"):
        load_waivers(tmp_path / "absent.yaml", IDS)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(entry(justification="caf\xe9").encode("latin-1"))
    with pytest.raises(WaiverError, match="not UTF-8"):
        load_waivers(bad, IDS)


def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "waivers.yaml"
    os.mkfifo(fifo)
    with pytest.raises(WaiverError, match=r"is a pipe \(FIFO\), not a regular file"):
        load_waivers(fifo, IDS)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (entry().replace("AG-EGRESS", "!!bool maybe"), "not valid YAML: KeyError"),
        (entry().replace("2026-12-31", "!!int soon"), "not valid YAML: ValueError"),
        (
            "- <<: [{control: AG-EGRESS}, {control: AG-INGRESS}]\n" + entry().split("\n", 1)[1],
            "key 'control' merged \\(<<\\) from two mappings",
        ),
        ("- <<: {control: AG-EGRESS}\n  <<: {control: AG-INGRESS}\n", "duplicate key '<<'"),
    ],
)
def test_values_yaml_cannot_build_or_merges_that_say_two_things_are_one_line_errors(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text(text)
    with pytest.raises(WaiverError, match=problem):
        load_waivers(path, IDS)


# --- applying ----------------------------------------------------------------------------


def test_waived_leak_next_to_an_unwaived_one_still_fails(
    egress: ControlResult, two_leaks: Observations
) -> None:
    result, outcome = apply(egress, entry(match=f'{{destination: "{UDP_LEAK}"}}'), two_leaks)
    assert result.verdict is Verdict.FAIL
    assert "1 of 2 violations waived" in result.reason
    waived = {i for (cid, i) in outcome.marks if cid == "AG-EGRESS"}
    assert len(waived) == 1
    (index,) = waived
    assert "203.0.113.123:123 udp" in result.findings[index].summary
    # The waived violation keeps everything it said.
    assert result.findings[index] == egress.findings[index]
    assert outcome.before == {}  # the verdict did not change
    assert [u.state for u in outcome.uses] == ["applied"]


def test_expired_waiver_waives_nothing_and_warns(
    egress: ControlResult, two_leaks: Observations
) -> None:
    text = entry(match=f'{{destination: "{UDP_LEAK}"}}', expires="2026-05-31")
    result, outcome = apply(egress, text, two_leaks)
    assert result.verdict is Verdict.FAIL
    assert not outcome.marks
    warning = result.findings[-1]
    assert warning.severity is Severity.WARNING
    assert "waiver #1" in warning.summary and "expired 2026-05-31" in warning.summary
    assert "would cover 1 finding" in warning.summary
    assert (warning.evidence_file, warning.evidence_line) == (EVIDENCE_NAME, 1)
    assert [u.state for u in outcome.uses] == ["expired"]


def test_a_date_waiver_holds_through_its_last_day(
    egress: ControlResult, two_leaks: Observations
) -> None:
    text = entry(match=f'{{destination: "{UDP_LEAK}"}}', expires="2026-06-01")
    _, on_the_day = apply(egress, text, two_leaks, datetime(2026, 6, 1, 23, 59, tzinfo=UTC))
    _, day_after = apply(egress, text, two_leaks, datetime(2026, 6, 2, 0, 0, tzinfo=UTC))
    assert on_the_day.marks and not day_after.marks


def test_waiver_matching_nothing_warns_that_it_is_stale(
    egress: ControlResult, two_leaks: Observations
) -> None:
    result, outcome = apply(egress, entry(match='{destination: "192.0.2.200"}'), two_leaks)
    assert result.verdict is Verdict.FAIL
    assert "matches no finding of AG-EGRESS" in result.findings[-1].summary
    assert result.findings[-1].severity is Severity.WARNING
    assert [u.state for u in outcome.uses] == ["unmatched"]


@pytest.mark.parametrize(
    ("match", "covered"),
    [
        (f'{{destination: "{defects.OUTSIDE_NTP}"}}', 1),  # address only: any port
        (f'{{destination: "{defects.OUTSIDE_NTP}:123/tcp"}}', 0),  # wrong transport
        (f'{{destination: "{defects.OUTSIDE_NTP}:124/udp"}}', 0),  # wrong port
        ('{name: "crl.microsoft.com"}', 1),  # the Host header names the flow
        ('{name: "*.microsoft.com"}', 1),
        ('{name: "microsoft.com"}', 0),  # decision 4: not a wildcard of itself
        (f'{{destination: "{defects.OUTSIDE}:80/tcp", name: "*.microsoft.com"}}', 1),
        (f'{{destination: "{defects.OUTSIDE_NTP}", name: "*.microsoft.com"}}', 0),  # both
        (None, 2),  # no match: every finding of the control
    ],
)
def test_match_selects_findings(
    egress: ControlResult, two_leaks: Observations, match: str | None, covered: int
) -> None:
    _, outcome = apply(egress, entry(match=match), two_leaks)
    assert len(outcome.marks) == covered


def test_every_violation_waived_but_evidence_incomplete_is_inconclusive(
    egress: ControlResult,
) -> None:
    gappy = dataclasses.replace(egress, facts={**egress.facts, "incomplete": ["3 packets dropped"]})
    result, outcome = apply(gappy, entry(), None)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "incomplete: 3 packets dropped" in result.reason
    assert outcome.before == {"AG-EGRESS": Verdict.FAIL}


def test_every_violation_waived_passes_only_when_the_judge_says_nothing_is_unproven(
    egress: ControlResult,
) -> None:
    # The capture judges (common.conclude) state what else is unproven: AG-EGRESS does.
    assert egress.facts["unproven"] == []
    # Judges that do not state what else is unproven cannot pass on waivers (fail closed).
    silent = dataclasses.replace(
        egress, facts={k: v for k, v in egress.facts.items() if k != "unproven"}
    )
    result, _ = apply(silent, entry(), None)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "did not state that nothing else is unproven" in result.reason
    still = dataclasses.replace(egress, facts={**egress.facts, "unproven": ["no ServerHello"]})
    assert apply(still, entry(), None)[0].verdict is Verdict.INCONCLUSIVE
    stated = dataclasses.replace(egress, facts={**egress.facts, "unproven": []})
    result, outcome = apply(stated, entry(), None)
    assert result.verdict is Verdict.PASS
    assert "every violation is waived (waivers.yaml #1)" in result.reason
    assert outcome.before == {"AG-EGRESS": Verdict.FAIL}
    assert outcome.waived("AG-EGRESS") == 2


@pytest.mark.parametrize("verdict", [Verdict.INCONCLUSIVE, Verdict.ERROR, Verdict.NOT_APPLICABLE])
def test_a_waiver_never_changes_a_verdict_that_is_not_fail(verdict: Verdict) -> None:
    warning = Finding(Severity.WARNING, "192.0.2.10 -> 192.0.2.99:5432 tcp: undeclared")
    result = ControlResult("AG-ONPREM", verdict, "why", (warning,), {"unproven": []})
    after, outcome = apply(result, entry("AG-ONPREM"), None)
    assert after.verdict is verdict
    assert outcome.marks == {("AG-ONPREM", 0): outcome.file.waivers[0]}


def test_info_findings_are_not_waived() -> None:
    info = Finding(Severity.INFO, "an on-prem client of the target")
    result = ControlResult("AG-ONPREM", Verdict.PASS, "ok", (info,))
    after, outcome = apply(result, entry("AG-ONPREM"), None)
    assert not outcome.marks
    assert "matches no finding" in after.findings[-1].summary


def test_waiver_for_a_control_not_judged_is_a_note(egress: ControlResult) -> None:
    _, outcome = apply(egress, entry("HY-DEST"), None)
    assert outcome.notes and "HY-DEST was not judged" in outcome.notes[0]
    assert [u.state for u in outcome.uses] == ["no-control"]


def test_apply_is_pure(egress: ControlResult, two_leaks: Observations) -> None:
    before = dataclasses.replace(egress)
    apply(egress, entry(match=f'{{destination: "{TCP_LEAK}"}}'), two_leaks)
    assert egress == before


def test_naive_now_is_refused(egress: ControlResult) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        apply_waivers((egress,), waivers(entry()), datetime(2026, 1, 1), None)
