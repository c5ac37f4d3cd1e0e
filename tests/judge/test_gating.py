"""Fail closed, for every air-gapped control: no capture, silence, incomplete evidence."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from conformance.judge import air_gapped
from conformance.judge.common import MAX_FINDINGS
from conformance.judge.result import ControlResult, Severity
from conformance.observe.records import CaptureSummary, Observations
from conformance.profile_model import Profile
from conformance.verdict import Verdict
from tests.defects import (
    AD,
    ADMIN,
    CUCM,
    DNS_SERVER,
    OUTSIDE,
    OUTSIDE_CLIENT,
    TARGET,
    UNDECLARED,
    defect_profile,
)
from tests.judge.factory import (
    T0,
    Scenario,
    capture,
    dropping_capture,
    malformed_capture,
    truncated_capture,
)

JudgeFn = Callable[[Observations, Profile], ControlResult]

# Strict, so an undeclared endpoint is a violation for AG-ONPREM too.
PROFILE = defect_profile(strict=True)


def clean() -> Scenario:
    s = Scenario()
    s.dns(TARGET, DNS_SERVER, "cucm.corp.example", answers=(CUCM,))
    s.flow(TARGET, CUCM, 5061)
    s.flow(TARGET, AD, 389)
    return s


def add_leak(s: Scenario) -> None:
    s.flow(TARGET, OUTSIDE, 443)


def add_inbound(s: Scenario) -> None:
    s.flow(OUTSIDE_CLIENT, TARGET, 443)


def add_cloud_name(s: Scenario) -> None:
    s.dns(TARGET, DNS_SERVER, "license.imagicle.com", rcode=3)


def add_undeclared(s: Scenario) -> None:
    s.flow(TARGET, UNDECLARED, 5432)


CONTROLS: list[tuple[str, JudgeFn, Callable[[Scenario], None]]] = [
    ("AG-EGRESS", air_gapped.egress, add_leak),
    ("AG-INGRESS", air_gapped.ingress, add_inbound),
    ("AG-CLOUD-NAMES", air_gapped.cloud_names, add_cloud_name),
    ("AG-ONPREM", air_gapped.onprem, add_undeclared),
]
each_control = pytest.mark.parametrize(
    ("control_id", "judge", "defect"), CONTROLS, ids=[c[0] for c in CONTROLS]
)


@each_control
def test_clean_complete_capture_passes(
    control_id: str, judge: JudgeFn, defect: Callable[[Scenario], None]
) -> None:
    result = judge(clean().observations(), PROFILE)
    assert (result.control_id, result.verdict) == (control_id, Verdict.PASS)
    assert result.reason


@each_control
def test_defect_fails(control_id: str, judge: JudgeFn, defect: Callable[[Scenario], None]) -> None:
    s = clean()
    defect(s)
    result = judge(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.violations


@each_control
def test_no_capture_is_inconclusive(
    control_id: str, judge: JudgeFn, defect: Callable[[Scenario], None]
) -> None:
    result = judge(Observations(captures=(), flows=()), PROFILE)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reason == "no capture"


@each_control
def test_silent_target_is_inconclusive(
    control_id: str, judge: JudgeFn, defect: Callable[[Scenario], None]
) -> None:
    s = Scenario()
    s.dns(ADMIN, DNS_SERVER, "dc1.corp.example", answers=(AD,))
    s.flow(ADMIN, TARGET, 443, packets_in=0)  # knocks on the target, which says nothing
    result = judge(s.observations(), PROFILE)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reason.startswith("the target sent no packets: silence proves nothing")


@each_control
@pytest.mark.parametrize(
    ("summary", "why"),
    [
        (truncated_capture(), "capture truncated at record 4812"),
        (dropping_capture(3), "3 packets dropped (dropped by the kernel)"),
        (
            malformed_capture(2),
            "2 (IPv4 header length lies: 2, e.g. packet 7) frames not understood that could be"
            " the target's: a leak could hide in them",
        ),
        (
            malformed_capture(4, "unsupported link type 147"),
            "4 (unsupported link type 147: 4, e.g. packet 7) frames not understood",
        ),
    ],
    ids=["truncated", "drops", "malformed", "unsupported-link"],
)
def test_incomplete_capture_without_violation_is_inconclusive(
    control_id: str,
    judge: JudgeFn,
    defect: Callable[[Scenario], None],
    summary: CaptureSummary,
    why: str,
) -> None:
    result = judge(clean().observations(summary), PROFILE)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert why in result.reason


@each_control
def test_violation_in_truncated_capture_is_still_fail(
    control_id: str, judge: JudgeFn, defect: Callable[[Scenario], None]
) -> None:
    s = clean()
    defect(s)
    result = judge(s.observations(truncated_capture()), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert "the evidence is also incomplete: capture truncated at record 4812" in result.reason
    assert result.facts["incomplete"] == ["capture truncated at record 4812"]


def test_several_captures_name_the_incomplete_one() -> None:
    first = capture(path="/caps/a.pcapng")
    second = capture(path="/caps/b.pcapng", drops=7)
    result = air_gapped.egress(clean().observations(first, second), PROFILE)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reason == "b.pcapng: 7 packets dropped"


def test_findings_are_capped_with_a_counting_finding() -> None:
    s = clean()
    for port in range(MAX_FINDINGS + 20):
        s.flow(TARGET, OUTSIDE, 1000 + port)
    result = air_gapped.egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert len(result.findings) == MAX_FINDINGS + 1
    last = result.findings[-1]
    assert last.severity is Severity.VIOLATION
    assert last.summary.startswith("20 more findings not listed (20 violation)")
    assert result.facts["outside_flows"] == MAX_FINDINGS + 20


# --- decision 11: observation.minimum_window --------------------------------------------

WINDOW = dataclasses.replace(PROFILE, minimum_window_seconds=3600.0)


@each_control
def test_window_under_the_minimum_makes_a_clean_capture_inconclusive(
    control_id: str, judge: JudgeFn, defect: Callable[[Scenario], None]
) -> None:
    result = judge(clean().observations(capture(last_time=T0 + 600)), WINDOW)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reason == (
        "the captures cover 10 min, less than the profile's minimum window of 1 h"
        " (observation.minimum_window): absence is not proven"
    )
    assert result.facts["incomplete"] == [result.reason]  # a waiver cannot pass it either


@each_control
def test_window_under_the_minimum_still_fails_on_a_leak(
    control_id: str, judge: JudgeFn, defect: Callable[[Scenario], None]
) -> None:
    s = clean()
    defect(s)
    result = judge(s.observations(capture(last_time=T0 + 600)), WINDOW)
    assert result.verdict is Verdict.FAIL
    assert "less than the profile's minimum window of 1 h" in result.reason


@each_control
def test_window_reaching_the_minimum_passes(
    control_id: str, judge: JudgeFn, defect: Callable[[Scenario], None]
) -> None:
    result = judge(clean().observations(capture(last_time=T0 + 3600)), WINDOW)
    assert result.verdict is Verdict.PASS


@each_control
def test_short_window_without_a_minimum_is_no_gap(
    control_id: str, judge: JudgeFn, defect: Callable[[Scenario], None]
) -> None:
    """Without observation.minimum_window a short window only warns (in the coverage)."""
    result = judge(clean().observations(capture(last_time=T0 + 60)), PROFILE)
    assert result.verdict is Verdict.PASS


def test_window_is_the_time_the_captures_cover_not_the_span_between_them() -> None:
    # two 40-minute files a day apart cover 80 minutes, not a day
    first = capture(path="/caps/a.pcapng", last_time=T0 + 2400)
    second = capture(path="/caps/b.pcapng", first_time=T0 + 86400, last_time=T0 + 88800)
    result = air_gapped.egress(clean().observations(first, second), WINDOW)
    assert result.verdict is Verdict.PASS
    two_hours = dataclasses.replace(PROFILE, minimum_window_seconds=7200.0)
    result = air_gapped.egress(clean().observations(first, second), two_hours)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert result.reason.startswith("the captures cover 1 h 20 min, less than")


def test_window_just_under_the_minimum_says_so_in_seconds() -> None:
    result = air_gapped.egress(clean().observations(capture(last_time=T0 + 3599.6)), WINDOW)
    assert result.reason.startswith("the captures cover 3599.6 s, less than")
