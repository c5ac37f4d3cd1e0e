"""Test captures, each named after the defect it carries (`ipv6_leak()`, `syn_unanswered()`).

Every builder returns a list of scapy packets with explicit MACs and timestamps, so scapy
never looks up routes or interfaces; `write_pcap` / `write_pcapng` put them in a file
(pcapng with optional drop counts and direction flags), `truncate` cuts a file's tail.
Addresses are documentation ranges only (RFC 5737, RFC 3849). Nothing is ever sent.

The topology matches `defect_profile()`:

    environment 192.0.2.0/24, 2001:db8:1::/64
    target 192.0.2.10 / 2001:db8:1::10
    cucm 192.0.2.20, ad 192.0.2.30, dns 192.0.2.53, ntp 192.0.2.123 (declared endpoints)
    admin workstation 192.0.2.50, undeclared server 192.0.2.99, on-prem proxy 192.0.2.80
    outside 198.51.100.0/24, 203.0.113.0/24, 2001:db8:ffff::/48
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from conformance.profile_model import (
    Environment,
    Mode,
    OnPremEndpoint,
    PortSpec,
    Profile,
    Target,
)

TARGET = "192.0.2.10"
TARGET6 = "2001:db8:1::10"
CUCM = "192.0.2.20"
AD = "192.0.2.30"
DNS_SERVER = "192.0.2.53"
NTP_SERVER = "192.0.2.123"
ADMIN = "192.0.2.50"
PROXY = "192.0.2.80"
UNDECLARED = "192.0.2.99"
OUTSIDE = "198.51.100.7"
OUTSIDE_DNS = "198.51.100.53"
OUTSIDE_NTP = "203.0.113.123"
OUTSIDE_CLIENT = "203.0.113.9"
OUTSIDE6 = "2001:db8:ffff::7"
MDNS_GROUP = "224.0.0.251"

NETWORKS = ("192.0.2.0/24", "2001:db8:1::/64")
_NETWORKS = tuple(ipaddress.ip_network(n) for n in NETWORKS)

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6, no link header

_GATEWAY_MAC = "02:00:00:00:00:01"
_T0 = 1_700_000_000.0


def defect_profile(*, strict: bool = False, endpoints: bool = True) -> Profile:
    """The air-gapped profile every defect capture is judged against."""
    declared = (
        OnPremEndpoint(
            "cucm",
            ipaddress.ip_address(CUCM),
            (PortSpec(5060, "udp"), PortSpec(5061, "tcp"), PortSpec(8443, "tcp")),
        ),
        OnPremEndpoint(
            "ad", ipaddress.ip_address(AD), (PortSpec(389, "tcp"), PortSpec(636, "tcp"))
        ),
        OnPremEndpoint(
            "dns",
            ipaddress.ip_address(DNS_SERVER),
            (PortSpec(53, "udp"), PortSpec(53, "tcp")),
        ),
        OnPremEndpoint("ntp", ipaddress.ip_address(NTP_SERVER), (PortSpec(123, "udp"),)),
    )
    return Profile(
        source=Path("defect-profile.yaml"),
        name="defects",
        mode=Mode.AIR_GAPPED,
        target=Target((ipaddress.ip_address(TARGET), ipaddress.ip_address(TARGET6))),
        environment=Environment(
            networks=_NETWORKS,
            endpoints=declared if endpoints else (),
            strict=strict,
        ),
    )


# --- packet helpers --------------------------------------------------------------------


def _mac(address: str) -> str:
    """A stable locally administered MAC per host; outside hosts sit behind the gateway."""
    ip = ipaddress.ip_address(address)
    if ip.is_multicast:  # RFC 1112 6.4 and RFC 2464 7 group MACs
        if ip.version == 4:
            return "01:00:5e:" + (int(ip) & 0x7FFFFF).to_bytes(3, "big").hex(":")
        return "33:33:" + (int(ip) & 0xFFFFFFFF).to_bytes(4, "big").hex(":")
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return "ff:ff:ff:ff:ff:ff"
    if not any(ip in net for net in _NETWORKS if net.version == ip.version):
        return _GATEWAY_MAC
    return "02:00:" + (int(ip) & 0xFFFFFFFF).to_bytes(4, "big").hex(":")


def _ip(src: str, dst: str) -> Packet:
    if ipaddress.ip_address(src).version == 6:
        return IPv6(src=src, dst=dst)
    return IP(src=src, dst=dst)


def _frame(src: str, dst: str, l4: Packet) -> Packet:
    return Ether(src=_mac(src), dst=_mac(dst)) / _ip(src, dst) / l4


class _Clock:
    """Hands out increasing timestamps, one millisecond apart."""

    def __init__(self, start: float = _T0) -> None:
        self.now = start

    def stamp(self, packets: Iterable[Packet]) -> list[Packet]:
        out = []
        for packet in packets:
            packet.time = self.now
            self.now += 0.001
            out.append(packet)
        return out


def tcp_session(
    client: str,
    cport: int,
    server: str,
    sport: int,
    request: bytes = b"",
    response: bytes = b"",
    *,
    handshake: bool = True,
    accept: bool = True,
) -> list[Packet]:
    """A TCP conversation: handshake (or not), one request and one response, then FIN."""
    packets: list[Packet] = []
    c_seq, s_seq = 1000, 5000
    if handshake:
        packets.append(_frame(client, server, TCP(sport=cport, dport=sport, flags="S", seq=c_seq)))
        if not accept:
            packets.append(
                _frame(server, client, TCP(sport=sport, dport=cport, flags="RA", ack=c_seq + 1))
            )
            return packets
        packets.append(
            _frame(
                server, client, TCP(sport=sport, dport=cport, flags="SA", seq=s_seq, ack=c_seq + 1)
            )
        )
        packets.append(
            _frame(
                client,
                server,
                TCP(sport=cport, dport=sport, flags="A", seq=c_seq + 1, ack=s_seq + 1),
            )
        )
    c_seq += 1
    s_seq += 1
    if request:
        packets.append(
            _frame(client, server, TCP(sport=cport, dport=sport, flags="PA", seq=c_seq, ack=s_seq))
            / Raw(request)
        )
        c_seq += len(request)
    if response:
        packets.append(
            _frame(server, client, TCP(sport=sport, dport=cport, flags="PA", seq=s_seq, ack=c_seq))
            / Raw(response)
        )
        s_seq += len(response)
    packets.append(
        _frame(client, server, TCP(sport=cport, dport=sport, flags="FA", seq=c_seq, ack=s_seq))
    )
    return packets


def udp_exchange(
    client: str, cport: int, server: str, sport: int, request: bytes, response: bytes | None
) -> list[Packet]:
    """One UDP datagram and, when `response` is given, its reply."""
    packets = [_frame(client, server, UDP(sport=cport, dport=sport) / Raw(request))]
    if response is not None:
        packets.append(_frame(server, client, UDP(sport=sport, dport=cport) / Raw(response)))
    return packets


def dns_lookup(
    client: str,
    server: str,
    qname: str,
    *,
    qtype: str = "A",
    answers: Sequence[str] = (),
    rcode: int = 0,
    cport: int = 53000,
    sport: int = 53,
    answered: bool = True,
) -> list[Packet]:
    """A DNS-format query (DNS, mDNS or LLMNR by port) and its response."""
    txid = 0 if sport == 5353 else 0x1234
    query = _frame(
        client,
        server,
        UDP(sport=cport, dport=sport) / DNS(id=txid, rd=1, qd=DNSQR(qname=qname, qtype=qtype)),
    )
    if not answered:
        return [query]
    records = None
    for value in answers:
        rtype = "AAAA" if ":" in value else "A"
        record = DNSRR(rrname=qname, type=rtype, ttl=300, rdata=value)
        records = record if records is None else records / record
    response = _frame(
        server,
        client,
        UDP(sport=sport, dport=cport)
        / DNS(
            id=txid,
            qr=1,
            rd=1,
            ra=1,
            rcode=rcode,
            qd=DNSQR(qname=qname, qtype=qtype),
            an=records,
        ),
    )
    return [query, response]


def client_hello(sni: str | None, extra_extensions: bytes = b"") -> bytes:
    """A minimal TLS 1.3 ClientHello record naming `sni` (RFC 8446 4.1.2, RFC 6066 3).

    `sni=None`: no server_name extension at all (only supported_versions).
    `extra_extensions`: encoded extensions appended after those two.
    """
    sni_ext = b""
    if sni is not None:
        name = sni.encode("ascii")
        server_name = b"\x00" + struct.pack("!H", len(name)) + name
        sni_ext = (
            struct.pack("!HH", 0, len(server_name) + 2)
            + struct.pack("!H", len(server_name))
            + server_name
        )
    versions_ext = struct.pack("!HHB", 43, 3, 2) + b"\x03\x04"
    extensions = sni_ext + versions_ext + extra_extensions
    body = (
        b"\x03\x03"
        + bytes(32)
        + b"\x00"
        + struct.pack("!H", 2)
        + b"\x13\x01"
        + b"\x01\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def http_get(host: str, path: str) -> bytes:
    """An HTTP/1.1 GET request head."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\n\r\n".encode()


