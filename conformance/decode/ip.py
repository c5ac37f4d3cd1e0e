"""IPv4 (RFC 791) and IPv6 (RFC 8200) headers, extension headers, fragment reassembly.

This is the general path: every packet the observers' fast path does not take
(options, extension headers, fragments, VLANs, other link types) comes through
`decode_ip`. Reassembly holds a bounded number of incomplete datagrams for a
bounded time, so memory stays flat whatever the capture contains.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from conformance.decode.errors import DecodeError
from conformance.decode.link import ETHERTYPE_IPV4

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ESP = 50  # opaque: what follows is encrypted
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_DSTOPTS = 60

# RFC 8200 §4: headers in the (hdr ext len + 1) * 8 format; AH (RFC 4302 §2.2) counts
# 4-byte words minus 2; the fragment header is always 8 bytes.
_EXT_8_OCTETS = frozenset({IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS})
# RFC 8200 §4.1 allows each header once (destination options twice); more than this is
# a crafted chain, not a packet, and walking on would only burn time.
MAX_EXTENSION_HEADERS = 16

IPV4_HEADER = 20
IPV6_HEADER = 40
_IPV4_FRAG_OFFSET = 0x1FFF
_IPV4_MORE_FRAGMENTS = 0x2000
_FRAGMENT_HEADER = 8

# Incomplete datagrams held at once: hosts keep a few; far more means heavy loss or
# a fragment flood, and the oldest go first so memory stays bounded (~64 KiB each).
MAX_PENDING_DATAGRAMS = 128
# RFC 8200 §4.5: give up on a datagram 60 s after its first fragment arrived
# (Linux uses 30 s for IPv4; 60 s is the longer of the two).
FRAGMENT_TIMEOUT = 60.0
# A 64 KiB datagram needs at most ~120 fragments at the 576-byte minimum MTU of RFC 791;
# more than this is an attack pattern (tiny overlapping fragments), not traffic.
MAX_FRAGMENTS_PER_DATAGRAM = 256
# Offset + length can never exceed this (IPv4 total length and IPv6 payload length are
# 16-bit); a fragment reaching past it is malformed.
MAX_DATAGRAM_PAYLOAD = 65535


@dataclass(frozen=True, slots=True)
class Fragment:
    """Where a fragment belongs: its datagram's identification and its byte offset."""

    ident: int
    offset: int  # bytes into the fragmentable part
    more: bool  # more fragments follow


@dataclass(frozen=True, slots=True)
class IpPacket:
    """The network header of one packet, reduced to what the observers need."""

    version: int
    src: bytes  # packed address, 4 or 16 bytes
    dst: bytes
    proto: int  # transport protocol (IPv6: after extension headers; fragments: of the payload)
    l4: int  # offset of the transport header (fragments: of the fragment's data) in buf
    end: int  # end of this datagram's bytes present in buf (padding excluded)
    length: int  # IP bytes on the wire (total length, or header + payload length)
    fragment: Fragment | None = None
    snapped: bool = False  # the capture kept fewer bytes than the datagram has


def decode_ip(buf: bytes, off: int, end: int, ethertype: int) -> IpPacket:
    """Decode the IPv4 or IPv6 header at buf[off:end]; raise DecodeError if malformed.

    The version nibble decides when it says 4 or 6, whatever `ethertype` (or a link type
    such as LINKTYPE_IPV4) claimed: the label is not trusted over the bytes (decision 10).
    Read as the labelled version, the target's packet would show addresses from the wrong
    offsets and be settled as someone else's. Other versions are read as labelled.
    """
    version = buf[off] >> 4 if off < end else 0
    if version == 6 or (version != 4 and ethertype != ETHERTYPE_IPV4):
        return decode_ipv6(buf, off, end)
    return decode_ipv4(buf, off, end)


