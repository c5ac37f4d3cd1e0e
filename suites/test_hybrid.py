"""Hybrid mode (HA 2.2, 2.3, 3; CT 2, 6, 7): cloud traffic only to Imagicle, only over sound TLS."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.evidence.interface import Evidence
from conformance.judge import hybrid
from conformance.judge.model import ControlResult
from conformance.observe.model import Observations
from conformance.profile_model import Profile

Record = Callable[[ControlResult], None]


@pytest.mark.ucx_control("HY-DEST")
def test_cloud_traffic_goes_only_to_documented_endpoints(
    ucx_observations: Observations, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(hybrid.dest(ucx_observations, ucx_profile))


@pytest.mark.ucx_control("HY-TLS")
def test_cloud_traffic_is_sound_tls(
    ucx_observations: Observations, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(hybrid.tls(ucx_observations, ucx_profile))


@pytest.mark.ucx_control("HY-CERT")
def test_target_sends_nothing_to_an_impostor(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    from conformance.judge.impostor import judge_impostor

    ucx_verdict(judge_impostor(ucx_evidence, ucx_profile))


@pytest.mark.ucx_control("HY-INGRESS")
def test_cloud_connection_is_outbound_only(
    ucx_observations: Observations, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(hybrid.ingress(ucx_observations, ucx_profile))


@pytest.mark.ucx_control("HY-DEACTIVATED")
def test_nothing_goes_to_the_cloud_without_an_activated_service(
    ucx_observations: Observations, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(hybrid.deactivated(ucx_observations, ucx_profile))


@pytest.mark.ucx_control("HY-ENDPOINT")
def test_cloud_endpoints_offer_sound_tls(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    from conformance.judge.endpoint import judge_endpoints

    ucx_verdict(judge_endpoints(ucx_evidence, ucx_profile))