# --- the captures ----------------------------------------------------------------------


def clean_onprem_traffic() -> list[Packet]:
    """What a conforming air-gapped UCX sends: SIP to CUCM, LDAP to AD, internal DNS, NTP."""
    clock = _Clock()
    sip = b"OPTIONS sip:cucm.corp.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10\r\n\r\n"
    return clock.stamp(
        [
            *dns_lookup(TARGET, DNS_SERVER, "cucm.corp.example", answers=[CUCM]),
            *udp_exchange(TARGET, 5060, CUCM, 5060, sip, b"SIP/2.0 200 OK\r\n\r\n"),
            *dns_lookup(TARGET, DNS_SERVER, "dc1.corp.example", answers=[AD], cport=53001),
            *tcp_session(
                TARGET,
                49152,
                AD,
                389,
                b"\x30\x0c\x02\x01\x01\x60\x07\x02\x01\x03\x04\x00\x80\x00",
                b"\x30\x0c\x02\x01\x01\x61\x07\x0a\x01\x00\x04\x00\x04\x00",
            ),
            *udp_exchange(TARGET, 123, NTP_SERVER, 123, b"\x23" + bytes(47), b"\x24" + bytes(47)),
            # An admin's browser on the target's web console: on-prem client, not an integration.
            *tcp_session(
                ADMIN, 50000, TARGET, 443, client_hello("ucx.corp.example"), b"\x16\x03\x03\x00\x00"
            ),
        ]
    )


