"""UDP flows seen mid-conversation: a first packet that is a response was asked for by the
other side, which is the initiator (InitiatorBasis.RESPONSE_FIRST)."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP

from conformance.observe.direction import udp_response_first
from conformance.observe.records import InitiatorBasis, PayloadKind
from tests.observe.conftest import Observe
from tests.observe.frames import CLIENT, eth

RESOLVER = "198.51.100.53"
NTP = "203.0.113.123"
MDNS_GROUP = "224.0.0.251"


def dns(src: str, dst: str, sport: int, dport: int, *, response: bool, qid: int = 9) -> bytes:
    name = "api.imagicle.com"
    answer = DNSRR(rrname=name, rdata="203.0.113.10", ttl=60) if response else None
    message = DNS(id=qid, qr=int(response), qd=DNSQR(qname=name), an=answer)
    return eth(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / message)


def ntp(src: str, dst: str, sport: int, dport: int, mode: int) -> bytes:
    header = struct.pack("!BBbb", (4 << 3) | mode, 2, 6, -20) + bytes(44)
    return eth(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / header)


def test_a_dns_response_seen_first_is_turned_around(observe: Observe) -> None:
    # The query went out before the capture began; then the conversation goes on.
    frames = [
        dns(RESOLVER, CLIENT, 53, 40000, response=True, qid=1),
        dns(CLIENT, RESOLVER, 40000, 53, response=False, qid=2),
        dns(RESOLVER, CLIENT, 53, 40000, response=True, qid=2),
    ]
    (flow,) = observe(frames).flows
    assert (str(flow.initiator), flow.initiator_port) == (CLIENT, 40000)
    assert (str(flow.responder), flow.responder_port) == (RESOLVER, 53)
    assert flow.initiator_basis is InitiatorBasis.RESPONSE_FIRST
    assert (flow.packets_out, flow.packets_in) == (1, 2)
    assert flow.payload_out is PayloadKind.DNS and flow.accepted


def test_a_lone_dns_response_names_its_receiver_the_initiator(observe: Observe) -> None:
    (flow,) = observe([dns(RESOLVER, CLIENT, 53, 40000, response=True)]).flows
    assert str(flow.initiator) == CLIENT and flow.initiator_basis is InitiatorBasis.RESPONSE_FIRST
    assert (flow.packets_out, flow.packets_in, flow.first_payload_packet) == (0, 1, None)


def test_a_query_first_stays_as_it_is(observe: Observe) -> None:
    frames = [
        dns(CLIENT, RESOLVER, 40000, 53, response=False),
        dns(RESOLVER, CLIENT, 53, 40000, response=True),
    ]
    (flow,) = observe(frames).flows
    assert str(flow.initiator) == CLIENT and flow.initiator_basis is InitiatorBasis.FIRST_PACKET


def test_an_ntp_server_reply_seen_first_is_turned_around(observe: Observe) -> None:
    frames = [ntp(NTP, CLIENT, 123, 123, mode=4), ntp(CLIENT, NTP, 123, 123, mode=3)]
    (flow,) = observe(frames).flows
    assert str(flow.initiator) == CLIENT and flow.initiator_basis is InitiatorBasis.RESPONSE_FIRST


def test_an_announcement_to_a_group_was_initiated_by_its_sender(observe: Observe) -> None:
    # mDNS responses sent to the group unasked (RFC 6762 §8.3): nobody in the group asked
    (flow,) = observe([dns(CLIENT, MDNS_GROUP, 5353, 5353, response=True, qid=0)]).flows
    assert str(flow.initiator) == CLIENT and flow.initiator_basis is InitiatorBasis.FIRST_PACKET


@pytest.mark.parametrize(
    ("sport", "dport", "kind", "head", "response"),
    [
        (53, 40000, PayloadKind.DNS, bytes.fromhex("0001 8180 0001 0001 0000 0000"), True),
        (40000, 53, PayloadKind.DNS, bytes.fromhex("0001 0100 0001 0000 0000 0000"), False),
        (53, 40000, PayloadKind.DNS, b"\x00\x01\x81", False),  # shorter than a DNS header
        (137, 137, PayloadKind.OTHER, bytes.fromhex("0001 8500 0000 0001 0000 0000"), True),
        (1900, 40000, PayloadKind.HTTP, b"HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\n", True),
        (40000, 1900, PayloadKind.HTTP, b"M-SEARCH * HTTP/1.1\r\n", False),
        (123, 123, PayloadKind.OTHER, bytes([0x24]) + bytes(47), True),  # v4 server
        (123, 123, PayloadKind.OTHER, bytes([0x23]) + bytes(47), False),  # v4 client
        (123, 123, PayloadKind.OTHER, bytes([0x25]) + bytes(47), False),  # v4 broadcast
        (3478, 40000, PayloadKind.OTHER, bytes.fromhex("0101 0000 2112a442") + bytes(12), True),
        (3478, 40000, PayloadKind.OTHER, bytes.fromhex("0111 0000 2112a442") + bytes(12), True),
        (40000, 3478, PayloadKind.OTHER, bytes.fromhex("0001 0000 2112a442") + bytes(12), False),
        (67, 68, PayloadKind.OTHER, b"\x02\x01\x06\x00", True),
        (68, 67, PayloadKind.OTHER, b"\x01\x01\x06\x00", False),
        (40000, 5004, PayloadKind.OTHER, b"\x80\x00payload", False),
    ],
)
def test_known_response_shapes(
    sport: int, dport: int, kind: PayloadKind, head: bytes, response: bool
) -> None:
    assert udp_response_first(sport, dport, kind, head) is response
