"""Air-gapped mode (HA 2.2, 4.3, 5, 8, 9, 13): nothing leaves or enters the Customer Environment."""

from __future__ import annotations

import pytest

from conformance.plugin import JudgeControl


@pytest.mark.ucx_control("AG-EGRESS")
def test_no_connection_leaves_the_environment(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("AG-INGRESS")
def test_no_connection_accepted_from_outside(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("AG-CLOUD-NAMES")
def test_no_cloud_service_is_attempted(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("AG-ONPREM")
def test_integrations_stay_on_documented_endpoints(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("AG-PERIMETER")
def test_perimeter_blocks_outside_canaries(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("TM-AIRGAP")
def test_no_telemetry_or_update_push(ucx_judge: JudgeControl) -> None:
    ucx_judge()
