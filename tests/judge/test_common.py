"""Shared judge helpers: scope, flow text, names, grouping."""

from __future__ import annotations

import ipaddress

import pytest

from conformance.judge.common import (
    MAX_FINDINGS,
    FindingGroups,
    Findings,
    address_text,
    cap_findings,
    describe_flow,
    flow_finding,
    host_of,
    is_cloud_name,
    is_local_name,
    is_outside,
    is_scope_limited,
    reverse_address,
)
from conformance.judge.result import Finding, Severity
from conformance.observe.records import InitiatorBasis
from tests.defects import OUTSIDE, TARGET, defect_profile
from tests.judge.factory import Scenario

ENV = defect_profile().environment


@pytest.mark.parametrize(
    "address",
    [
        "169.254.3.4",
        "224.0.0.251",
        "239.255.255.250",
        "255.255.255.255",
        "192.0.2.255",  # directed broadcast of 192.0.2.0/24
        "127.0.0.1",
        "fe80::1",
        "ff02::fb",
        "::1",
    ],
)
def test_scope_limited_addresses(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert is_scope_limited(ip, ENV)
    assert not is_outside(ip, ENV)


@pytest.mark.parametrize(
    "address", ["198.51.100.7", "203.0.113.255", "2001:db8:ffff::7", "8.8.8.8"]
)
def test_outside_addresses(address: str) -> None:
    assert is_outside(ipaddress.ip_address(address), ENV)


@pytest.mark.parametrize("address", ["192.0.2.10", "192.0.2.0", "2001:db8:1::99"])
def test_inside_addresses(address: str) -> None:
    assert not is_outside(ipaddress.ip_address(address), ENV)


def test_describe_flow_variants() -> None:
    s = Scenario()
    tcp = s.flow(TARGET, OUTSIDE, 443, packets_out=3, packets_in=0)
    refused = s.flow(TARGET, OUTSIDE, 22, packets_out=1, packets_in=1, rejected=True)
    udp = s.flow(TARGET, OUTSIDE, 514, transport="udp", sport=40000, packets_out=1, packets_in=0)
    icmp6 = s.flow("2001:db8:1::10", "2001:db8:ffff::7", 0, transport="icmpv6", sport=128)
    gre = s.flow(TARGET, OUTSIDE, 0, transport="ip-47", sport=0, packets_in=0, packets_out=1)
    flagged = s.flow(TARGET, OUTSIDE, 443, handshake=False, basis=InitiatorBasis.DIRECTION_FLAG)
    assert (
        describe_flow(tcp) == "192.0.2.10:51234 -> 198.51.100.7:443 tcp, SYN, 3 packets, unanswered"
    )
    assert describe_flow(refused).endswith("tcp, SYN, 2 packets, refused")
    assert describe_flow(udp) == "192.0.2.10:40000 -> 198.51.100.7:514 udp, 1 packet, unanswered"
    assert describe_flow(icmp6) == (
        "2001:db8:1::10 -> 2001:db8:ffff::7 icmpv6 echo-request code 0, 5 packets, accepted"
    )
    assert describe_flow(gre) == "192.0.2.10 -> 198.51.100.7 ip-47, 1 packet, unanswered"
    assert describe_flow(flagged, ": note").endswith(
        "no handshake, 5 packets, accepted: note (direction from pcapng direction flags)"
    )


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("api.imagicle.com:443", "api.imagicle.com"),
        ("API.Imagicle.com.", "api.imagicle.com"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("http://proxy.example:3128/x?y", "proxy.example"),
        ("[broken:443", "broken"),
        ("", ""),
    ],
)
def test_host_of(text: str, host: str) -> None:
    assert host_of(text) == host


def test_cloud_names_follow_decision_4() -> None:
    assert is_cloud_name("license.imagicle.com")
    assert is_cloud_name("imagicle.cloud")
    assert is_cloud_name("License.Imagicle.Com.")
    assert not is_cloud_name("notimagicle.com")
    assert not is_cloud_name("imagicle.com.example")


def test_reverse_names() -> None:
    assert reverse_address("10.2.0.192.in-addr.arpa") == ipaddress.ip_address("192.0.2.10")
    nibbles = ".".join(reversed("20010db8000100000000000000000010"))
    assert reverse_address(nibbles + ".ip6.arpa") == ipaddress.ip_address("2001:db8:1::10")
    assert reverse_address("2.0.192.in-addr.arpa") is None
    assert reverse_address("x.2.0.192.in-addr.arpa") is None
    assert reverse_address("example.com") is None


def test_local_names() -> None:
    assert is_local_name("wpad")
    assert is_local_name("printer.local.")
    assert not is_local_name("www.example.net")


def test_finding_groups_merge_and_bound_packets() -> None:
    groups = FindingGroups()
    for n in range(20):
        groups.add(("k",), Severity.WARNING, "thing", capture=0, packets=(n,), flow_id=n + 1)
    groups.add(("other",), Severity.INFO, "other", capture=0, packets=(), flow_id=None)
    first, second = groups.findings()
    assert first.summary == "thing, 20 times"
    assert first.flow_id == 1
    assert first.packets is not None and first.packets.packets == tuple(range(8))
    assert second.summary == "other" and second.packets is None


def test_a_repeat_counted_without_its_summary_is_counted_as_by_add() -> None:
    added, again = FindingGroups(), FindingGroups()
    assert not again.add_again(("k",), packets=(0,))  # new: nothing counted
    for n in range(12):
        added.add(("k",), Severity.WARNING, "thing", capture=0, packets=(n,), flow_id=n + 1)
        if not again.add_again(("k",), packets=(n,)):
            again.add(("k",), Severity.WARNING, "thing", capture=0, packets=(n,), flow_id=n + 1)
    assert again.findings() == added.findings()


def test_flow_findings_past_what_a_report_lists_are_only_counted() -> None:
    # Two severities, each past the cap, interleaved: what is listed and counted is what
    # describing every flow would give.
    s = Scenario()
    flows = [s.flow(TARGET, OUTSIDE, 1000 + n) for n in range(3 * MAX_FINDINGS + 30)]
    described: list[Finding] = []
    counted = Findings()
    for n, flow in enumerate(flows):
        severity = Severity.WARNING if n % 3 == 0 else Severity.VIOLATION
        described.append(flow_finding(severity, flow, note=f": {n}"))
        counted.flow(severity, flow, note=f": {n}")
    assert len(counted) == len(described)
    assert cap_findings(counted) == cap_findings(described)


def test_an_address_text_is_its_own_objects_when_ids_are_reused() -> None:
    for n in range(2000):
        text = f"198.51.{n // 256}.{n % 256}"
        assert address_text(ipaddress.ip_address(text)) == text
