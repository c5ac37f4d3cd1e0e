"""Decision 10: every frame is decoded, link-layer control, or not understood with its reason.

Every capture the `observe` fixture reads is also checked for decoded + link control +
not understood == packets (conftest.assert_every_frame_accounted).
"""

from __future__ import annotations

import struct
from dataclasses import fields

import pytest
from scapy.contrib.erspan import ERSPAN_II
from scapy.contrib.geneve import GENEVE
from scapy.contrib.mpls import MPLS
from scapy.layers.eap import EAPOL
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import ARP, GRE, LLC, SNAP, STP, Dot3, Ether
from scapy.layers.ppp import PPP, PPP_LCP, PPPoE, PPPoED
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from conformance.observe.records import Flow, Observations
from tests.observe.conftest import Observe
from tests.observe.frames import CLIENT, CLIENT6, MAC_A, MAC_B, SERVER, SERVER6, eth, tcp, udp

OTHER_MAC = "02:00:00:00:00:99"
ROUTER = "192.0.2.1"


def reasons(obs: Observations) -> dict[str, int]:
    return {n.reason: n.count for n in obs.captures[0].not_understood}


def kinds(obs: Observations) -> dict[str, int]:
    return {k.kind: k.count for k in obs.captures[0].link_control}


# --- link-layer control --------------------------------------------------------------------

LLDP = bytes(Ether(src=MAC_A, dst="01:80:c2:00:00:0e", type=0x88CC)) + bytes(30)
LACP = bytes(Ether(src=MAC_A, dst="01:80:c2:00:00:02", type=0x8809)) + b"\x01\x01" + bytes(40)
CDP = bytes(
    Dot3(src=MAC_A, dst="01:00:0c:cc:cc:cc")
    / LLC(dsap=0xAA, ssap=0xAA, ctrl=3)
    / SNAP(OUI=0x0C, code=0x2000)
    / Raw(bytes(30))
)


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (bytes(Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, pdst=ROUTER)), "ARP"),
        (LLDP, "LLDP"),
        (bytes(Dot3(src=MAC_A, dst="01:80:c2:00:00:00") / LLC() / STP()), "STP"),
        (CDP, "CDP"),
        (LACP, "LACP"),
        (bytes(Ether(src=MAC_A, dst="01:80:c2:00:00:03") / EAPOL()), "802.1X"),
        (bytes(Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / PPPoED()), "PPPoE discovery"),
        (bytes(Ether(src=MAC_A, dst=MAC_B) / PPPoE(sessionid=1) / PPP() / PPP_LCP()), "PPP LCP"),
        (
            bytes(Ether(src=MAC_A, dst=MAC_B, type=0x8847) / MPLS(label=13, s=1))
            + b"\x10\x00\x00\x07"
            + bytes(20),
            "MPLS associated channel",
        ),
    ],
    ids=["arp", "lldp", "stp", "cdp", "lacp", "8021x", "pppoe-discovery", "ppp-lcp", "mpls-gach"],
)
def test_link_layer_control_is_recognised(observe: Observe, frame: bytes, kind: str) -> None:
    obs = observe([frame, udp()])
    assert kinds(obs) == {kind: 1}
    summary = obs.captures[0]
    assert (summary.decoded, summary.not_understood, summary.malformed) == (1, (), 0)


# --- not understood, frame by frame ----------------------------------------------------------


def _eth_type(ethertype: int, payload: bytes = bytes(46)) -> bytes:
    return bytes(Ether(src=MAC_A, dst=MAC_B, type=ethertype)) + payload


def _ip_proto(proto: int) -> bytes:
    return eth(IP(src=CLIENT, dst=SERVER, proto=proto) / Raw(bytes(16)))


