"""AG-CLOUD-NAMES: the target seeks no Imagicle cloud name and no external name."""

from __future__ import annotations

import pytest

from conformance.judge.air_gapped import cloud_names
from conformance.judge.result import Severity
from conformance.verdict import Verdict
from tests.defects import (
    AD,
    ADMIN,
    CUCM,
    DNS_SERVER,
    MDNS_GROUP,
    OUTSIDE,
    OUTSIDE_DNS,
    PROXY,
    TARGET,
    TARGET6,
    defect_profile,
)
from tests.judge.factory import Scenario, capture

PROFILE = defect_profile()


def internal_lookups() -> Scenario:
    s = Scenario()
    s.dns(TARGET, DNS_SERVER, "cucm.corp.example", answers=(CUCM,))
    s.dns(TARGET, DNS_SERVER, "dc1.corp.example", answers=(AD,), count=4)
    s.flow(TARGET, CUCM, 5061)
    return s


def test_internal_names_pass() -> None:
    result = cloud_names(internal_lookups().observations(), PROFILE)
    assert result.verdict is Verdict.PASS
    assert result.reason == (
        "2 names checked (5 DNS queries, 0 TLS SNI, 0 HTTP requests, 0 other mentions)"
        " in 3 target flows: none is an Imagicle cloud or external name"
    )
    assert result.facts["names_checked"] == 2


@pytest.mark.parametrize(
    "name", ["license.imagicle.com", "imagicle.com", "x.y.imagicle.cloud", "LICENSE.Imagicle.COM"]
)
def test_cloud_name_to_onprem_resolver_fails(name: str) -> None:
    s = internal_lookups()
    s.dns(TARGET, DNS_SERVER, name, rcode=3)
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    (finding,) = result.findings
    assert finding.summary == (
        f"DNS query for {name} (A) to 192.0.2.53:53 udp: Imagicle cloud name"
    )
    assert finding.facts["looks_like"] == "Imagicle cloud service"


def test_cloud_name_resolved_inside_still_fails() -> None:
    s = internal_lookups()
    s.dns(TARGET, DNS_SERVER, "api.imagicle.com", answers=("192.0.2.200",))
    assert cloud_names(s.observations(), PROFILE).verdict is Verdict.FAIL


def test_answer_chain_to_cloud_name_fails() -> None:
    s = internal_lookups()
    s.dns(
        TARGET,
        DNS_SERVER,
        "licensing.corp.example",
        cnames=("license.imagicle.com",),
        answers=("192.0.2.201",),
    )
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.findings[0].summary.endswith(
        "the answer leads to the Imagicle cloud name license.imagicle.com"
    )


def test_query_to_outside_resolver_fails_even_for_internal_looking_name() -> None:
    s = internal_lookups()
    s.dns(TARGET, OUTSIDE_DNS, "cucm.corp.example", answers=(CUCM,))
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.findings[0].summary.endswith("resolver outside the environment")


def test_external_name_resolved_outside_by_onprem_resolver_fails() -> None:
    s = internal_lookups()
    s.dns(TARGET, DNS_SERVER, "www.example.net", answers=(OUTSIDE,))
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.findings[0].summary.endswith(
        "answered with 198.51.100.7, not inside the environment"
    )


def test_sinkholed_external_name_fails() -> None:
    s = internal_lookups()
    s.dns(TARGET, DNS_SERVER, "ctldl.windowsupdate.com", answers=("0.0.0.0",))
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.findings[0].facts["looks_like"] == "Windows certificate trust list update"


@pytest.mark.parametrize(
    ("rcode", "why"),
    [
        (3, "NXDOMAIN from the on-prem resolver"),
        (None, "no answer seen"),
        (2, "rcode 2 from the on-prem resolver"),
        (0, "answered without addresses"),
    ],
)
def test_unresolved_name_at_onprem_resolver_is_a_warning(rcode: int | None, why: str) -> None:
    s = internal_lookups()
    s.dns(TARGET, DNS_SERVER, "wpad.corp.example", rcode=rcode)
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.PASS
    (finding,) = result.findings
    assert finding.severity is Severity.WARNING
    assert why in finding.summary
    assert "could not show internal (warnings)" in result.reason


def test_nodata_for_a_name_shown_internal_elsewhere_is_fine() -> None:
    s = internal_lookups()
    s.dns(TARGET, DNS_SERVER, "cucm.corp.example", qtype=28)  # AAAA, NOERROR, no answers
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.PASS
    assert result.findings == ()


def test_reverse_lookup_of_inside_address_is_fine_outside_is_warning() -> None:
    s = internal_lookups()
    s.dns(TARGET, DNS_SERVER, "20.2.0.192.in-addr.arpa", qtype=12, rcode=3)
    s.dns(TARGET, DNS_SERVER, "7.100.51.198.in-addr.arpa", qtype=12, rcode=3)
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.PASS
    (finding,) = result.findings
    assert "reverse lookup of an outside address" in finding.summary


