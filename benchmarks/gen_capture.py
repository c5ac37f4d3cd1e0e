"""Generate a large, realistic, deterministic capture taken on a UCX server, fast.

The capture is what a capture on the UCX host (192.0.2.10, environment 192.0.2.0/24 and
2001:db8:1::/64) would show on a busy day: mostly RTP media of many concurrent calls that
start and end over time, SIP to the CUCM stand-in over UDP 5060 and TCP 5060/5061, DNS to the
on-prem resolver (UDP and a little TCP), TLS 1.2 and 1.3 sessions with SNI to on-prem services
and, in a configurable share, to the Imagicle cloud (direct or through an HTTP CONNECT proxy),
some IPv6, ICMP/ICMPv6, ARP, NTP, and TCP connections already open when the capture began.

Frames are written as raw bytes with `struct` (no scapy): two million packets take seconds.
Every length field is right and every IP, TCP, UDP and ICMP checksum is valid (IPv4 RTP carries
UDP checksum 0, which RFC 768 allows). The same seed gives the same bytes.

    python benchmarks/gen_capture.py --packets 2000000 --out /tmp/ucx.pcapng --seed 1
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import random
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

Addr = ipaddress.IPv4Address | ipaddress.IPv6Address
FlowKey = tuple[str, str, int, str, int]

# ---------------------------------------------------------------------------------------------
# The environment the capture is taken in. run_benchmark.py writes a profile from these names.
# ---------------------------------------------------------------------------------------------
TARGET_V4 = ipaddress.IPv4Address("192.0.2.10")
TARGET_V6 = ipaddress.IPv6Address("2001:db8:1::10")
ENV_V4 = ipaddress.IPv4Network("192.0.2.0/24")
ENV_V6 = ipaddress.IPv6Network("2001:db8:1::/64")
GATEWAY_V4 = ipaddress.IPv4Address("192.0.2.1")
GATEWAY_V6 = ipaddress.IPv6Address("2001:db8:1::1")
CUCM_V4 = ipaddress.IPv4Address("192.0.2.20")
CUCM_SUB_V4 = ipaddress.IPv4Address("192.0.2.21")
CUCM_V6 = ipaddress.IPv6Address("2001:db8:1::20")
AD_V4 = ipaddress.IPv4Address("192.0.2.30")
DNS_V4 = ipaddress.IPv4Address("192.0.2.53")
DNS_V6 = ipaddress.IPv6Address("2001:db8:1::53")
PROXY_V4 = ipaddress.IPv4Address("192.0.2.80")
PROXY_PORT = 3128
CLOUD_NAME = "api.imagicle.com"
CLOUD_V4 = (ipaddress.IPv4Address("203.0.113.10"), ipaddress.IPv4Address("203.0.113.11"))
CLOUD_V6 = (ipaddress.IPv6Address("2001:db8:ffff::10"),)
PHONES_V4 = tuple(ipaddress.IPv4Address(f"192.0.2.{i}") for i in range(100, 251))
PHONES_V6 = tuple(ipaddress.IPv6Address(f"2001:db8:1::{i:x}") for i in range(0x100, 0x140))
ADMIN_PCS_V4 = tuple(ipaddress.IPv4Address(f"192.0.2.{i}") for i in range(60, 70))
# A SYN scan from outside (`--scan-share`): the target's ports one after another, each probe
# a flow of its own; the open ones answer SYN-ACK, the rest RST.
SCANNER_V4 = ipaddress.IPv4Address("198.51.100.66")
SCAN_OPEN_PORTS = frozenset((22, 443, 5060, 5061, 8443))

# Internal names the resolver answers (A and AAAA); names not listed get NXDOMAIN.
INTERNAL_NAMES: dict[str, tuple[Addr, ...]] = {
    "cucm.corp.example": (CUCM_V4, CUCM_V6),
    "cucm-sub.corp.example": (CUCM_SUB_V4,),
    "ad.corp.example": (AD_V4,),
    "dc01.corp.example": (AD_V4,),
    "ucx.corp.example": (TARGET_V4, TARGET_V6),
    "proxy.corp.example": (PROXY_V4,),
    "gw.corp.example": (GATEWAY_V4, GATEWAY_V6),
}
NXDOMAIN_NAMES = ("wpad.corp.example", "isatap.corp.example")
CLOUD_ADDRESSES: tuple[Addr, ...] = (*CLOUD_V4, *CLOUD_V6)

# Capture start: 2024-03-04 09:00:00 UTC. Fixed so a seed alone decides the bytes.
T0_US = 1_709_542_800 * 1_000_000
TICK_US = 20_000  # RTP packetisation interval (20 ms): one packet per stream per tick
RTP_PAYLOAD = 160  # G.711, 20 ms at 8 kHz
MSS = 1460
SNAPLEN = 262_144
DEFAULT_CALLS = 64  # concurrent calls (each two RTP streams: 100 packets/s per call)
DEFAULT_RTP_SHARE = 0.88
DEFAULT_CLOUD_SHARE = 0.3  # of new TLS sessions, the share that goes to the cloud
DEFAULT_PROXY_SHARE = 0.5  # of cloud sessions, the share tunnelled through the proxy
DEFAULT_SCAN_SHARE = 0.0  # of non-media traffic, the share that is a scan's probes
# The target's stub resolver caches answers (Windows' DNS Client service does): a name is asked
# again only when its answer expired. Answers carry TTL 300 s; NXDOMAIN (no SOA) is kept 60 s,
# well below Windows' default MaxNegativeCacheTtl (900 s).
DNS_ANSWER_TTL_S = 300
DNS_NEGATIVE_TTL_S = 60
# W32Time polls its domain controller at most every 2^6 s (MinPollInterval 6).
NTP_POLL_S = 64
CALL_MEAN_S = 90.0
CALL_MIN_S = 5.0
CALL_MAX_S = 900.0
FLUSH_BYTES = 8 << 20  # write buffer size

# Packet tags (bit mask) for the summary.
TAG_RTP = 1
TAG_DNS_QUERY = 2
TAG_CLIENT_HELLO = 4
TAG_SPLIT_HELLO = 8
TAG_CONNECT = 16
TAG_IPV6 = 32
TAG_ICMP = 64
TAG_SERVER_HELLO = 128
TAG_SIP = 256

# TCP flags
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_U16 = struct.Struct("!H")
_PCAP_REC = struct.Struct("<IIII")
_EPB_HEAD = struct.Struct("<IIIIIII")
_U32LE = struct.Struct("<I")
_RTP_VAR = struct.Struct("!HII")


# ---------------------------------------------------------------------------------------------
# Checksums and headers
# ---------------------------------------------------------------------------------------------
def _ones_sum(data: bytes) -> int:
    """RFC 1071 one's-complement sum: the 16-bit words summed mod 0xFFFF (2**16 = 1 mod 0xFFFF)."""
    if len(data) & 1:
        data += b"\0"
    x = int.from_bytes(data, "big")
    r = x % 0xFFFF
    return 0xFFFF if r == 0 and x else r


def _checksum(data: bytes) -> int:
    return ~_ones_sum(data) & 0xFFFF


def _pseudo(src: Addr, dst: Addr, proto: int, length: int) -> bytes:
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, proto, length)
    return src.packed + dst.packed + struct.pack("!IxxxB", length, proto)


def _ipv4_header(src: Addr, dst: Addr, proto: int, length: int, tos: int, ttl: int) -> bytes:
    # Identification 0 with DF set: an atomic datagram (RFC 6864).
    head = struct.pack("!BBHHHBBH", 0x45, tos, 20 + length, 0, 0x4000, ttl, proto, 0)
    head += src.packed + dst.packed
    return head[:10] + _U16.pack(_checksum(head)) + head[12:]


def _ipv6_header(src: Addr, dst: Addr, nxt: int, length: int, tclass: int, hlim: int) -> bytes:
    return (
        struct.pack("!IHBB", (6 << 28) | (tclass << 20), length, nxt, hlim)
        + src.packed
        + dst.packed
    )


