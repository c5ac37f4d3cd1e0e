"""Telemetry (CT 3, CT 10): the opt-out holds, only the documented data is sent, and only over
the licensing channel. Judged on content-level evidence (the intercepting proxy's decrypted
requests, the lab cloud side's received requests); without it every control is inconclusive."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.content.from_evidence import content_evidence, known_people, stimuli
from conformance.evidence.interface import Evidence
from conformance.judge import telemetry
from conformance.judge.model import ControlResult
from conformance.profile_model import Profile

Record = Callable[[ControlResult], None]


@pytest.mark.ucx_control("TM-OPTOUT")
def test_telemetry_opt_out_holds(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(
        telemetry.optout(
            content_evidence(ucx_evidence, ucx_profile),
            ucx_profile,
            stimuli(ucx_evidence),
            known_names=known_people(ucx_evidence),
        )
    )


@pytest.mark.ucx_control("TM-MINIMAL")
def test_telemetry_sends_only_documented_data(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(
        telemetry.minimal(
            content_evidence(ucx_evidence, ucx_profile),
            ucx_profile,
            known_names=known_people(ucx_evidence),
        )
    )


@pytest.mark.ucx_control("TM-CHANNEL")
def test_telemetry_uses_the_licensing_channel(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(
        telemetry.channel(
            content_evidence(ucx_evidence, ucx_profile),
            ucx_profile,
            known_names=known_people(ucx_evidence),
        )
    )
