"""Telemetry (CT 3, CT 10): the opt-out holds, only the documented data is sent, and only over
the licensing channel. Judged on content-level evidence (an intercepting proxy's decrypted
requests, the lab cloud side's received requests, the target's TLS sessions decrypted with its
own keys, a HAR); without it every control is inconclusive."""

from __future__ import annotations

import pytest

from conformance.plugin import JudgeControl


@pytest.mark.ucx_control("TM-OPTOUT")
def test_telemetry_opt_out_holds(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("TM-MINIMAL")
def test_telemetry_sends_only_documented_data(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("TM-CHANNEL")
def test_telemetry_uses_the_licensing_channel(ucx_judge: JudgeControl) -> None:
    ucx_judge()