NOT_UNDERSTOOD = [
    ("unknown EtherType 0x88b5", _eth_type(0x88B5)),
    ("MACsec-protected frame", _eth_type(0x88E5)),
    (
        "unknown LLC SAP 0xe0",
        bytes(Dot3(src=MAC_A, dst=MAC_B) / LLC(dsap=0xE0, ssap=0xE0, ctrl=3) / Raw(bytes(40))),
    ),
    (
        "unknown SNAP protocol 00000c/0x1234",
        bytes(
            Dot3(src=MAC_A, dst=MAC_B)
            / LLC(dsap=0xAA, ssap=0xAA, ctrl=3)
            / SNAP(OUI=0x0C, code=0x1234)
            / Raw(bytes(30))
        ),
    ),
    ("truncated Ethernet header", bytes(Ether(src=MAC_A, dst=MAC_B))[:10]),
    ("unknown IP protocol 132", _ip_proto(132)),
    ("truncated TCP header", eth(IP(src=CLIENT, dst=SERVER, proto=6) / Raw(bytes(12)))),
    ("truncated UDP header", eth(IP(src=CLIENT, dst=SERVER, proto=17) / Raw(bytes(4)))),
    ("truncated ICMP header", eth(IP(src=CLIENT, dst=SERVER, proto=1) / Raw(bytes(2)))),
    ("IPv4 header length lies", eth(IP(src=CLIENT, dst=SERVER, ihl=4) / UDP())),
    ("bad IP version 7 in an IPv4 frame", eth(IP(src=CLIENT, dst=SERVER, version=7) / UDP())),
    (
        "truncated IPv6 header",
        bytes(Ether(src=MAC_A, dst=MAC_B, type=0x86DD)) + b"\x60" + bytes(20),
    ),
    (
        "unknown GRE protocol 0x9999",
        eth(IP(src=CLIENT, dst=SERVER) / GRE(proto=0x9999) / Raw(bytes(20))),
    ),
    ("GRE version 3", eth(IP(src=CLIENT, dst=SERVER) / GRE(version=3) / Raw(bytes(20)))),
    (
        "truncated VXLAN header",
        eth(IP(src=CLIENT, dst=SERVER) / UDP(sport=50000, dport=4789) / Raw(b"\x08\x00")),
    ),
    (
        "Geneve version 1",
        eth(IP(src=CLIENT, dst=SERVER) / UDP(sport=50000, dport=6081) / Raw(b"\x40" + bytes(20))),
    ),
    (
        "MPLS payload not recognised",
        _eth_type(0x8847, bytes(MPLS(label=100, s=1)) + b"\x90" + bytes(40)),
    ),
    (
        "unknown PPP protocol 0x0031",
        bytes(Ether(src=MAC_A, dst=MAC_B) / PPPoE(sessionid=1) / PPP(proto=0x31) / Raw(bytes(20))),
    ),
    (
        "ERSPAN version 3 under type II",
        eth(
            IP(src=CLIENT, dst=SERVER)
            / GRE(proto=0x88BE, seqnum_present=1)
            / Raw(b"\x30" + bytes(30))
        ),
    ),
]


@pytest.mark.parametrize(("reason", "frame"), NOT_UNDERSTOOD, ids=[r for r, _ in NOT_UNDERSTOOD])
def test_each_reason_is_counted_with_its_frame(observe: Observe, reason: str, frame: bytes) -> None:
    obs = observe([udp(), frame])
    (counted,) = obs.captures[0].not_understood
    assert (counted.reason, counted.count, counted.frames) == (reason, 1, (2,))
    assert obs.captures[0].malformed == 1


def test_an_unknown_ip_protocol_still_makes_a_flow(observe: Observe) -> None:
    obs = observe([_ip_proto(132)])
    (flow,) = obs.flows
    assert (flow.transport, str(flow.responder)) == ("ip-132", SERVER)


def test_a_transport_header_cut_short_still_makes_a_flow_to_its_address(observe: Observe) -> None:
    obs = observe([eth(IP(src=CLIENT, dst=SERVER, proto=6) / Raw(bytes(12)))])
    (flow,) = obs.flows
    assert (flow.transport, str(flow.initiator), str(flow.responder)) == ("ip-6", CLIENT, SERVER)


def test_frames_carry_the_addresses_they_showed(observe: Observe) -> None:
    obs = observe([_eth_type(0x88B5), _ip_proto(132), bytes(Ether(src=MAC_A, dst=MAC_B))[:10]])
    by_reason = {n.reason: n for n in obs.captures[0].not_understood}
    (macs,) = by_reason["unknown EtherType 0x88b5"].parties
    assert set(macs.macs) == {MAC_A, MAC_B} and macs.addresses == ()
    (ips,) = by_reason["unknown IP protocol 132"].parties
    assert {str(a) for a in ips.addresses} == {CLIENT, SERVER}
    cut = by_reason["truncated Ethernet header"]
    assert (cut.parties, cut.untold) == ((), 1)  # no address to tell whose


