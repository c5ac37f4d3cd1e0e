"""Encapsulation headers: what a tunnel or mirror header carries and where it starts.

Each function reads one header at buf[off:end] and answers (EtherType of what follows,
its offset, link-control kind). The EtherType names the inner layer the way the
observers dispatch on it: ETHERTYPE_IPV4/IPV6 for an IP packet, ETHERTYPE_TEB for a
whole Ethernet frame, ETHERTYPE_MPLS for a label stack. When the header carries
link-layer control instead of a packet (PPP's LCP, MPLS's associated channel), the
EtherType is -1 and the kind says which. Malformed headers raise DecodeError with a
short, stable reason (it becomes a not-understood count, controls.md decision 10).

Which of these are the target's own traffic (a tunnel it opens) and which belong to the
mirroring infrastructure is decided by the addresses in the outer header, not here
(decision 9).
"""

from __future__ import annotations

from conformance.decode.errors import DecodeError
from conformance.decode.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_MPLS,
    ETHERTYPE_MPLS_MULTICAST,
    ETHERTYPE_TEB,
)

Inner = tuple[int, int, str | None]  # (EtherType or -1, offset, link-control kind)

# UDP ports of the UDP-based encapsulations (IANA registry): VXLAN (RFC 7348), Linux's
# pre-IANA VXLAN default, VXLAN-GPE (draft-ietf-nvo3-vxlan-gpe), Geneve (RFC 8926).
VXLAN_PORT = 4789
VXLAN_LINUX_PORT = 8472
VXLAN_GPE_PORT = 4790
GENEVE_PORT = 6081
TUNNEL_UDP_PORTS = frozenset({VXLAN_PORT, VXLAN_LINUX_PORT, VXLAN_GPE_PORT, GENEVE_PORT})

# GRE protocol types (RFC 2784 §2.4 uses EtherTypes; ERSPAN and PPP have their own).
GRE_ERSPAN_II = 0x88BE  # also type I, which has no ERSPAN header (and no sequence number)
GRE_ERSPAN_III = 0x22EB
GRE_PPP = 0x880B  # PPTP's enhanced GRE (RFC 2637 §4.1)

_GRE_CHECKSUM = 0x8000
_GRE_ROUTING = 0x4000
_GRE_KEY = 0x2000
_GRE_SEQUENCE = 0x1000
_GRE_ACK = 0x0080  # version 1 only
_GRE_VERSION = 0x0007
_GRE_HEADER = 4
_GRE_FIELD = 4  # checksum+offset, key, sequence number, acknowledgment: 4 bytes each
# RFC 1701 §2.1.4: source route entries end with a NULL entry; more than this is a crafted
# chain (real deployments never used GRE source routing).
MAX_GRE_ROUTE_ENTRIES = 16
_SRE_HEADER = 4  # address family (2), offset (1), length (1)

_ERSPAN_II_HEADER = 8
_ERSPAN_III_HEADER = 12
_ERSPAN_III_PLATFORM = 8  # the optional platform-specific subheader (O flag)
_ERSPAN_FT_ETHERNET = 0
_ERSPAN_FT_IP = 2

_VXLAN_HEADER = 8
_GENEVE_HEADER = 8
_GPE_NEXT = {1: ETHERTYPE_IPV4, 2: ETHERTYPE_IPV6, 3: ETHERTYPE_TEB, 5: ETHERTYPE_MPLS}

_MPLS_ENTRY = 4
# Real label stacks hold a handful of entries (transport, service, entropy labels); more
# than this is garbage, not MPLS.
MAX_MPLS_LABELS = 16
_MPLS_IPV4_EXPLICIT_NULL = 0  # RFC 3032 §2.1
_MPLS_IPV6_EXPLICIT_NULL = 2
_MPLS_CONTROL_WORD = 4  # RFC 4385: pseudowire control word, first nibble 0

