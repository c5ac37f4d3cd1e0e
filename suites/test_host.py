"""Live-host facts (`--host`, docs/hosts.md): the HOST-* controls, and a second opinion on
egress and ingress from the host's own sockets (the worse of capture and host counts)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.evidence.interface import HOST_FACTS, Evidence
from conformance.host.model import HostFacts
from conformance.judge import host
from conformance.judge.model import ControlResult
from conformance.profile_model import Mode, Profile
from conformance.verdict import Verdict

Record = Callable[[ControlResult], None]
NO_HOST = "no live host in this run (give --host URL)"


def _facts(evidence: Evidence) -> HostFacts | None:
    from conformance.evidence.host import load_facts

    path = evidence.log(HOST_FACTS)
    return load_facts(path) if path is not None else None


def _host_only(control_id: str, evidence: Evidence, verdict: Record) -> HostFacts | None:
    facts = _facts(evidence)
    if facts is None:
        verdict(ControlResult(control_id, Verdict.NOT_APPLICABLE, NO_HOST))
    return facts


@pytest.mark.ucx_control("HOST-HOSTS")
def test_no_local_override_of_cloud_names(ucx_evidence: Evidence, ucx_verdict: Record) -> None:
    facts = _host_only("HOST-HOSTS", ucx_evidence, ucx_verdict)
    if facts is not None:
        ucx_verdict(host.hosts_file(facts))


@pytest.mark.ucx_control("HOST-PROXY")
def test_configured_proxy_is_the_declared_one(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    facts = _host_only("HOST-PROXY", ucx_evidence, ucx_verdict)
    if facts is not None:
        ucx_verdict(host.proxy_setting(facts, ucx_profile))


@pytest.mark.ucx_control("HOST-TELEMETRY")
def test_product_settings_match_the_profile(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    facts = _host_only("HOST-TELEMETRY", ucx_evidence, ucx_verdict)
    if facts is not None:
        ucx_verdict(host.product_settings(facts, ucx_profile))


def _second_opinion(evidence: Evidence, profile: Profile, verdict: Record, control: str) -> None:
    facts = _facts(evidence)
    if facts is None:
        pytest.skip(NO_HOST)
    result = host.egress(facts, profile) if control in ("AG-EGRESS", "PX-ONLY") else None
    if control in ("AG-INGRESS", "HY-INGRESS"):
        result = host.ingress(facts, profile)
    if result is None or result.control_id != control:
        pytest.skip(f"host sockets say nothing about {control} in this mode")
    verdict(result)


@pytest.mark.ucx_control("AG-EGRESS", supplementary=True)
def test_host_opens_no_connection_outside(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    _second_opinion(ucx_evidence, ucx_profile, ucx_verdict, "AG-EGRESS")


@pytest.mark.ucx_control("AG-INGRESS", supplementary=True)
def test_host_accepts_nothing_from_outside(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    _second_opinion(ucx_evidence, ucx_profile, ucx_verdict, "AG-INGRESS")


@pytest.mark.ucx_control("HY-INGRESS", supplementary=True)
def test_host_accepts_nothing_from_outside_hybrid(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    _second_opinion(ucx_evidence, ucx_profile, ucx_verdict, "HY-INGRESS")


@pytest.mark.ucx_control("PX-ONLY", supplementary=True)
def test_host_opens_nothing_around_the_proxy(
    ucx_evidence: Evidence, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    if ucx_profile.mode is not Mode.HYBRID:
        pytest.skip("PX-ONLY is a hybrid-mode control")
    _second_opinion(ucx_evidence, ucx_profile, ucx_verdict, "PX-ONLY")
