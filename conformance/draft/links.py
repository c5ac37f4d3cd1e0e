"""Which link-layer address carries each IP address in a capture: the frame-level pass of a draft.

`Observations` hold flows, not frames; whether a destination is on the target's segment or
behind a router is only in the frames' MAC addresses. This pass reads every frame once, with
the same decoders as the observers (decode/capture_reader.py, link.py, ip.py), and keeps, per IP
address, the source MACs of the frames it sent and the destination MACs of the frames sent
to it, plus the bindings ARP (RFC 826) and IPv6 neighbour discovery (RFC 4861) announce.

Only Ethernet carries both MACs; Linux cooked captures (SLL, SLL2) carry the sender's only;
raw IP and loopback captures carry none, and then nothing can be inferred from links.
Group (multicast and broadcast) MACs never identify a host and are not kept.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

from conformance.decode.capture_file import open_capture
from conformance.decode.errors import DecodeError
from conformance.decode.ip import IPPROTO_ICMPV6, decode_ip
from conformance.decode.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    network_layer,
)
from conformance.observe.records import IPAddress

# A host answers from one MAC; an address seen with more is behind several routers or
# spoofed, and is already "not one host's" after two. Bounds the sets however long the file.
MAX_MACS_PER_ADDRESS: Final = 8
ETHERTYPE_ARP: Final = 0x0806
_V = TypeVar("_V", str, int)
_ETHERNET_HEADER = 14
_IPV6_HEADER = 40
_IPV4, _IPV6 = b"\x08\x00", b"\x86\xdd"
# IPv6 next headers the fast path leaves to decode_ip: extension headers (RFC 8200 §4) and
# ICMPv6, whose neighbour discovery binds addresses.
_IPV6_SLOW_NEXT = frozenset({0, 43, 44, 50, 51, 58, 60, 135, 139, 140, 253, 254})
_ARP_IPV4_OVER_ETHERNET = bytes.fromhex("000108000604")  # htype 1, ptype IPv4, hlen 6, plen 4
_ND_SOLICIT, _ND_ADVERT, _ND_ROUTER_ADVERT = 135, 136, 134
_ND_SOURCE_LL, _ND_TARGET_LL = 1, 2  # RFC 4861 4.6.1 option types


@dataclass
class LinkFacts:
    """What the frames say about which MAC carries which IP address."""

    source_macs: dict[IPAddress, set[str]] = field(default_factory=lambda: defaultdict(set))
    destination_macs: dict[IPAddress, set[str]] = field(default_factory=lambda: defaultdict(set))
    bound: dict[IPAddress, set[str]] = field(default_factory=lambda: defaultdict(set))  # ARP, ND
    # IPv4 TTL / IPv6 hop limit of the frames each address sent, as they arrived
    hops: dict[IPAddress, set[int]] = field(default_factory=lambda: defaultdict(set))
    frames: int = 0
    frames_with_macs: int = 0  # frames whose link header names at least the sender
    not_read: int = 0  # frames whose link or IP header could not be decoded

    def addresses_of(self, mac: str, version: int) -> set[IPAddress]:
        """Every address of `version` seen sending from, or sent to, `mac`."""
        found = {a for a, macs in self.source_macs.items() if mac in macs}
        found |= {a for a, macs in self.destination_macs.items() if mac in macs}
        return {a for a in found if a.version == version}

    def macs_of(self, address: IPAddress) -> set[str]:
        """Every MAC `address` was seen with, as sender or receiver."""
        return set(self.source_macs.get(address, ())) | set(self.destination_macs.get(address, ()))


def read_links(paths: Sequence[Path]) -> LinkFacts:
    """Read every frame of every capture once and collect the MAC facts."""
    collector = _Collector()
    for path in paths:
        with open_capture(path) as reader:
            for record in reader.packets():
                collector.frame(record[1], record[2], record[2] + record[3], record[5])
    return collector.facts()


class _Collector:
    """Raw (MAC, address) pairs as bytes while reading; typed LinkFacts at the end.

    Untagged Ethernet IPv4 and IPv6 frames without extension headers (nearly all) take a
    fast path that only slices the fixed header fields: the pass costs a few set insertions
    per frame. Everything else goes through the observers' decoders.
    """

    def __init__(self) -> None:
        self.sources: set[bytes] = set()  # MAC (6) + packed address
        self.destinations: set[bytes] = set()
        self.hops: set[bytes] = set()  # packed address + TTL/hop limit (1)
        self.partial = LinkFacts()  # ARP/ND bindings and counters

    def frame(self, buf: bytes, off: int, end: int, linktype: int) -> None:
        partial = self.partial
        partial.frames += 1
        if linktype == LINKTYPE_ETHERNET and end - off >= _ETHERNET_HEADER + _IPV6_HEADER:
            kind = buf[off + 12 : off + 14]
            if kind == _IPV4 and buf[off + 14] == 0x45:
                partial.frames_with_macs += 1
                src, dst = buf[off + 26 : off + 30], buf[off + 30 : off + 34]
                self._pair(buf, off, src, dst, buf[off + 22 : off + 23])
                return
            if kind == _IPV6 and buf[off + 20] not in _IPV6_SLOW_NEXT:
                partial.frames_with_macs += 1
                src, dst = buf[off + 22 : off + 38], buf[off + 38 : off + 54]
                self._pair(buf, off, src, dst, buf[off + 21 : off + 22])
                return
        self._slow(buf, off, end, linktype)

    def _pair(self, buf: bytes, off: int, src: bytes, dst: bytes, hops: bytes) -> None:
        if not buf[off + 6] & 0x01:
            self.sources.add(buf[off + 6 : off + 12] + src)
        if not buf[off] & 0x01:
            self.destinations.add(buf[off : off + 6] + dst)
        self.hops.add(src + hops)

    def _slow(self, buf: bytes, off: int, end: int, linktype: int) -> None:
        partial = self.partial
        source, destination = _macs(buf, off, end, linktype)
        try:
            ethertype, l3, _ = network_layer(linktype, buf, off, end)
            if ethertype == ETHERTYPE_ARP and source is not None:
                _arp(partial, buf, l3, end)
                return
            if ethertype not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
                return
            packet = decode_ip(buf, l3, end, ethertype)
        except (DecodeError, KeyError, IndexError):
            partial.not_read += 1
            return
        self.hops.add(packet.src + bytes([buf[l3 + 8] if packet.version == 4 else buf[l3 + 7]]))
        if source is not None:
            partial.frames_with_macs += 1
            self.sources.add(bytes.fromhex(source.replace(":", "")) + packet.src)
        if destination is not None:
            self.destinations.add(bytes.fromhex(destination.replace(":", "")) + packet.dst)
        if packet.proto == IPPROTO_ICMPV6 and packet.fragment is None:
            src = ipaddress.IPv6Address(packet.src)
            _neighbour_discovery(partial, buf, packet.l4, packet.end, src)

    def facts(self) -> LinkFacts:
        facts = self.partial
        addresses: dict[bytes, IPAddress] = {}  # packed -> parsed, each parsed once
        for pair in sorted(self.sources):
            _add(facts.source_macs, _parsed(addresses, pair[6:]), pair[:6].hex(":"))
        for pair in sorted(self.destinations):
            _add(facts.destination_macs, _parsed(addresses, pair[6:]), pair[:6].hex(":"))
        for pair in sorted(self.hops):
            _add(facts.hops, _parsed(addresses, pair[:-1]), pair[-1])
        return facts


def _parsed(addresses: dict[bytes, IPAddress], packed: bytes) -> IPAddress:
    found = addresses.get(packed)
    if found is None:
        found = addresses[packed] = ipaddress.ip_address(packed)
    return found


def _macs(buf: bytes, off: int, end: int, linktype: int) -> tuple[str | None, str | None]:
    """(source MAC, destination MAC) where the link header has them; group MACs are None."""
    if linktype == LINKTYPE_ETHERNET and end - off >= _ETHERNET_HEADER:
        return _unicast(buf[off + 6 : off + 12]), _unicast(buf[off : off + 6])
    if (
        linktype == LINKTYPE_LINUX_SLL
        and end - off >= 16
        and (buf[off + 4] << 8 | buf[off + 5]) == 6
    ):
        return _unicast(buf[off + 6 : off + 12]), None
    if linktype == LINKTYPE_LINUX_SLL2 and end - off >= 20 and buf[off + 11] == 6:
        return _unicast(buf[off + 12 : off + 18]), None
    return None, None


def _unicast(mac: bytes) -> str | None:
    if mac[0] & 0x01:  # the I/G bit: a group address (IEEE 802 §8.2)
        return None
    return mac.hex(":")


def _add(table: dict[IPAddress, set[_V]], address: IPAddress, value: _V) -> None:
    values = table[address]
    if len(values) < MAX_MACS_PER_ADDRESS:
        values.add(value)


def _arp(facts: LinkFacts, buf: bytes, l3: int, end: int) -> None:
    """An ARP packet binds its sender's (and a reply's target's) address to a MAC."""
    if end - l3 < 28 or buf[l3 : l3 + 6] != _ARP_IPV4_OVER_ETHERNET:
        return
    op = buf[l3 + 6] << 8 | buf[l3 + 7]
    pairs = [(buf[l3 + 8 : l3 + 14], buf[l3 + 14 : l3 + 18])]
    if op == 2:
        pairs.append((buf[l3 + 18 : l3 + 24], buf[l3 + 24 : l3 + 28]))
    for mac_bytes, ip_bytes in pairs:
        mac = _unicast(mac_bytes)
        address = ipaddress.IPv4Address(ip_bytes)
        if mac is not None and not address.is_unspecified:
            _add(facts.bound, address, mac)


def _neighbour_discovery(facts: LinkFacts, buf: bytes, l4: int, end: int, src: IPAddress) -> None:
    """NS and RA bind their source to the source link-layer option; NA binds its target."""
    if end - l4 < 8:
        return
    kind = buf[l4]
    if kind in (_ND_SOLICIT, _ND_ROUTER_ADVERT):
        options, wanted, owner = l4 + (24 if kind == _ND_SOLICIT else 16), _ND_SOURCE_LL, src
    elif kind == _ND_ADVERT and end - l4 >= 24:
        options, wanted = l4 + 24, _ND_TARGET_LL
        owner = ipaddress.IPv6Address(buf[l4 + 8 : l4 + 24])
    else:
        return
    pos = options
    while pos + 2 <= end:
        length = buf[pos + 1] * 8  # RFC 4861 4.6: in units of 8 octets, 0 is invalid
        if length == 0 or pos + length > end:
            return
        if buf[pos] == wanted and length >= 8:
            mac = _unicast(buf[pos + 2 : pos + 8])
            if mac is not None and not owner.is_unspecified:
                _add(facts.bound, owner, mac)
        pos += length