_PPPOE_HEADER = 6  # version/type, code, session id, length (RFC 2516 §4)
_PPPOE_VERSION_TYPE = 0x11
_PPP_IPV4 = 0x0021
_PPP_IPV6 = 0x0057
_PPP_MPLS = 0x0281
_PPP_CONTROL_NAMES = {
    0xC021: "PPP LCP",
    0xC023: "PPP PAP",
    0xC223: "PPP CHAP",
    0xC227: "PPP EAP",
    0xC025: "PPP LQR",
    0x8021: "PPP IPCP",
    0x8057: "PPP IPv6CP",
    0x80FD: "PPP CCP",
    0x8281: "PPP MPLSCP",
}
_PPP_NCP_FIRST = 0x8000  # RFC 1661 §2: 8xxx-bxxx network control, cxxx-fxxx link control
_PPP_ADDRESS_CONTROL = b"\xff\x03"  # HDLC address and control, omitted when compressed


def _u16(buf: bytes, pos: int) -> int:
    return (buf[pos] << 8) | buf[pos + 1]


def gre(buf: bytes, off: int, end: int) -> tuple[int, int, bool]:
    """A GRE header (RFC 2784, RFC 2890 keys and sequence numbers, RFC 2637 version 1).

    Returns (protocol type, payload offset, whether a sequence number was present).
    """
    if end - off < _GRE_HEADER:
        raise DecodeError("truncated GRE header", 0)
    flags = _u16(buf, off)
    proto = _u16(buf, off + 2)
    version = flags & _GRE_VERSION
    pos = off + _GRE_HEADER
    if version == 0:
        if flags & (_GRE_CHECKSUM | _GRE_ROUTING):
            pos += _GRE_FIELD
        if flags & _GRE_KEY:
            pos += _GRE_FIELD
        if flags & _GRE_SEQUENCE:
            pos += _GRE_FIELD
        if pos > end:
            raise DecodeError("truncated GRE header", 0)
        if flags & _GRE_ROUTING:
            pos = _skip_source_route(buf, pos, end, off)
    elif version == 1:
        # PPTP: key (payload length, call id) always, sequence and acknowledgment optional.
        if proto != GRE_PPP or not flags & _GRE_KEY:
            raise DecodeError("malformed PPTP GRE header", 0)
        pos += _GRE_FIELD
        if flags & _GRE_SEQUENCE:
            pos += _GRE_FIELD
        if flags & _GRE_ACK:
            pos += _GRE_FIELD
        if pos > end:
            raise DecodeError("truncated GRE header", 0)
    else:
        raise DecodeError(f"GRE version {version}", 0)
    return proto, pos, bool(flags & _GRE_SEQUENCE)


def _skip_source_route(buf: bytes, pos: int, end: int, base: int) -> int:
    for _ in range(MAX_GRE_ROUTE_ENTRIES):
        if pos + _SRE_HEADER > end:
            raise DecodeError("truncated GRE source route", pos - base)
        family, length = _u16(buf, pos), buf[pos + 3]
        pos += _SRE_HEADER + length
        if family == 0 and length == 0:
            return pos
    raise DecodeError(f"GRE source route longer than {MAX_GRE_ROUTE_ENTRIES} entries", pos - base)


def gre_payload(buf: bytes, off: int, end: int) -> Inner:
    """What a GRE packet carries, through the ERSPAN header or PPP when there is one."""
    proto, pos, sequenced = gre(buf, off, end)
    if proto == GRE_ERSPAN_II:
        if not sequenced:
            return ETHERTYPE_TEB, pos, None  # ERSPAN type I: the mirrored frame right away
        return erspan_ii(buf, pos, end)
    if proto == GRE_ERSPAN_III:
        return erspan_iii(buf, pos, end)
    if proto == GRE_PPP:
        return ppp(buf, pos, end)
    if proto in (ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB, ETHERTYPE_MPLS):
        return proto, pos, None
    if proto == ETHERTYPE_MPLS_MULTICAST:
        return ETHERTYPE_MPLS, pos, None
    raise DecodeError(f"unknown GRE protocol 0x{proto:04x}", 2)


