"""Proxy (CT 7 "Via proxy, so no need for the UCX Suite to have direct connectivity"): the
target reaches the cloud only through the declared proxy, as TLS tunnels to allowed endpoints,
without resolving cloud names around it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.content.from_evidence import content_evidence, proxy_log
from conformance.evidence.interface import Evidence
from conformance.judge import proxy
from conformance.judge.model import ControlResult
from conformance.observe.model import Observations
from conformance.profile_model import Profile

Record = Callable[[ControlResult], None]


@pytest.mark.ucx_control("PX-ONLY")
def test_no_direct_connection_around_the_proxy(
    ucx_observations: Observations,
    ucx_evidence: Evidence,
    ucx_profile: Profile,
    ucx_verdict: Record,
) -> None:
    ucx_verdict(proxy.only(ucx_observations, ucx_profile, proxy_log(ucx_evidence)))


@pytest.mark.ucx_control("PX-CONNECT")
def test_proxy_carries_tls_tunnels_to_allowed_endpoints(
    ucx_observations: Observations,
    ucx_evidence: Evidence,
    ucx_profile: Profile,
    ucx_verdict: Record,
) -> None:
    ucx_verdict(
        proxy.connect(
            ucx_observations,
            ucx_profile,
            proxy_log(ucx_evidence),
            content_evidence(ucx_evidence),
        )
    )


@pytest.mark.ucx_control("PX-DNS")
def test_no_cloud_name_resolved_around_the_proxy(
    ucx_observations: Observations, ucx_profile: Profile, ucx_verdict: Record
) -> None:
    ucx_verdict(proxy.dns(ucx_observations, ucx_profile))
