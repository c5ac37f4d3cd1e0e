"""Air-gapped mode (HA 2.2, 4.3, 5, 8, 9, 13): nothing leaves or enters the Customer Environment."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.evidence.interface import Evidence
from conformance.judge import air_gapped
from conformance.judge.model import ControlResult
from conformance.observe.model import Observations
from conformance.profile_model import Profile
from conformance.verdict import Verdict, worst

Record = Callable[[ControlResult], None]


@pytest.mark.ucx_control("AG-EGRESS")
def test_no_connection_leaves_the_environment(
    ucx_observations: Observations, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(air_gapped.egress(ucx_observations, ucx_profile))


@pytest.mark.ucx_control("AG-INGRESS")
def test_no_connection_accepted_from_outside(
    ucx_observations: Observations, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(air_gapped.ingress(ucx_observations, ucx_profile))


@pytest.mark.ucx_control("AG-CLOUD-NAMES")
def test_no_cloud_service_is_attempted(
    ucx_observations: Observations, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(air_gapped.cloud_names(ucx_observations, ucx_profile))


@pytest.mark.ucx_control("AG-ONPREM")
def test_integrations_stay_on_documented_endpoints(
    ucx_observations: Observations, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(air_gapped.onprem(ucx_observations, ucx_profile))


@pytest.mark.ucx_control("AG-PERIMETER")
def test_perimeter_blocks_outside_canaries(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    if not ucx_profile.probes.perimeter:
        ucx_verdict(
            ControlResult(
                "AG-PERIMETER",
                Verdict.NOT_APPLICABLE,
                "perimeter probing is not enabled in the profile (probes: {perimeter: true})",
            )
        )
        return
    if ucx_evidence.probe_log is None:
        ucx_verdict(
            ControlResult(
                "AG-PERIMETER",
                Verdict.INCONCLUSIVE,
                f"probing is enabled but the {ucx_evidence.source} evidence source ran no probes",
            )
        )
        return
    from conformance.judge.perimeter import judge_perimeter

    ucx_verdict(judge_perimeter(ucx_evidence.probe_log))


@pytest.mark.ucx_control("TM-AIRGAP")
def test_no_telemetry_or_update_push(
    ucx_observations: Observations, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    parts = (
        air_gapped.egress(ucx_observations, ucx_profile),
        air_gapped.cloud_names(ucx_observations, ucx_profile),
    )
    verdict = worst(p.verdict for p in parts)
    reason = "; ".join(f"{p.control_id} {p.verdict.value}: {p.reason}" for p in parts)
    findings = tuple(f for p in parts for f in p.findings)
    ucx_verdict(ControlResult("TM-AIRGAP", verdict, reason, findings))
