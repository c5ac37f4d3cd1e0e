"""AG-EGRESS: every flow the target initiates stays inside the environment."""

from __future__ import annotations

from conformance.judge.air_gapped import egress
from conformance.judge.result import Severity
from conformance.observe.records import InitiatorBasis
from conformance.verdict import Verdict
from tests.defects import (
    AD,
    ADMIN,
    CUCM,
    DNS_SERVER,
    MDNS_GROUP,
    OUTSIDE,
    OUTSIDE6,
    OUTSIDE_CLIENT,
    OUTSIDE_DNS,
    TARGET,
    TARGET6,
    defect_profile,
)
from tests.judge.factory import Scenario

PROFILE = defect_profile()


def clean() -> Scenario:
    s = Scenario()
    s.flow(TARGET, CUCM, 5061)
    s.flow(TARGET, AD, 389)
    s.dns(TARGET, DNS_SERVER, "cucm.corp.example", answers=(CUCM,))
    s.flow(ADMIN, TARGET, 443)
    return s


def test_inside_only_passes_and_says_what_was_checked() -> None:
    result = egress(clean().observations(), PROFILE)
    assert result.verdict is Verdict.PASS
    assert result.reason.startswith("4 target flows: 4 inside 192.0.2.0/24, 2001:db8:1::/64")
    assert "0 initiated to an outside address" in result.reason
    assert result.facts["outside_flows"] == 0
    assert result.findings == ()


def test_tcp_leak_fails_with_flow_and_packets() -> None:
    s = clean()
    leak = s.flow(TARGET, OUTSIDE, 443, packets_out=3, packets_in=2)
    result = egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    (finding,) = result.findings
    assert finding.severity is Severity.VIOLATION
    assert finding.summary == "192.0.2.10:51234 -> 198.51.100.7:443 tcp, SYN, 5 packets, accepted"
    assert finding.flow_id == leak.flow_id
    assert finding.packets is not None and finding.packets.packets == leak.sample_packets
    assert finding.facts["looks_like"] == "HTTPS"
    assert result.facts["outside_flows"] == 1


def test_unanswered_syn_still_fails() -> None:
    s = clean()
    s.flow(TARGET, OUTSIDE, 443, packets_out=3, packets_in=0)
    result = egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.findings[0].summary.endswith("tcp, SYN, 3 packets, unanswered")


def test_udp_icmp_and_ipv6_leaks_each_fail() -> None:
    s = clean()
    s.flow(TARGET, "203.0.113.123", 123, transport="udp", sport=123, packets_in=1)
    s.flow(TARGET, OUTSIDE, 0, transport="icmp", sport=8, packets_in=0)
    s.flow(TARGET6, OUTSIDE6, 443)
    result = egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    summaries = [f.summary for f in result.findings]
    assert summaries[0].startswith("192.0.2.10:123 -> 203.0.113.123:123 udp")
    assert summaries[1].startswith("192.0.2.10 -> 198.51.100.7 icmp echo-request code 0")
    assert summaries[2].startswith("[2001:db8:1::10]:51234 -> [2001:db8:ffff::7]:443 tcp")
    labels = [f.facts.get("looks_like") for f in result.findings]
    assert labels == ["NTP time sync", "ping (ICMP echo)", "HTTPS"]
    assert result.facts["outside_flows"] == 3


def test_mid_connection_flow_says_direction_came_from_ports() -> None:
    s = clean()
    s.flow(TARGET, OUTSIDE, 443, handshake=False, basis=InitiatorBasis.PORT_HEURISTIC)
    result = egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    summary = result.findings[0].summary
    assert "tcp, no handshake," in summary
    assert summary.endswith(" (direction by port heuristic)")


def test_syn_ack_only_flow_is_the_targets() -> None:
    s = clean()
    s.flow(
        TARGET,
        OUTSIDE,
        443,
        packets_out=0,
        packets_in=1,
        handshake=False,
        basis=InitiatorBasis.SYN_ACK,
    )
    result = egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert "SYN-ACK" in result.findings[0].summary


def test_scope_limited_destinations_are_not_egress() -> None:
    s = clean()
    s.flow(TARGET, MDNS_GROUP, 5353, transport="udp", sport=5353, packets_in=0)
    s.flow(TARGET, "255.255.255.255", 67, transport="udp", sport=68, packets_in=0)
    s.flow(TARGET, "192.0.2.255", 137, transport="udp", sport=137, packets_in=0)
    s.flow(TARGET6, "ff02::1:3", 5355, transport="udp", packets_in=0)
    s.flow(TARGET, "169.254.1.1", 80)
    result = egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.PASS
    assert result.facts["scope_limited_flows"] == 5


def test_answers_to_flows_opened_from_outside_belong_to_ingress() -> None:
    s = clean()
    s.flow(OUTSIDE_CLIENT, TARGET, 443)  # the target answers: AG-INGRESS judges it
    result = egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.PASS
    assert "1 opened from outside (judged by AG-INGRESS)" in result.reason


def test_reply_from_outside_service_without_target_packet_is_a_warning() -> None:
    s = clean()
    s.flow(OUTSIDE_DNS, TARGET, 53001, transport="udp", sport=53, packets_out=1, packets_in=0)
    result = egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.PASS
    (warning,) = result.findings
    assert warning.severity is Severity.WARNING
    assert "before the capture began (source port 53)" in warning.summary


def test_dns_flow_to_outside_resolver_is_labelled_with_the_name() -> None:
    s = clean()
    s.dns(TARGET, OUTSIDE_DNS, "ctldl.windowsupdate.com", answers=("203.0.113.40",))
    result = egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    facts = result.findings[0].facts
    assert facts["looks_like"] == "DNS query for: Windows certificate trust list update"
    assert facts["names"] == "ctldl.windowsupdate.com"


def test_flow_to_resolved_address_carries_the_resolved_name() -> None:
    s = clean()
    s.dns(TARGET, DNS_SERVER, "crl.microsoft.com", answers=(OUTSIDE,))
    leak = s.flow(TARGET, OUTSIDE, 80)
    s.http(leak, "GET", "/pki/crl/products/x.crl", "crl.microsoft.com")
    result = egress(s.observations(), PROFILE)
    assert result.findings[0].facts["looks_like"] == "Windows certificate revocation fetch"


def test_fail_reason_names_the_first_violation_not_a_warning() -> None:
    s = clean()
    s.flow(OUTSIDE_DNS, TARGET, 53001, transport="udp", sport=53, packets_out=1, packets_in=0)
    s.flow(TARGET, OUTSIDE, 443)
    result = egress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.reason.startswith("1 flow initiated to outside addresses; first: 192.0.2.10")


def test_neighbour_solicitation_to_an_outside_global_address_is_not_egress() -> None:
    s = Scenario()
    s.flow(TARGET, CUCM, 5060, transport="udp", sport=5060)
    s.flow(TARGET6, OUTSIDE6, 0, transport="icmpv6", sport=135)
    result = egress(s.observations(), defect_profile())
    assert result.verdict is Verdict.PASS
    assert result.facts["scope_limited_flows"] == 1
    # ...while an echo request to the same address is a leak.
    s.flow(TARGET6, OUTSIDE6, 0, transport="icmpv6", sport=128)
    assert egress(s.observations(), defect_profile()).verdict is Verdict.FAIL