def erspan_ii(buf: bytes, off: int, end: int) -> Inner:
    """An ERSPAN type II header (draft-foschiano-erspan §4.1): the mirrored frame follows."""
    if end - off < _ERSPAN_II_HEADER:
        raise DecodeError("truncated ERSPAN header", 0)
    version = buf[off] >> 4
    if version != 1:
        raise DecodeError(f"ERSPAN version {version} under type II", 0)
    return ETHERTYPE_TEB, off + _ERSPAN_II_HEADER, None


def erspan_iii(buf: bytes, off: int, end: int) -> Inner:
    """An ERSPAN type III header (draft-foschiano-erspan §4.2), platform subheader skipped."""
    if end - off < _ERSPAN_III_HEADER:
        raise DecodeError("truncated ERSPAN header", 0)
    version = buf[off] >> 4
    if version != 2:
        raise DecodeError(f"ERSPAN version {version} under type III", 0)
    frame_type = (buf[off + 10] >> 2) & 0x1F
    pos = off + _ERSPAN_III_HEADER
    if buf[off + 11] & 1:
        pos += _ERSPAN_III_PLATFORM
    if pos > end:
        raise DecodeError("truncated ERSPAN header", 0)
    if frame_type == _ERSPAN_FT_ETHERNET:
        return ETHERTYPE_TEB, pos, None
    if frame_type == _ERSPAN_FT_IP and pos < end:
        return (ETHERTYPE_IPV6 if buf[pos] >> 4 == 6 else ETHERTYPE_IPV4), pos, None
    raise DecodeError(f"ERSPAN frame type {frame_type}", 10)


def vxlan(buf: bytes, off: int, end: int) -> Inner:
    """A VXLAN header (RFC 7348 §5): an Ethernet frame follows.

    The I flag is not required: like Wireshark, anything on the VXLAN port is read as
    VXLAN, so a frame hidden behind a cleared flag is still seen.
    """
    if end - off < _VXLAN_HEADER:
        raise DecodeError("truncated VXLAN header", 0)
    return ETHERTYPE_TEB, off + _VXLAN_HEADER, None


def vxlan_gpe(buf: bytes, off: int, end: int) -> Inner:
    """A VXLAN-GPE header (draft-ietf-nvo3-vxlan-gpe §3): its next protocol says what follows."""
    if end - off < _VXLAN_HEADER:
        raise DecodeError("truncated VXLAN-GPE header", 0)
    following = _GPE_NEXT.get(buf[off + 3])
    if following is None:
        raise DecodeError(f"VXLAN-GPE next protocol {buf[off + 3]}", 3)
    return following, off + _VXLAN_HEADER, None


def geneve(buf: bytes, off: int, end: int) -> Inner:
    """A Geneve header and its options (RFC 8926 §3.4)."""
    if end - off < _GENEVE_HEADER:
        raise DecodeError("truncated Geneve header", 0)
    version = buf[off] >> 6
    if version != 0:
        raise DecodeError(f"Geneve version {version}", 0)
    pos = off + _GENEVE_HEADER + (buf[off] & 0x3F) * 4
    if pos > end:
        raise DecodeError("truncated Geneve options", _GENEVE_HEADER)
    proto = _u16(buf, off + 2)
    if proto not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_TEB, ETHERTYPE_MPLS):
        raise DecodeError(f"unknown Geneve protocol 0x{proto:04x}", 2)
    return proto, pos, None


def udp_tunnel(port: int, buf: bytes, off: int, end: int) -> Inner:
    """The payload of a UDP datagram to one of TUNNEL_UDP_PORTS."""
    if port == GENEVE_PORT:
        return geneve(buf, off, end)
    if port == VXLAN_GPE_PORT:
        return vxlan_gpe(buf, off, end)
    return vxlan(buf, off, end)