def test_a_header_that_does_not_parse_still_shows_its_addresses(observe: Observe) -> None:
    obs = observe([eth(IP(src=CLIENT, dst=SERVER, ihl=4) / UDP())])
    (counted,) = obs.captures[0].not_understood
    assert {str(a) for a in counted.parties[0].addresses} == {CLIENT, SERVER}


def test_the_mac_each_address_sends_from_is_learned(observe: Observe) -> None:
    obs = observe([udp(), udp(SERVER, CLIENT, 5004, 40000), tcp()])
    learned = {
        link.mac: {str(a) for a in link.addresses} for link in obs.captures[0].link_addresses
    }
    assert learned == {MAC_A: {CLIENT, SERVER}}  # tests.observe.frames uses one MAC pair
    assert obs.captures[0].link_addresses_complete


def test_unsupported_link_type(observe: Observe) -> None:
    obs = observe([b"\x00" * 40], 147)
    assert reasons(obs) == {"unsupported link type 147": 1}


def test_loopback_family_that_is_not_ip(observe: Observe) -> None:
    obs = observe([struct.pack("<I", 7) + bytes(40)], 0)
    assert reasons(obs) == {"loopback address family 7": 1}


# --- encapsulations: the flows inside, and how they were carried -----------------------------


def _inner() -> IP:
    return IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=5060) / Raw(b"x" * 8)


def _inner_eth() -> Ether:
    return Ether(src=MAC_A, dst=MAC_B) / _inner()


CARRIED = [
    (
        "pppoe",
        Ether(src=MAC_A, dst=MAC_B) / PPPoE(sessionid=3) / PPP(proto=0x21) / _inner(),
        "pppoe",
        1,
    ),
    ("mpls", Ether(src=MAC_A, dst=MAC_B, type=0x8847) / MPLS(label=16, s=1) / _inner(), "mpls", 1),
    (
        "mpls-pw",
        Ether(src=MAC_A, dst=MAC_B, type=0x8847)
        / MPLS(label=16, s=1)
        / Raw(bytes(4))
        / _inner_eth(),
        "mpls>eth",
        1,
    ),
    (
        "gre",
        Ether() / IP(src=ROUTER, dst=CLIENT) / GRE(key_present=1, key=5) / _inner(),
        "ipv4>gre",
        2,
    ),
    (
        "gre-teb",
        Ether() / IP(src=ROUTER, dst=CLIENT) / GRE(proto=0x6558) / _inner_eth(),
        "ipv4>gre>eth",
        2,
    ),
    (
        "erspan-ii",
        Ether()
        / IP(src=ROUTER, dst=CLIENT)
        / GRE(proto=0x88BE, seqnum_present=1)
        / ERSPAN_II()
        / _inner_eth(),
        "ipv4>gre>erspan>eth",
        2,
    ),
    (
        "erspan-i",
        Ether() / IP(src=ROUTER, dst=CLIENT) / GRE(proto=0x88BE) / _inner_eth(),
        "ipv4>gre>erspan>eth",
        2,
    ),
    (
        "vxlan",
        Ether()
        / IP(src=ROUTER, dst=CLIENT)
        / UDP(sport=50000, dport=4789)
        / VXLAN(vni=1)
        / _inner_eth(),
        "ipv4>udp>vxlan>eth",
        2,
    ),
    (
        "vxlan-ipv6",
        Ether()
        / IPv6(src=CLIENT6, dst=SERVER6)
        / UDP(sport=50000, dport=8472)
        / VXLAN(vni=1)
        / _inner_eth(),
        "ipv6>udp>vxlan>eth",
        1,
    ),
    (
        "geneve",
        Ether()
        / IP(src=ROUTER, dst=CLIENT)
        / UDP(sport=50000, dport=6081)
        / GENEVE(proto=0x0800)
        / _inner(),
        "ipv4>udp>geneve",
        2,
    ),
    ("ipip", Ether() / IP(src=ROUTER, dst=CLIENT) / _inner(), "ipv4", 2),
    ("4in6", Ether() / IPv6(src=CLIENT6, dst=SERVER6, nh=4) / _inner(), "ipv6", 1),
]