def _with_clean(defect: list[Packet]) -> list[Packet]:
    """The clean background with the defect after it, timestamps renumbered."""
    return _Clock().stamp([*clean_onprem_traffic(), *defect])


def tcp_leak() -> list[Packet]:
    """An answered TCP connection to an outside host: a Windows CRL fetch over HTTP."""
    request = http_get("crl.microsoft.com", "/pki/crl/products/MicRooCerAut2011_2011_03_22.crl")
    return _with_clean(tcp_session(TARGET, 51234, OUTSIDE, 80, request, b"HTTP/1.1 200 OK\r\n\r\n"))


def udp_leak() -> list[Packet]:
    """NTP to an outside time server, answered."""
    return _with_clean(
        udp_exchange(TARGET, 123, OUTSIDE_NTP, 123, b"\x23" + bytes(47), b"\x24" + bytes(47))
    )


def icmp_leak() -> list[Packet]:
    """A ping to an outside host, unanswered."""
    return _with_clean([_frame(TARGET, OUTSIDE, ICMP(type=8, id=1, seq=1) / Raw(b"x" * 32))])


def ipv6_leak() -> list[Packet]:
    """An IPv6 TCP connection to an outside host (the v4 side looks clean)."""
    return _with_clean(tcp_session(TARGET6, 51000, OUTSIDE6, 443, client_hello("example.net")))


def syn_unanswered() -> list[Packet]:
    """Three SYNs to an outside HTTPS port and nothing back: still a leak attempt."""
    syn = [
        _frame(TARGET, OUTSIDE, TCP(sport=51234, dport=443, flags="S", seq=1000)) for _ in range(3)
    ]
    return _with_clean(syn)


def cloud_name_to_onprem_resolver() -> list[Packet]:
    """A licensing lookup for an Imagicle cloud name, sent to the on-prem resolver."""
    return _with_clean(dns_lookup(TARGET, DNS_SERVER, "license.imagicle.com", rcode=3, cport=53100))


def outside_resolver_query() -> list[Packet]:
    """A DNS query to a public resolver outside the environment."""
    return _with_clean(
        dns_lookup(TARGET, OUTSIDE_DNS, "time.windows.com", answers=["203.0.113.40"], cport=53200)
    )


def inbound_accepted() -> list[Packet]:
    """An outside client reaches the target's HTTPS port and the target accepts."""
    return _with_clean(
        tcp_session(
            OUTSIDE_CLIENT, 40000, TARGET, 443, client_hello("ucx.example"), b"\x16\x03\x03\x00\x00"
        )
    )


def inbound_refused() -> list[Packet]:
    """An outside client tries the target's SSH port and gets a reset."""
    return _with_clean(tcp_session(OUTSIDE_CLIENT, 40001, TARGET, 22, accept=False))