def mpls(buf: bytes, off: int, end: int) -> Inner:
    """An MPLS label stack (RFC 3032) and a guess at its payload, made as Wireshark makes it.

    An explicit-null label names IPv4 or IPv6; otherwise the first nibble of the payload:
    4 IPv4, 6 IPv6, 1 the associated channel (RFC 5586: OAM, link control), 0 a
    pseudowire control word (RFC 4385) and an Ethernet frame.
    """
    pos = off
    label = -1
    for _ in range(MAX_MPLS_LABELS):
        if pos + _MPLS_ENTRY > end:
            raise DecodeError("truncated MPLS label stack", pos - off)
        label = (buf[pos] << 12) | (buf[pos + 1] << 4) | (buf[pos + 2] >> 4)
        bottom = buf[pos + 2] & 1
        pos += _MPLS_ENTRY
        if bottom:
            break
    else:
        raise DecodeError(f"MPLS label stack deeper than {MAX_MPLS_LABELS}", pos - off)
    if label == _MPLS_IPV4_EXPLICIT_NULL:
        return ETHERTYPE_IPV4, pos, None
    if label == _MPLS_IPV6_EXPLICIT_NULL:
        return ETHERTYPE_IPV6, pos, None
    if pos >= end:
        raise DecodeError("MPLS label stack with no payload", pos - off)
    nibble = buf[pos] >> 4
    if nibble == 4:
        return ETHERTYPE_IPV4, pos, None
    if nibble == 6:
        return ETHERTYPE_IPV6, pos, None
    if nibble == 1:
        return -1, pos, "MPLS associated channel"
    if nibble == 0:
        return ETHERTYPE_TEB, pos + _MPLS_CONTROL_WORD, None
    raise DecodeError("MPLS payload not recognised", pos - off)


def pppoe_session(buf: bytes, off: int, end: int) -> Inner:
    """A PPPoE session frame (RFC 2516 §5.3): the PPP packet it carries."""
    if end - off < _PPPOE_HEADER:
        raise DecodeError("truncated PPPoE header", 0)
    if buf[off] != _PPPOE_VERSION_TYPE:
        raise DecodeError(f"PPPoE version/type 0x{buf[off]:02x}", 0)
    # The length field is not trusted over the bytes present (decision 10): a shorter
    # one only cuts the padding, a longer one is read as far as the frame goes.
    length = _u16(buf, off + 4)
    stop = min(end, off + _PPPOE_HEADER + length)
    return ppp(buf, off + _PPPOE_HEADER, stop if stop > off + _PPPOE_HEADER else end)


def ppp(buf: bytes, off: int, end: int) -> Inner:
    """A PPP frame's protocol (RFC 1661 §2; address/control and protocol compression allowed)."""
    pos = off
    if buf[pos : pos + 2] == _PPP_ADDRESS_CONTROL:
        pos += 2
    if pos >= end:
        raise DecodeError("truncated PPP header", pos - off)
    if buf[pos] & 1:  # RFC 1661 §6.5 protocol field compression: one byte
        proto = buf[pos]
        pos += 1
    else:
        if pos + 2 > end:
            raise DecodeError("truncated PPP header", pos - off)
        proto = _u16(buf, pos)
        pos += 2
    if proto == _PPP_IPV4:
        return ETHERTYPE_IPV4, pos, None
    if proto == _PPP_IPV6:
        return ETHERTYPE_IPV6, pos, None
    if proto == _PPP_MPLS:
        return ETHERTYPE_MPLS, pos, None
    if proto >= _PPP_NCP_FIRST:
        return -1, pos, _PPP_CONTROL_NAMES.get(proto, "PPP control protocol")
    raise DecodeError(f"unknown PPP protocol 0x{proto:04x}", pos - off)
