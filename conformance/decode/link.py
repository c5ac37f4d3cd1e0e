"""Link-layer headers: find the network header and its type in one captured frame.

Link type numbers are the LINKTYPE_ values of https://www.tcpdump.org/linktypes.html
(what pcap and pcapng files carry), plus the raw-IP DLT values 12 and 14 that some
systems write into files unchanged.
"""

from __future__ import annotations

from conformance.decode.capture import DIRECTION_INBOUND, DIRECTION_OUTBOUND, DIRECTION_UNKNOWN
from conformance.decode.errors import DecodeError

LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in the writer's byte order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW_DLT12 = 12  # DLT_RAW on most BSDs, written into files as-is
LINKTYPE_RAW_DLT14 = 14  # DLT_RAW on OpenBSD
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108  # OpenBSD loopback: address family in network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SUPPORTED_LINK_TYPES = frozenset(
    {
        LINKTYPE_NULL,
        LINKTYPE_ETHERNET,
        LINKTYPE_RAW_DLT12,
        LINKTYPE_RAW_DLT14,
        LINKTYPE_RAW,
        LINKTYPE_LOOP,
        LINKTYPE_LINUX_SLL,
        LINKTYPE_IPV4,
        LINKTYPE_IPV6,
        LINKTYPE_LINUX_SLL2,
    }
)
_RAW_IP = frozenset({LINKTYPE_RAW_DLT12, LINKTYPE_RAW_DLT14, LINKTYPE_RAW})

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_NONE = 0  # not an IP packet (ARP, LLC, an unknown address family, ...)
# IEEE 802.1Q C-tag, 802.1ad S-tag, and the pre-standard QinQ tags still in use.
VLAN_TPIDS = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
# Real networks stack two tags (QinQ), rarely three; past this it is garbage, not VLANs.
MAX_VLAN_TAGS = 8
# Ethernet type/length field: values below this are an 802.3 length (LLC follows).
_ETHERTYPE_MIN = 0x0600

_ETHERNET_HEADER = 14
_VLAN_TAG = 4
_SLL_HEADER = 16  # pkttype, ARPHRD, address length, 8 address bytes, protocol
_SLL2_HEADER = 20  # protocol, reserved, ifindex, ARPHRD, pkttype, address length, address
_NULL_HEADER = 4

# BSD address families for IP (AF_INET is 2 everywhere; AF_INET6 is 24 on
# NetBSD/OpenBSD/BSD/OS, 28 on FreeBSD/DragonFly, 30 on macOS).
_AF_INET = 2
_AF_INET6 = frozenset({24, 28, 30})

# Linux packet types (linux/if_packet.h) as written by cooked captures.
_PACKET_HOST = 0
_PACKET_BROADCAST = 1
_PACKET_MULTICAST = 2
_PACKET_OUTGOING = 4


def network_layer(linktype: int, buf: bytes, off: int, end: int) -> tuple[int, int, int]:
    """(ethertype, offset of the network header, direction) of the frame buf[off:end].

    The ethertype is ETHERTYPE_IPV4, ETHERTYPE_IPV6 or another value the caller skips.
    Direction is 1 inbound / 2 outbound where the link header says (Linux cooked
    captures), else 0. Raises DecodeError if the link header is cut short and
    KeyError for a link type outside SUPPORTED_LINK_TYPES.
    """
    if linktype == LINKTYPE_ETHERNET:
        if end - off < _ETHERNET_HEADER:
            raise DecodeError("truncated Ethernet header", 0)
        return _payload_type(buf, off, _u16(buf, off + 12), _ETHERNET_HEADER, end, 0)
    if linktype in _RAW_IP:
        return _raw_ip(buf, off, end), off, DIRECTION_UNKNOWN
    if linktype == LINKTYPE_LINUX_SLL:
        if end - off < _SLL_HEADER:
            raise DecodeError("truncated Linux cooked header", 0)
        direction = _packet_direction(_u16(buf, off))
        return _payload_type(buf, off, _u16(buf, off + 14), _SLL_HEADER, end, direction)
    if linktype == LINKTYPE_LINUX_SLL2:
        if end - off < _SLL2_HEADER:
            raise DecodeError("truncated Linux cooked v2 header", 0)
        direction = _packet_direction(buf[off + 10])
        return _payload_type(buf, off, _u16(buf, off), _SLL2_HEADER, end, direction)
    if linktype == LINKTYPE_IPV4:
        return ETHERTYPE_IPV4, off, DIRECTION_UNKNOWN
    if linktype == LINKTYPE_IPV6:
        return ETHERTYPE_IPV6, off, DIRECTION_UNKNOWN
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if end - off < _NULL_HEADER:
            raise DecodeError("truncated loopback header", 0)
        if linktype == LINKTYPE_LOOP:
            family = int.from_bytes(buf[off : off + 4], "big")
        else:
            # Host byte order of the machine that wrote the file, which the file does
            # not say: the family is small, so whichever end is non-zero holds it.
            family = buf[off] if buf[off] else int.from_bytes(buf[off : off + 4], "big")
        if family == _AF_INET:
            return ETHERTYPE_IPV4, off + _NULL_HEADER, DIRECTION_UNKNOWN
        if family in _AF_INET6:
            return ETHERTYPE_IPV6, off + _NULL_HEADER, DIRECTION_UNKNOWN
        return ETHERTYPE_NONE, off + _NULL_HEADER, DIRECTION_UNKNOWN
    raise KeyError(linktype)


def _payload_type(
    buf: bytes, off: int, ethertype: int, header: int, end: int, direction: int
) -> tuple[int, int, int]:
    """Skip 802.1Q/802.1ad tags (TCI, then the inner type) that start the payload."""
    pos = off + header
    for _ in range(MAX_VLAN_TAGS):
        if ethertype not in VLAN_TPIDS:
            break
        if pos + _VLAN_TAG > end:
            raise DecodeError("truncated VLAN tag", pos - off)
        ethertype = _u16(buf, pos + 2)
        pos += _VLAN_TAG
    else:
        if ethertype in VLAN_TPIDS:
            raise DecodeError(f"more than {MAX_VLAN_TAGS} stacked VLAN tags", pos - off)
    if ethertype < _ETHERTYPE_MIN:
        return ETHERTYPE_NONE, pos, direction
    return ethertype, pos, direction


def _u16(buf: bytes, pos: int) -> int:
    return (buf[pos] << 8) | buf[pos + 1]


def _raw_ip(buf: bytes, off: int, end: int) -> int:
    """The ethertype of a raw IP packet, from its version nibble."""
    if off >= end:
        raise DecodeError("empty raw IP packet", 0)
    version = buf[off] >> 4
    if version == 4:
        return ETHERTYPE_IPV4
    if version == 6:
        return ETHERTYPE_IPV6
    raise DecodeError(f"bad IP version {version}", 0)


def _packet_direction(pkttype: int) -> int:
    """Inbound/outbound from a Linux packet type; promiscuous "other host" is unknown."""
    if pkttype in (_PACKET_HOST, _PACKET_BROADCAST, _PACKET_MULTICAST):
        return DIRECTION_INBOUND
    if pkttype == _PACKET_OUTGOING:
        return DIRECTION_OUTBOUND
    return DIRECTION_UNKNOWN
