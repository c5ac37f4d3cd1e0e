"""Flows from packets: orientation, handshakes, answers, rejections, ICMP."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    IPv6,
)

from conformance.decode.community_id import community_id
from conformance.decode.ip import IPPROTO_TCP, IPPROTO_UDP
from conformance.observe.flows import (
    TCP_REUSE_IDLE_S,
    Addresses,
    FlowIds,
    FlowTable,
    reverse_key,
)
from conformance.observe.records import InitiatorBasis, Observations, PayloadKind
from tests.observe.conftest import Observe
from tests.observe.frames import (
    CLIENT,
    CLIENT6,
    SERVER,
    SERVER6,
    T0,
    eth,
    handshake,
    tcp,
    tcp6,
    udp,
)


def test_tcp_handshake_orients_by_syn(observe: Observe) -> None:
    obs = observe(
        handshake(request=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", response=b"HTTP/1.1 200 OK\r\n\r\n")
    )
    (flow,) = obs.flows
    assert flow.transport == "tcp"
    assert str(flow.initiator) == CLIENT
    assert (flow.initiator_port, flow.responder_port) == (51000, 443)
    assert flow.initiator_basis is InitiatorBasis.SYN
    assert flow.handshake_seen and flow.answered and flow.accepted and not flow.rejected
    assert (flow.packets_out, flow.packets_in) == (3, 2)
    assert flow.bytes_out == 40 + 40 + 40 + 27
    assert (flow.first_packet, flow.last_packet) == (1, 5)
    assert flow.sample_packets == (1, 2, 3, 4, 5)
    assert flow.tcp_flags_out == 0x02 | 0x10 | 0x08
    assert flow.tcp_flags_in == 0x02 | 0x10 | 0x08
    assert flow.payload_out is PayloadKind.HTTP
    assert flow.payload_in is PayloadKind.HTTP
    assert flow.first_payload_packet == 4
    assert flow.payload_head_out == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert flow.community_id == community_id(
        6, ipaddress.ip_address(CLIENT).packed, ipaddress.ip_address(SERVER).packed, 51000, 443
    )
    assert obs.notes == ()


def test_capture_starting_mid_connection_orients_by_port(observe: Observe) -> None:
    frames = [
        tcp(SERVER, CLIENT, 443, 51000, "PA", b"\x17\x03\x03\x00\x05hello"),
        tcp(CLIENT, SERVER, 51000, 443, "A"),
    ]
    obs = observe(frames)
    (flow,) = obs.flows
    assert str(flow.initiator) == CLIENT
    assert flow.initiator_basis is InitiatorBasis.PORT_HEURISTIC
    assert not flow.handshake_seen
    assert flow.accepted
    assert flow.payload_in is PayloadKind.TLS
    assert flow.payload_out is PayloadKind.NONE
    assert obs.notes == (
        "1 TCP flows began before the capture; their direction was decided by port",
    )


def test_registered_service_port_beats_ephemeral(observe: Observe) -> None:
    obs = observe([tcp(SERVER, CLIENT, 5061, 49999, "A"), tcp(CLIENT, SERVER, 49999, 5061, "A")])
    assert obs.flows[0].responder_port == 5061


def test_syn_ack_only_makes_its_receiver_the_initiator(observe: Observe) -> None:
    obs = observe([tcp(SERVER, CLIENT, 8443, 40001, "SA"), tcp(CLIENT, SERVER, 40001, 8443, "A")])
    (flow,) = obs.flows
    assert str(flow.initiator) == CLIENT
    assert flow.initiator_basis is InitiatorBasis.SYN_ACK
    assert not flow.handshake_seen
    assert flow.accepted
    assert "seen from the SYN-ACK on" in obs.notes[0]


def test_unanswered_syn(observe: Observe) -> None:
    obs = observe([tcp(CLIENT, SERVER, 51000, 443, "S"), tcp(CLIENT, SERVER, 51000, 443, "S")])
    (flow,) = obs.flows
    assert flow.initiator_basis is InitiatorBasis.SYN
    assert not flow.answered and not flow.accepted and not flow.rejected
    assert flow.packets_out == 2


def test_rst_rejects(observe: Observe) -> None:
    obs = observe([tcp(CLIENT, SERVER, 51000, 25, "S"), tcp(SERVER, CLIENT, 25, 51000, "RA")])
    (flow,) = obs.flows
    assert flow.answered and flow.rejected and not flow.accepted


def test_rst_after_data_is_not_a_rejection(observe: Observe) -> None:
    frames = [*handshake(request=b"x", response=b"y"), tcp(SERVER, CLIENT, 443, 51000, "R")]
    (flow,) = observe(frames).flows
    assert flow.accepted and not flow.rejected


def test_udp_reply_is_accepted(observe: Observe) -> None:
    obs = observe([udp(CLIENT, SERVER, 40000, 123), udp(SERVER, CLIENT, 123, 40000)])
    (flow,) = obs.flows
    assert flow.initiator_basis is InitiatorBasis.FIRST_PACKET
    assert str(flow.initiator) == CLIENT
    assert flow.answered and flow.accepted
    assert flow.payload_out is PayloadKind.OTHER


def test_udp_without_reply(observe: Observe) -> None:
    (flow,) = observe([udp(CLIENT, SERVER, 40000, 514)]).flows
    assert not flow.answered and not flow.accepted


def test_icmp_echo(observe: Observe) -> None:
    frames = [
        eth(IP(src=CLIENT, dst=SERVER) / ICMP(type=8, id=1, seq=1)),
        eth(IP(src=SERVER, dst=CLIENT) / ICMP(type=0, id=1, seq=1)),
    ]
    (flow,) = observe(frames).flows
    assert flow.transport == "icmp"
    assert str(flow.initiator) == CLIENT
    assert (flow.initiator_port, flow.responder_port) == (8, 0)
    assert flow.initiator_basis is InitiatorBasis.ICMP_TYPE
    assert flow.accepted and flow.answered
    assert (
        flow.community_id
        == "1:"
        + community_id(
            1, ipaddress.ip_address(CLIENT).packed, ipaddress.ip_address(SERVER).packed, 8, 0
        ).split(":")[1]
    )


def test_icmp_reply_alone_names_the_asker(observe: Observe) -> None:
    (flow,) = observe([eth(IP(src=CLIENT, dst=SERVER) / ICMP(type=0))]).flows
    assert str(flow.initiator) == SERVER  # the outside host pinged; the target answered
    assert flow.initiator_basis is InitiatorBasis.ICMP_TYPE
    assert flow.accepted
    assert flow.packets_out == 0 and flow.packets_in == 1


def test_unsolicited_advertisement_to_all_nodes(observe: Observe) -> None:
    frame = eth(IPv6(src=CLIENT6, dst="ff02::1") / ICMPv6ND_NA(tgt=CLIENT6))
    (flow,) = observe([frame]).flows
    assert flow.transport == "icmpv6"
    assert str(flow.initiator) == CLIENT6
    assert flow.initiator_basis is InitiatorBasis.FIRST_PACKET
    assert flow.initiator_port == 136


def test_icmpv6_echo(observe: Observe) -> None:
    frames = [
        eth(IPv6(src=CLIENT6, dst=SERVER6) / ICMPv6EchoRequest(id=3)),
        eth(IPv6(src=SERVER6, dst=CLIENT6) / ICMPv6EchoReply(id=3)),
    ]
    (flow,) = observe(frames).flows
    assert (flow.transport, flow.ip_version, flow.initiator_port) == ("icmpv6", 6, 128)
    assert flow.accepted


def test_port_unreachable_belongs_to_the_quoted_udp_flow(observe: Observe) -> None:
    probe = IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=161) / b"snmp"
    frames = [
        eth(probe),
        eth(IP(src=SERVER, dst=CLIENT) / ICMP(type=3, code=3) / bytes(probe)[:28]),
    ]
    obs = observe(frames)
    (flow,) = obs.flows  # no separate ICMP flow
    assert flow.transport == "udp"
    assert (flow.initiator_port, flow.responder_port) == (40000, 161)
    assert flow.rejected and not flow.accepted
    assert flow.answered  # the destination itself said no
    assert (flow.packets_out, flow.packets_in) == (1, 1)
    assert flow.sample_packets == (1, 2)
    assert flow.last_packet == 2


@pytest.mark.parametrize("v6", [False, True])
def test_error_not_sent_to_the_quoted_source_is_its_own_flow(observe: Observe, v6: bool) -> None:
    """An "error" from the target to an outside host that quotes an inside conversation is
    no answer to it (an error goes back to the quoted packet's source): its own ICMP flow,
    so the egress is judged, not filed under the quoted flow."""
    if v6:
        quoted = IPv6(src="2001:db8::20", dst=SERVER6) / UDP(sport=40000, dport=161)
        outer = IPv6(src=SERVER6, dst="2001:db8:ffff::5") / ICMPv6DestUnreach(code=4)
    else:
        quoted = IP(src="192.0.2.20", dst=SERVER) / UDP(sport=40000, dport=161)
        outer = IP(src=SERVER, dst="203.0.113.5") / ICMP(type=3, code=3)
    frames = [eth(outer / (bytes(quoted) + b"exfiltrated bytes"))]
    (flow,) = observe(frames).flows
    assert flow.transport == ("icmpv6" if v6 else "icmp")
    assert str(flow.initiator) == (SERVER6 if v6 else SERVER)
    assert str(flow.responder) == ("2001:db8:ffff::5" if v6 else "203.0.113.5")
    assert (flow.packets_out, flow.packets_in) == (1, 0)


def test_unreachable_from_a_router_is_not_an_answer(observe: Observe) -> None:
    probe = IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=53)
    frames = [
        eth(probe),
        eth(IP(src="192.0.2.1", dst=CLIENT) / ICMP(type=3, code=1) / bytes(probe)[:28]),
    ]
    (flow,) = observe(frames).flows
    assert flow.rejected and not flow.answered


def test_error_for_an_unseen_packet_creates_its_flow(observe: Observe) -> None:
    probe = IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=161)
    error = eth(IP(src=SERVER, dst=CLIENT) / ICMP(type=3, code=3) / bytes(probe)[:28])
    (flow,) = observe([error]).flows
    assert str(flow.initiator) == CLIENT
    assert flow.packets_out == 0 and flow.packets_in == 1
    assert flow.rejected


def test_time_exceeded_is_attributed_but_not_a_rejection(observe: Observe) -> None:
    probe = IP(src=CLIENT, dst=SERVER, ttl=1) / UDP(sport=33434, dport=33435)
    frames = [
        eth(probe),
        eth(IP(src="192.0.2.1", dst=CLIENT) / ICMP(type=11, code=0) / bytes(probe)[:28]),
    ]
    (flow,) = observe(frames).flows
    assert not flow.rejected and flow.packets_in == 1


def test_other_ip_protocols(observe: Observe) -> None:
    frames = [
        eth(IP(src=CLIENT, dst=SERVER, proto=47) / b"gre"),
        eth(IP(src=SERVER, dst=CLIENT, proto=47) / b"gre"),
    ]
    (flow,) = observe(frames).flows
    assert flow.transport == "ip-47"
    assert (flow.initiator_port, flow.responder_port) == (0, 0)
    assert flow.accepted


def test_ipv6_tcp_on_the_fast_path(observe: Observe) -> None:
    frames = [tcp6(flags="S"), tcp6(SERVER6, CLIENT6, 443, 51000, "SA")]
    (flow,) = observe(frames).flows
    assert flow.ip_version == 6
    assert str(flow.initiator) == CLIENT6
    assert flow.accepted and flow.bytes_out == 60


def test_flow_ids_follow_first_packets(observe: Observe) -> None:
    frames = [
        udp(CLIENT, SERVER, 40000, 1),
        tcp(CLIENT, SERVER, 51000, 443, "S"),
        udp(CLIENT, SERVER, 40000, 1),
        udp(CLIENT, SERVER, 40002, 2),
    ]
    obs = observe(frames)
    assert [(f.flow_id, f.first_packet) for f in obs.flows] == [(1, 1), (2, 2), (3, 4)]
    assert obs.flow(2).transport == "tcp"


def test_sample_packets_are_bounded(observe: Observe) -> None:
    frames = [udp(CLIENT, SERVER, 40000, 5004)] * 20 + [udp(SERVER, CLIENT, 5004, 40000)]
    (flow,) = observe(frames).flows
    assert flow.sample_packets == (1, 2, 3, 4, 5, 6, 7, 8)
    assert (flow.packets_out, flow.packets_in) == (20, 1)


def test_icmpv6_unreachable_rejects_the_quoted_flow(observe: Observe) -> None:
    from scapy.layers.inet6 import ICMPv6DestUnreach

    probe = IPv6(src=CLIENT6, dst=SERVER6) / UDP(sport=40000, dport=5060) / b"x"
    frames = [
        eth(probe),
        eth(IPv6(src=SERVER6, dst=CLIENT6) / ICMPv6DestUnreach(code=4) / bytes(probe)),
    ]
    (flow,) = observe(frames).flows
    assert (flow.transport, flow.ip_version) == ("udp", 6)
    assert flow.rejected and flow.answered and not flow.accepted


def test_icmp_unreachable_for_a_syn(observe: Observe) -> None:
    syn = IP(src=CLIENT, dst=SERVER) / TCP(sport=51000, dport=443, flags="S")
    frames = [
        eth(syn),
        eth(IP(src="192.0.2.1", dst=CLIENT) / ICMP(type=3, code=13) / bytes(syn)[:28]),
    ]
    (flow,) = observe(frames).flows
    assert flow.transport == "tcp" and flow.initiator_basis is InitiatorBasis.SYN
    assert flow.rejected and not flow.answered


def test_icmp_error_quoting_too_little_is_its_own_flow(observe: Observe) -> None:
    frame = eth(IP(src=SERVER, dst=CLIENT) / ICMP(type=3, code=3) / b"\x45\x00")
    (flow,) = observe([frame]).flows
    assert (flow.transport, flow.initiator_port, flow.responder_port) == ("icmp", 3, 3)


# --- a TCP 5-tuple used again: each connection is a flow of its own ---------------------------


def _connection(
    isn: int, sni: str, end: str = "F", client: str = CLIENT, cport: int = 51000
) -> list[bytes]:
    """SYN, SYN-ACK, ACK, a ClientHello, then FIN (both ways) or a RST from the server."""
    from tests.observe.frames import client_hello

    hello = client_hello(sni)
    srv = isn + 7_000_000
    frames = [
        tcp(client, SERVER, cport, 443, "S", seq=isn),
        tcp(SERVER, client, 443, cport, "SA", seq=srv, ack=isn + 1),
        tcp(client, SERVER, cport, 443, "A", seq=isn + 1, ack=srv + 1),
        tcp(client, SERVER, cport, 443, "PA", hello, seq=isn + 1, ack=srv + 1),
    ]
    after = isn + 1 + len(hello)
    if end == "F":
        frames += [
            tcp(client, SERVER, cport, 443, "FA", seq=after, ack=srv + 1),
            tcp(SERVER, client, 443, cport, "FA", seq=srv + 1, ack=after + 1),
            tcp(client, SERVER, cport, 443, "A", seq=after + 1, ack=srv + 2),
        ]
    elif end == "R":
        frames.append(tcp(SERVER, client, 443, cport, "R", seq=srv + 1))
    return frames


def _two_flows_with_their_hellos(obs: Observations, first_packets: tuple[int, int]) -> None:
    assert len(obs.flows) == 2
    one, two = obs.flows
    assert (one.first_packet, two.first_packet) == first_packets
    for flow in (one, two):
        assert str(flow.initiator) == CLIENT and flow.initiator_port == 51000
        assert flow.initiator_basis is InitiatorBasis.SYN and flow.handshake_seen
        assert flow.accepted and flow.payload_out is PayloadKind.TLS
    hellos = {(h.flow_id, h.sni) for h in obs.client_hellos}
    assert hellos == {(1, "cucm.corp.example"), (2, "api.imagicle.com")}
    assert one.last_packet < two.first_packet


def test_a_new_syn_after_fin_on_the_same_5_tuple_is_a_new_flow(observe: Observe) -> None:
    frames = _connection(1000, "cucm.corp.example") + _connection(900_000, "api.imagicle.com")
    _two_flows_with_their_hellos(observe(frames), (1, 8))


def test_a_new_syn_after_rst_on_the_same_5_tuple_is_a_new_flow(observe: Observe) -> None:
    frames = _connection(1000, "cucm.corp.example", end="R")
    frames += _connection(900_000, "api.imagicle.com", end="R")
    obs = observe(frames)
    _two_flows_with_their_hellos(obs, (1, 6))
    assert obs.flows[0].packets_in == 2 and obs.flows[1].packets_in == 2


def test_a_new_syn_after_a_long_silence_is_a_new_flow(observe: Observe) -> None:
    first = _connection(1000, "cucm.corp.example", end="")
    second = _connection(900_000, "api.imagicle.com", end="")
    frames = [(T0 + i, f) for i, f in enumerate(first)]
    frames += [(T0 + 200 + i, f) for i, f in enumerate(second)]  # 200 s later, no FIN seen
    _two_flows_with_their_hellos(observe(frames), (1, 5))


def test_a_syn_with_another_isn_after_the_handshake_is_a_new_flow(observe: Observe) -> None:
    frames = _connection(1000, "cucm.corp.example", end="")
    frames += _connection(900_000, "api.imagicle.com", end="")  # 10 ms later, no FIN
    _two_flows_with_their_hellos(observe(frames), (1, 5))


def test_a_retransmitted_syn_stays_in_its_flow(observe: Observe) -> None:
    frames = [
        tcp(CLIENT, SERVER, 51000, 443, "S", seq=1000),
        tcp(CLIENT, SERVER, 51000, 443, "S", seq=1000),  # no answer yet: sent again
        *_connection(1000, "cucm.corp.example")[1:],
    ]
    (flow,) = observe(frames).flows
    assert flow.packets_out == 6 and flow.packets_in == 2


def test_a_syn_retried_after_a_refusal_stays_in_its_flow(observe: Observe) -> None:
    frames = [
        tcp(CLIENT, SERVER, 51000, 443, "S", seq=1000),
        tcp(SERVER, CLIENT, 443, 51000, "RA", seq=0, ack=1001),
        tcp(CLIENT, SERVER, 51000, 443, "S", seq=1000),  # Windows retries the same SYN
        tcp(SERVER, CLIENT, 443, 51000, "RA", seq=0, ack=1001),
    ]
    (flow,) = observe(frames).flows
    assert flow.rejected and not flow.accepted and flow.packets_out == 2


def test_reuse_is_seen_over_ipv6_too(observe: Observe) -> None:
    frames = [
        tcp6(CLIENT6, SERVER6, 51000, 443, "S"),
        tcp6(SERVER6, CLIENT6, 443, 51000, "SA"),
        tcp6(CLIENT6, SERVER6, 51000, 443, "FA"),
        tcp6(SERVER6, CLIENT6, 443, 51000, "FA"),
        tcp6(CLIENT6, SERVER6, 51000, 443, "S"),
        tcp6(SERVER6, CLIENT6, 443, 51000, "SA"),
    ]
    obs = observe(frames)
    assert [(f.first_packet, f.last_packet) for f in obs.flows] == [(1, 4), (5, 6)]


def test_the_same_request_on_a_reused_5_tuple_is_recorded_per_connection(
    observe: Observe,
) -> None:
    connect = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    frames = []
    for isn in (1000, 900_000):
        frames += [
            tcp(CLIENT, SERVER, 51000, 3128, "S", seq=isn),
            tcp(SERVER, CLIENT, 3128, 51000, "SA", seq=5000, ack=isn + 1),
            tcp(CLIENT, SERVER, 51000, 3128, "PA", connect, seq=isn + 1, ack=5001),
            tcp(CLIENT, SERVER, 51000, 3128, "FA", seq=isn + 1 + len(connect), ack=5001),
        ]
    obs = observe(frames)
    assert [(r.flow_id, r.packet, r.count) for r in obs.http_requests] == [(1, 3, 1), (2, 7, 1)]


def test_flow_ids_tell_a_reused_5_tuples_generations_apart_by_packet() -> None:
    ids = FlowIds()
    reused, single = (IPPROTO_TCP, b"r" * 12), (IPPROTO_TCP, b"s" * 12)
    ids.add(reused, 1, 1)
    ids.add(single, 2, 2)
    ids.add(reused, 10, 3)
    ids.add(reused, 20, 4)
    assert [ids.get(reused, packet) for packet in (1, 9, 10, 19, 20, 99)] == [1, 1, 3, 3, 4, 4]
    assert ids.get(single, 5) == 2
    assert ids.get((IPPROTO_UDP, b"s" * 12), 5) == 0


def test_a_packet_counted_in_both_directions_is_sampled_once() -> None:
    """Samples of the two directions merge in packet order, each number once, even when
    both directions hold a number or a direction kept its numbers out of order."""
    table = FlowTable(0, lambda proto, key: 0)
    key = bytes((10, 0, 0, 1, 10, 0, 0, 2, 0x9C, 0x40, 0x01, 0xBB))
    for key_of, packets in ((key, (3, 1, 5, 7, 9)), (reverse_key(key), (2, 3, 4, 6, 8, 10))):
        for packet in packets:
            table.account(IPPROTO_UDP, key_of, float(packet), packet, 60, 0, 0)
    (flow,), _ = table.finish(1, Addresses())
    assert flow.sample_packets == (1, 2, 3, 4, 5, 6, 7, 8)


def test_flow_ids_let_go_of_every_reference() -> None:
    """The builder numbers what names flows by reference, then lets the references go
    before the flows are built (FlowIds.release)."""
    ids = FlowIds()
    ids.add((6, b"a"), 1, 1)
    ids.add((6, b"a"), 9, 2)  # a reused 5-tuple
    assert (ids.get((6, b"a"), 1), ids.get((6, b"a"), 9)) == (1, 2)
    ids.release()
    assert (ids._ids, ids._reused, ids.get((6, b"a"), 9)) == ({}, {}, 0)


@pytest.mark.parametrize(("silence", "flows"), [(200.0, 2), (TCP_REUSE_IDLE_S, 1), (1.0, 1)])
def test_a_syn_sent_again_after_a_long_silence_starts_a_new_flow(
    observe: Observe, silence: float, flows: int
) -> None:
    """Silence alone decides here: the same ISN, never answered, no FIN or RST; the new
    flow begins only past TCP_REUSE_IDLE_S (exactly that long is still the same attempt)."""
    syn = tcp(CLIENT, SERVER, 51000, 443, "S", seq=1000)
    obs = observe([(T0, syn), (T0 + silence, syn)])
    assert len(obs.flows) == flows
    assert sum(f.packets_out for f in obs.flows) == 2