@pytest.mark.parametrize(("name", "packet", "path", "layer"), CARRIED, ids=[c[0] for c in CARRIED])
def test_flows_inside_encapsulations(
    observe: Observe, name: str, packet: Ether, path: str, layer: int
) -> None:
    frame = bytes(packet)
    obs = observe([frame, frame])
    inner = [f for f in obs.flows if f.transport == "udp" and f.responder_port == 5060]
    (flow,) = inner
    assert (str(flow.initiator), str(flow.responder), flow.packets_out) == (CLIENT, SERVER, 2)
    assert (flow.encapsulation, flow.ip_layer) == (path, layer)
    summary = obs.captures[0]
    assert (summary.decoded, summary.not_understood) == (2, ())


def test_six_in_four_inner_flow_is_the_first_ipv6_layer(observe: Observe) -> None:
    inner = IPv6(src=CLIENT6, dst=SERVER6) / TCP(sport=51000, dport=443, flags="S")
    obs = observe([eth(IP(src=CLIENT, dst=ROUTER) / inner)])
    outer = next(f for f in obs.flows if f.transport == "ip-41")
    flow = next(f for f in obs.flows if f.transport == "tcp")
    assert (str(outer.initiator), str(outer.responder)) == (CLIENT, ROUTER)
    assert (flow.transport, flow.encapsulation, flow.ip_layer) == ("tcp", "ipv4", 1)


def test_the_tunnel_itself_is_a_flow_to_its_endpoint(observe: Observe) -> None:
    frame = bytes(Ether() / IP(src=CLIENT, dst=ROUTER) / GRE() / _inner())
    obs = observe([frame])
    tunnel = next(f for f in obs.flows if f.transport == "ip-47")
    assert (str(tunnel.initiator), str(tunnel.responder), tunnel.encapsulation) == (
        CLIENT,
        ROUTER,
        "",
    )


def test_mirrored_arp_is_link_control_inside_the_mirror(observe: Observe) -> None:
    arp = Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, pdst=ROUTER)
    frame = bytes(
        Ether() / IP(src=ROUTER, dst=SERVER) / UDP(sport=50000, dport=4789) / VXLAN() / arp
    )
    obs = observe([frame, udp()])
    assert kinds(obs) == {"ARP": 1}


def test_garbage_inside_a_mirror_has_no_address_to_tell(observe: Observe) -> None:
    frame = bytes(
        Ether()
        / IP(src=ROUTER, dst=SERVER)
        / UDP(sport=50000, dport=4789)
        / VXLAN()
        / Raw(bytes(6))
    )
    obs = observe([frame])
    (counted,) = obs.captures[0].not_understood
    assert (counted.reason, counted.untold) == ("truncated Ethernet header", 1)


# --- fragments ----------------------------------------------------------------------------


def _fragments(payload: bytes, ident: int = 9, size: int = 800) -> list[bytes]:
    big = IP(src=CLIENT, dst=SERVER, id=ident) / UDP(sport=40000, dport=514) / Raw(payload)
    return [eth(f) for f in fragment(big, fragsize=size)]


def test_first_fragment_alone_is_incomplete_and_still_a_flow(observe: Observe) -> None:
    first, _, _, _ = _fragments(bytes(3000))
    obs = observe([first])
    (flow,) = obs.flows
    assert (flow.transport, flow.responder_port) == ("udp", 514)
    assert reasons(obs) == {"incomplete fragments": 1}


def test_overlapping_fragments_drop_the_datagram_as_linux_does(observe: Observe) -> None:
    frags = _fragments(bytes(range(256)) * 12)
    overlap = IP(frags[1][14:])
    overlap.frag -= 10  # starts 80 bytes into the first fragment's data
    del overlap.chksum
    obs = observe([frags[0], eth(overlap), *frags[1:]])
    assert reasons(obs) == {"overlapping fragments": 2, "incomplete fragments": 3}
    assert obs.captures[0].reassembled == 0


def test_an_exact_duplicate_fragment_is_ignored(observe: Observe) -> None:
    frags = _fragments(bytes(3000))
    obs = observe([frags[0], frags[1], frags[1], *frags[2:]])
    assert obs.captures[0].reassembled == 1
    assert reasons(obs) == {}
    (flow,) = obs.flows
    assert flow.packets_out == 5


def test_a_duplicate_with_other_bytes_is_counted(observe: Observe) -> None:
    frags = _fragments(bytes(3000))
    other = bytearray(frags[1])
    other[-1] ^= 0xFF
    obs = observe([frags[0], frags[1], bytes(other), *frags[2:]])
    assert obs.captures[0].reassembled == 1
    (unread,) = obs.captures[0].payload_not_understood
    assert unread.reason == "conflicting duplicate fragments"


