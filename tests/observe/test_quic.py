"""QUIC Initials read by the observers on any UDP port: hellos as TLS records, damage counted.

Every capture goes through the `observe` fixture (pcap and pcapng agree, every frame
accounted for). Datagrams come from a real aioquic client and server or from Initials
protected with aioquic's packet protection (tests/quic_captures.py).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw

from conformance.decode.ip import IPPROTO_UDP
from conformance.decode.quic import (
    MAX_QUIET_DATAGRAMS,
    VERSION_1,
    VERSION_2,
    looks_like_quic_initial,
)
from conformance.observe.flows import STREAM, WANT
from conformance.observe.ingest import CaptureIngest
from conformance.observe.payloads import MAX_QUIC_WAITING
from conformance.observe.records import Observations, PayloadKind
from tests import quic_captures as qc
from tests.decode.quic_packets import crypto_frame, initial
from tests.decode.test_quic import NAME, aioquic_client, aioquic_exchange, client_hello
from tests.defects import TARGET, TARGET6, _frame
from tests.observe.conftest import Observe
from tests.observe.frames import timed, udp

SERVER = "203.0.113.10"
SERVER6 = "2001:db8:ffff::10"
TLS13 = 0x0304
SHORT_HEADER = b"\x40" + bytes(40)  # a 1-RTT packet: no Initial in it
MUTANTS = 500  # seeded, a few seconds


def frames(packets: list[Packet]) -> list[bytes]:
    return [bytes(p) for p in packets]


def not_understood(obs: Observations) -> dict[str, int]:
    return {n.reason: n.count for n in obs.captures[0].payload_not_understood}


@pytest.mark.parametrize("version", [VERSION_1, VERSION_2])
def test_real_handshake_gives_both_hellos(observe: Observe, version: int) -> None:
    obs = observe(frames(qc.quic_session(SERVER, version)))
    (flow,) = obs.flows
    assert (flow.transport, flow.payload_out, flow.payload_in) == (
        "udp",
        PayloadKind.QUIC,
        PayloadKind.QUIC,
    )
    (hello,) = obs.client_hellos
    assert (hello.sni, hello.alpn, hello.versions) == (NAME, ("h3",), (TLS13,))
    assert (hello.quic_version, hello.segments, hello.packet) == (version, 1, 1)
    assert hello.flow_id == flow.flow_id
    (server,) = obs.server_hellos
    assert (server.version, server.quic_version, server.packet) == (TLS13, version, 2)
    assert not_understood(obs) == {}


def test_hello_split_over_two_initials_in_two_datagrams(observe: Observe) -> None:
    obs = observe(frames(qc.quic_hello_in_two_datagrams(SERVER)))
    (hello,) = obs.client_hellos
    assert (hello.sni, hello.segments, hello.packet) == (NAME, 2, 2)
    assert len(hello.alpn) == 9 and not_understood(obs) == {}


def test_real_client_hello_over_several_datagrams(observe: Observe) -> None:
    alpn = ("h3", *(f"proto-{i:03d}-" + "x" * 180 for i in range(16)))
    _connection, sent = aioquic_client(VERSION_1, alpn)
    obs = observe(frames(qc.datagrams(SERVER, sent)))
    (hello,) = obs.client_hellos
    assert hello.alpn == alpn and hello.segments == len(sent) >= 3
    assert hello.packet == len(sent)


@pytest.mark.parametrize("port", [4433, 8443, 5060, 50000])
def test_quic_on_any_port(observe: Observe, port: int) -> None:
    obs = observe(frames(qc.quic_session(SERVER, VERSION_2, port=port)))
    (hello,) = obs.client_hellos
    assert hello.sni == NAME and hello.quic_version == VERSION_2
    assert len(obs.server_hellos) == 1 and obs.flows[0].responder_port == port


def test_coalesced_initials_handshake_and_0rtt(observe: Observe) -> None:
    obs = observe(frames(qc.quic_coalesced(SERVER)))
    (hello,) = obs.client_hellos
    assert (hello.sni, hello.segments) == (NAME, 1)
    assert not_understood(obs) == {}


def test_quic_over_ipv6(observe: Observe) -> None:
    sent, answered = aioquic_exchange(VERSION_1)
    packets = qc.datagrams(SERVER6, sent[:1], answered[:1], client=TARGET6)
    obs = observe(frames(packets))
    assert [h.sni for h in obs.client_hellos] == [NAME]
    assert len(obs.server_hellos) == 1 and obs.flows[0].ip_version == 6


def test_corrupted_initial_is_counted_not_read(observe: Observe) -> None:
    obs = observe(frames(qc.quic_corrupted_initial(SERVER)))
    assert obs.client_hellos == ()
    assert obs.flows[0].payload_out is PayloadKind.QUIC  # it still looks like QUIC
    ((reason, count),) = not_understood(obs).items()
    assert reason.startswith("QUIC: no QUIC v1 Initial key opens this packet") and count == 1
    (entry,) = obs.captures[0].payload_not_understood
    assert entry.frames == (1,) and TARGET in {str(a) for p in entry.parties for a in p.addresses}


def test_truncated_initial_is_counted(observe: Observe) -> None:
    packet = initial(crypto_frame(0, client_hello()), pad_to=1200)[:600]
    obs = observe(frames(qc.datagrams(SERVER, [packet])))
    assert obs.client_hellos == () and obs.flows[0].payload_out is PayloadKind.QUIC
    ((reason, _count),) = not_understood(obs).items()
    assert reason.startswith("QUIC: Initial packet Length") and "runs past end" in reason


def test_server_initial_without_its_client_is_counted(observe: Observe) -> None:
    """The capture began after the client's Initial: no key opens the server's."""
    _sent, answered = aioquic_exchange(VERSION_1)
    packets = [_frame(SERVER, TARGET, UDP(sport=443, dport=50443) / Raw(answered[0]))]
    obs = observe(frames(packets))
    assert obs.server_hellos == () and obs.client_hellos == ()
    assert any(r.startswith("QUIC: no QUIC v1 Initial key") for r in not_understood(obs))


def test_server_answering_after_the_client_reader_finished(observe: Observe) -> None:
    """The client's reader is freed after its hello and a quiet datagram; the server's
    Initials still open with the connection IDs kept for it."""
    sent, answered = aioquic_exchange(VERSION_1)
    packets = qc.datagrams(SERVER, [sent[0], SHORT_HEADER], answered[:1])
    obs = observe(frames(packets))
    assert [h.sni for h in obs.client_hellos] == [NAME]
    assert [s.version for s in obs.server_hellos] == [TLS13]
    assert not_understood(obs) == {}
    inspector = _ingest(frames(packets[:2])).inspector
    assert len(inspector._quic_waiting) == 1  # the client's connection ID waits for its server


def test_incomplete_hello_is_counted_at_the_end(observe: Observe) -> None:
    hello = qc.large_client_hello()
    first = initial(crypto_frame(0, hello[:1100]), pn=0, pad_to=1200)
    obs = observe(frames(qc.datagrams(SERVER, [first])))
    assert obs.client_hellos == ()
    assert not_understood(obs) == {"QUIC: ClientHello incomplete": 1}


@pytest.mark.parametrize(("version", "read"), [(0xFF00_0011, False), (0xFF00_001D, True)])
def test_drafts(observe: Observe, version: int, read: bool) -> None:
    if read:
        packet = initial(crypto_frame(0, client_hello()), version=version, pad_to=1200)
    else:  # draft 17: a long header of a QUIC version whose Initials are not read here
        packet = initial(crypto_frame(0, client_hello()), pad_to=1200)
        packet = packet[:1] + version.to_bytes(4, "big") + packet[5:]
    obs = observe(frames(qc.datagrams(SERVER, [packet])))
    assert obs.flows[0].payload_out is PayloadKind.QUIC
    if read:
        assert [h.quic_version for h in obs.client_hellos] == [version]
    else:
        assert not_understood(obs) == {"QUIC: version 0xff000011 is not read": 1}


def test_other_udp_is_not_quic(observe: Observe) -> None:
    rtp = [udp(TARGET, SERVER, 40000, 5004, b"\x80\x00" + bytes(160)) for _ in range(5)]
    long_header = udp(TARGET, SERVER, 40002, 443, b"\xc0\x12\x34\x56\x78" + bytes(40))
    obs = observe([*rtp, long_header])
    assert [f.payload_out for f in obs.flows] == [PayloadKind.OTHER, PayloadKind.OTHER]
    assert obs.client_hellos == () and not_understood(obs) == {}


def _ingest(packets: list[bytes]) -> CaptureIngest:
    ingest = CaptureIngest(0)
    n = 0
    for t, f in timed(packets):
        n += 1
        ingest.step(t, f, 0, len(f), len(f), 1, 0, n)
    ingest.packets = n
    return ingest


def _ports(sport: int, dport: int) -> bytes:
    return sport.to_bytes(2, "big") + dport.to_bytes(2, "big")


def test_only_quic_directions_keep_a_want_bit_and_readers_are_freed() -> None:
    rtp = [udp(TARGET, SERVER, 40000, 5004, b"\x80\x00" + bytes(160)) for _ in range(3)]
    sent, answered = aioquic_exchange(VERSION_1)
    quic = frames(qc.datagrams(SERVER, sent[:1], answered))
    table = _ingest([*rtp, *quic]).table.tables[IPPROTO_UDP]
    state = {key[-4:]: (e[WANT], e[STREAM]) for key, e in table.items()}
    assert state[_ports(40000, 5004)] == (0, None)  # RTP: one look at its first payload
    # the server's reader is done with its ServerHello; the client's waits for more
    assert state[_ports(443, qc.CLIENT_PORT)] == (0, None)
    client_want, client_state = state[_ports(qc.CLIENT_PORT, 443)]
    assert client_want and client_state is not None
    quiet = frames(qc.datagrams(SERVER, [SHORT_HEADER] * MAX_QUIET_DATAGRAMS))
    table = _ingest([*rtp, *quic, *quiet]).table.tables[IPPROTO_UDP]
    assert all(e[WANT] == 0 and e[STREAM] is None for e in table.values())


def test_waiting_client_ids_are_bounded() -> None:
    sent = initial(crypto_frame(0, client_hello()), pad_to=1200)
    packets = []
    for n in range(MAX_QUIC_WAITING + 2):
        cport = 10000 + n
        packets += [bytes(p) for p in qc.datagrams(SERVER, [sent, SHORT_HEADER], cport=cport)]
    ingest = _ingest(packets)
    assert len(ingest.inspector._quic_waiting) == MAX_QUIC_WAITING
    assert len(ingest.inspector.client_hellos) == MAX_QUIC_WAITING + 2


def test_quic_in_ipv6_frames_with_extension_headers(observe: Observe) -> None:
    """The general path (not the fast IPv6 road) reads QUIC the same way."""
    from scapy.layers.inet6 import IPv6ExtHdrDestOpt
    from scapy.layers.l2 import Ether

    sent, _answered = aioquic_exchange(VERSION_1)
    frame = (
        Ether(src="02:00:00:00:00:0a", dst="02:00:00:00:00:0b")
        / IPv6(src=TARGET6, dst=SERVER6)
        / IPv6ExtHdrDestOpt()
        / UDP(sport=50443, dport=443)
        / Raw(sent[0])
    )
    obs = observe([bytes(frame)])
    assert [h.sni for h in obs.client_hellos] == [NAME]


def test_mutated_initials_are_read_right_or_counted(tmp_path: Path) -> None:
    """Seeded fuzzing of a real client Initial's UDP payload: a hello is read with its true
    name or not at all, and an Initial that gave no hello is counted (a packet turned into
    another type, such as Handshake, is QUIC no key is expected to open: not counted)."""
    from conformance.observe.builder import observe_captures
    from tests.capture_files import write_pcap

    sent, answered = aioquic_exchange(VERSION_1)
    clean = frames(qc.datagrams(SERVER, sent[:1], answered[:1]))
    payload_at = 14 + 20 + 8  # Ethernet, IPv4, UDP
    rng = random.Random(9001)
    for n in range(MUTANTS):
        frame = bytearray(clean[0])
        for _ in range(rng.randint(1, 3)):
            frame[rng.randrange(payload_at, len(frame))] = rng.randrange(256)
        path = write_pcap(tmp_path / f"m{n}.pcap", [bytes(frame), clean[1]])
        obs = observe_captures([path])
        c = obs.captures[0]
        assert c.decoded + c.link_control_frames + c.not_understood_frames == c.packets
        assert all(h.sni == NAME for h in obs.client_hellos), n
        if looks_like_quic_initial(bytes(frame[payload_at:])) and not obs.client_hellos:
            assert obs.flows[0].payload_out is PayloadKind.QUIC
            assert any(r.startswith("QUIC: ") for r in not_understood(obs)), n
