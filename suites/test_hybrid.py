"""Hybrid mode (HA 2.2, 2.3, 3; CT 2, 6, 7): cloud traffic only to Imagicle, only over sound TLS."""

from __future__ import annotations

import pytest

from conformance.plugin import JudgeControl


@pytest.mark.ucx_control("HY-DEST")
def test_cloud_traffic_goes_only_to_documented_endpoints(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("HY-TLS")
def test_cloud_traffic_is_sound_tls(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("HY-CERT")
def test_target_sends_nothing_to_an_impostor(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("HY-INGRESS")
def test_cloud_connection_is_outbound_only(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("HY-DEACTIVATED")
def test_nothing_goes_to_the_cloud_without_an_activated_service(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("HY-ENDPOINT")
def test_cloud_endpoints_offer_sound_tls(ucx_judge: JudgeControl) -> None:
    ucx_judge()
