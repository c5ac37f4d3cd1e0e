"""Captures whose leak hides where a harness may not look: fragments, lying lengths, frames
and payloads it does not understand (controls.md decision 10). Each builder is named after
what it carries and returns `tests.defects`-style frames after the clean background.

Documentation addresses only (RFC 5737, RFC 3849). Nothing is ever sent.
"""

from __future__ import annotations

import struct

from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.l2 import GRE, Ether
from scapy.packet import Packet, Raw

from tests import defects
from tests.defects import (
    ADMIN,
    CUCM,
    DNS_SERVER,
    OUTSIDE,
    PROXY,
    TARGET,
    _Clock,
    _frame,
    _mac,
    client_hello,
    tcp_session,
)

OTHER_HOST = "192.0.2.77"  # an on-prem host that is not the target
_CONNECT = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"


def _after_clean(frames: list[Packet]) -> list[Packet]:
    return _Clock().stamp([*defects.clean_onprem_traffic(), *frames])


def _raw(src_mac: str, dst_mac: str, ethertype: int, payload: bytes) -> Packet:
    return Ether(src=src_mac, dst=dst_mac, type=ethertype) / Raw(payload)


# --- frames that are not understood ---------------------------------------------------------


def unknown_frame(sender: str = TARGET, receiver: str = CUCM, kind: str = "ethertype") -> Packet:
    """One frame from `sender` to `receiver` (by their MACs/addresses) that no decoder takes."""
    src, dst = _mac(sender), _mac(receiver)
    if kind == "ethertype":  # IEEE 802 local experimental EtherType
        return _raw(src, dst, 0x88B5, bytes(46))
    if kind == "ip-protocol":  # SCTP: ports the harness does not read
        return Ether(src=src, dst=dst) / IP(src=sender, dst=receiver, proto=132) / Raw(bytes(32))
    if kind == "ipv4-header":  # IHL of 4 words: shorter than any IPv4 header
        return Ether(src=src, dst=dst) / IP(src=sender, dst=receiver, ihl=4) / UDP()
    if kind == "gre-protocol":
        return (
            Ether(src=src, dst=dst)
            / IP(src=sender, dst=receiver)
            / GRE(proto=0x9999)
            / Raw(bytes(20))
        )
    if kind == "tcp-header":  # an IP header whose TCP header is cut off
        return Ether(src=src, dst=dst) / IP(src=sender, dst=receiver, proto=6) / Raw(bytes(10))
    if kind == "truncated":  # too short for any Ethernet header: nothing tells whose it is
        return Raw(bytes(10))
    raise ValueError(kind)


UNKNOWN_KINDS = (
    "ethertype",
    "ip-protocol",
    "ipv4-header",
    "gre-protocol",
    "tcp-header",
    "truncated",
)


def clean_with_unknown_frame(kind: str, sender: str = TARGET, receiver: str = CUCM) -> list[Packet]:
    """The clean background and one frame of `kind` the harness cannot read."""
    return _after_clean([unknown_frame(sender, receiver, kind)])


def clean_with_unknown_frame_between_macs(src_mac: str, dst_mac: str) -> list[Packet]:
    """An unknown EtherType between two MACs (no IP address to tell whose it is)."""
    return _after_clean([_raw(src_mac, dst_mac, 0x88B5, bytes(46))])


# --- fragments -------------------------------------------------------------------------------


def _fragments(src: str, dst: str, payload: Packet, ident: int, size: int) -> list[Packet]:
    datagram = IP(src=src, dst=dst, id=ident) / payload
    return [
        Ether(src=_mac(src), dst=_mac(dst)) / part for part in fragment(datagram, fragsize=size)
    ]


def first_fragment_leak() -> list[Packet]:
    """A cloud-name DNS query to an outside resolver in a first fragment whose rest never came."""
    from scapy.layers.dns import DNS, DNSQR

    query = (
        UDP(sport=53100, dport=53)
        / DNS(id=9, qd=DNSQR(qname="license.imagicle.com"))
        / Raw(bytes(1400))
    )
    return _after_clean(_fragments(TARGET, defects.OUTSIDE_DNS, query, 0x5151, 800)[:1])


