"""Link-layer headers: find the network header and its type in one captured frame.

Link type numbers are the LINKTYPE_ values of https://www.tcpdump.org/linktypes.html
(what pcap and pcapng files carry), plus the raw-IP DLT values 12 and 14 that some
systems write into files unchanged.
"""

from __future__ import annotations

from conformance.decode.capture_reader import (
    DIRECTION_INBOUND,
    DIRECTION_OUTBOUND,
    DIRECTION_UNKNOWN,
)
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
ETHERTYPE_LLC = 1  # an 802.3 length: an 802.2 LLC header follows (decode with `llc_payload`)
ETHERTYPE_PPPOE_SESSION = 0x8864  # RFC 2516
ETHERTYPE_MPLS = 0x8847  # RFC 3032
ETHERTYPE_MPLS_MULTICAST = 0x8848
ETHERTYPE_PBB = 0x88E7  # IEEE 802.1ah I-tag: a customer Ethernet header follows
ETHERTYPE_TEB = 0x6558  # transparent Ethernet bridging (GRE, Geneve, NVGRE)
ETHERTYPE_SLOW = 0x8809  # IEEE 802.3 slow protocols: LACP, marker, OAM, ESMC
ETHERTYPE_MACSEC = 0x88E5  # IEEE 802.1AE: the rest of the frame is encrypted
# Frames that carry link-layer control and cannot leave the segment (controls.md decision 10):
# no router forwards them, and none carries an IP packet.
LINK_CONTROL_ETHERTYPES: dict[int, str] = {
    0x0806: "ARP",
    0x8035: "RARP",
    0x88CC: "LLDP",
    0x888E: "802.1X",
    0x8863: "PPPoE discovery",
    0x8808: "Ethernet flow control",
    0x8902: "CFM",  # IEEE 802.1ag connectivity fault management
    0x88F7: "PTP",  # IEEE 1588 over Ethernet
    0x9000: "Ethernet loopback",  # Ethernet configuration testing protocol
    0x88E3: "MRP",  # IEC 62439-2 media redundancy
    0x88F5: "MVRP",
    0x88F6: "MMRP",
}
_SLOW_SUBTYPES = {1: "LACP", 2: "LACP marker", 3: "Ethernet OAM", 10: "ESMC"}
# 802.2 LLC (IEEE 802.2): service access points of link-local control protocols.
_LLC_SAP_STP = 0x42  # spanning tree (STP, RSTP, MSTP)
_LLC_SAP_ISIS = 0xFE  # OSI network layer: IS-IS hellos and LSPs stay on the link
_LLC_SAP_SNAP = 0xAA  # RFC 1042: a 5-byte SNAP header (OUI, protocol id) follows
_LLC_SAP_NULL = 0x00
_LLC_XID_TEST = frozenset({0xAF, 0xBF, 0xE3, 0xF3})  # U-frame XID and TEST, poll bit either
_SNAP_OUI_ETHERTYPE = frozenset({b"\x00\x00\x00", b"\x00\x00\xf8"})  # RFC 1042, 802.1H
_SNAP_OUI_CISCO = b"\x00\x00\x0c"
_CISCO_SNAP_CONTROL = {
    0x2000: "CDP",
    0x2003: "VTP",
    0x2004: "DTP",
    0x010B: "PVST+",
    0x0111: "UDLD",
}
_LLC_HEADER = 3  # DSAP, SSAP, one-byte U-format control
_SNAP_HEADER = 5
_MAC = 6
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

    The ethertype is ETHERTYPE_IPV4, ETHERTYPE_IPV6, another EtherType, or ETHERTYPE_LLC
    (an 802.3 length: LLC follows). Direction is 1 inbound / 2 outbound where the link
    header says (Linux cooked captures), else 0. Raises DecodeError if the link header is
    cut short or a loopback frame's address family is not IP, and KeyError for a link
    type outside SUPPORTED_LINK_TYPES.
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
        raise DecodeError(f"loopback address family {family}", 0)
    raise KeyError(linktype)


def ethernet_header(buf: bytes, off: int, end: int) -> tuple[bytes, bytes, int, int]:
    """(destination MAC, source MAC, type, payload offset) of the Ethernet frame at `off`.

    802.1Q/802.1ad tags are skipped; the type is an EtherType, or ETHERTYPE_LLC when the
    field is an 802.3 length. Raises DecodeError when the header or a tag is cut short.
    """
    if end - off < _ETHERNET_HEADER:
        raise DecodeError("truncated Ethernet header", 0)
    ethertype, pos, _ = _payload_type(buf, off, _u16(buf, off + 12), _ETHERNET_HEADER, end, 0)
    return buf[off : off + _MAC], buf[off + _MAC : off + 2 * _MAC], ethertype, pos


def slow_protocol_kind(buf: bytes, off: int, end: int) -> str:
    """The link-control kind of an IEEE 802.3 slow-protocols frame, by its subtype."""
    subtype = buf[off] if off < end else -1
    return _SLOW_SUBTYPES.get(subtype, "IEEE 802.3 slow protocol")


def llc_payload(buf: bytes, off: int, end: int) -> tuple[int, str | None, int]:
    """An 802.2 LLC frame at `off`: (EtherType, link-control kind, offset after the header).

    A SNAP header with an EtherType OUI (RFC 1042) gives that EtherType and the kind is
    None; a link-local control protocol (spanning tree, CDP and Cisco's other SNAP control
    protocols, IS-IS, XID/TEST) gives its kind and EtherType -1. Anything else raises
    DecodeError naming the service access point or SNAP protocol.
    """
    if end - off < _LLC_HEADER:
        raise DecodeError("truncated LLC header", 0)
    dsap, control = buf[off], buf[off + 2]
    if dsap == _LLC_SAP_STP:
        return -1, "STP", off + _LLC_HEADER
    if dsap == _LLC_SAP_ISIS:
        return -1, "IS-IS", off + _LLC_HEADER
    if dsap == _LLC_SAP_NULL and control in _LLC_XID_TEST:
        return -1, "LLC XID/TEST", off + _LLC_HEADER
    if dsap != _LLC_SAP_SNAP:
        raise DecodeError(f"unknown LLC SAP 0x{dsap:02x}", 0)
    pos = off + _LLC_HEADER
    if end - pos < _SNAP_HEADER:
        raise DecodeError("truncated SNAP header", _LLC_HEADER)
    oui, pid = buf[pos : pos + 3], _u16(buf, pos + 3)
    if oui in _SNAP_OUI_ETHERTYPE:
        return pid, None, pos + _SNAP_HEADER
    if oui == _SNAP_OUI_CISCO and pid in _CISCO_SNAP_CONTROL:
        return -1, _CISCO_SNAP_CONTROL[pid], pos + _SNAP_HEADER
    raise DecodeError(f"unknown SNAP protocol {oui.hex()}/0x{pid:04x}", _LLC_HEADER)


def cooked_source(linktype: int, buf: bytes, off: int, end: int) -> bytes:
    """The sender's 6-byte link address of a Linux cooked frame, or b"" if it has none."""
    if linktype == LINKTYPE_LINUX_SLL and end - off >= _SLL_HEADER and _u16(buf, off + 4) == _MAC:
        return buf[off + 6 : off + 6 + _MAC]
    if linktype == LINKTYPE_LINUX_SLL2 and end - off >= _SLL2_HEADER and buf[off + 11] == _MAC:
        return buf[off + 12 : off + 12 + _MAC]
    return b""


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
        return ETHERTYPE_LLC, pos, direction
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
