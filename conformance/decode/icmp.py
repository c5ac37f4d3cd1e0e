"""ICMP and ICMPv6 message types: request/reply pairs, errors, and the packet an error quotes.

The request/reply pairs are Zeek's, as the Community ID spec adopts them
(https://github.com/corelight/community-id-spec): they decide which side of an ICMP
exchange asked, and which two messages belong to one flow.
"""

from __future__ import annotations

from conformance.decode.errors import DecodeError
from conformance.decode.ip import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPV4_HEADER,
    IPV6_HEADER,
    ipv6_extensions,
)

# RFC 792 / RFC 950 / RFC 1256: echo, timestamp, information, address mask, router.
ICMP_COUNTERPART: dict[int, int] = {
    8: 0,
    0: 8,
    13: 14,
    14: 13,
    15: 16,
    16: 15,
    10: 9,
    9: 10,
    17: 18,
    18: 17,
}
ICMP_REQUESTS = frozenset({8, 13, 15, 10, 17})
# RFC 4443 echo; RFC 2710 MLD query/report; RFC 4861 router and neighbour discovery;
# RFC 4620 node information (139/140); RFC 6275 home agent address discovery (144/145).
ICMPV6_COUNTERPART: dict[int, int] = {
    128: 129,
    129: 128,
    130: 131,
    131: 130,
    133: 134,
    134: 133,
    135: 136,
    136: 135,
    139: 140,
    140: 139,
    144: 145,
    145: 144,
}
ICMPV6_REQUESTS = frozenset({128, 130, 133, 135, 139, 144})

# Error messages quote the start of the packet that caused them (RFC 792, RFC 4443 §2.1):
# destination unreachable, source quench, redirect, time exceeded, parameter problem.
ICMP_ERRORS = frozenset({3, 4, 5, 11, 12})
ICMPV6_ERRORS = frozenset({1, 2, 3, 4})
ICMP_UNREACHABLE = 3
ICMP_FRAGMENTATION_NEEDED = 4  # a path-MTU signal, not a refusal
ICMPV6_UNREACHABLE = 1

ICMP_HEADER = 8  # type, code, checksum, and 4 bytes that errors leave unused
_QUOTED_PORTS = 4  # the quoted packet must show at least its transport ports


def port_equivalents(icmp_type: int, code: int, v6: bool) -> tuple[int, int, bool]:
    """(source, destination "ports", one-way) of an ICMP message, as Community ID defines them."""
    counterpart = (ICMPV6_COUNTERPART if v6 else ICMP_COUNTERPART).get(icmp_type)
    if counterpart is None:
        return icmp_type, code, True
    return icmp_type, counterpart, False


def is_request(icmp_type: int, v6: bool) -> bool:
    """The message asks for a reply (echo request, neighbour solicitation, ...)."""
    return icmp_type in (ICMPV6_REQUESTS if v6 else ICMP_REQUESTS)


def is_error(icmp_type: int, v6: bool) -> bool:
    """The message reports a problem with another packet, which it quotes."""
    return icmp_type in (ICMPV6_ERRORS if v6 else ICMP_ERRORS)


def is_rejection(icmp_type: int, code: int, v6: bool) -> bool:
    """The message says the quoted packet was not delivered (destination unreachable)."""
    if v6:
        return icmp_type == ICMPV6_UNREACHABLE
    return icmp_type == ICMP_UNREACHABLE and code != ICMP_FRAGMENTATION_NEEDED


def quoted_packet(buf: bytes, pos: int, end: int, v6: bool) -> tuple[int, bytes, bytes, int, int]:
    """(protocol, src, dst, sport, dport) of the packet an ICMP error quotes at buf[pos:end].

    For a quoted ICMP message the "ports" are its type and code. Raises DecodeError
    when too little is quoted to name the flow (or the quote is a later fragment).
    """
    if v6:
        if end - pos < IPV6_HEADER or buf[pos] >> 4 != 6:
            raise DecodeError("ICMPv6 error quotes no IPv6 header", 0)
        src, dst = buf[pos + 8 : pos + 24], buf[pos + 24 : pos + 40]
        proto, l4, fragment = ipv6_extensions(buf, pos + IPV6_HEADER, end, buf[pos + 6], pos)
        if fragment is not None:
            if fragment.offset:
                raise DecodeError("ICMPv6 error quotes a later fragment", 0)
            proto, l4, _ = ipv6_extensions(buf, l4, end, proto, pos)
    else:
        if end - pos < IPV4_HEADER or buf[pos] >> 4 != 4:
            raise DecodeError("ICMP error quotes no IPv4 header", 0)
        ihl = (buf[pos] & 0x0F) * 4
        if ihl < IPV4_HEADER:
            raise DecodeError("ICMP error quotes a bad IPv4 header", 0)
        if ((buf[pos + 6] & 0x1F) << 8) | buf[pos + 7]:
            raise DecodeError("ICMP error quotes a later fragment", 0)
        src, dst = buf[pos + 12 : pos + 16], buf[pos + 16 : pos + 20]
        proto = buf[pos + 9]
        l4 = pos + ihl
    if l4 + _QUOTED_PORTS > end:
        raise DecodeError("ICMP error quotes too little of the packet", 0)
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        return proto, src, dst, buf[l4], buf[l4 + 1]
    return proto, src, dst, (buf[l4] << 8) | buf[l4 + 1], (buf[l4 + 2] << 8) | buf[l4 + 3]