def _udp(src: Addr, dst: Addr, sport: int, dport: int, payload: bytes) -> bytes:
    length = 8 + len(payload)
    head = struct.pack("!HHHH", sport, dport, length, 0)
    csum = _checksum(_pseudo(src, dst, 17, length) + head + payload) or 0xFFFF
    return head[:6] + _U16.pack(csum) + payload


def _tcp(
    src: Addr,
    dst: Addr,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    window: int,
    payload: bytes,
    options: bytes = b"",
) -> bytes:
    off = (20 + len(options)) // 4
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, window, 0, 0)
    seg = head + options + payload
    csum = _checksum(_pseudo(src, dst, 6, len(seg)) + seg)
    return seg[:16] + _U16.pack(csum) + seg[18:]


def _icmp(icmp_type: int, code: int, rest: bytes) -> bytes:
    msg = struct.pack("!BBH", icmp_type, code, 0) + rest
    return msg[:2] + _U16.pack(_checksum(msg)) + msg[4:]


def _icmpv6(src: Addr, dst: Addr, icmp_type: int, code: int, rest: bytes) -> bytes:
    msg = struct.pack("!BBH", icmp_type, code, 0) + rest
    csum = _checksum(_pseudo(src, dst, 58, len(msg)) + msg)
    return msg[:2] + _U16.pack(csum) + msg[4:]


def canonical_key(transport: str, a: Addr, aport: int, b: Addr, bport: int) -> FlowKey:
    """A bidirectional flow key: the lower endpoint first (ICMP keys carry ports 0)."""
    if transport in ("icmp", "icmpv6"):
        aport = bport = 0
    left = (a.version, int(a), aport)
    right = (b.version, int(b), bport)
    if right < left:
        a, aport, b, bport = b, bport, a, aport
    return (transport, str(a), aport, str(b), bport)


# ---------------------------------------------------------------------------------------------
# Link layer as seen from the target's NIC
# ---------------------------------------------------------------------------------------------
class Link:
    """Ethernet on the target's link: on-link peers by their own MAC, the rest via the gateway."""

    def __init__(self) -> None:
        self._mac: dict[Addr, bytes] = {}
        self.target_mac = self.mac(TARGET_V4)
        self.router_mac = self.mac(GATEWAY_V4)

    @staticmethod
    def on_link(addr: Addr) -> bool:
        if addr.version == 4:
            return addr in ENV_V4
        return addr in ENV_V6 or addr.is_link_local or addr.is_multicast

    def mac(self, addr: Addr) -> bytes:
        """A locally administered MAC derived from the address (IPv6 multicast: 33:33:...)."""
        cached = self._mac.get(addr)
        if cached is not None:
            return cached
        if addr.version == 6 and addr.is_multicast:
            mac = b"\x33\x33" + addr.packed[-4:]
        elif addr == TARGET_V6:
            mac = self.mac(TARGET_V4)
        elif addr == GATEWAY_V6:
            mac = self.mac(GATEWAY_V4)
        elif addr == CUCM_V6:
            mac = self.mac(CUCM_V4)
        elif addr == DNS_V6:
            mac = self.mac(DNS_V4)
        else:
            mac = (b"\x02\x00" if addr.version == 4 else b"\x02\x06") + addr.packed[-4:]
        self._mac[addr] = mac
        return mac

    def frame(
        self, src: Addr, dst: Addr, proto: int, l4: bytes, tos: int = 0, ttl: int | None = None
    ) -> bytes:
        """Ethernet + IP around `l4`. Frames the target receives carry Ethernet padding to 60."""
        own = src in (TARGET_V4, TARGET_V6)
        src_mac = (
            self.target_mac if own else (self.mac(src) if self.on_link(src) else self.router_mac)
        )
        dst_mac = self.mac(dst) if self.on_link(dst) else self.router_mac
        if ttl is None:
            ttl = 128 if own else (64 if self.on_link(src) else 51)  # Windows target, Linux peers
        if src.version == 4:
            ip = _ipv4_header(src, dst, proto, len(l4), tos, ttl)
            frame = dst_mac + src_mac + b"\x08\x00" + ip + l4
        else:
            ip = _ipv6_header(src, dst, proto, len(l4), tos, ttl)
            frame = dst_mac + src_mac + b"\x86\xdd" + ip + l4
        if not own and len(frame) < 60:
            frame += b"\0" * (60 - len(frame))
        return frame


# ---------------------------------------------------------------------------------------------
# Application payloads
# ---------------------------------------------------------------------------------------------
def _dns_name(name: str) -> bytes:
    out = b""
    for label in name.split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def dns_query(ident: int, name: str, qtype: int) -> bytes:
    return (
        struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
        + _dns_name(name)
        + struct.pack("!HH", qtype, 1)
    )


def dns_response(ident: int, name: str, qtype: int, answers: Sequence[Addr], rcode: int) -> bytes:
    head = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, len(answers), 0, 0)
    body = _dns_name(name) + struct.pack("!HH", qtype, 1)
    for addr in answers:
        body += struct.pack("!HHHIH", 0xC00C, qtype, 1, 300, len(addr.packed)) + addr.packed
    return head + body


def _ext(ext_type: int, data: bytes) -> bytes:
    return struct.pack("!HH", ext_type, len(data)) + data


def _vec16(data: bytes) -> bytes:
    return _U16.pack(len(data)) + data