def decode_ipv4(buf: bytes, off: int, end: int) -> IpPacket:
    """An IPv4 header with its options skipped."""
    if end - off < IPV4_HEADER:
        raise DecodeError("truncated IPv4 header", 0)
    version = buf[off] >> 4
    if version != 4:
        raise DecodeError(f"bad IP version {version} in an IPv4 frame", 0)
    ihl = (buf[off] & 0x0F) * 4
    if ihl < IPV4_HEADER:
        raise DecodeError("IPv4 header length lies", 0)
    if off + ihl > end:
        raise DecodeError("truncated IPv4 options", IPV4_HEADER)
    total = (buf[off + 2] << 8) | buf[off + 3]
    if total == 0:
        # Segmentation offload: the sending host's own capture sees one large frame
        # whose length field the NIC fills in later. The captured bytes are the datagram.
        total = end - off
    elif total < ihl:
        raise DecodeError("IPv4 header length lies", 2)  # longer than the whole datagram
    frag = (buf[off + 6] << 8) | buf[off + 7]
    fragment = None
    if frag & (_IPV4_MORE_FRAGMENTS | _IPV4_FRAG_OFFSET):
        ident = (buf[off + 4] << 8) | buf[off + 5]
        more = bool(frag & _IPV4_MORE_FRAGMENTS)
        fragment = Fragment(ident, (frag & _IPV4_FRAG_OFFSET) * 8, more)
    return IpPacket(
        4,
        buf[off + 12 : off + 16],
        buf[off + 16 : off + 20],
        buf[off + 9],
        off + ihl,
        min(off + total, end),
        total,
        fragment,
        off + total > end,
    )


def decode_ipv6(buf: bytes, off: int, end: int) -> IpPacket:
    """An IPv6 header and its extension-header chain up to the transport header."""
    if end - off < IPV6_HEADER:
        raise DecodeError("truncated IPv6 header", 0)
    version = buf[off] >> 4
    if version != 6:
        raise DecodeError(f"bad IP version {version} in an IPv6 frame", 0)
    payload = (buf[off + 4] << 8) | buf[off + 5]
    if payload == 0:
        payload = end - off - IPV6_HEADER  # jumbogram (RFC 2675) or offload: use what is there
    declared_end = off + IPV6_HEADER + payload
    datagram_end = min(declared_end, end)
    proto, l4, fragment = ipv6_extensions(buf, off + IPV6_HEADER, datagram_end, buf[off + 6], off)
    return IpPacket(
        6,
        buf[off + 8 : off + 24],
        buf[off + 24 : off + 40],
        proto,
        l4,
        datagram_end,
        IPV6_HEADER + payload,
        fragment,
        declared_end > end,
    )


def ipv6_extensions(
    buf: bytes, pos: int, end: int, nh: int, base: int = 0
) -> tuple[int, int, Fragment | None]:
    """Walk extension headers from pos: (upper protocol, its offset, fragment header).

    Stops at the first fragment header: what follows it belongs to the reassembled
    datagram. `base` only makes error offsets relative to the packet.
    """
    for _ in range(MAX_EXTENSION_HEADERS):
        if nh in _EXT_8_OCTETS:
            if pos + 2 > end:
                raise DecodeError(f"truncated IPv6 extension header {nh}", pos - base)
            size = (buf[pos + 1] + 1) * 8
        elif nh == IPPROTO_AH:
            if pos + 2 > end:
                raise DecodeError("truncated IPv6 authentication header", pos - base)
            size = (buf[pos + 1] + 2) * 4
        elif nh == IPPROTO_FRAGMENT:
            if pos + _FRAGMENT_HEADER > end:
                raise DecodeError("truncated IPv6 fragment header", pos - base)
            word = (buf[pos + 2] << 8) | buf[pos + 3]
            ident = int.from_bytes(buf[pos + 4 : pos + 8], "big")
            fragment = Fragment(ident, word & 0xFFF8, bool(word & 1))
            return buf[pos], pos + _FRAGMENT_HEADER, fragment
        else:
            return nh, pos, None
        if pos + size > end:
            raise DecodeError(f"truncated IPv6 extension header {nh}", pos - base)
        nh = buf[pos]
        pos += size
    raise DecodeError(f"more than {MAX_EXTENSION_HEADERS} IPv6 extension headers", pos - base)


PacketInfo = tuple[float, int, int, int]  # (time, packet number, IP bytes on the wire, direction)
Packets = Sequence[PacketInfo]  # the packets one datagram came in

