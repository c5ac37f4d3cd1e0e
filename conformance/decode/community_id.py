"""Community ID v1 flow hashes (https://github.com/corelight/community-id-spec).

SHA-1 over seed . src . dst . proto . 0 . sport . dport in network byte order, with
the endpoints ordered so that both directions of a flow hash alike; base64, "1:" prefix.
ICMP and ICMPv6 use type and code mapped to port equivalents (Zeek's table).
"""

from __future__ import annotations

import binascii
import hashlib
import ipaddress
import struct

from conformance.decode.icmp import port_equivalents
from conformance.decode.ip import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP

IPPROTO_SCTP = 132
# The spec hashes ports only for these; every other protocol is hashed by address alone.
_PORT_PROTOCOLS = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_ICMP, IPPROTO_ICMPV6})
# seed . src . dst . proto . 0 . sport . dport, packed in one call (the ports are cut off
# for the other protocols), by address length
_HASHED = {4: struct.Struct("!H4s4s2sHH"), 16: struct.Struct("!H16s16s2sHH")}


def community_id(
    proto: int, src: bytes, dst: bytes, sport: int = 0, dport: int = 0, *, seed: int = 0
) -> str:
    """The Community ID of a flow seen from src to dst (packed 4- or 16-byte addresses).

    For ICMP/ICMPv6, `sport` and `dport` are the message type and code.
    """
    hashed = _HASHED.get(len(src))
    if hashed is None or len(dst) != len(src):
        raise ValueError("addresses must be packed IPv4 or IPv6 of the same family")
    one_way = False
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        sport, dport, one_way = port_equivalents(sport, dport, proto == IPPROTO_ICMPV6)
    if not one_way and (dst < src or (dst == src and dport < sport)):
        src, dst, sport, dport = dst, src, dport, sport
    if proto in _PORT_PROTOCOLS:
        data = hashed.pack(seed, src, dst, bytes((proto, 0)), sport, dport)
    else:
        data = hashed.pack(seed, src, dst, bytes((proto, 0)), 0, 0)[:-4]
    digest = hashlib.sha1(data, usedforsecurity=False).digest()
    return "1:" + binascii.b2a_base64(digest, newline=False).decode("ascii")


_TRANSPORT_NUMBERS = {
    "tcp": IPPROTO_TCP,
    "udp": IPPROTO_UDP,
    "icmp": IPPROTO_ICMP,
    "icmpv6": IPPROTO_ICMPV6,
}


def of_flow(
    transport: str,
    initiator: ipaddress.IPv4Address | ipaddress.IPv6Address,
    responder: ipaddress.IPv4Address | ipaddress.IPv6Address,
    initiator_port: int,
    responder_port: int,
) -> str:
    """The Community ID of a flow as the observers record it: `transport` is "tcp", "udp",
    "icmp", "icmpv6" or "ip-<protocol number>"; for ICMP the ports are the initiator's
    message type and code; a flow of another protocol (or one seen by its IP header alone)
    has ports 0. "" for ends no flow of the observers has (another transport, ports beyond
    16 bits, addresses of two families): there is nothing to hash."""
    number = _TRANSPORT_NUMBERS.get(transport)
    if number is None:
        name, _, digits = transport.partition("-")
        if name != "ip" or not digits.isascii() or not digits.isdigit() or int(digits) > 255:
            return ""
        number = int(digits)
    if not (0 <= initiator_port <= 0xFFFF and 0 <= responder_port <= 0xFFFF):
        return ""
    if initiator.version != responder.version:
        return ""
    return community_id(number, initiator.packed, responder.packed, initiator_port, responder_port)