def later_fragment_leak() -> list[Packet]:
    """Only a later fragment of a datagram to an outside address: no ports, still a leak."""
    return _after_clean(
        _fragments(TARGET, OUTSIDE, UDP(sport=40000, dport=514) / Raw(bytes(3000)), 0x5252, 800)[
            1:2
        ]
    )


def overlapping_fragments_onprem() -> list[Packet]:
    """A datagram to an on-prem server whose fragments overlap: Linux drops it, nothing is read."""
    frags = _fragments(
        TARGET, DNS_SERVER, UDP(sport=53200, dport=53) / Raw(bytes(2000)), 0x5353, 800
    )
    overlap = frags[1].copy()
    overlap[IP].frag -= 10
    del overlap[IP].chksum
    return _after_clean([frags[0], overlap, *frags[1:]])


# --- lengths that lie ------------------------------------------------------------------------


def zero_length_record_hello() -> list[Packet]:
    """A ClientHello naming api.imagicle.com behind a record header that claims 0 bytes."""
    hello = bytearray(client_hello("api.imagicle.com"))
    hello[3:5] = b"\x00\x00"
    return _after_clean(tcp_session(TARGET, 52300, PROXY, 443, bytes(hello)))


def connect_behind_lying_data_offset() -> list[Packet]:
    """A CONNECT for a cloud name in a segment whose TCP data offset swallows the request."""
    session = tcp_session(TARGET, 52400, PROXY, 3128)
    segment = bytearray(bytes(TCP(sport=52400, dport=3128, flags="PA", seq=1001, ack=5001)))
    segment[12] = 0xF0  # 15 words: 40 bytes of "options" that are the request
    lying = _frame(TARGET, PROXY, Raw(bytes(segment) + _CONNECT))
    lying[IP].proto = 6
    return _after_clean([*session[:3], lying, *session[3:]])


def damaged_method_with_cloud_host() -> list[Packet]:
    """An HTTP request whose method is damaged but whose Host names an Imagicle cloud host."""
    request = b"G\x00T /licence HTTP/1.1\r\nHost: api.imagicle.com\r\n\r\n"
    return _after_clean(tcp_session(TARGET, 52500, PROXY, 80, request))


# --- payloads a parser breaks on, beside a leak ------------------------------------------------


def _nbns_query(name_label: bytes) -> bytes:
    return (
        struct.pack("!6H", 0xABCD, 0x0110, 1, 0, 0, 0)
        + b"\x20"
        + name_label
        + b"\x00\x00\x20\x00\x01"
    )


def malformed_nbns() -> Packet:
    """A NetBIOS name query whose name is not a first-level encoding."""
    return _frame(TARGET, "192.0.2.255", UDP(sport=137, dport=137) / Raw(_nbns_query(b"ZZ" * 16)))


def malformed_dns(sender: str = TARGET) -> Packet:
    """A DNS query that is no DNS message."""
    return _frame(sender, DNS_SERVER, UDP(sport=53600, dport=53) / Raw(b"\x00\x01garbage"))


def malformed_tls() -> list[Packet]:
    broken = bytearray(client_hello("ucx.corp.example"))
    broken[43] = 200  # legacy_session_id longer than 32 bytes
    return tcp_session(ADMIN, 50100, TARGET, 443, bytes(broken))


def leak_beside(bad: str) -> list[Packet]:
    """A TCP leak to an outside host next to one packet a payload parser breaks on."""
    broken: list[Packet] = {
        "nbns": lambda: [malformed_nbns()],
        "dns": lambda: [malformed_dns()],
        "tls": malformed_tls,
    }[bad]()
    leak = tcp_session(TARGET, 51234, OUTSIDE, 443, b"\x17\x03\x03\x00\x02hi")
    return _after_clean([*broken, *leak])


def clean_beside(bad: str) -> list[Packet]:
    """The clean background next to one packet a payload parser breaks on."""
    broken = {
        "nbns": lambda: [malformed_nbns()],
        "dns": lambda: [malformed_dns()],
        "tls": malformed_tls,
        "dns-of-another-host": lambda: [malformed_dns(ADMIN)],
    }[bad]()
    return _after_clean(broken)
