"""IPv4/IPv6 headers, extension headers, fragment reassembly, ICMP quotes."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.ipsec import AH, ESP
from scapy.packet import Raw

from conformance.decode import ip as ipmod
from conformance.decode.errors import DecodeError
from conformance.decode.icmp import is_rejection, quoted_packet
from conformance.decode.ip import (
    IPPROTO_ESP,
    IPPROTO_UDP,
    IpPacket,
    Reassembler,
    decode_ipv4,
    decode_ipv6,
)

SRC, DST = "192.0.2.10", "198.51.100.7"
SRC6, DST6 = "2001:db8:1::10", "2001:db8:ffff::7"


def v4(raw: bytes) -> IpPacket:
    return decode_ipv4(raw, 0, len(raw))


def v6(raw: bytes) -> IpPacket:
    return decode_ipv6(raw, 0, len(raw))


def test_ipv4_plain_and_with_options() -> None:
    plain = bytes(IP(src=SRC, dst=DST) / UDP(sport=1, dport=2) / b"x")
    ip = v4(plain)
    assert (ip.version, ip.proto, ip.l4, ip.end, ip.length) == (4, 17, 20, 29, 29)
    assert ip.src == bytes([192, 0, 2, 10])
    assert ip.fragment is None
    opts = bytes(IP(src=SRC, dst=DST, options=[IPOption_RR(routers=["192.0.2.1"])]) / UDP())
    ip = v4(opts)
    assert ip.l4 == (opts[0] & 0xF) * 4 > 20
    assert ip.proto == IPPROTO_UDP


def test_ipv4_ethernet_padding_is_excluded() -> None:
    raw = bytes(IP(src=SRC, dst=DST) / UDP(sport=1, dport=2)) + bytes(18)
    assert v4(raw).end == 28


def test_ipv4_snaplen_cut_is_marked() -> None:
    raw = bytes(IP(src=SRC, dst=DST) / UDP(sport=1, dport=2) / (b"x" * 100))
    ip = decode_ipv4(raw, 0, 60)
    assert ip.snapped
    assert ip.end == 60
    assert ip.length == len(raw)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (bytes(IP(src=SRC, dst=DST))[:15], "truncated IPv4 header"),
        (b"\x65" + bytes(IP(src=SRC, dst=DST))[1:], "bad IP version 6"),
        (b"\x44" + bytes(IP(src=SRC, dst=DST))[1:], "IPv4 header length lies"),
        (b"\x4f" + bytes(IP(src=SRC, dst=DST))[1:], "truncated IPv4 options"),
        (bytes(IP(src=SRC, dst=DST, len=12)), "IPv4 header length lies"),
    ],
)
def test_ipv4_malformed(raw: bytes, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        v4(raw)


def test_ipv6_extension_header_chain() -> None:
    pkt = (
        IPv6(src=SRC6, dst=DST6)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting(addresses=[])
        / IPv6ExtHdrDestOpt()
        / AH(nh=17, payloadlen=4, spi=1, icv=b"\0" * 12)  # (4 + 2) * 4 = 24 bytes
        / UDP(sport=5353, dport=5353)
        / b"data"
    )
    raw = bytes(pkt)
    ip = v6(raw)
    assert ip.proto == IPPROTO_UDP
    assert raw[ip.l4 : ip.l4 + 4] == b"\x14\xe9\x14\xe9"
    assert ip.length == len(raw)


def test_ipv6_esp_is_opaque() -> None:
    raw = bytes(IPv6(src=SRC6, dst=DST6) / ESP(spi=7, seq=1, data=b"secret"))
    assert v6(raw).proto == IPPROTO_ESP


def test_ipv6_malformed() -> None:
    raw = bytes(IPv6(src=SRC6, dst=DST6) / IPv6ExtHdrDestOpt() / UDP())
    with pytest.raises(DecodeError, match="truncated IPv6 header"):
        v6(raw[:30])
    with pytest.raises(DecodeError, match="bad IP version 4"):
        v6(b"\x40" + raw[1:])
    with pytest.raises(DecodeError, match="truncated IPv6 extension header 60"):
        decode_ipv6(raw, 0, 41)
    chain = bytes(IPv6(src=SRC6, dst=DST6, nh=60)) + b"\x3c\x00" + bytes(6)
    chain = chain[:4] + b"\x00\x80" + chain[6:] + (b"\x3c\x00" + bytes(6)) * 16
    with pytest.raises(DecodeError, match="more than 16 IPv6 extension headers"):
        v6(chain)


def udp_datagram(size: int = 3000) -> IP:
    return IP(src=SRC, dst=DST, id=77) / UDP(sport=40000, dport=53) / Raw(bytes(range(256)) * 12)


def feed(frags: list[bytes], reasm: Reassembler) -> tuple[object, bytes] | None:
    done = None
    for i, raw in enumerate(frags):
        ip = v4(raw) if raw[0] >> 4 == 4 else v6(raw)
        got = reasm.add(ip, raw, ((1_700_000_000.0 + i, i + 1, ip.length, 0),))
        if got is not None:
            done = got
    return done


@pytest.mark.parametrize("order", ["in", "reversed", "shuffled"])
def test_ipv4_reassembly(order: str) -> None:
    datagram = udp_datagram()
    frags = [bytes(f) for f in fragment(datagram, fragsize=800)]
    assert len(frags) == 4
    if order == "reversed":
        frags.reverse()
    elif order == "shuffled":
        frags = [frags[2], frags[0], frags[3], frags[1]]
    reasm = Reassembler()
    done = feed(frags, reasm)
    assert done is not None
    pending, payload = done
    assert isinstance(pending, ipmod.PendingDatagram)
    assert payload == bytes(datagram)[20:]
    assert pending.proto == IPPROTO_UDP
    assert sorted(p[1] for p in pending.packets) == [1, 2, 3, 4]
    assert len(reasm) == 0


def test_ipv6_reassembly_out_of_order() -> None:
    pkt = (
        IPv6(src=SRC6, dst=DST6)
        / IPv6ExtHdrFragment(id=5)
        / UDP(sport=40000, dport=53)
        / Raw(b"z" * 3000)
    )
    frags = [bytes(f) for f in fragment6(pkt, 1280)]
    assert len(frags) >= 3
    frags.reverse()
    done = feed(frags, Reassembler())
    assert done is not None
    pending, payload = done
    assert pending.proto == IPPROTO_UDP  # type: ignore[attr-defined]
    assert payload[:4] == b"\x9c\x40\x00\x35"
    assert payload[8:] == b"z" * 3000


def test_incomplete_datagram_is_given_up_at_the_end() -> None:
    frags = [bytes(f) for f in fragment(udp_datagram(), fragsize=800)]
    reasm = Reassembler()
    assert feed(frags[:2] + frags[3:], reasm) is None
    stale = reasm.drain()
    assert len(stale) == 1
    assert sorted(stale[0].pieces) == [0, 800, 2400]
    assert len(reasm) == 0


def test_old_datagrams_time_out(monkeypatch: pytest.MonkeyPatch) -> None:
    frags = [bytes(f) for f in fragment(udp_datagram(), fragsize=800)]
    reasm = Reassembler()
    reasm.add(v4(frags[0]), frags[0], ((1000.0, 1, 0, 0),))
    other = bytes(fragment(IP(src=SRC, dst=DST, id=78) / UDP() / (b"q" * 2000), fragsize=800)[0])
    reasm.add(v4(other), other, ((1000.0 + ipmod.FRAGMENT_TIMEOUT + 1, 2, 0, 0),))
    stale = reasm.take_stale()
    assert [s.ident for s in stale] == [77]
    assert len(reasm) == 1


def test_pending_datagrams_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ipmod, "MAX_PENDING_DATAGRAMS", 3)
    reasm = Reassembler()
    for ident in range(5):
        first = bytes(fragment(IP(src=SRC, dst=DST, id=ident) / (b"q" * 2000), fragsize=800)[0])
        reasm.add(v4(first), first, ((1000.0, ident + 1, 0, 0),))
    assert len(reasm) == 3
    assert [s.ident for s in reasm.take_stale()] == [0, 1]


def test_snapped_fragment_damages_the_datagram() -> None:
    frags = [bytes(f) for f in fragment(udp_datagram(), fragsize=800)]
    reasm = Reassembler()
    first = frags[0]
    assert reasm.add(decode_ipv4(first, 0, 100), first, ((1.0, 1, 0, 0),)) is None
    stale = reasm.take_stale()
    assert stale[0].damaged is not None
    assert stale[0].damaged == "fragment shorter than its IP length"


def test_icmp_error_quotes() -> None:
    offending = IP(src=SRC, dst=DST) / UDP(sport=40000, dport=161)
    error = bytes(IP(src=DST, dst=SRC) / ICMP(type=3, code=3) / bytes(offending)[:28])
    ip = v4(error)
    quoted = quoted_packet(error, ip.l4 + 8, ip.end, False)
    assert quoted == (17, bytes([192, 0, 2, 10]), bytes([198, 51, 100, 7]), 40000, 161)
    assert is_rejection(3, 3, False)
    assert not is_rejection(3, 4, False)  # fragmentation needed: path MTU, not a refusal
    assert not is_rejection(11, 0, False)
    with pytest.raises(DecodeError):
        quoted_packet(error, ip.l4 + 8, ip.l4 + 30, False)