def test_mdns_cloud_name_fails_though_scope_limited() -> None:
    s = internal_lookups()
    s.dns(TARGET, MDNS_GROUP, "license.imagicle.com", protocol="mdns", port=5353, rcode=None)
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.findings[0].summary.startswith(
        "mDNS query for license.imagicle.com (A) to 224.0.0.251:5353 udp"
    )


def test_multicast_local_names_pass_and_external_names_fail() -> None:
    s = internal_lookups()
    s.dns(TARGET, MDNS_GROUP, "printer.local", protocol="mdns", port=5353, rcode=None)
    s.dns(TARGET6, "ff02::1:3", "wpad", protocol="llmnr", port=5355, rcode=None)
    assert cloud_names(s.observations(), PROFILE).verdict is Verdict.PASS
    s.dns(TARGET6, "ff02::1:3", "www.example.net", protocol="llmnr", port=5355, rcode=None)
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert "external name asked by multicast name resolution" in result.findings[0].summary


def test_other_hosts_queries_are_not_judged() -> None:
    s = internal_lookups()
    s.dns(ADMIN, DNS_SERVER, "license.imagicle.com", rcode=3)
    assert cloud_names(s.observations(), PROFILE).verdict is Verdict.PASS


def test_sni_cloud_name_to_onprem_address_fails() -> None:
    s = internal_lookups()
    flow = s.flow(TARGET, PROXY, 443, sport=52000)
    s.tls(flow, "api.imagicle.com")
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    finding = result.findings[0]
    assert finding.summary == (
        "TLS ClientHello with SNI api.imagicle.com, 192.0.2.10 -> 192.0.2.80:443 tcp:"
        " Imagicle cloud name"
    )
    assert finding.flow_id == flow.flow_id


def test_sni_of_onprem_server_passes_and_external_sni_fails() -> None:
    s = internal_lookups()
    s.tls(s.flow(TARGET, CUCM, 8443), "cucm.corp.example")
    assert cloud_names(s.observations(), PROFILE).verdict is Verdict.PASS
    s.tls(s.flow(TARGET, OUTSIDE, 443), "www.example.net")
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.findings[0].summary.endswith("external name on a flow leaving the environment")


def test_http_host_and_connect_naming_cloud_fail() -> None:
    s = internal_lookups()
    s.http(s.flow(TARGET, PROXY, 3128), "CONNECT", "api.imagicle.com:443", "api.imagicle.com:443")
    s.http(s.flow(TARGET, PROXY, 80), "GET", "/v1/license", "grpc.imagicle.com")
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    summaries = [f.summary for f in result.violations]
    assert any("CONNECT api.imagicle.com:443 (target api.imagicle.com)" in x for x in summaries)
    assert any("GET /v1/license (Host grpc.imagicle.com)" in x for x in summaries)


def test_connect_through_onprem_proxy_to_unproven_name_fails() -> None:
    s = internal_lookups()
    s.http(s.flow(TARGET, PROXY, 3128), "CONNECT", "www.example.net:443", "www.example.net:443")
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert "asks a proxy for a name no on-prem resolver showed internal" in result.reason


def test_connect_to_internal_name_or_inside_address_passes() -> None:
    s = internal_lookups()
    s.http(s.flow(TARGET, PROXY, 3128), "CONNECT", "cucm.corp.example:8443", None)
    s.http(s.flow(TARGET, PROXY, 3128), "GET", "http://192.0.2.30/x", "192.0.2.30")
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.PASS


def test_name_mention_of_cloud_name_fails() -> None:
    s = internal_lookups()
    flow = s.flow(TARGET, "239.255.255.250", 1900, transport="udp", packets_in=0)
    s.mention(flow, "ssdp", "license.imagicle.com")
    result = cloud_names(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.findings[0].summary.startswith("SSDP message names license.imagicle.com")


def test_repeated_queries_are_one_finding_with_a_count() -> None:
    s = internal_lookups()
    for _ in range(3):
        s.dns(TARGET, DNS_SERVER, "license.imagicle.com", rcode=3, count=2)
    result = cloud_names(s.observations(), PROFILE)
    (finding,) = result.findings
    assert finding.summary.endswith(", 6 times")
    assert finding.packets is not None and len(finding.packets.packets) == 6


def test_snap_truncated_packets_make_names_inconclusive() -> None:
    obs = internal_lookups().observations(capture(snap_truncated=12))
    result = cloud_names(obs, PROFILE)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "12 packets cut short by the snap length" in result.reason