# Why a datagram can never be completed (stable reasons, controls.md decision 10).
OVERLAPPING = "overlapping fragments"
INCOMPLETE = "incomplete fragments"
SNAPPED = "fragment shorter than its IP length"  # the snap length cut it, or the length lies
TOO_LONG = "fragment reaches past the largest datagram"
TOO_MANY = f"more than {MAX_FRAGMENTS_PER_DATAGRAM} fragments"
EMPTY = "empty fragment"


@dataclass(slots=True)
class PendingDatagram:
    """The fragments of one datagram seen so far.

    `runs` mirrors Linux's fragment queue (net/ipv4/inet_fragment.c since 4.19): fragments
    that arrived in order, back to back, form one run; a new fragment that only partly
    overlaps what is there, or spans two runs, is an overlap and the whole datagram is
    dropped (RFC 5722 for IPv6; Linux does the same for IPv4 since CVE-2018-5391). One
    that lies wholly inside a run is a duplicate and is ignored: the first bytes win.
    """

    version: int
    src: bytes
    dst: bytes
    proto: int  # IPv4 protocol / IPv6 next header of the fragmentable part (first fragment's)
    ident: int
    first_time: float
    pieces: dict[int, bytes] = field(default_factory=dict)  # offset -> data
    runs: list[list[int]] = field(default_factory=list)  # [start, end) runs, sorted
    total: int | None = None  # payload length, known once the last fragment arrived
    span: int = 0  # the furthest end any fragment reached
    damaged: str | None = None  # why it can never be completed
    conflict: bool = False  # a duplicate fragment carried other bytes than the first
    packets: list[PacketInfo] = field(default_factory=list)  # every fragment's
    context: object = None  # what the caller needs to go on once it is whole

    def assemble(self) -> bytes | None:
        """The whole payload if every byte has arrived, else None."""
        if self.total is None or self.damaged:
            return None
        covered = 0
        for start, end in self.runs:
            if start > covered:
                return None
            covered = end
        if covered < self.total:
            return None
        out = bytearray(self.total)
        for offset, piece in self.pieces.items():
            out[offset : offset + len(piece)] = piece
        return bytes(out)

    def insert(self, offset: int, data: bytes, last: bool) -> None:
        """File one fragment's data the way Linux's ip_frag_queue/ip6_frag_queue do."""
        end = offset + len(data)
        if last:
            if end < self.span or (self.total is not None and end != self.total):
                self.damaged = OVERLAPPING  # bytes past the end, or two different ends
                return
            self.total = end
        else:
            if self.version == 4:
                end &= ~7  # RFC 791: every fragment but the last holds 8-byte blocks
                data = data[: end - offset]
            if end > self.span and self.total is not None:
                self.damaged = OVERLAPPING
                return
        if end <= offset:
            self.damaged = EMPTY
            return
        self.span = max(self.span, end)
        self._file(offset, end, data)

    def _file(self, offset: int, end: int, data: bytes) -> None:
        """Place [offset, end) among the runs: appended, joined, inserted, or a duplicate."""
        runs = self.runs
        if not runs or end > runs[-1][1]:
            if runs and offset < runs[-1][1]:
                self.damaged = OVERLAPPING
            elif runs and offset == runs[-1][1]:
                runs[-1][1] = end
                self.pieces[offset] = data
            else:
                runs.append([offset, end])
                self.pieces[offset] = data
            return
        for index, (start, stop) in enumerate(runs):
            if end <= start:
                runs.insert(index, [offset, end])
                self.pieces[offset] = data
                return
            if offset >= stop:
                continue
            if offset >= start and end <= stop:
                if self._bytes(offset, end) != data:
                    self.conflict = True
            else:
                self.damaged = OVERLAPPING
            return

    def _bytes(self, start: int, end: int) -> bytes:
        """What the pieces already hold for [start, end) (inside one run)."""
        out = bytearray()
        for offset in sorted(self.pieces):
            piece = self.pieces[offset]
            if offset + len(piece) <= start or offset >= end:
                continue
            out += piece[max(0, start - offset) : end - offset]
        return bytes(out)


