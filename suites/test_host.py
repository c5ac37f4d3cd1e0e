"""Live-host facts (`--host`, docs/hosts.md): the HOST-* controls. A host's sockets also give a
second opinion on AG-EGRESS, AG-INGRESS, HY-INGRESS and PX-ONLY inside those controls' judges
(conformance.judge.controls: the worse verdict of capture and host stands)."""

from __future__ import annotations

import pytest

from conformance.plugin import JudgeControl


@pytest.mark.ucx_control("HOST-HOSTS")
def test_no_local_override_of_cloud_names(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("HOST-PROXY")
def test_configured_proxy_is_the_declared_one(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("HOST-TELEMETRY")
def test_product_settings_match_the_profile(ucx_judge: JudgeControl) -> None:
    ucx_judge()