def _handshake(msg_type: int, body: bytes) -> bytes:
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _record(content_type: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", content_type, version, len(body)) + body


TLS13_SUITES = (0x1301, 0x1302, 0x1303)
TLS12_SUITES = (0xC02C, 0xC02B, 0xC030, 0xC02F, 0xC024, 0xC023, 0xC028, 0xC027, 0x009D, 0x009C)


def client_hello(rng: random.Random, sni: str, tls13: bool, alpn: Sequence[str]) -> bytes:
    """A ClientHello record as Windows Schannel sends it (TLS 1.3 adds supported_versions)."""
    sid = rng.randbytes(32) if tls13 else b""
    suites = (TLS13_SUITES if tls13 else ()) + TLS12_SUITES
    name = sni.encode("ascii")
    exts = _ext(0, _vec16(b"\0" + _vec16(name)))  # server_name (RFC 6066)
    exts += _ext(5, b"\x01\0\0\0\0")  # status_request
    exts += _ext(10, _vec16(b"\x00\x1d\x00\x17\x00\x18"))  # supported_groups
    exts += _ext(11, b"\x01\x00")  # ec_point_formats
    exts += _ext(13, _vec16(bytes.fromhex("080408050806040105010601040305030603")))
    exts += _ext(35, b"")  # session_ticket
    alpn_list = b"".join(bytes([len(p)]) + p.encode("ascii") for p in alpn)
    exts += _ext(16, _vec16(alpn_list))  # ALPN (RFC 7301)
    exts += _ext(23, b"")  # extended_master_secret
    if tls13:
        exts += _ext(43, b"\x04\x03\x04\x03\x03")  # supported_versions: 1.3, 1.2
        exts += _ext(45, b"\x01\x01")  # psk_key_exchange_modes
        exts += _ext(51, _vec16(b"\x00\x1d\x00\x20" + rng.randbytes(32)))  # key_share x25519
    exts += _ext(0xFF01, b"\0")  # renegotiation_info
    body = b"\x03\x03" + rng.randbytes(32) + bytes([len(sid)]) + sid
    body += _vec16(b"".join(_U16.pack(s) for s in suites)) + b"\x01\x00" + _vec16(exts)
    return _record(22, _handshake(1, body))


def server_hello(rng: random.Random, tls13: bool, suite: int, session_id: bytes) -> bytes:
    """The ServerHello record; TLS 1.3 names its version in supported_versions (RFC 8446 4.2.1)."""
    if tls13:
        exts = _ext(43, b"\x03\x04") + _ext(51, b"\x00\x1d\x00\x20" + rng.randbytes(32))
    else:
        exts = _ext(0xFF01, b"\0") + _ext(11, b"\x01\x00") + _ext(23, b"")
    body = b"\x03\x03" + rng.randbytes(32) + bytes([len(session_id)]) + session_id
    body += _U16.pack(suite) + b"\x00" + _vec16(exts)
    return _record(22, _handshake(2, body))


TLS_MAX_PLAINTEXT = 16_384  # RFC 8446 5.1: a record carries at most 2**14 bytes


def _encrypted(rng: random.Random, content_type: int, plain_len: int) -> bytes:
    """Encrypted records: AEAD adds an explicit nonce and tag (24 bytes, AES-GCM in TLS 1.2)."""
    out = b""
    while True:
        chunk = min(plain_len, TLS_MAX_PLAINTEXT)
        out += _record(content_type, rng.randbytes(chunk + 24))
        plain_len -= chunk
        if plain_len <= 0:
            return out


SIP_UA = "Imagicle UCX/2024.1"


def sip_message(first_line: str, headers: Sequence[tuple[str, str]], body: str = "") -> bytes:
    lines = [first_line, *(f"{k}: {v}" for k, v in headers)]
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def sdp(rng: random.Random, host: Addr, port: int) -> str:
    fam = "IP4" if host.version == 4 else "IP6"
    sess = rng.randrange(10**9, 10**10)
    return (
        f"v=0\r\no=UCX {sess} {sess} IN {fam} {host}\r\ns=SIP Call\r\nc=IN {fam} {host}\r\n"
        f"t=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )


# ---------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------
@dataclass(slots=True)
class Stream:
    """One direction of a call's RTP: sender -> receiver, one packet per tick."""

    head: bytes  # Ethernet + IP + UDP headers + the RTP first byte and payload type (IPv4)
    head_marker: bytes
    src: Addr
    dst: Addr
    sport: int
    dport: int
    flow: int
    ssrc: int
    seq: int
    ts: int
    base: int  # scheduled time of the next packet (µs)
    end: int
    jitter: int  # µs of arrival jitter (0 for the target's own packets)
    v6: bool
    first: bool
    rtcp_next: int
    eth_ip6: bytes = b""
    pt: int = 0


@dataclass(slots=True)
class Call:
    streams: list[Stream]
    end: int
    sip: str  # "udp" | "tcp" | "tls" | "" (already running when the capture began)
    call_id: str = ""
    from_tag: str = ""
    to_tag: str = ""
    inbound: bool = True


@dataclass(slots=True)
class TcpConn:
    """One TCP connection's sequence state; side 0 is the client (initiator)."""

    key: int
    addr: tuple[Addr, Addr]
    port: tuple[int, int]
    nxt: list[int]
    window: tuple[int, int]
    busy_until: int = 0
    tls: bool = False


@dataclass
class Summary:
    """What a generated capture holds."""

    path: str
    format: str
    packets: int = 0
    bytes: int = 0
    flows: int = 0
    tcp_flows: int = 0
    udp_flows: int = 0
    midstream_tcp_flows: int = 0
    rtp_packets: int = 0
    sip_packets: int = 0
    dns_queries: int = 0
    client_hellos: int = 0
    split_client_hellos: int = 0
    server_hellos: int = 0
    connects: int = 0
    ipv6_packets: int = 0
    icmp_packets: int = 0
    calls_started: int = 0
    first_time: float = 0.0
    last_time: float = 0.0
    seconds: float = 0.0  # time taken to generate
    flow_keys: set[FlowKey] = field(default_factory=set, repr=False)

    @property
    def rtp_share(self) -> float:
        return self.rtp_packets / self.packets if self.packets else 0.0

    def lines(self) -> list[str]:
        rate = self.packets / self.seconds if self.seconds else 0.0
        return [
            f"wrote {self.path} ({self.format}): {self.packets:,} packets, {self.bytes:,} bytes, "
            f"{self.last_time - self.first_time:.1f} s of traffic",
            f"  flows {self.flows:,} (tcp {self.tcp_flows:,}, udp {self.udp_flows:,}, "
            f"tcp open before the capture {self.midstream_tcp_flows})",
            f"  RTP packets {self.rtp_packets:,} ({self.rtp_share:.1%}), SIP packets "
            f"{self.sip_packets:,}, calls started {self.calls_started:,}",
            f"  DNS queries {self.dns_queries:,}, ClientHellos {self.client_hellos:,} "
            f"(split over two segments {self.split_client_hellos:,}), ServerHellos "
            f"{self.server_hellos:,}, CONNECTs {self.connects:,}",
            f"  IPv6 packets {self.ipv6_packets:,}, ICMP/ICMPv6 packets {self.icmp_packets:,}",
            f"  generated in {self.seconds:.2f} s ({rate:,.0f} packets/s)",
        ]


class _Writer:
    """pcap or pcapng records into a buffered file (microsecond timestamps)."""

    def __init__(self, out: BinaryIO, fmt: str) -> None:
        self.out = out
        self.fmt = fmt
        self.buf: list[bytes] = []
        self.pending = 0
        self.total = 0
        if fmt == "pcap":
            self._put(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, 1))
        else:
            self._put(
                _block(
                    0x0A0D0D0A,
                    struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                    + _opt(4, b"ucx-conformance benchmarks/gen_capture.py")
                    + _opt(0, b""),
                )
            )
            idb = struct.pack("<HHI", 1, 0, SNAPLEN) + _opt(2, b"eth0") + _opt(9, b"\x06")
            self._put(_block(1, idb + _opt(0, b"")))

    def _put(self, data: bytes) -> None:
        self.buf.append(data)
        self.pending += len(data)
        self.total += len(data)
        if self.pending >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        self.out.write(b"".join(self.buf))
        self.buf.clear()
        self.pending = 0

    def stats(self, first_us: int, last_us: int, packets: int) -> None:
        """pcapng only: an Interface Statistics Block saying nothing was dropped."""
        if self.fmt != "pcapng":
            return
        opts = _opt(2, struct.pack("<II", first_us >> 32, first_us & 0xFFFFFFFF))
        opts += _opt(3, struct.pack("<II", last_us >> 32, last_us & 0xFFFFFFFF))
        opts += _opt(4, struct.pack("<Q", packets)) + _opt(5, struct.pack("<Q", 0))
        body = struct.pack("<III", 0, last_us >> 32, last_us & 0xFFFFFFFF) + opts + _opt(0, b"")
        self._put(_block(5, body))


def _opt(code: int, value: bytes) -> bytes:
    if code == 0:
        return b"\0\0\0\0"
    pad = -len(value) % 4
    return struct.pack("<HH", code, len(value)) + value + b"\0" * pad


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + _U32LE.pack(length)


class Generator:
    """Simulates the target's traffic tick by tick (20 ms) and writes it in time order."""

    def __init__(
        self,
        seed: int,
        calls: int = DEFAULT_CALLS,
        rtp_share: float = DEFAULT_RTP_SHARE,
        cloud_share: float = DEFAULT_CLOUD_SHARE,
        proxy_share: float = DEFAULT_PROXY_SHARE,
        scan_share: float = DEFAULT_SCAN_SHARE,
    ) -> None:
        self.rng = random.Random(seed)
        self.scan_share = scan_share
        self.next_scan_port = 1
        self.link = Link()
        self.calls_target = calls
        self.rtp_share = rtp_share
        self.cloud_share = cloud_share
        self.proxy_share = proxy_share
        self.heap: list[tuple[int, int, bytes, int, int]] = []
        self.counter = 0
        self.nonrtp_scheduled = 0
        self.flow_ids: dict[FlowKey, int] = {}
        self.flow_keys: list[FlowKey] = []
        self.midstream: set[int] = set()
        self.events: list[tuple[int, int, str, Call | None]] = []
        self.streams: list[Stream] = []
        self.calls_started = 0
        self.next_ephemeral = 49152 + self.rng.randrange(4000)
        self.next_media_port = 16384 + 2 * self.rng.randrange(4000)
        self.payloads = [self.rng.randbytes(RTP_PAYLOAD) for _ in range(16)]
        self.trunks: dict[str, TcpConn] = {}
        self.peer_ports: dict[Addr, int] = {}
        self.persistent: list[TcpConn] = []
        self.dns_cache_cloud: list[Addr] = []
        self.dns_cache: dict[tuple[str, str, int], int] = {}  # (transport, name, qtype) -> expiry
        self.ntp_next = 0

    # --- bookkeeping --------------------------------------------------------------------------
    def flow(self, transport: str, a: Addr, aport: int, b: Addr, bport: int) -> int:
        key = canonical_key(transport, a, aport, b, bport)
        fid = self.flow_ids.get(key)
        if fid is None:
            fid = len(self.flow_keys)
            self.flow_ids[key] = fid
            self.flow_keys.append(key)
        return fid

    def push(self, t: int, frame: bytes, flow: int, tags: int = 0) -> None:
        if frame[12:14] == b"\x86\xdd":
            tags |= TAG_IPV6
        self.counter += 1
        self.nonrtp_scheduled += 1
        heapq.heappush(self.heap, (t, self.counter, frame, flow, tags))

    def ephemeral(self) -> int:
        port = self.next_ephemeral
        self.next_ephemeral = 49152 if port >= 65535 else port + 1
        return port

    def client_port(self, client: Addr) -> int:
        """A peer's next ephemeral port: sequential per host, so no 5-tuple is reused by chance."""
        port = self.peer_ports.get(client, 49152 + self.rng.randrange(8000))
        self.peer_ports[client] = 49152 if port >= 65535 else port + 1
        return port

    def media_port(self) -> int:
        port = self.next_media_port
        self.next_media_port = 16384 if port >= 32766 else port + 2
        return port

    def local_delay(self) -> int:
        return 30 + int(self.rng.random() * 400)

    # --- UDP, ICMP, ARP -----------------------------------------------------------------------
    def udp(
        self,
        t: int,
        src: Addr,
        sport: int,
        dst: Addr,
        dport: int,
        payload: bytes,
        tags: int = 0,
        tos: int = 0,
    ) -> None:
        fid = self.flow("udp", src, sport, dst, dport)
        self.push(
            t, self.link.frame(src, dst, 17, _udp(src, dst, sport, dport, payload), tos), fid, tags
        )

    def cached(self, t: int, transport: str, name: str, qtype: int) -> bool:
        """Whether the target's resolver still holds this answer; if not, it will after `t`."""
        key = (transport, name, qtype)
        if self.dns_cache.get(key, -1) > t:
            return True
        _, rcode = self.resolve(name, qtype)
        self.dns_cache[key] = t + 1_000_000 * (DNS_NEGATIVE_TTL_S if rcode else DNS_ANSWER_TTL_S)
        return False

    def dns_exchange(self, t: int, name: str, qtype: int, over_v6: bool = False) -> int:
        """A query from the target to the on-prem resolver and its answer. Returns answer time.

        Nothing is sent while the resolver's cache still holds the answer (returns `t`).
        """
        if self.cached(t, "udp", name, qtype):
            return t
        rng = self.rng
        client: Addr = TARGET_V6 if over_v6 else TARGET_V4
        server: Addr = DNS_V6 if over_v6 else DNS_V4
        sport = 49152 + rng.randrange(16384)  # Windows randomises DNS source ports
        ident = rng.randrange(65536)
        answers, rcode = self.resolve(name, qtype)
        self.udp(t, client, sport, server, 53, dns_query(ident, name, qtype), TAG_DNS_QUERY)
        t_ans = t + 300 + rng.randrange(1500)
        self.udp(t_ans, server, 53, client, sport, dns_response(ident, name, qtype, answers, rcode))
        return t_ans

    def resolve(self, name: str, qtype: int) -> tuple[list[Addr], int]:
        version = 4 if qtype == 1 else 6
        if name == CLOUD_NAME:
            return [a for a in CLOUD_ADDRESSES if a.version == version], 0
        if name in INTERNAL_NAMES:
            return [a for a in INTERNAL_NAMES[name] if a.version == version], 0
        return [], 3

    def icmp_echo(self, t: int, src: Addr, dst: Addr) -> None:
        rng = self.rng
        ident, seq = rng.randrange(1, 65536), rng.randrange(65536)
        data = b"abcdefghijklmnopqrstuvwabcdefghi"  # Windows ping payload
        rest = struct.pack("!HH", ident, seq) + data
        if src.version == 4:
            fid = self.flow("icmp", src, 0, dst, 0)
            self.push(t, self.link.frame(src, dst, 1, _icmp(8, 0, rest)), fid, TAG_ICMP)
            t += 200 + rng.randrange(800)
            self.push(t, self.link.frame(dst, src, 1, _icmp(0, 0, rest)), fid, TAG_ICMP)
        else:
            fid = self.flow("icmpv6", src, 0, dst, 0)
            self.push(
                t, self.link.frame(src, dst, 58, _icmpv6(src, dst, 128, 0, rest)), fid, TAG_ICMP
            )
            t += 200 + rng.randrange(800)
            self.push(
                t, self.link.frame(dst, src, 58, _icmpv6(dst, src, 129, 0, rest)), fid, TAG_ICMP
            )

    def neighbour_discovery(self, t: int, who: Addr) -> None:
        """NS to the solicited-node group (RFC 4861 7.2.2) and the NA answering it."""
        group = ipaddress.IPv6Address("ff02::1:ff00:0") + (int(who) & 0xFFFFFF)
        ns = who.packed + b"\x01\x01" + self.link.target_mac  # source link-layer address
        fid = self.flow("icmpv6", TARGET_V6, 0, group, 0)
        frame = self.link.frame(
            TARGET_V6, group, 58, _icmpv6(TARGET_V6, group, 135, 0, b"\0" * 4 + ns), ttl=255
        )
        self.push(t, frame, fid, TAG_ICMP)
        na = struct.pack("!I", 0x60000000) + who.packed + b"\x02\x01" + self.link.mac(who)
        fid = self.flow("icmpv6", who, 0, TARGET_V6, 0)
        frame = self.link.frame(who, TARGET_V6, 58, _icmpv6(who, TARGET_V6, 136, 0, na), ttl=255)
        self.push(t + 150 + self.rng.randrange(400), frame, fid, TAG_ICMP)

    def arp(self, t: int, who: Addr) -> None:
        lk = self.link
        req = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + lk.target_mac + TARGET_V4.packed
        req += b"\0" * 6 + who.packed
        self.push(t, b"\xff" * 6 + lk.target_mac + b"\x08\x06" + req, -1)
        rep = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 2) + lk.mac(who) + who.packed
        rep += lk.target_mac + TARGET_V4.packed
        frame = lk.target_mac + lk.mac(who) + b"\x08\x06" + rep
        self.push(t + 100 + self.rng.randrange(300), frame + b"\0" * (60 - len(frame)), -1)

    def ntp(self, t: int) -> None:
        if t < self.ntp_next:
            return  # polled recently
        self.ntp_next = t + NTP_POLL_S * 1_000_000
        sport = 49152 + self.rng.randrange(16384)
        req = b"\xe3\x00\x06\xec" + b"\0" * 36 + self.rng.randbytes(8)
        self.udp(t, TARGET_V4, sport, AD_V4, 123, req)
        rep = b"\x24\x02\x06\xec" + self.rng.randbytes(44)
        self.udp(t + 400 + self.rng.randrange(600), AD_V4, 123, TARGET_V4, sport, rep)

    # --- TCP ----------------------------------------------------------------------------------
    def tcp_conn(self, client: Addr, cport: int, server: Addr, sport: int) -> TcpConn:
        fid = self.flow("tcp", client, cport, server, sport)
        isn = (self.rng.randrange(1 << 32), self.rng.randrange(1 << 32))
        return TcpConn(fid, (client, server), (cport, sport), list(isn), (64240, 65160))

    def seg(
        self,
        c: TcpConn,
        side: int,
        t: int,
        flags: int,
        payload: bytes = b"",
        options: bytes = b"",
        tags: int = 0,
    ) -> None:
        src, dst = c.addr[side], c.addr[1 - side]
        sport, dport = c.port[side], c.port[1 - side]
        seq = c.nxt[side]
        ack = c.nxt[1 - side] if flags & ACK else 0
        l4 = _tcp(
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            flags,
            # The SYN offers window scale 8 (RFC 7323): later segments carry the window >> 8.
            c.window[side] >> 8 if not flags & SYN else c.window[side],
            payload,
            options,
        )
        self.push(t, self.link.frame(src, dst, 6, l4), c.key, tags)
        c.nxt[side] = (seq + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF

    def open(self, c: TcpConn, t: int, rtt: int) -> int:
        """Three-way handshake seen at the target. Returns the time after the final ACK."""
        opts = bytes.fromhex("020405b40103030801010402")  # MSS 1460, WS 8, SACK permitted
        target_client = c.addr[0] in (TARGET_V4, TARGET_V6)
        self.seg(c, 0, t, SYN, options=opts)
        t += rtt if target_client else self.local_delay()
        self.seg(c, 1, t, SYN | ACK, options=opts)
        t += self.local_delay() if target_client else rtt
        self.seg(c, 0, t, ACK)
        return t

    def delay(self, c: TcpConn, side: int, rtt: int) -> int:
        """Time until `side` answers: the path's RTT if `side` is remote, else a local delay."""
        remote = c.addr[side] not in (TARGET_V4, TARGET_V6)
        return rtt if remote else self.local_delay()

    def send(
        self, c: TcpConn, side: int, t: int, data: bytes, tags: int = 0, split_at: int | None = None
    ) -> int:
        """Data from `side`, cut at the MSS (or at `split_at`); tags go on the last segment."""
        cuts = [split_at] if split_at else list(range(MSS, len(data), MSS))
        parts = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            self.seg(c, side, t, ACK | (PSH if last else 0), part, tags=tags if last else 0)
            if not last:
                t += 12 if split_at is None else 1500 + self.rng.randrange(3000)
        return t

    def close(self, c: TcpConn, t: int, rtt: int) -> int:
        self.seg(c, 0, t, FIN | ACK)
        t += self.delay(c, 1, rtt)
        self.seg(c, 1, t, FIN | ACK)
        t += self.delay(c, 0, rtt)
        self.seg(c, 0, t, ACK)
        return t

    def exchange(self, c: TcpConn, t: int, rtt: int, request: int, response: int) -> int:
        """A request from the client and a response from the server, TLS-framed if `c.tls`."""
        rng = self.rng
        req = _encrypted(rng, 23, request) if c.tls else rng.randbytes(request)
        t = self.send(c, 0, t, req)
        t += self.delay(c, 1, rtt)
        resp = _encrypted(rng, 23, response) if c.tls else rng.randbytes(response)
        t = self.send(c, 1, t, resp)
        t += 100 + rng.randrange(200)
        self.seg(c, 0, t, ACK)
        return t

    def tls_handshake(
        self, c: TcpConn, t: int, rtt: int, sni: str, tls13: bool, split: bool, alpn: Sequence[str]
    ) -> int:
        rng = self.rng
        hello = client_hello(rng, sni, tls13, alpn)
        tags = TAG_CLIENT_HELLO | (TAG_SPLIT_HELLO if split else 0)
        cut = 60 + rng.randrange(len(hello) - 120) if split else None
        t = self.send(c, 0, t, hello, tags, split_at=cut)
        t += self.delay(c, 1, rtt)
        sid_len = hello[43]
        session_id = hello[44 : 44 + sid_len]
        suite = rng.choice((0x1301, 0x1302)) if tls13 else rng.choice((0xC030, 0xC02F))
        flight = server_hello(rng, tls13, suite, session_id)
        if tls13:
            flight += _record(20, b"\x01") + _encrypted(rng, 23, 900 + rng.randrange(2500))
        else:
            flight += _record(22, _handshake(14, b""))  # ServerHelloDone
        # The ServerHello (about 100 bytes) is in the flight's first segment: tag that one.
        self.seg(
            c, 1, t, ACK | (PSH if len(flight) <= MSS else 0), flight[:MSS], tags=TAG_SERVER_HELLO
        )
        if len(flight) > MSS:
            t = self.send(c, 1, t + 12, flight[MSS:])
        t += self.delay(c, 0, rtt)
        if tls13:
            t = self.send(c, 0, t, _record(20, b"\x01") + _encrypted(rng, 23, 37))
        else:
            cke = _record(22, _handshake(16, b"\x20" + rng.randbytes(32)))
            t = self.send(c, 0, t, cke + _record(20, b"\x01") + _encrypted(rng, 22, 16))
            t += self.delay(c, 1, rtt)
            t = self.send(c, 1, t, _record(20, b"\x01") + _encrypted(rng, 22, 16))
        c.tls = True
        return t

    def tls_session(
        self,
        t: int,
        client: Addr,
        server: Addr,
        sport: int,
        sni: str,
        tls13: bool,
        split: bool,
        rtt: int,
        cport: int | None = None,
    ) -> None:
        rng = self.rng
        c = self.tcp_conn(client, cport if cport is not None else self.ephemeral(), server, sport)
        t = self.open(c, t, rtt)
        alpn = ("h2", "http/1.1") if tls13 else ("http/1.1",)
        t = self.tls_handshake(c, t + self.local_delay(), rtt, sni, tls13, split, alpn)
        for _ in range(1 + rng.randrange(4)):
            t = self.exchange(
                c, t + self.local_delay(), rtt, 150 + rng.randrange(900), 200 + rng.randrange(6000)
            )
        t += 5_000 + rng.randrange(200_000)
        t = self.send(c, 0, t, _encrypted(rng, 21, 2))  # close_notify
        self.close(c, t + 50, rtt)

    def connect_session(self, t: int, tls13: bool, split: bool) -> None:
        """CONNECT api.imagicle.com:443 through the proxy, 200, then TLS inside the tunnel."""
        rng = self.rng
        rtt_proxy = 200 + rng.randrange(600)
        rtt_cloud = 15_000 + rng.randrange(25_000)
        c = self.tcp_conn(TARGET_V4, self.ephemeral(), PROXY_V4, PROXY_PORT)
        t = self.open(c, t, rtt_proxy)
        host = f"{CLOUD_NAME}:443"
        req = (
            f"CONNECT {host} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {SIP_UA}\r\n"
            "Proxy-Connection: keep-alive\r\n\r\n"
        ).encode()
        t = self.send(c, 0, t + self.local_delay(), req, TAG_CONNECT)
        t += rtt_proxy + rtt_cloud
        t = self.send(c, 1, t, b"HTTP/1.1 200 Connection established\r\n\r\n")
        t = self.tls_handshake(
            c, t + self.local_delay(), rtt_cloud, CLOUD_NAME, tls13, split, ("h2", "http/1.1")
        )
        for _ in range(1 + rng.randrange(3)):
            t = self.exchange(
                c,
                t + self.local_delay(),
                rtt_cloud,
                300 + rng.randrange(900),
                200 + rng.randrange(3000),
            )
        t = self.send(c, 0, t + 10_000, _encrypted(rng, 21, 2))
        self.close(c, t + 50, rtt_proxy)

    def dns_tcp(self, t: int) -> None:
        """A large answer retried over TCP (RFC 7766): length-prefixed messages."""
        rng = self.rng
        name = rng.choice(list(INTERNAL_NAMES))
        if self.cached(t, "tcp", name, 1):
            return
        c = self.tcp_conn(TARGET_V4, self.ephemeral(), DNS_V4, 53)
        rtt = 300 + rng.randrange(800)
        t = self.open(c, t, rtt)
        ident = rng.randrange(65536)
        q = dns_query(ident, name, 1)
        t = self.send(c, 0, t + self.local_delay(), _vec16(q), TAG_DNS_QUERY)
        answers, rcode = self.resolve(name, 1)
        t = self.send(c, 1, t + rtt, _vec16(dns_response(ident, name, 1, answers, rcode)))
        self.close(c, t + self.local_delay(), rtt)

    # --- calls --------------------------------------------------------------------------------
    def make_stream(
        self, src: Addr, sport: int, dst: Addr, dport: int, start: int, end: int, running: bool
    ) -> Stream:
        rng = self.rng
        pt = rng.choice((0, 8))
        own = src in (TARGET_V4, TARGET_V6)
        seq = rng.randrange(65536) if running else rng.randrange(1000)
        ts = rng.randrange(1 << 32)
        ssrc = rng.randrange(1 << 32)
        fid = self.flow("udp", src, sport, dst, dport)
        v6 = src.version == 6
        udp_len = 8 + 12 + RTP_PAYLOAD
        if v6:
            lk = self.link
            src_mac = lk.target_mac if own else lk.mac(src)
            eth_ip6 = lk.mac(dst) + src_mac + b"\x86\xdd"
            eth_ip6 += _ipv6_header(src, dst, 17, udp_len, 0xB8, 128 if own else 64)
            head = head_marker = b""
        else:
            frame = self.link.frame(src, dst, 17, b"\0" * udp_len, 0xB8)
            base = frame[:34] + struct.pack("!HHHH", sport, dport, udp_len, 0)
            head = base + bytes([0x80, pt])
            head_marker = base + bytes([0x80, 0x80 | pt])
            eth_ip6 = b""
        return Stream(
            head,
            head_marker,
            src,
            dst,
            sport,
            dport,
            fid,
            ssrc,
            seq,
            ts,
            start,
            end,
            0 if own else 600,
            v6,
            not running,
            start + rng.randrange(5_000_000),
            eth_ip6,
            pt,
        )

    def start_call(self, t: int, running: bool) -> None:
        """A call between the target and a phone/gateway: two RTP streams and (new) its SIP."""
        rng = self.rng
        v6 = rng.random() < 0.05
        phone: Addr = rng.choice(PHONES_V6) if v6 else rng.choice(PHONES_V4)
        me: Addr = TARGET_V6 if v6 else TARGET_V4
        my_port, phone_port = self.media_port(), 16384 + 2 * rng.randrange(8192)
        duration = min(CALL_MAX_S, max(CALL_MIN_S, rng.expovariate(1 / CALL_MEAN_S)))
        if running:
            media_start, end = t + rng.randrange(TICK_US), t + int(rng.random() * duration * 1e6)
            call = Call([], end, "")
        else:
            sip = rng.choices(("udp", "tcp", "tls"), (7, 2, 1))[0]
            call = Call(
                [],
                0,
                sip,
                f"{rng.randbytes(8).hex()}@{me}",
                rng.randbytes(4).hex(),
                rng.randbytes(4).hex(),
                rng.random() < 0.6,
            )
            media_start = self.sip_setup(t, call, me, my_port, phone, phone_port)
            end = media_start + int(duration * 1e6)
            call.end = end
            self.calls_started += 1
        call.streams = [
            self.make_stream(
                me, my_port, phone, phone_port, media_start + rng.randrange(2000), end, running
            ),
            self.make_stream(
                phone, phone_port, me, my_port, media_start + rng.randrange(TICK_US), end, running
            ),
        ]
        self.streams.extend(call.streams)
        self.counter += 1
        heapq.heappush(self.events, (end, self.counter, "end", call))

    def sip_send(self, t: int, call: Call, from_target: bool, msg: bytes) -> None:
        if call.sip == "udp":
            src, dst = (TARGET_V4, CUCM_V4) if from_target else (CUCM_V4, TARGET_V4)
            self.udp(t, src, 5060, dst, 5060, msg, TAG_SIP, tos=0x60)
            return
        conn = self.trunks[call.sip]
        side = 0 if from_target else 1
        payload = msg if call.sip == "tcp" else _encrypted(self.rng, 23, len(msg))
        self.send(conn, side, t, payload, TAG_SIP)
        conn.busy_until = max(conn.busy_until, t + 1)

    def sip_headers(self, call: Call, method: str, cseq: int, me: Addr) -> list[tuple[str, str]]:
        caller, callee = ("cucm", "ucx") if call.inbound else ("ucx", "cucm")
        tagged = method != "INVITE" or cseq > 1
        proto = {"udp": "UDP", "tcp": "TCP", "tls": "TLS"}[call.sip]
        return [
            (
                "Via",
                f"SIP/2.0/{proto} {CUCM_V4 if call.inbound else me}:5060;branch=z9hG4bK"
                f"{self.rng.randbytes(6).hex()}",
            ),
            ("From", f"<sip:4001@{caller}.corp.example>;tag={call.from_tag}"),
            ("To", f"<sip:8000@{callee}.corp.example>" + (f";tag={call.to_tag}" if tagged else "")),
            ("Call-ID", call.call_id),
            ("CSeq", f"{cseq} {method}"),
            ("User-Agent", SIP_UA if not call.inbound else "Cisco-CUCM14.0"),
        ]

    def sip_setup(
        self, t: int, call: Call, me: Addr, my_port: int, phone: Addr, phone_port: int
    ) -> int:
        """INVITE / 100 / 180 / 200 (SDP) / ACK. Returns the time media starts."""
        rng = self.rng
        caller_is_target = not call.inbound
        if call.sip != "udp":
            conn = self.trunks[call.sip]
            t = max(t, conn.busy_until)
        rtt = 300 + rng.randrange(700)
        uri = "sip:8000@ucx.corp.example" if call.inbound else "sip:8000@cucm.corp.example"
        invite_sdp = sdp(
            rng, phone if call.inbound else me, phone_port if call.inbound else my_port
        )
        answer_sdp = sdp(
            rng, me if call.inbound else phone, my_port if call.inbound else phone_port
        )
        hdrs = self.sip_headers(call, "INVITE", 1, me)
        self.sip_send(
            t,
            call,
            caller_is_target,
            sip_message(
                f"INVITE {uri} SIP/2.0",
                [*hdrs, ("Contact", f"<sip:{me}:5060>"), ("Content-Type", "application/sdp")],
                invite_sdp,
            ),
        )
        t += rtt
        self.sip_send(t, call, not caller_is_target, sip_message("SIP/2.0 100 Trying", hdrs))
        t += 50_000 + rng.randrange(200_000)
        self.sip_send(t, call, not caller_is_target, sip_message("SIP/2.0 180 Ringing", hdrs))
        t += 300_000 + rng.randrange(3_000_000)
        self.sip_send(
            t,
            call,
            not caller_is_target,
            sip_message("SIP/2.0 200 OK", [*hdrs, ("Content-Type", "application/sdp")], answer_sdp),
        )
        t += rtt
        self.sip_send(
            t,
            call,
            caller_is_target,
            sip_message(f"ACK {uri} SIP/2.0", self.sip_headers(call, "ACK", 1, me)),
        )
        if call.sip != "udp":
            self.trunks[call.sip].busy_until = t + 1
        return t

    def end_call(self, t: int, call: Call) -> None:
        ended = set(map(id, call.streams))
        self.streams = [s for s in self.streams if id(s) not in ended]
        if call.sip:
            if call.sip != "udp":
                t = max(t, self.trunks[call.sip].busy_until)
            me = call.streams[0].src
            from_target = self.rng.random() < 0.5
            hdrs = self.sip_headers(call, "BYE", 2, me)
            self.sip_send(
                t, call, from_target, sip_message("BYE sip:8000@corp.example SIP/2.0", hdrs)
            )
            t += 300 + self.rng.randrange(1500)
            self.sip_send(t, call, not from_target, sip_message("SIP/2.0 200 OK", hdrs))
            if call.sip != "udp":
                self.trunks[call.sip].busy_until = t + 1
        # The phone takes the next call after a pause: concurrency stays near the target.
        self.counter += 1
        heapq.heappush(
            self.events, (t + self.rng.randrange(3_000_000), self.counter, "start", None)
        )

    def rtcp(self, s: Stream, t: int) -> None:
        """An RTCP sender report + SDES on the odd port next to the stream (RFC 3550 6.4.1)."""
        sr = struct.pack(
            "!BBHIIIIII",
            0x80,
            200,
            6,
            s.ssrc,
            t // 1_000_000 + 2_208_988_800,
            0,
            s.ts,
            s.seq,
            s.seq * 172,
        )
        cname = b"ucx@corp.example"
        sdes = struct.pack(
            "!BBHIBB", 0x81, 202, (4 + 2 + len(cname) + 4) // 4, s.ssrc, 1, len(cname)
        )
        sdes += cname + b"\0" * (-(len(cname) + 2) % 4 or 4)
        self.udp(t, s.src, s.sport + 1, s.dst, s.dport + 1, sr + sdes, tos=0xB8)

    # --- persistent (already open) connections -----------------------------------------------
    def open_before_capture(self, t: int) -> None:
        """TCP connections established before the capture began: no SYN in the file."""
        rng = self.rng
        self.trunks["tcp"] = self.tcp_conn(TARGET_V4, self.ephemeral(), CUCM_V4, 5060)
        self.trunks["tls"] = self.tcp_conn(TARGET_V4, self.ephemeral(), CUCM_V4, 5061)
        self.trunks["tls"].tls = True
        ldaps = self.tcp_conn(TARGET_V4, self.ephemeral(), AD_V4, 636)
        pc = rng.choice(ADMIN_PCS_V4)
        web = self.tcp_conn(pc, self.client_port(pc), TARGET_V4, 443)
        self.persistent = [ldaps, web]
        if self.cloud_share > 0:
            self.persistent.append(self.tcp_conn(TARGET_V4, self.ephemeral(), CLOUD_V4[1], 443))
        for conn in (*self.trunks.values(), *self.persistent):
            conn.tls = conn.tls or conn.port[1] in (443, 636)
            self.midstream.add(conn.key)
            conn.busy_until = t

    def chatter(self, t: int, conn: TcpConn | None = None) -> None:
        """A request/response on a connection that was open before the capture."""
        rng = self.rng
        if conn is None:
            conn = rng.choice(self.persistent)
        t = max(t, conn.busy_until)
        rtt = (
            20_000 + rng.randrange(20_000)
            if not Link.on_link(conn.addr[1])
            else 300 + rng.randrange(900)
        )
        bulk = rng.random() < 0.1
        t = self.exchange(
            conn,
            t,
            rtt,
            100 + rng.randrange(600),
            (20_000 + rng.randrange(80_000)) if bulk else 100 + rng.randrange(2000),
        )
        conn.busy_until = t + 1

    def sip_options(self, t: int) -> None:
        """CUCM's OPTIONS ping on a trunk, and the 200 OK."""
        rng = self.rng
        sip = rng.choice(("udp", "tcp", "tls"))
        call = Call(
            [],
            0,
            sip,
            f"{rng.randbytes(8).hex()}@{CUCM_V4}",
            rng.randbytes(4).hex(),
            rng.randbytes(4).hex(),
            True,
        )
        if sip != "udp":
            t = max(t, self.trunks[sip].busy_until)
        hdrs = self.sip_headers(call, "OPTIONS", 1, TARGET_V4)
        self.sip_send(t, call, False, sip_message("OPTIONS sip:ucx.corp.example SIP/2.0", hdrs))
        t += 200 + rng.randrange(800)
        self.sip_send(t, call, True, sip_message("SIP/2.0 200 OK", hdrs))
        if sip != "udp":
            self.trunks[sip].busy_until = t + 1

    # --- the traffic mix ----------------------------------------------------------------------
    def cloud_session(self, t: int, split: bool) -> None:
        rng = self.rng
        tls13 = rng.random() < 0.8
        if rng.random() < self.proxy_share:
            self.connect_session(t, tls13, split)
            return
        v6 = rng.random() < 0.2
        t = self.dns_exchange(t, CLOUD_NAME, 28 if v6 else 1, over_v6=rng.random() < 0.1)
        server: Addr = rng.choice(CLOUD_V6) if v6 else rng.choice(CLOUD_V4)
        me: Addr = TARGET_V6 if v6 else TARGET_V4
        self.tls_session(
            t + self.local_delay(),
            me,
            server,
            443,
            CLOUD_NAME,
            tls13,
            split,
            15_000 + rng.randrange(25_000),
        )

    def onprem_tls(self, t: int, split: bool) -> None:
        rng = self.rng
        tls13 = rng.random() < 0.5
        rtt = 300 + rng.randrange(900)
        kind = rng.random()
        if kind < 0.45:
            self.tls_session(t, TARGET_V4, CUCM_V4, 8443, "cucm.corp.example", tls13, split, rtt)
        elif kind < 0.65:
            self.tls_session(
                t, TARGET_V4, CUCM_SUB_V4, 8443, "cucm-sub.corp.example", tls13, split, rtt
            )
        elif kind < 0.75:
            self.tls_session(t, TARGET_V6, CUCM_V6, 8443, "cucm.corp.example", tls13, split, rtt)
        else:  # a browser on an admin PC opens the UCX web portal
            client = rng.choice(ADMIN_PCS_V4)
            self.tls_session(
                t,
                client,
                TARGET_V4,
                443,
                "ucx.corp.example",
                tls13,
                split,
                rtt,
                cport=self.client_port(client),
            )

    def scan_probe(self, t: int) -> None:
        """One port of a SYN scan from outside: a SYN to the target's next port, answered by
        RST-ACK (closed) or by SYN-ACK and then the scanner's RST (open)."""
        port = self.next_scan_port
        self.next_scan_port = 1 if port >= 65535 else port + 1
        c = self.tcp_conn(SCANNER_V4, self.client_port(SCANNER_V4), TARGET_V4, port)
        mss = bytes.fromhex("020405b4")
        self.seg(c, 0, t, SYN, options=mss)
        t += self.local_delay()
        if port in SCAN_OPEN_PORTS:
            self.seg(c, 1, t, SYN | ACK, options=mss)
            self.seg(c, 0, t + 2_000 + self.rng.randrange(8_000), RST)  # the scanner's RTT
        else:
            self.seg(c, 1, t, RST | ACK)

    def filler(self, t: int) -> None:
        """One piece of non-media traffic, drawn from the mix."""
        rng = self.rng
        if self.scan_share and rng.random() < self.scan_share:
            self.scan_probe(t)
            return
        r = rng.random() * 100
        if r < 38:
            name = rng.choice((*INTERNAL_NAMES, *NXDOMAIN_NAMES))
            self.dns_exchange(t, name, rng.choice((1, 1, 1, 28)), over_v6=rng.random() < 0.1)
        elif r < 48:
            split = rng.random() < 0.1
            if rng.random() < self.cloud_share:
                self.cloud_session(t, split)
            else:
                self.onprem_tls(t, split)
        elif r < 79:
            self.chatter(t)
        elif r < 81:
            self.sip_options(t)
        elif r < 84:
            if rng.random() < 0.3:
                self.dns_tcp(t)
            else:
                self.ntp(t)
        elif r < 91:
            if rng.random() < 0.5:
                self.icmp_echo(t, TARGET_V4, rng.choice((GATEWAY_V4, CUCM_V4, AD_V4)))
            else:
                self.icmp_echo(t, rng.choice(PHONES_V4), TARGET_V4)
        elif r < 96:
            if rng.random() < 0.5:
                self.icmp_echo(t, TARGET_V6, rng.choice((GATEWAY_V6, CUCM_V6)))
            else:
                self.neighbour_discovery(t, rng.choice((GATEWAY_V6, CUCM_V6, DNS_V6)))
        else:
            self.arp(t, rng.choice((GATEWAY_V4, CUCM_V4, AD_V4, DNS_V4, PROXY_V4)))

    def seed_mix(self, t: int) -> None:
        """One of everything early on, so even a small capture holds the whole mix."""
        rng = self.rng
        self.dns_exchange(t + 1_000, "cucm.corp.example", 1)
        self.dns_exchange(t + 2_000, "ad.corp.example", 28, over_v6=True)
        self.tls_session(
            t + 3_000, TARGET_V4, CUCM_V4, 8443, "cucm.corp.example", False, False, 600
        )
        self.tls_session(
            t + 5_000, TARGET_V4, CUCM_SUB_V4, 8443, "cucm-sub.corp.example", True, True, 500
        )
        self.icmp_echo(t + 7_000, TARGET_V4, GATEWAY_V4)
        self.icmp_echo(t + 8_000, TARGET_V6, GATEWAY_V6)
        self.neighbour_discovery(t + 9_000, CUCM_V6)
        self.dns_tcp(t + 11_000)
        self.arp(t + 12_000, PROXY_V4)
        for conn in self.persistent:
            self.chatter(t + 13_000 + rng.randrange(5_000), conn)
        self.sip_options(t + 15_000)
        self.start_call(t + 16_000, running=False)
        if self.cloud_share > 0:
            self.dns_exchange(t + 4_000, CLOUD_NAME, 1)
            self.tls_session(
                t + 6_000, TARGET_V4, CLOUD_V4[0], 443, CLOUD_NAME, True, False, 20_000
            )
            self.tls_session(
                t + 10_000, TARGET_V6, CLOUD_V6[0], 443, CLOUD_NAME, True, False, 25_000
            )
            if self.proxy_share > 0:
                self.connect_session(t + 14_000, True, False)

    def generate(self, packets: int, out: BinaryIO, fmt: str, path: str = "") -> Summary:
        started = time.perf_counter()
        summary = Summary(path=path, format=fmt)
        writer = _Writer(out, fmt)
        rng = self.rng
        t = T0_US
        self.open_before_capture(t)
        for _ in range(self.calls_target):
            self.start_call(t, running=True)
        self.seed_mix(t)
        ratio = (1 - self.rtp_share) / self.rtp_share
        rtp_total = 0
        written = 0
        seen: set[int] = set()
        tag_counts: dict[int, int] = {}
        payloads = self.payloads
        rnd = rng.random
        put = writer._put
        pcap = fmt == "pcap"
        rec = _PCAP_REC.pack
        epb = _EPB_HEAD.pack
        trailer = _U32LE.pack
        rtp_var = _RTP_VAR.pack
        first_us = last_us = t
        while written < packets:
            tick_end = t + TICK_US
            while self.events and self.events[0][0] < tick_end:
                when, _, kind, call = heapq.heappop(self.events)
                if kind == "end" and call is not None:
                    self.end_call(max(when, t), call)
                else:
                    self.start_call(max(when, t), running=False)
            batch: list[tuple[int, int, bytes, int, int]] = []
            append = batch.append
            for s in self.streams:
                if s.base >= tick_end:
                    continue
                if s.base >= s.end:
                    continue
                when = s.base + (int(rnd() * s.jitter) if s.jitter else 0)
                s.seq = (s.seq + 1) & 0xFFFF
                s.ts = (s.ts + RTP_PAYLOAD) & 0xFFFFFFFF
                payload = payloads[s.seq & 15]
                if s.v6:
                    rtp = (
                        bytes([0x80, s.pt | (0x80 if s.first else 0)])
                        + rtp_var(s.seq, s.ts, s.ssrc)
                        + payload
                    )
                    frame = s.eth_ip6 + _udp(s.src, s.dst, s.sport, s.dport, rtp)
                    tags = TAG_RTP | TAG_IPV6
                else:
                    frame = (
                        (s.head_marker if s.first else s.head)
                        + rtp_var(s.seq, s.ts, s.ssrc)
                        + payload
                    )
                    tags = TAG_RTP
                s.first = False
                if when < tick_end:
                    append((when, 0, frame, s.flow, tags))
                else:  # jitter carried it into the next tick: keep the file in time order
                    self.counter += 1
                    heapq.heappush(self.heap, (when, self.counter, frame, s.flow, tags))
                rtp_total += 1
                s.base += TICK_US
                if s.rtcp_next < tick_end:
                    s.rtcp_next += 5_000_000
                    self.rtcp(s, when + 1 + int(rnd() * 3000))
            while self.nonrtp_scheduled < ratio * rtp_total:
                self.filler(t + int(rnd() * TICK_US))
            heap = self.heap
            while heap and heap[0][0] < tick_end:
                append(heapq.heappop(heap))
            batch.sort()
            for when, _, frame, fid, tags in batch:
                if written >= packets:
                    break
                n = len(frame)
                if pcap:
                    put(rec(when // 1_000_000, when % 1_000_000, n, n) + frame)
                else:
                    pad = -n % 4
                    blen = 32 + n + pad
                    put(
                        epb(6, blen, 0, when >> 32, when & 0xFFFFFFFF, n, n)
                        + frame
                        + b"\0" * pad
                        + trailer(blen)
                    )
                if written == 0:
                    first_us = when
                last_us = when
                written += 1
                if fid >= 0:
                    seen.add(fid)
                tag_counts[tags] = tag_counts.get(tags, 0) + 1
            t = tick_end
        writer.stats(first_us, last_us, written)
        writer.flush()
        summary.packets = written
        summary.bytes = writer.total
        summary.first_time = first_us / 1e6
        summary.last_time = last_us / 1e6
        for key_id in seen:
            key = self.flow_keys[key_id]
            summary.flow_keys.add(key)
            if key[0] == "tcp":
                summary.tcp_flows += 1
            elif key[0] == "udp":
                summary.udp_flows += 1
        summary.flows = len(summary.flow_keys)
        summary.midstream_tcp_flows = len(self.midstream & seen)
        for tags, count in tag_counts.items():
            summary.rtp_packets += count if tags & TAG_RTP else 0
            summary.sip_packets += count if tags & TAG_SIP else 0
            summary.dns_queries += count if tags & TAG_DNS_QUERY else 0
            summary.client_hellos += count if tags & TAG_CLIENT_HELLO else 0
            summary.split_client_hellos += count if tags & TAG_SPLIT_HELLO else 0
            summary.server_hellos += count if tags & TAG_SERVER_HELLO else 0
            summary.connects += count if tags & TAG_CONNECT else 0
            summary.ipv6_packets += count if tags & TAG_IPV6 else 0
            summary.icmp_packets += count if tags & TAG_ICMP else 0
        summary.calls_started = self.calls_started
        summary.seconds = time.perf_counter() - started
        return summary


def generate(
    packets: int,
    out: Path,
    fmt: str = "pcapng",
    seed: int = 1,
    calls: int = DEFAULT_CALLS,
    rtp_share: float = DEFAULT_RTP_SHARE,
    cloud_share: float = DEFAULT_CLOUD_SHARE,
    proxy_share: float = DEFAULT_PROXY_SHARE,
    scan_share: float = DEFAULT_SCAN_SHARE,
) -> Summary:
    """Write a capture of exactly `packets` packets to `out` and say what it holds."""
    if fmt not in ("pcap", "pcapng"):
        raise ValueError(f"format must be pcap or pcapng, not {fmt!r}")
    gen = Generator(seed, calls, rtp_share, cloud_share, proxy_share, scan_share)
    with out.open("wb") as fh:
        return gen.generate(packets, fh, fmt, str(out))


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--packets", type=int, required=True, help="exact number of packets")
    parser.add_argument("--out", type=Path, required=True, help="capture file to write")
    parser.add_argument("--format", choices=("pcap", "pcapng"), default="pcapng")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS, help="concurrent calls")
    parser.add_argument(
        "--rtp-share",
        type=_fraction,
        default=DEFAULT_RTP_SHARE,
        help="share of packets that are RTP media",
    )
    parser.add_argument(
        "--cloud-share",
        type=_fraction,
        default=DEFAULT_CLOUD_SHARE,
        help="share of new TLS sessions that go to the Imagicle cloud (0: none)",
    )
    parser.add_argument(
        "--proxy-share",
        type=_fraction,
        default=DEFAULT_PROXY_SHARE,
        help="share of cloud sessions tunnelled through the proxy (CONNECT)",
    )
    parser.add_argument(
        "--scan-share",
        type=_fraction,
        default=DEFAULT_SCAN_SHARE,
        help="share of non-media traffic that is a SYN scan from outside (a flow per probe)",
    )
    args = parser.parse_args(argv)
    if args.packets < 1 or args.calls < 1 or not 0 < args.rtp_share < 1:
        parser.error("--packets and --calls must be positive, --rtp-share between 0 and 1")
    summary = generate(
        args.packets,
        args.out,
        args.format,
        args.seed,
        args.calls,
        args.rtp_share,
        args.cloud_share,
        args.proxy_share,
        args.scan_share,
    )
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