def test_ipv6_fragment_that_is_not_a_multiple_of_8_is_dropped_alone(observe: Observe) -> None:
    packet = IPv6(src=CLIENT6, dst=SERVER6) / IPv6ExtHdrFragment(id=3, m=1, nh=17) / Raw(bytes(13))
    obs = observe([eth(packet)])
    assert reasons(obs) == {"IPv6 fragment length not a multiple of 8": 1}


def test_dns_answer_in_a_fragmented_response_is_read(observe: Observe) -> None:
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    answers = [
        DNSRR(rrname="api.imagicle.com", type="A", ttl=60, rdata=f"203.0.113.{i + 1}")
        for i in range(60)
    ]
    response = (
        IP(src="192.0.2.53", dst=CLIENT, id=77)
        / UDP(sport=53, dport=40000)
        / DNS(id=5, qr=1, qd=DNSQR(qname="api.imagicle.com"), an=answers)
    )
    frags = [eth(f) for f in fragment(response, fragsize=400)]
    assert len(frags) > 1
    obs = observe(list(reversed(frags)))
    (query,) = obs.dns
    assert query.qname == "api.imagicle.com"
    assert len(query.answers) == 60


# --- payloads not understood, and lengths that lie ------------------------------------------


def test_a_malformed_nbns_name_is_counted_not_raised(observe: Observe) -> None:
    bad = bytes.fromhex("abcd0110000100000000000020") + b"ZZ" * 16 + b"\x00\x00\x20\x00\x01"
    obs = observe([udp(CLIENT, "192.0.2.255", 137, 137, bad), udp()])
    (unread,) = obs.captures[0].payload_not_understood
    assert unread.reason == "NBNS: NBNS name has letters outside A-P"
    assert len(obs.flows) == 2


def test_client_hello_behind_a_zero_length_record_is_read(observe: Observe) -> None:
    from tests.observe.frames import client_hello, handshake

    hello = bytearray(client_hello("api.imagicle.com"))
    hello[3:5] = b"\x00\x00"  # the record header claims 0 bytes
    obs = observe(handshake(request=bytes(hello)))
    (ch,) = obs.client_hellos
    assert ch.sni == "api.imagicle.com"
    (unread,) = obs.captures[0].payload_not_understood
    assert unread.reason == "TLS record length lies"


def test_client_hello_with_a_short_record_length_is_read(observe: Observe) -> None:
    from tests.observe.frames import client_hello, handshake

    hello = bytearray(client_hello("api.imagicle.com"))
    hello[3:5] = b"\x00\x10"
    obs = observe(handshake(request=bytes(hello)))
    assert [c.sni for c in obs.client_hellos] == ["api.imagicle.com"]


def _swallowing_segment(payload: bytes, options: bytes = b"") -> bytes:
    """A segment whose data offset (15 words) swallows the start of its payload."""
    segment = TCP(sport=51000, dport=3128, flags="PA", seq=1001, ack=5001, dataofs=15, options=[])
    raw = bytearray(bytes(segment)[:20]) + options + payload
    raw[12] = 0xF0
    return eth(IP(src=CLIENT, dst=SERVER, proto=6) / Raw(bytes(raw)))


def test_connect_swallowed_by_the_data_offset_is_still_read(observe: Observe) -> None:
    from tests.observe.frames import handshake

    connect = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    obs = observe([*handshake(sport=3128), _swallowing_segment(connect, b"\x01\x01")])
    (request,) = obs.http_requests
    assert (request.method, request.target) == ("CONNECT", "api.imagicle.com:443")
    assert [n.reason for n in obs.captures[0].payload_not_understood] == ["TCP data offset lies"]


def test_data_offset_past_the_segment_is_counted(observe: Observe) -> None:
    from tests.observe.frames import handshake

    obs = observe([*handshake(sport=3128), _swallowing_segment(b"GET / HTTP/1.1\r\n\r\n")[:-10]])
    assert [n.reason for n in obs.captures[0].payload_not_understood] == ["TCP data offset lies"]


def test_honest_options_are_not_a_lie(observe: Observe) -> None:
    segment = TCP(
        sport=51000,
        dport=443,
        flags="S",
        options=[
            ("MSS", 1460),
            ("SAckOK", b""),
            ("Timestamp", (1, 0)),
            ("NOP", None),
            ("WScale", 7),
        ],
    )
    obs = observe([eth(IP(src=CLIENT, dst=SERVER) / segment)])
    assert obs.captures[0].payload_not_understood == ()


