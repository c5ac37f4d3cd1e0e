"""Proxy (CT 7 "Via proxy, so no need for the UCX Suite to have direct connectivity"): the
target reaches the cloud only through the declared proxy, as TLS tunnels to allowed endpoints,
without resolving cloud names around it."""

from __future__ import annotations

import pytest

from conformance.plugin import JudgeControl


@pytest.mark.ucx_control("PX-ONLY")
def test_no_direct_connection_around_the_proxy(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("PX-CONNECT")
def test_proxy_carries_tls_tunnels_to_allowed_endpoints(ucx_judge: JudgeControl) -> None:
    ucx_judge()


@pytest.mark.ucx_control("PX-DNS")
def test_no_cloud_name_resolved_around_the_proxy(ucx_judge: JudgeControl) -> None:
    ucx_judge()
