"""Which part of a capture observed on several cores steps a frame.

One capture file can be observed by several processes at once (observe/capture_parts.py):
every process reads every record, and steps only the frames it owns. A frame is owned by
the part its first IP header's address pair hashes to, the pair taken unordered so both
directions of a conversation, its fragments, and everything tunnelled between the same two
endpoints land in one part. An unfragmented TCP segment straight behind that header adds
its ports (unordered too): the TCP connections between two hosts (a target and its proxy)
spread over the parts, and TCP is not fragmented in practice (a TCP flow that is, lands in
two parts and is read in one pass). An ICMP or ICMPv6 error is owned as the packet it
quotes is, since the observers file it under that packet's flow (observe/layers.py). A
frame with no IP header this function can reach (ARP, LLDP, MPLS, PPPoE, unknown link
types, a frame too short) belongs to part 0.

Part 0 also hashes and copies the capture, so it owns one share of the hash space and every
other part two (`_part`).

Only the rule's determinism matters for correctness: a frame is stepped in full by its
part, whatever it turns out to be. Where frames of one flow could still land in two parts
(the same inner flow carried in two tunnels, a flow seen plain and inside MPLS), the parts'
flows share endpoints and capture_parts falls back to one pass.

The compiled step (observe/_step.pyx) has a twin of `frame_owner`; tests compare them.
"""

from __future__ import annotations

from typing import Final

from conformance.decode.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_RAW_DLT12,
    LINKTYPE_RAW_DLT14,
    MAX_VLAN_TAGS,
    VLAN_TPIDS,
)

# Where the first IP header starts on link types without a variable header.
_FIXED_LINK_HEADER: Final = {
    LINKTYPE_RAW: 0,
    LINKTYPE_RAW_DLT12: 0,
    LINKTYPE_RAW_DLT14: 0,
    LINKTYPE_IPV4: 0,
    LINKTYPE_IPV6: 0,
    LINKTYPE_NULL: 4,
    LINKTYPE_LOOP: 4,
    LINKTYPE_LINUX_SLL: 16,
    LINKTYPE_LINUX_SLL2: 20,
}
_ETHERNET_HEADER: Final = 14
_VLAN_TAG: Final = 4
_IPV4_HEADER: Final = 20
_IPV6_HEADER: Final = 40
_ICMP_HEADER: Final = 8
_PROTO_ICMP: Final = 1
_PROTO_TCP: Final = 6
_PORTS: Final = 4
_FRAGMENT_BITS: Final = 0x3FFF  # IPv4 MF flag and fragment offset
_PROTO_ICMPV6: Final = 58
# RFC 792/1812 errors that quote the packet they answer: unreachable, source quench,
# redirect, time exceeded, parameter problem; RFC 4443 errors are the types below 128.
_ICMP_ERRORS: Final = frozenset({3, 4, 5, 11, 12})
_ICMPV6_INFORMATIONAL: Final = 128
_FRAG_MASK: Final = 0x1FFF  # IPv4 fragment offset: only a first fragment quotes anything
# Knuth's multiplicative hash spreads the folded pair over the parts.
_MIX: Final = 2654435761
_WORD: Final = 0xFFFFFFFF


def frame_owner(buf: bytes, off: int, cap: int, lt: int, parts: int) -> int:
    """The part (0 .. parts-1) that steps the frame of `cap` bytes at `buf[off:]`."""
    if parts <= 1:
        return 0
    at = _first_ip(buf, off, cap, lt)
    if at < 0:
        return 0
    end = off + cap
    version = buf[at] >> 4
    if version == 4:
        if at + _IPV4_HEADER > end:
            return 0
        quoted = _icmp_quote(buf, at, end)
    elif version == 6:
        if at + _IPV6_HEADER > end:
            return 0
        quoted = _icmpv6_quote(buf, at, end)
    else:
        return 0
    if quoted >= 0:
        at = quoted
    return _part(_key(buf, at, end), parts)


def _key(buf: bytes, at: int, end: int) -> int:
    """The unordered address pair of the IP header at `at` (checked present), folded, and
    the unordered ports of an unfragmented TCP segment straight behind it."""
    if buf[at] >> 4 == 4:
        folded = _fold(buf, at + 12, 1) ^ _fold(buf, at + 16, 1)
        tcp = at + (buf[at] & 0x0F) * 4
        fragment = ((buf[at + 6] << 8) | buf[at + 7]) & _FRAGMENT_BITS
        if buf[at + 9] == _PROTO_TCP and not fragment and tcp + _PORTS <= end:
            folded ^= _ports(buf, tcp)
        return folded
    folded = _fold(buf, at + 8, 4) ^ _fold(buf, at + 24, 4)
    tcp = at + _IPV6_HEADER
    if buf[at + 6] == _PROTO_TCP and tcp + _PORTS <= end:
        folded ^= _ports(buf, tcp)
    return folded


def _ports(buf: bytes, at: int) -> int:
    """Source and destination port, unordered, in the high bits (a pair's key stays apart)."""
    return (((buf[at] << 8) | buf[at + 1]) ^ ((buf[at + 2] << 8) | buf[at + 3])) << 16


def _part(key: int, parts: int) -> int:
    """The part a key belongs to: part 0 one share, every other part two."""
    slot = (((key * _MIX) & _WORD) >> 16) % (2 * parts - 1)
    return (slot + 1) // 2


def _fold(buf: bytes, at: int, words: int) -> int:
    """The XOR of `words` 32-bit words from buf[at:]: one address, folded."""
    folded = 0
    for i in range(words):
        folded ^= int.from_bytes(buf[at + 4 * i : at + 4 * i + 4], "big")
    return folded


def _first_ip(buf: bytes, off: int, cap: int, lt: int) -> int:
    """Offset of the frame's first IP header (past Ethernet and VLAN tags), or -1."""
    end = off + cap
    if lt == LINKTYPE_ETHERNET:
        at = off + _ETHERNET_HEADER
        if at > end:
            return -1
        ethertype = (buf[at - 2] << 8) | buf[at - 1]
        tags = 0
        while ethertype in VLAN_TPIDS and tags < MAX_VLAN_TAGS and at + _VLAN_TAG <= end:
            ethertype = (buf[at + 2] << 8) | buf[at + 3]
            at += _VLAN_TAG
            tags += 1
        if ethertype not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
            return -1
    else:
        header = _FIXED_LINK_HEADER.get(lt)
        if header is None:
            return -1
        at = off + header
    return at if at < end else -1


def _icmp_quote(buf: bytes, at: int, end: int) -> int:
    """Offset of the IPv4 header an ICMP error at `at` quotes, or -1."""
    if buf[at + 9] != _PROTO_ICMP or ((buf[at + 6] << 8) | buf[at + 7]) & _FRAG_MASK:
        return -1
    icmp = at + (buf[at] & 0x0F) * 4
    quoted = icmp + _ICMP_HEADER
    if quoted + _IPV4_HEADER > end or buf[icmp] not in _ICMP_ERRORS or buf[quoted] >> 4 != 4:
        return -1
    return quoted


def _icmpv6_quote(buf: bytes, at: int, end: int) -> int:
    """Offset of the IPv6 header an ICMPv6 error at `at` quotes, or -1 (no extension
    headers are walked: such an error stays with its own pair)."""
    icmp = at + _IPV6_HEADER
    quoted = icmp + _ICMP_HEADER
    if (
        buf[at + 6] != _PROTO_ICMPV6
        or quoted + _IPV6_HEADER > end
        or buf[icmp] >= _ICMPV6_INFORMATIONAL
        or buf[quoted] >> 4 != 6
    ):
        return -1
    return quoted
