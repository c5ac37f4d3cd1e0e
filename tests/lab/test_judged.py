"""The lab end to end through the harness's own judges: faults fail their control, the clean
target passes every air-gapped control."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from conformance.judge import air_gapped
from conformance.judge.perimeter import perimeter
from conformance.verdict import Verdict
from tests.lab.conftest import Scenario

pytestmark = pytest.mark.lab

Runs = Callable[[str], Scenario]
JUDGES = {
    "AG-EGRESS": air_gapped.egress,
    "AG-INGRESS": air_gapped.ingress,
    "AG-CLOUD-NAMES": air_gapped.cloud_names,
    "AG-ONPREM": air_gapped.onprem,
}


@pytest.mark.parametrize("control", sorted(JUDGES))
def test_clean_air_gapped_target_passes(control: str, lab_runs: Runs) -> None:
    scenario = lab_runs("ag-clean")
    observations = scenario.observations()
    assert observations.captures[0].drops == 0
    result = JUDGES[control](observations, scenario.profile)
    assert result.verdict is Verdict.PASS, result


def test_clean_air_gapped_perimeter_holds(lab_runs: Runs) -> None:
    scenario = lab_runs("ag-clean")
    assert scenario.run.probe_log is not None
    result = perimeter(scenario.observations(), scenario.profile)
    assert result.verdict is Verdict.PASS, result
    assert result.facts["probes"] == 10


@pytest.mark.parametrize(
    ("control", "evidence"),
    [
        ("AG-EGRESS", "203.0.113.123:123"),  # ntp-public
        ("AG-EGRESS", "2001:db8:ffff::10"),  # ipv6-leak
        ("AG-EGRESS", "198.51.100.53:53"),  # outside-resolver
        ("AG-INGRESS", "203.0.113.66"),  # listen-outside
        ("AG-CLOUD-NAMES", "api.imagicle.com"),  # phone-home-dns, mdns-cloud-name
    ],
)
def test_faulty_target_fails_the_control(control: str, evidence: str, lab_runs: Runs) -> None:
    scenario = lab_runs("ag-faults")
    result = JUDGES[control](scenario.observations(), scenario.profile)
    assert result.verdict is Verdict.FAIL, result
    assert any(evidence in f.summary for f in result.violations), result.findings


def test_undeclared_on_prem_host_fails_strict_onprem(lab_runs: Runs) -> None:
    scenario = lab_runs("ag-faults")
    strict = dataclasses.replace(
        scenario.profile,
        environment=dataclasses.replace(scenario.profile.environment, strict=True),
    )
    result = air_gapped.onprem(scenario.observations(), strict)
    assert result.verdict is Verdict.FAIL, result
    assert any("192.0.2.99" in f.summary for f in result.violations), result.findings


def test_open_perimeter_fails_ag_perimeter(lab_runs: Runs) -> None:
    scenario = lab_runs("ag-faults")
    assert scenario.run.probe_log is not None
    result = perimeter(scenario.observations(), scenario.profile)
    assert result.verdict is Verdict.FAIL, result
    answered = {f.facts["probe"] for f in result.violations}
    assert {"tcp-443-v4", "udp-53-v4", "icmp-echo-v4", "tcp-443-v6"} <= answered
    assert all(f.evidence_file == "probes.jsonl" and f.evidence_line for f in result.violations)