def test_a_damaged_method_does_not_hide_the_host(observe: Observe) -> None:
    from tests.observe.frames import handshake

    request = b"G\x00T /x HTTP/1.1\r\nHost: api.imagicle.com\r\n\r\n"
    obs = observe(handshake(sport=80, request=request))
    (seen,) = obs.http_requests
    assert (seen.method, seen.host) == ("G\\x00T", "api.imagicle.com")


def test_target_parties_are_the_flow_for_payloads(observe: Observe) -> None:
    bad_dns = udp(CLIENT, "192.0.2.53", 40000, 53, b"\x00\x01garbage")
    obs = observe([bad_dns])
    (unread,) = obs.captures[0].payload_not_understood
    assert {str(a) for a in unread.parties[0].addresses} == {CLIENT, "192.0.2.53"}


def test_what_an_incomplete_tunnel_datagram_carries_is_still_read(observe: Observe) -> None:
    # Found by the fuzz test: the mirror's outer IPv4 header says "more fragments" (and a
    # length past the frame), so the datagram never completes; the mirrored frame in its
    # first fragment is still read, and the frame counts as anyone's.
    inner = Ether(src=MAC_A, dst=MAC_B) / IP(src=CLIENT, dst=SERVER) / TCP(sport=51000, dport=443)
    outer = IP(src=ROUTER, dst="203.0.113.250", flags="MF") / GRE(proto=0x88BE, seqnum_present=1)
    frame = bytearray(eth(outer / ERSPAN_II() / inner))
    frame[16:18] = (1646).to_bytes(2, "big")  # an IP length past the frame
    obs = observe([bytes(frame)])
    tcp_flow = next(f for f in obs.flows if f.transport == "tcp")
    assert (str(tcp_flow.initiator), str(tcp_flow.responder)) == (CLIENT, SERVER)
    (counted,) = obs.captures[0].not_understood
    assert (counted.reason, counted.untold) == ("fragment shorter than its IP length", 1)


def test_a_mirror_shows_the_same_flows_as_the_port_itself(observe: Observe) -> None:
    # Mirrored Ethernet/IPv4/UDP-TCP frames take a fast route (layers.LayerWalker
    # ._plain_inner), everything else the general path: both must agree with the frames
    # read on the target's own port.
    from tests import defects
    from tests import encapsulations as enc

    frames = defects._Clock().stamp(
        [
            *defects.tcp_leak(),
            *defects.ipv6_leak(),
            *defects.icmp_leak(),
            *defects.fragmented_leak(),
            *defects.mdns_cloud_name(),
            *defects.sni_cloud_name(),
        ]
    )
    plain = observe([(float(f.time), bytes(f)) for f in frames])
    for mirror, path in [
        (enc.vxlan_mirror, "ipv4>udp>vxlan>eth"),
        (lambda fr: enc.vxlan_mirror(fr, 8472), "ipv4>udp>vxlan>eth"),
        (enc.geneve_mirror, "ipv4>udp>geneve>eth"),
        (enc.erspan_ii_mirror, "ipv4>gre>erspan>eth"),
    ]:
        mirrored = observe([(float(f.time), bytes(f)) for f in mirror(frames)])
        inner = [f for f in mirrored.flows if f.encapsulation]
        assert {f.encapsulation for f in inner} == {path}
        assert {f.ip_layer for f in inner if f.ip_version == 4} == {2}

        def comparable(flow: Flow) -> tuple[object, ...]:
            skip = {"flow_id", "encapsulation", "ip_layer"}
            return tuple(getattr(flow, f.name) for f in fields(flow) if f.name not in skip)

        assert sorted(map(comparable, inner), key=repr) == sorted(
            map(comparable, plain.flows), key=repr
        )
        assert {(c.qname, c.packet) for c in mirrored.dns} == {
            (c.qname, c.packet) for c in plain.dns
        }
        assert [h.sni for h in mirrored.client_hellos] == [h.sni for h in plain.client_hellos]
        assert [r.host for r in mirrored.http_requests] == [r.host for r in plain.http_requests]
        assert mirrored.captures[0].reassembled == plain.captures[0].reassembled == 1
