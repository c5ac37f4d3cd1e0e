"""Hybrid mode in the lab, real TLS stacks on both sides: the well-behaved target passes every
HY control judged from the capture, and each fault fails exactly the control it breaks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.judge import hybrid
from conformance.judge.result import ControlResult
from conformance.verdict import Verdict
from tests.lab.conftest import SCENARIOS, Scenario

pytestmark = pytest.mark.lab

Runs = Callable[[str], Scenario]
SCENARIOS.setdefault("hy-clean", ("lab-hybrid", (), {}))
SCENARIOS.setdefault("hy-listen", ("lab-hybrid", ("listen-outside",), {}))


def judge(scenario: Scenario) -> dict[str, ControlResult]:
    obs = scenario.observations()
    return {
        "HY-DEST": hybrid.dest(obs, scenario.profile),
        "HY-TLS": hybrid.tls(obs, scenario.profile),
        "HY-INGRESS": hybrid.ingress(obs, scenario.profile),
    }


def test_well_behaved_target_passes_and_the_report_shows_tls_per_endpoint(
    lab_runs: Runs,
) -> None:
    results = judge(lab_runs("hy-clean"))
    for result in results.values():
        assert result.verdict is Verdict.PASS, result
    endpoints = results["HY-TLS"].facts["endpoints"]
    assert isinstance(endpoints, dict)
    assert endpoints["api.imagicle.com:443"]["version"] == "TLS 1.3"
    assert "grpc.imagicle.com:443" in endpoints


@pytest.mark.parametrize(
    ("scenario", "control", "evidence"),
    [
        ("hy-faults-1", "HY-TLS", "plaintext HTTP"),  # plaintext-licence
        ("hy-faults-1", "HY-DEST", "updates.example.net"),  # undocumented-endpoint
        ("hy-faults-2", "HY-TLS", "TLS 1.0"),  # tls10
        ("hy-faults-2", "HY-TLS", "no SNI"),  # no-sni
        ("hy-listen", "HY-INGRESS", "203.0.113.66"),  # listen-outside
    ],
)
def test_fault_fails_its_control(
    scenario: str, control: str, evidence: str, lab_runs: Runs
) -> None:
    result = judge(lab_runs(scenario))[control]
    assert result.verdict is Verdict.FAIL, result
    assert any(evidence in f.summary for f in result.violations), result.findings


def test_faults_fail_nothing_else(lab_runs: Runs) -> None:
    # plaintext-licence and undocumented-endpoint break HY-TLS and HY-DEST, not HY-INGRESS.
    assert judge(lab_runs("hy-faults-1"))["HY-INGRESS"].verdict is Verdict.PASS
    results = judge(lab_runs("hy-faults-2"))
    assert results["HY-DEST"].verdict is Verdict.PASS, results["HY-DEST"]


SCENARIOS.setdefault("hy-cert-fault", ("lab-hybrid", ("accept-untrusted-cert",), {}))


def judge_cert(scenario: Scenario) -> ControlResult:
    from conformance.judge.impostor import impostor

    return impostor(scenario.observations(), scenario.profile)


def test_well_behaved_target_refuses_every_impostor(lab_runs: Runs) -> None:
    result = judge_cert(lab_runs("hy-clean"))
    assert result.verdict is Verdict.PASS, result
    by_kind = result.facts["by_kind"]
    assert isinstance(by_kind, dict)
    assert set(by_kind) == {"self-signed", "untrusted-ca", "wrong-name", "expired", "weak-key"}
    # every connection the impostors logged is a flow of the phase's own capture
    table = result.facts["impostor_connections"]
    assert isinstance(table, list) and all(row["capture_flow"] for row in table)


def test_target_that_accepts_an_untrusted_certificate_fails_hy_cert(lab_runs: Runs) -> None:
    result = judge_cert(lab_runs("hy-cert-fault"))
    assert result.verdict is Verdict.FAIL, result
    finding = result.violations[0]
    assert "application data" in finding.summary
    assert finding.evidence_file == "lab/impostors.jsonl" and finding.evidence_line


def judge_scan(scenario: Scenario) -> ControlResult:
    from conformance.judge.endpoint import endpoints

    return endpoints(scenario.observations(), scenario.profile)


def test_endpoint_scan_passes_the_sound_cloud(lab_runs: Runs) -> None:
    result = judge_scan(lab_runs("hy-clean"))
    assert result.verdict is Verdict.PASS, result
    endpoints = result.facts["endpoints"]
    assert isinstance(endpoints, dict) and "api.imagicle.com:443" in endpoints


def test_endpoint_scan_fails_a_misconfigured_stand_in(lab_runs: Runs) -> None:
    # With the tls10 fault the stand-ins accept TLS 1.0 (so the fault can be seen): a server
    # misconfiguration HY-ENDPOINT must catch.
    result = judge_scan(lab_runs("hy-faults-2"))
    assert result.verdict is Verdict.FAIL, result
    assert any("TLS 1.0" in f.summary for f in result.violations)


SCENARIOS.setdefault("hy-off", ("lab-hybrid-deactivated", (), {}))
SCENARIOS.setdefault("hy-off-fault", ("lab-hybrid-deactivated", ("cloud-licensing-airgapped",), {}))


def test_nothing_activated_and_nothing_sent_passes_hy_deactivated(lab_runs: Runs) -> None:
    scenario = lab_runs("hy-off")
    result = hybrid.deactivated(scenario.observations(), scenario.profile)
    assert result.verdict is Verdict.PASS, result
    # no licensing activated: no impostor phase, and HY-CERT says why it cannot judge
    assert judge_cert(scenario).verdict is Verdict.INCONCLUSIVE


def test_cloud_licensing_without_an_activated_service_fails_hy_deactivated(
    lab_runs: Runs,
) -> None:
    scenario = lab_runs("hy-off-fault")
    result = hybrid.deactivated(scenario.observations(), scenario.profile)
    assert result.verdict is Verdict.FAIL, result
    assert any("203.0.113.10" in f.summary for f in result.violations), result.findings
