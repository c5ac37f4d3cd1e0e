"""observe_captures end to end: link types, pcapng features, damage, fragments, progress."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from conformance.errors import CaptureError
from conformance.observe import builder as builder_module
from conformance.observe import capture_parts as capture_parts_module
from conformance.observe.builder import observe_captures
from conformance.observe.records import InitiatorBasis, TlsServerHello
from conformance.report.prestage import Prestage
from tests.capture_files import (
    INBOUND,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    OUTBOUND,
    Epb,
    Interface,
    Isb,
    cut_tail,
    write_pcap,
    write_pcapng,
)
from tests.observe.conftest import Observe
from tests.observe.frames import (
    CLIENT,
    CLIENT6,
    MAC_A,
    MAC_B,
    SERVER,
    SERVER6,
    eth,
    tcp,
    timed,
    udp,
)

UDP4 = IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=5060) / b"OPTIONS sip:x SIP/2.0\r\n\r\n"
UDP6 = IPv6(src=CLIENT6, dst=SERVER6) / UDP(sport=40000, dport=5060) / b"x"


def sll(payload: bytes, proto: int, pkttype: int = 4) -> bytes:
    return struct.pack("!HHH8sH", pkttype, 1, 6, bytes(8), proto) + payload


def sll2(payload: bytes, proto: int, pkttype: int = 0) -> bytes:
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, pkttype, 6, bytes(8)) + payload


@pytest.mark.parametrize(
    ("linktype", "frame", "version"),
    [
        (LINKTYPE_ETHERNET, eth(UDP4), 4),
        (LINKTYPE_ETHERNET, eth(UDP6), 6),
        (LINKTYPE_LINUX_SLL, sll(bytes(UDP4), 0x0800), 4),
        (LINKTYPE_LINUX_SLL2, sll2(bytes(UDP6), 0x86DD), 6),
        (LINKTYPE_RAW, bytes(UDP4), 4),
        (LINKTYPE_RAW, bytes(UDP6), 6),
        (12, bytes(UDP4), 4),
        (14, bytes(UDP6), 6),
        (LINKTYPE_IPV4, bytes(UDP4), 4),
        (LINKTYPE_IPV6, bytes(UDP6), 6),
        (LINKTYPE_NULL, struct.pack("<I", 2) + bytes(UDP4), 4),
        (LINKTYPE_NULL, struct.pack(">I", 30) + bytes(UDP6), 6),
        (LINKTYPE_LOOP, struct.pack(">I", 24) + bytes(UDP6), 6),
    ],
)
def test_every_link_type_yields_the_flow(
    observe: Observe, linktype: int, frame: bytes, version: int
) -> None:
    obs = observe([frame], linktype)
    (flow,) = obs.flows
    assert (flow.transport, flow.ip_version) == ("udp", version)
    assert (flow.initiator_port, flow.responder_port) == (40000, 5060)
    assert obs.captures[0].link_types == (linktype,)
    assert obs.captures[0].malformed == 0


def test_unsupported_link_type_is_counted_and_skipped(observe: Observe) -> None:
    obs = observe([b"\x00" * 40, b"\x01" * 40], 147)
    assert obs.flows == ()
    assert obs.captures[0].unsupported_link_packets == 2
    assert obs.captures[0].packets == 2
    assert obs.notes == ("2 packets on unsupported link types were skipped",)


def test_qinq_and_vlan_frames(observe: Observe) -> None:
    qinq = bytes(Ether(src=MAC_A, dst=MAC_B) / Dot1AD(vlan=100) / Dot1Q(vlan=20) / UDP4)
    dot1q = bytes(
        Ether(src=MAC_A, dst=MAC_B)
        / Dot1Q(vlan=20)
        / IP(src=SERVER, dst=CLIENT)
        / UDP(sport=5060, dport=40000)
    )
    (flow,) = observe([qinq, dot1q]).flows
    assert flow.answered and flow.accepted
    assert flow.bytes_out == len(bytes(UDP4))


def test_non_ip_frames_are_counted_but_make_no_flow(observe: Observe) -> None:
    arp = bytes(
        Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, pdst=SERVER, hwsrc=MAC_A)
    )
    obs = observe([arp, eth(UDP4)])
    assert obs.captures[0].packets == 2
    assert len(obs.flows) == 1
    assert obs.flows[0].first_packet == 2


def test_ipv6_extension_headers_reach_the_transport(observe: Observe) -> None:
    pkt = (
        IPv6(src=CLIENT6, dst=SERVER6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=[])
        / IPv6ExtHdrDestOpt()
        / TCP(sport=51000, dport=443, flags="S")
    )
    (flow,) = observe([eth(pkt)]).flows
    assert (flow.transport, flow.initiator_port, flow.responder_port) == ("tcp", 51000, 443)
    assert flow.initiator_basis is InitiatorBasis.SYN
    assert flow.bytes_out == len(bytes(pkt))


def test_ipv4_fragments_out_of_order_are_reassembled(observe: Observe) -> None:
    query = DNS(id=4, rd=1, qd=DNSQR(qname="api.imagicle.com"))
    big = (
        IP(src=CLIENT, dst="192.0.2.53", id=99)
        / UDP(sport=40000, dport=53)
        / query
        / Raw(bytes(2000))
    )
    frags = [eth(f) for f in fragment(big, fragsize=600)]
    assert len(frags) == 4
    obs = observe([frags[2], frags[0], frags[3], frags[1], udp()])
    summary = obs.captures[0]
    assert (summary.fragments, summary.reassembled, summary.malformed) == (4, 1, 0)
    dns_flow = next(f for f in obs.flows if f.responder_port == 53)
    assert dns_flow.packets_out == 4
    assert dns_flow.first_packet == 1
    assert dns_flow.sample_packets == (1, 2, 3, 4)
    assert dns_flow.bytes_out == sum(len(f) - 14 for f in frags)
    (q,) = obs.dns
    assert (q.qname, q.packet) == ("api.imagicle.com", 4)


def test_ipv6_fragments_are_reassembled(observe: Observe) -> None:
    pkt = (
        IPv6(src=CLIENT6, dst=SERVER6)
        / IPv6ExtHdrFragment(id=0x1234)
        / UDP(sport=40000, dport=5060)
        / Raw(b"v" * 3000)
    )
    frags = [eth(f) for f in fragment6(pkt, 1280)]
    obs = observe(list(reversed(frags)))
    (flow,) = obs.flows
    assert (flow.transport, flow.ip_version, flow.responder_port) == ("udp", 6, 5060)
    assert flow.packets_out == len(frags)
    assert obs.captures[0].reassembled == 1


def test_first_fragment_alone_still_names_the_flow(observe: Observe) -> None:
    big = IP(src=CLIENT, dst=SERVER, id=5) / UDP(sport=40000, dport=443) / Raw(bytes(3000))
    frags = [eth(f) for f in fragment(big, fragsize=800)]
    obs = observe([frags[0], frags[1]])
    (flow,) = obs.flows
    assert (flow.responder_port, flow.packets_out) == (443, 2)
    assert obs.captures[0].reassembled == 0


def test_fragments_without_a_first_one_still_make_a_flow(observe: Observe) -> None:
    big = IP(src=CLIENT, dst=SERVER, id=6) / UDP(sport=40000, dport=443) / Raw(bytes(3000))
    frags = [eth(f) for f in fragment(big, fragsize=800)]
    obs = observe(frags[1:3])
    (flow,) = obs.flows  # decision 10: the IP header still counts
    assert (flow.transport, str(flow.initiator), str(flow.responder)) == ("ip-17", CLIENT, SERVER)
    assert flow.packets_out == 2
    summary = obs.captures[0]
    assert summary.malformed == 2
    (counted,) = summary.not_understood
    assert (counted.reason, counted.count, counted.frames) == ("incomplete fragments", 2, (1, 2))


def test_malformed_packets_are_counted_and_skipped(observe: Observe) -> None:
    good = udp()
    bad_version = good[:14] + b"\x55" + good[15:]
    short_ihl = good[:14] + b"\x43" + good[15:]
    truncated = good[:20]
    bad_ipv6 = bytes(Ether(src=MAC_A, dst=MAC_B, type=0x86DD)) + b"\x60" + bytes(10)
    obs = observe(
        [bad_version, good, short_ihl, truncated, bad_ipv6, udp(SERVER, CLIENT, 5004, 40000)]
    )
    summary = obs.captures[0]
    assert summary.malformed == 4
    assert [a.packet for a in summary.anomalies] == [1, 3, 4, 5]
    assert [a.reason for a in summary.anomalies] == [
        "bad IP version 5 in an IPv4 frame",
        "IPv4 header length lies",
        "truncated IPv4 header",
        "truncated IPv6 header",
    ]
    (flow,) = obs.flows
    assert (flow.packets_out, flow.packets_in, flow.first_packet, flow.last_packet) == (1, 1, 2, 6)


def test_truncated_file_is_flagged_and_read_to_the_last_record(tmp_path: Path) -> None:
    path = cut_tail(write_pcap(tmp_path / "t.pcap", timed([udp(), udp(), udp()])), 7)
    obs = observe_captures([path])
    summary = obs.captures[0]
    assert summary.packets == 2
    assert summary.truncated_file and not summary.complete and not obs.complete
    assert summary.truncated_detail is not None
    assert summary.truncated_detail.startswith("file ends inside record 3 at byte ")
    assert obs.flows[0].packets_out == 2


@pytest.mark.parametrize("content", [b"", b"GARBAGE" * 20])
def test_empty_or_garbage_file_raises(tmp_path: Path, content: bytes) -> None:
    good = write_pcap(tmp_path / "good.pcap", [udp()])
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    with pytest.raises(CaptureError):
        observe_captures([good, bad])


def test_pcapng_interfaces_drops_and_direction_flags(tmp_path: Path) -> None:
    t = 1_700_000_000.0
    path = write_pcapng(
        tmp_path / "ng.pcapng",
        [
            # mid-connection TCP, both ports ephemeral: the direction flags decide
            Epb(tcp(SERVER, CLIENT, 40001, 40002, "A", b"data"), t, 0, flags=INBOUND),
            Epb(tcp(CLIENT, SERVER, 40002, 40001, "A"), t + 1, 0, flags=OUTBOUND),
            Epb(bytes(IP(src=CLIENT, dst=SERVER) / UDP(sport=1, dport=2)), t + 2, 1),
            Isb(0, ifdrop=2, osdrop=1),
        ],
        interfaces=[Interface(LINKTYPE_ETHERNET, name="eth0"), Interface(LINKTYPE_RAW)],
    )
    obs = observe_captures([path])
    summary = obs.captures[0]
    assert summary.format == "pcapng"
    assert summary.link_types == (LINKTYPE_ETHERNET, LINKTYPE_RAW)
    assert summary.interfaces == 2
    assert summary.direction_flags
    assert summary.drops == 3
    assert summary.drop_detail == (
        "interface 0 (eth0): 2 dropped by the interface, 1 by the operating system"
    )
    assert not summary.complete
    tcp_flow = next(f for f in obs.flows if f.transport == "tcp")
    assert str(tcp_flow.initiator) == CLIENT  # the capturing host sent outbound
    assert tcp_flow.initiator_basis is InitiatorBasis.DIRECTION_FLAG
    assert "by the capture's direction flags" in obs.notes[0]
    assert summary.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("parts", "cached"), [(1, True), (2, True), (1, False)])
def test_a_capture_read_back_from_the_reports_copy_leaves_its_hash_to_the_copy(
    tmp_path: Path, parts: int, cached: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(capture_parts_module, "FORK_PARTS", False)
    monkeypatch.setattr(capture_parts_module, "MIN_SPLIT_BYTES", 0)
    monkeypatch.setattr(builder_module, "copy_stays_cached", lambda size: cached)
    path = write_pcapng(tmp_path / "copied.pcapng", [udp() for _ in range(50)])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    stage = Prestage(tmp_path / "report")
    stage.start([path], teed=True)
    summary = observe_captures([path], copies=stage, parts=parts).captures[0]
    staged = stage.take(path)
    stage.close()
    assert staged is not None and staged[1] == digest
    # One pass: the copy's digest, taken after the walk, is the file's (the report's
    # captures.json gives it). In parts, a join that fails compares part 0's digest at once;
    # a copy the page cache could not keep would be read from disk again: hashed in the walk.
    assert summary.sha256 == ("" if parts == 1 and cached else digest)


@pytest.mark.parametrize(
    ("meminfo", "size", "expected"),
    [
        (b"MemTotal: 8000000 kB\nMemAvailable:    2000000 kB\n", 1_000_000_000, True),
        (b"MemTotal: 8000000 kB\nMemAvailable:    2000000 kB\n", 1_100_000_000, False),
        (b"MemTotal: 8000000 kB\n", 1000, False),  # a kernel before 3.14: unknown
        (b"MemAvailable: lots\n", 1000, False),
        (None, 1000, False),  # no /proc
    ],
)
def test_a_copy_is_hashed_after_the_walk_only_while_it_stays_in_the_page_cache(
    tmp_path: Path, meminfo: bytes | None, size: int, expected: bool
) -> None:
    path = tmp_path / "meminfo"
    if meminfo is not None:
        path.write_bytes(meminfo)
    assert builder_module.copy_stays_cached(size, path) is expected


def test_unknown_drops_do_not_make_a_capture_incomplete(tmp_path: Path) -> None:
    path = write_pcapng(tmp_path / "nodrops.pcapng", [udp()])
    summary = observe_captures([path]).captures[0]
    assert summary.drops is None
    assert summary.complete


def test_linux_cooked_direction_breaks_ties(observe: Observe) -> None:
    frames = [
        sll(bytes(IP(src=SERVER, dst=CLIENT) / TCP(sport=9, dport=7, flags="A")), 0x0800, 0),
        sll(bytes(IP(src=CLIENT, dst=SERVER) / TCP(sport=7, dport=9, flags="A")), 0x0800, 4),
    ]
    (flow,) = observe(frames, LINKTYPE_LINUX_SLL).flows
    assert str(flow.initiator) == CLIENT
    assert flow.initiator_basis is InitiatorBasis.DIRECTION_FLAG


def test_summary_fields(tmp_path: Path) -> None:
    frames = [(1_700_000_010.0, udp()), (1_700_000_012.5, udp(SERVER, CLIENT, 5004, 40000))]
    path = write_pcap(tmp_path / "s.pcap", frames, snaplen=50)
    obs = observe_captures([path])
    summary = obs.captures[0]
    assert summary.path == str(path)
    assert (summary.format, summary.packets, summary.bytes) == ("pcap", 2, path.stat().st_size)
    assert (summary.first_time, summary.last_time) == (1_700_000_010.0, 1_700_000_012.5)
    assert summary.snap_truncated == 2  # 51-byte frames, 50-byte snapshot
    assert summary.complete and summary.drops is None
    assert obs.packets == 2
    (flow,) = obs.flows
    assert (flow.bytes_out, flow.bytes_in) == (37, 37)  # IP lengths as on the wire


def test_several_captures_number_flows_densely(tmp_path: Path) -> None:
    a = write_pcap(tmp_path / "a.pcap", timed([udp(), tcp()]))
    b = write_pcapng(tmp_path / "b.pcapng", [udp(), udp(SERVER, CLIENT, 5004, 40000)])
    obs = observe_captures([a, b])
    assert [(f.flow_id, f.capture) for f in obs.flows] == [(1, 0), (2, 0), (3, 1)]
    assert [c.format for c in obs.captures] == ["pcap", "pcapng"]
    assert obs.flow(3).answered


class RecordingProgress:
    def __init__(self) -> None:
        self.events: list[tuple[str, object, object]] = []

    def start(self, step: str, total: float | None) -> None:
        self.events.append(("start", step, total))

    def advance(self, done: float, detail: str = "") -> None:
        self.events.append(("advance", done, detail))

    def finish(self) -> None:
        self.events.append(("finish", None, None))


def test_progress_reports_bytes_and_packets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance.decode import read_ahead
    from conformance.observe import builder

    monkeypatch.setattr(read_ahead, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(builder, "PROGRESS_EVERY", 50)
    path = write_pcap(tmp_path / "p.pcap", timed([udp(sport=40000 + i % 7) for i in range(400)]))
    progress = RecordingProgress()
    observe_captures([path], progress)
    size = path.stat().st_size
    assert progress.events[0] == ("start", "reading p.pcap", size)
    assert progress.events[-1] == ("finish", None, None)
    advances = [e for e in progress.events if e[0] == "advance"]
    assert len(advances) >= 3
    assert advances[-1][1] == size
    assert "400 packets" in str(advances[-1][2])
    assert any("flow" in str(e[2]) for e in advances[:-1])


def test_hellos_are_let_go_as_they_are_numbered() -> None:
    """A part's hellos are taken in packet order and released by the inspector's list one by
    one, so a renumbered copy and its original never both exist for every hello (#17: the
    web mix's 64k ClientHellos made the peak 12 MiB higher)."""
    items = ["c", "a", "b"]
    taken = builder_module._taken(items, [1, 2, 0])
    assert next(taken) == "a"
    assert items == ["c", None, "b"]
    assert list(taken) == ["b", "c"]
    assert items == []


def test_ech_extensions_follow_their_hellos_to_their_new_places() -> None:
    assert builder_module._reindexed({2: "x", 0: "y"}, [2, 1, 0]) == {0: "x", 2: "y"}
    assert builder_module._reindexed({}, [2, 1, 0]) == {}
    assert builder_module._reindexed({2: "x"}, None) == {2: "x"}  # None: already in order


def _hello(packet: int, mark: int = 0) -> TlsServerHello:
    return TlsServerHello(0, packet, 0.0, 1, 0x0303, mark)


def test_records_in_packet_order_need_no_index_and_no_sort() -> None:
    """The observers record hellos in packet order unless segments interleave: then no index
    per hello is made (#17: 64k ints on the 2M web mix), and a sorted list is kept as it is;
    out of order, both give a stable sort's order (ties keep their recorded order)."""
    in_order = [_hello(1), _hello(3), _hello(3), _hello(9)]
    assert builder_module._packet_order(in_order) is None
    assert builder_module._by_packet(in_order) is in_order
    assert builder_module._packet_order([]) is None
    mixed = [_hello(5, 1), _hello(2, 2), _hello(5, 3), _hello(1, 4), _hello(2, 5)]
    order = builder_module._packet_order(mixed)
    assert order is not None and list(order) == [3, 1, 4, 0, 2]
    assert [h.cipher_suite for h in builder_module._by_packet(mixed)] == [4, 2, 5, 1, 3]
    assert [h.cipher_suite for h in builder_module._taken(list(mixed), order)] == [4, 2, 5, 1, 3]


def test_a_finish_that_does_not_number_the_records_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hellos, DNS exchanges and requests are numbered in FlowTable.finish's callback: a
    finish that skipped it would drop them without a word, so the builder refuses."""
    from conformance.observe.flows import FlowTable

    original = FlowTable.finish

    def skipping(
        self: FlowTable,
        first_id: int,
        address: object,
        numbered: object = None,
        into: object = None,
    ) -> object:
        self.compiled_finish = None
        return original(self, first_id, address, None, into)  # type: ignore[arg-type]

    monkeypatch.setattr(FlowTable, "finish", skipping)
    with pytest.raises(RuntimeError, match="did not number"):
        observe_captures([write_pcap(tmp_path / "a.pcap", [udp()])])
