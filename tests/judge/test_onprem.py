"""AG-ONPREM: the target's on-prem integrations use declared endpoints and ports."""

from __future__ import annotations

from conformance.judge.air_gapped import onprem
from conformance.judge.result import Severity
from conformance.verdict import Verdict
from tests.defects import (
    AD,
    ADMIN,
    CUCM,
    DNS_SERVER,
    MDNS_GROUP,
    NTP_SERVER,
    OUTSIDE,
    TARGET,
    TARGET6,
    UNDECLARED,
    defect_profile,
)
from tests.judge.factory import Scenario


def declared_only() -> Scenario:
    s = Scenario()
    s.flow(TARGET, CUCM, 5060, transport="udp", sport=5060)
    s.flow(TARGET, AD, 389)
    s.dns(TARGET, DNS_SERVER, "cucm.corp.example", answers=(CUCM,))
    s.flow(TARGET, NTP_SERVER, 123, transport="udp", sport=123)
    return s


def test_declared_endpoints_pass() -> None:
    result = onprem(declared_only().observations(), defect_profile())
    assert result.verdict is Verdict.PASS
    assert result.reason == (
        "4 on-prem flows initiated by the target, all to declared endpoints (cucm, ad, dns, ntp)"
    )
    assert result.findings == ()


def test_undeclared_address_is_a_warning_and_passes() -> None:
    s = declared_only()
    s.flow(TARGET, UNDECLARED, 5432, sport=52100)
    s.flow(TARGET, UNDECLARED, 5432, sport=52101)
    result = onprem(s.observations(), defect_profile())
    assert result.verdict is Verdict.PASS
    (finding,) = result.findings
    assert finding.severity is Severity.WARNING
    assert finding.summary == (
        "192.0.2.10:52100 -> 192.0.2.99:5432 tcp, SYN, 5 packets, accepted:"
        " 192.0.2.99 is not a declared endpoint, 2 flows"
    )
    assert "2 to undeclared endpoints (warnings" in result.reason


def test_undeclared_port_on_declared_host_names_what_is_declared() -> None:
    s = declared_only()
    s.flow(TARGET, CUCM, 5060, sport=40000)  # tcp, but only 5060/udp is declared
    result = onprem(s.observations(), defect_profile())
    assert result.findings[0].summary.endswith(
        "cucm (192.0.2.20) does not declare 5060/tcp (declares 5060/udp, 5061/tcp, 8443/tcp)"
    )


def test_undeclared_endpoint_fails_when_strict() -> None:
    s = declared_only()
    s.flow(TARGET, UNDECLARED, 5432)
    result = onprem(s.observations(), defect_profile(strict=True))
    assert result.verdict is Verdict.FAIL
    assert result.violations[0].flow_id == 5
    assert "(environment.strict)" in result.reason


def test_inbound_from_onprem_clients_is_info() -> None:
    s = declared_only()
    s.flow(ADMIN, TARGET, 443, sport=50000)
    s.flow(ADMIN, TARGET, 443, sport=50001)
    result = onprem(s.observations(), defect_profile(strict=True))
    assert result.verdict is Verdict.PASS
    (finding,) = result.findings
    assert finding.severity is Severity.INFO
    assert finding.summary == (
        "192.0.2.50 -> 192.0.2.10:443 tcp: on-prem client of the target, not an integration,"
        " 2 flows"
    )


def test_outside_and_scope_limited_flows_are_not_judged_here() -> None:
    s = declared_only()
    s.flow(TARGET, OUTSIDE, 443)
    s.flow(TARGET, MDNS_GROUP, 5353, transport="udp", sport=5353, packets_in=0)
    s.flow(TARGET, "192.0.2.255", 137, transport="udp", sport=137, packets_in=0)
    result = onprem(s.observations(), defect_profile(strict=True))
    assert result.verdict is Verdict.PASS
    assert result.facts["scope_limited_flows"] == 2


def test_icmp_to_declared_address_is_declared() -> None:
    s = declared_only()
    s.flow(TARGET, CUCM, 0, transport="icmp", sport=8)
    s.flow(TARGET, UNDECLARED, 0, transport="icmp", sport=8)
    result = onprem(s.observations(), defect_profile(strict=True))
    assert result.verdict is Verdict.FAIL
    (finding,) = result.findings
    assert "192.0.2.99 is not a declared endpoint" in finding.summary


def test_empty_allow_list_is_inconclusive() -> None:
    result = onprem(declared_only().observations(), defect_profile(endpoints=False))
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "declares no on-prem endpoints" in result.reason


def test_no_integration_traffic_is_inconclusive() -> None:
    s = Scenario()
    s.flow(ADMIN, TARGET, 443)
    result = onprem(s.observations(), defect_profile())
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "initiated no flow inside the environment" in result.reason


def test_neighbour_discovery_to_a_global_address_is_scope_limited_not_an_endpoint() -> None:
    # Neighbour unreachability detection sends NS to the router's global address; NDP is
    # never forwarded (hop limit 255), so it is no integration and no warning.
    s = declared_only()
    s.flow(TARGET6, "2001:db8:1::1", 0, transport="icmpv6", sport=135)
    result = onprem(s.observations(), defect_profile(strict=True))
    assert result.verdict is Verdict.PASS
    assert result.findings == ()
    assert result.facts["scope_limited_flows"] == 1