def mid_connection_leak() -> list[Packet]:
    """A TLS connection to an outside host, captured after its handshake."""
    return _with_clean(
        tcp_session(
            TARGET,
            51500,
            OUTSIDE,
            443,
            b"\x17\x03\x03\x00\x10" + bytes(16),
            b"\x17\x03\x03\x00\x10" + bytes(16),
            handshake=False,
        )
    )


def mdns_cloud_name() -> list[Packet]:
    """An mDNS query for an Imagicle cloud name: scope-limited, but the name counts."""
    return _with_clean(
        dns_lookup(
            TARGET, MDNS_GROUP, "license.imagicle.com", cport=5353, sport=5353, answered=False
        )
    )


def sni_cloud_name() -> list[Packet]:
    """A TLS ClientHello naming an Imagicle cloud host, sent to an on-prem address."""
    return _with_clean(tcp_session(TARGET, 52000, PROXY, 443, client_hello("api.imagicle.com")))


def undeclared_onprem_endpoint() -> list[Packet]:
    """A database connection to an on-prem server the profile does not declare."""
    return _with_clean(
        tcp_session(TARGET, 52100, UNDECLARED, 5432, b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
    )


def silent_target() -> list[Packet]:
    """Other hosts talk; the target sends nothing (an admin's SYN to it goes unanswered)."""
    clock = _Clock()
    return clock.stamp(
        [
            *dns_lookup(ADMIN, DNS_SERVER, "dc1.corp.example", answers=[AD]),
            *tcp_session(ADMIN, 50001, AD, 389, b"\x30\x00"),
            _frame(ADMIN, TARGET, TCP(sport=50002, dport=443, flags="S", seq=1)),
        ]
    )


def fragmented_leak() -> list[Packet]:
    """A large UDP datagram to an outside host, sent as IPv4 fragments."""
    datagram = (
        IP(src=TARGET, dst=OUTSIDE, id=0x4242) / UDP(sport=40000, dport=514) / Raw(b"s" * 3000)
    )
    frames = [
        Ether(src=_mac(TARGET), dst=_GATEWAY_MAC) / part
        for part in fragment(datagram, fragsize=1400)
    ]
    return _with_clean(frames)


# --- writing captures --------------------------------------------------------------------


def write_pcap(path: Path, packets: Sequence[Packet], *, raw_ip: bool = False) -> Path:
    """Write a classic pcap (microsecond timestamps): Ethernet frames, or with `raw_ip` the
    bare IPv4/IPv6 packets under LINKTYPE_RAW."""
    linktype = LINKTYPE_RAW if raw_ip else LINKTYPE_ETHERNET
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
    for packet in packets:
        inner = packet.payload if raw_ip and isinstance(packet, Ether) else packet
        data = bytes(inner)
        micros = round(float(packet.time) * 1_000_000)
        out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(data), len(data))
        out += data
    path.write_bytes(bytes(out))
    return path


def truncate(path: Path, nbytes: int) -> Path:
    """Cut the last `nbytes` of a capture file, as a crash or a full disk would."""
    data = path.read_bytes()
    path.write_bytes(data[:-nbytes])
    return path


def _block(block_type: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = len(body) + 12
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


_END_OF_OPTIONS = b"\x00\x00\x00\x00"


def write_pcapng(
    path: Path,
    packets: Sequence[Packet],
    *,
    drops: int | None = None,
    inbound: Iterable[int] = (),
) -> Path:
    """Write a pcapng file (one Ethernet interface, microsecond timestamps).

    `drops`: an Interface Statistics Block with isb_ifdrop at the end. `inbound`: 0-based
    indexes of packets flagged inbound; every other packet is flagged outbound
    (epb_flags, pcapng spec 4.3.1).
    """
    inbound_set = set(inbound)
    out = bytearray()
    out += _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    out += _block(1, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 262144))
    last = 0
    for index, packet in enumerate(packets):
        data = bytes(packet)
        micros = round(float(packet.time) * 1_000_000)
        last = micros
        direction = 1 if index in inbound_set else 2
        body = struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(data), len(data))
        body += data + b"\x00" * (-len(data) % 4)
        body += _option(2, struct.pack("<I", direction)) + _END_OF_OPTIONS
        out += _block(6, body)
    if drops is not None:
        body = struct.pack("<III", 0, last >> 32, last & 0xFFFFFFFF)
        body += _option(5, struct.pack("<Q", drops)) + _END_OF_OPTIONS
        out += _block(5, body)
    path.write_bytes(bytes(out))
    return path