class Reassembler:
    """Collects fragments until their datagram is whole; bounded in count and age."""

    def __init__(self) -> None:
        self._pending: dict[tuple[int, bytes, bytes, int, int], PendingDatagram] = {}
        self._stale: list[PendingDatagram] = []
        # Datagrams given up on for time or room (not for damage): when they are given up
        # depends on other datagrams' fragments, which a capture observed in parts splits.
        self.given_up = 0
        self.last_time = -math.inf  # the latest fragment's time
        self.oldest_drained = math.inf  # the first time of the oldest datagram left at the end

    def __len__(self) -> int:
        return len(self._pending)

    def pending_packets(self) -> int:
        """Packets held in datagrams not yet whole nor given up on."""
        return sum(len(d.packets) for d in self._pending.values()) + sum(
            len(d.packets) for d in self._stale
        )

    def add(
        self,
        ip: IpPacket,
        buf: bytes,
        packets: Packets,
        context: object = None,
    ) -> tuple[PendingDatagram, bytes] | None:
        """File one fragment (it came in `packets`); return (datagram, payload) when whole.

        `context` is kept with a new datagram for the caller. Raises DecodeError for a
        fragment that is dropped on its own (the datagram goes on without it): an IPv6
        fragment other than the last whose length is not a multiple of 8 (RFC 8200 §4.5).
        """
        frag = ip.fragment
        if frag is None:
            raise ValueError("not a fragment")
        size = ip.end - ip.l4
        if ip.version == 6 and frag.more and size % 8 and not ip.snapped:
            raise DecodeError("IPv6 fragment length not a multiple of 8", 0)
        # Linux keys IPv6 fragments by addresses and identification only (RFC 8200 §4.5);
        # IPv4 by the protocol too (RFC 791).
        proto = ip.proto if ip.version == 4 else -1
        key = (ip.version, ip.src, ip.dst, proto, frag.ident)
        time = packets[-1][0]
        # Every fragment gives up on the datagrams past FRAGMENT_TIMEOUT first, its own
        # included (a timer does in Linux): a late fragment never completes a stale one.
        self._expire(time)
        self.last_time = max(self.last_time, time)
        pending = self._pending.get(key)
        if pending is None:
            pending = PendingDatagram(ip.version, ip.src, ip.dst, ip.proto, frag.ident, time)
            pending.context = context
            self._pending[key] = pending
            if len(self._pending) > MAX_PENDING_DATAGRAMS:
                oldest = next(iter(self._pending))
                self._stale.append(self._pending.pop(oldest))
                self.given_up += 1
        pending.packets.extend(packets)
        if frag.offset == 0:
            pending.proto = ip.proto
        if frag.offset + size > MAX_DATAGRAM_PAYLOAD:
            pending.damaged = TOO_LONG
        elif len(pending.packets) > MAX_FRAGMENTS_PER_DATAGRAM:
            pending.damaged = TOO_MANY
        elif ip.snapped:
            # Shorter than its IP length: the datagram can never be whole, but the bytes
            # are real and kept, so what its start carries can still be read.
            pending.pieces.setdefault(frag.offset, buf[ip.l4 : ip.end])
            pending.damaged = SNAPPED
        else:
            pending.insert(frag.offset, buf[ip.l4 : ip.end], not frag.more)
        if pending.damaged:
            self._stale.append(self._pending.pop(key))
            return None
        payload = pending.assemble()
        if payload is None:
            return None
        del self._pending[key]
        return pending, payload

    def take_stale(self) -> list[PendingDatagram]:
        """Datagrams given up on (too old, too many pending, damaged) since the last call."""
        stale, self._stale = self._stale, []
        return stale

    def drain(self) -> list[PendingDatagram]:
        """Give up on everything still pending (the capture ended)."""
        stale = self.take_stale() + list(self._pending.values())
        for datagram in self._pending.values():
            self.oldest_drained = min(self.oldest_drained, datagram.first_time)
        self._pending.clear()
        return stale

    def _expire(self, now: float) -> None:
        while self._pending:
            key = next(iter(self._pending))
            if now - self._pending[key].first_time <= FRAGMENT_TIMEOUT:
                return
            self._stale.append(self._pending.pop(key))
            self.given_up += 1
