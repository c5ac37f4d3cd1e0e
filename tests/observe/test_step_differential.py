"""Differential fuzz: the compiled per-packet step concludes what the pure-Python one does.

The compiled step (observe/_step.pyx, _flows.pyx, decode/_hello.pyx, _walk.pyx) takes the
usual cases itself (`_usual_hello`, `_hello_begins`/`_hello_more`, `_known_first`/`_request`,
`_syn`, `_quick`, segments whose sound header ends where the bytes do) and hands everything
else to the Python inspector; divergence hides at those boundaries. A seeded
`random.Random` builds CASES small web/API-like captures (a few to ~300 frames, 130 on
average) mixing TLS sessions direct and through an HTTP proxy (the same CONNECT bytes on
many connections, and variants: another host, a lowercase method, extra headers, a 407 and a
second CONNECT, an answer split over segments, the answer or the request sharing its segment
with a hello, no answer at all, a request of ~1024 bytes, the memo's bound), ClientHellos
whole or cut into 2..6 segments and now and then 10..20 (cuts inside the record and
handshake headers), record lengths that lie, several records, damaged header bytes, ECH,
HelloRetryRequests, no SNI, TLS 1.2 and 1.3, a hello in the SYN (Fast Open); retransmitted
and reordered segments, SYNs repeated with the same or another ISN before or after the
SYN-ACK, 5-tuples reused after FIN, RST or 130 s of silence, RST in the middle of a hello,
TCP options sound and not, data offsets that lie, IPv4 and IPv6, VLAN tags, IP options and
IPv6 extension headers (frames the hot path leaves to the general path, even inside one
connection), LDAP StartTLS, other first payloads (HTTP/2, SSH, text), plain HTTP requests,
DNS over UDP, RTP-like UDP, ARP and ICMP. Then a share of the captures has one to three bytes
changed in one to three frames, and some are written cut short by a snap length, padded to
Ethernet's minimum, in two files, with damaged record headers, cut inside the last record,
or as pcapng with direction flags. Each capture is observed with the compiled step and with
the pure-Python one (tests/compiled_paths.py `pure_python`): every fact the observe tests
compare (tests/observe/conftest.py `facts`) must be the same, and neither may raise.

A failure names the seed, the case and the first differing records field by field. One case
again: `.venv/bin/python -m tests.observe.test_step_differential CASE [SEED [DIRECTORY]]`
prints its difference (and keeps its files in DIRECTORY), `check_case(CASE, directory)` does
it from Python, `build_case(CASE).files()` gives the capture files' bytes.
`test_the_fuzz_reaches_the_compiled_paths` checks that the cases keep reaching every fast
path (generator drift would quietly make the comparison toothless).
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import itertools
import struct
import sys
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import pytest

from conformance.errors import CaptureError
from conformance.observe import ingest
from conformance.observe.builder import observe_captures
from conformance.observe.flows import FlowTable
from conformance.observe.payloads import PayloadInspector
from conformance.observe.records import CAPTURE_PARTS, Observations
from tests.byte_mutations import change_bytes
from tests.capture_files import INBOUND, OUTBOUND, Epb, pcap_bytes, pcapng_section
from tests.compiled_paths import COMPILED_STEP, pure_python
from tests.observe.conftest import facts

pytestmark = pytest.mark.skipif(not COMPILED_STEP, reason="the compiled step is not built")

SEED = 20260529
CASES = 5000  # captures in the whole fuzz
CHUNKS = 8  # pytest cases it is cut into: `.../test_step_differential.py::test_differential[3]`
MUTATED_SHARE = 0.3  # captures that get one to three frames' bytes changed
START = 1_700_000_000.0

Item = tuple[float, bytes]  # (seconds since the previous frame; < 0: the default), frame

# --- frames, by hand (scapy is too slow for thousands of captures) ------------------------

_MAC_CLIENT = bytes.fromhex("02000000000a")
_MAC_GATEWAY = bytes.fromhex("020000000001")
_ETH_IPV4, _ETH_IPV6, _ETH_VLAN = 0x0800, 0x86DD, 0x8100
_TCP, _UDP = 6, 17
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def _ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


CLIENTS4 = (_ip("192.0.2.10"), _ip("192.0.2.11"))
CLIENTS6 = (_ip("2001:db8:1::10"), _ip("2001:db8:1::11"))
PROXY4, PROXY6 = _ip("192.0.2.80"), _ip("2001:db8:1::80")
RESOLVER4, RESOLVER6 = _ip("192.0.2.53"), _ip("2001:db8:1::53")
HOSTS = ("api.imagicle.com", "grpc.imagicle.com", "updates.example.net", "a.example")
SERVERS4 = {h: _ip(f"198.51.100.{i + 7}") for i, h in enumerate(HOSTS)}
SERVERS6 = {h: _ip(f"2001:db8:ffff::{i + 7}") for i, h in enumerate(HOSTS)}
# TCP options: a SYN's usual list, timestamps, SACK blocks, and lists that do not parse.
SYN_OPTIONS = (
    bytes.fromhex("020405b4") + bytes.fromhex("0402080a0000000100000000") + b"\x01\x03\x03\x07"
)
TIMESTAMPS = bytes.fromhex("0101080a0000000a0000000b")
SACK = bytes.fromhex("0101050a000003e8000007d0")
BAD_OPTIONS = (
    b"\x00\x01\x00\x00",  # not zero padding after the end of the list
    b"\x02\x08\x05\xb4",  # an MSS whose length runs past the header
    b"\x01\x01\x01\x05",  # a kind with no room for its length
    b"\x08\x01\x00\x00",  # a length below 2
)


def ethernet(payload: bytes, ethertype: int, vlans: Sequence[int], to_server: bool) -> bytes:
    """An Ethernet frame, with 802.1Q tags when `vlans` names some."""
    macs = _MAC_GATEWAY + _MAC_CLIENT if not to_server else _MAC_CLIENT + _MAC_GATEWAY
    tags = b"".join(struct.pack("!HH", _ETH_VLAN, vlan) for vlan in vlans)
    return macs + tags + struct.pack("!H", ethertype) + payload


def ipv4(src: bytes, dst: bytes, proto: int, l4: bytes, ident: int, options: bytes = b"") -> bytes:
    """An IPv4 packet (checksum 0: nothing here checks it)."""
    size = 20 + len(options) + len(l4)
    vihl = 0x40 | (5 + len(options) // 4)
    head = struct.pack("!BBHHHBBH4s4s", vihl, 0, size, ident, 0x4000, 64, proto, 0, src, dst)
    return head + options + l4


def ipv6(src: bytes, dst: bytes, proto: int, l4: bytes, hop_by_hop: bool = False) -> bytes:
    """An IPv6 packet, with an empty hop-by-hop header (the general path's) if asked."""
    if hop_by_hop:
        l4 = bytes([proto, 0]) + b"\x01\x04" + bytes(4) + l4
        proto = 0
    return struct.pack("!IHBB16s16s", 0x6000_0000, len(l4), proto, 64, src, dst) + l4


def tcp_segment(
    ports: tuple[int, int],
    seq: int,
    ack: int,
    flags: int,
    options: bytes = b"",
    payload: bytes = b"",
    offset: int | None = None,
) -> bytes:
    """A TCP segment; `offset` (32-bit words) overrides the data offset the options give."""
    options += b"\x00" * (-len(options) % 4)
    words = (20 + len(options)) // 4 if offset is None else offset
    head = struct.pack(
        "!HHIIBBHHH", *ports, seq & 0xFFFF_FFFF, ack & 0xFFFF_FFFF, words << 4, flags, 65535, 0, 0
    )
    return head + options + payload


def udp_datagram(ports: tuple[int, int], payload: bytes) -> bytes:
    return struct.pack("!HHHH", *ports, 8 + len(payload), 0) + payload


# --- TLS messages --------------------------------------------------------------------------

_HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
_SUITES = (0x1301, 0x1302, 0x1303, 0xC02F, 0xC030, 0xCCA8, 0x009C, 0x0A0A)


def _ext(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def _handshake(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def client_hello_message(rng: Random, sni: str | None, tls13: bool, ech: bool) -> bytes:
    """A ClientHello handshake message: SNI, versions, ALPN, groups, ECH, padding at random."""
    exts = []
    if sni is not None:
        name = sni.encode()
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        exts.append(_ext(0, struct.pack("!H", len(entry)) + entry))
    exts.append(_ext(10, bytes.fromhex("0004001d0017")))  # supported_groups
    if tls13:
        versions = b"\x03\x04\x03\x03" if rng.random() < 0.7 else b"\x7a\x7a\x03\x04\x03\x03"
        exts.append(_ext(43, bytes([len(versions)]) + versions))
        exts.append(_ext(51, struct.pack("!HHH", 36, 0x001D, 32) + bytes(32)))  # key_share
    if rng.random() < 0.7:
        alpn = rng.choice((b"\x02h2\x08http/1.1", b"\x08http/1.1", b"\x02h2"))
        exts.append(_ext(16, struct.pack("!H", len(alpn)) + alpn))
    if ech:
        body = b"\x00\x00\x01\x00\x01" + bytes([rng.randrange(256)]) + b"\x00\x20" + bytes(32)
        body += struct.pack("!H", 120) + bytes(range(120))
        exts.append(_ext(0xFE0D, body))
    if rng.random() < 0.2:
        exts.append(_ext(21, bytes(rng.choice((1, 50, 300, 600)))))  # padding
    if rng.random() < 0.3:
        rng.shuffle(exts)
    suites = rng.sample(_SUITES, rng.randint(1, len(_SUITES)))
    session = bytes(rng.choice((0, 32)))
    body = (
        b"\x03\x03"
        + rng.randbytes(32)
        + bytes([len(session)])
        + session
        + struct.pack("!H", 2 * len(suites))
        + b"".join(struct.pack("!H", s) for s in suites)
        + b"\x01\x00"
    )
    joined = b"".join(exts)
    return _handshake(1, body + struct.pack("!H", len(joined)) + joined)


def server_hello_message(rng: Random, tls13: bool, retry: bool = False) -> bytes:
    """A ServerHello (or HelloRetryRequest) handshake message."""
    exts = b""
    if tls13 or retry:
        exts += _ext(43, b"\x03\x04")
        exts += _ext(51, b"\x00\x1d" if retry else struct.pack("!HH", 0x001D, 32) + bytes(32))
    if retry and rng.random() < 0.3:
        exts += _ext(0xFE0D, bytes(8))  # the ECH confirmation
    suite = rng.choice((0x1301, 0x1302)) if tls13 or retry else rng.choice((0xC02F, 0x009C))
    body = (
        b"\x03\x03"
        + (_HRR_RANDOM if retry else rng.randbytes(32))
        + b"\x00"
        + struct.pack("!H", suite)
        + b"\x00"
    )
    if exts or rng.random() < 0.5:
        body += struct.pack("!H", len(exts)) + exts
    return _handshake(2, body)


def tls_records(rng: Random, message: bytes, server: bool) -> bytes:
    """The handshake message in records: mostly one, else cut over several, or a record
    whose length lies (more than is there, or less); sometimes more records after it."""
    version = rng.choice((b"\x03\x01", b"\x03\x03")) if not server else b"\x03\x03"
    if rng.random() < 0.03:
        version = rng.choice((b"\x03\x00", b"\x03\x04", b"\x03\x05", b"\x02\x00"))
    roll = rng.random()
    if roll < 0.7:
        out = b"\x16" + version + struct.pack("!H", len(message)) + message
    elif roll < 0.85:
        cuts = sorted(rng.sample(range(1, len(message)), rng.randint(1, 3)))
        bounds = zip((0, *cuts), (*cuts, len(message)), strict=True)
        out = b"".join(
            b"\x16" + version + struct.pack("!H", b - a) + message[a:b] for a, b in bounds
        )
    else:
        lie = rng.choice(
            (
                len(message) + rng.randint(1, 300),
                rng.randint(0, len(message) - 1),
                rng.choice((3, 4, 16384, 16385, 18432, 18433, 65535)),
            )
        )
        out = b"\x16" + version + struct.pack("!H", lie) + message
    if rng.random() < 0.15:
        out += b"\x14\x03\x03\x00\x01\x01"  # ChangeCipherSpec
    if rng.random() < 0.1:
        out += b"\x17\x03\x03\x00\x05hello"
    if rng.random() < 0.08:  # a byte of the headers or the first fields changed
        damaged = bytearray(out)
        for _ in range(rng.randint(1, 2)):
            at = rng.choice((rng.randrange(min(12, len(out))), rng.randrange(len(out))))
            damaged[at] = rng.choice((0x00, 0x01, 0x02, 0x03, 0x16, 0xFF, rng.randrange(256)))
        out = bytes(damaged)
    return out


def cut_points(rng: Random, size: int, pieces: int) -> list[int]:
    """Where to cut a payload of `size` bytes into `pieces`: often inside the 5-byte record
    header or the 4-byte handshake header, or a byte short of the end."""
    points: set[int] = set()
    for _ in range(pieces - 1):
        roll = rng.random()
        if roll < 0.25:
            at = rng.randint(1, 4)
        elif roll < 0.45:
            at = rng.randint(5, 9)
        elif roll < 0.55:
            at = size - rng.randint(1, 3)
        else:
            at = rng.randint(1, max(1, size - 1))
        if 0 < at < size:
            points.add(at)
    return sorted(points)


# --- connections -----------------------------------------------------------------------------


@dataclass
class Tcp:
    """One TCP connection's frames, client and server ends, with per-frame oddities."""

    rng: Random
    out: list[Item]
    v6: bool
    client: bytes
    server: bytes
    ports: tuple[int, int]  # client's, server's
    vlans: tuple[int, ...] = ()
    timestamps: bool = False
    odd: float = 0.03  # per frame: a VLAN tag, IP options, bad TCP options, a lying offset
    seq: dict[bool, int] = field(default_factory=dict)
    ident: int = 1

    def __post_init__(self) -> None:
        if not self.seq:
            self.seq = {True: self.rng.getrandbits(32), False: self.rng.getrandbits(32)}

    def frame(
        self, from_client: bool, flags: int, payload: bytes = b"", seq: int | None = None
    ) -> bytes:
        rng = self.rng
        options = b""
        offset = None
        if flags & SYN:
            options = SYN_OPTIONS if rng.random() < 0.6 else b""
        elif self.timestamps:
            options = rng.choice((TIMESTAMPS, TIMESTAMPS, SACK))
        if rng.random() < self.odd:
            options = rng.choice(BAD_OPTIONS) + rng.choice((b"", TIMESTAMPS))
        if rng.random() < self.odd / 2:
            offset = rng.choice((0, 1, 4, 6, 8, 15))
        ports = self.ports if from_client else self.ports[::-1]
        ack = self.seq[not from_client] if flags & ACK else 0
        at = self.seq[from_client] if seq is None else seq
        segment = tcp_segment(ports, at, ack, flags, options, payload, offset)
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        vlans = self.vlans if rng.random() >= self.odd else (*self.vlans, rng.randrange(1, 4095))
        self.ident += 1
        if self.v6:
            packet = ipv6(src, dst, _TCP, segment, hop_by_hop=rng.random() < self.odd / 2)
            return ethernet(packet, _ETH_IPV6, vlans, from_client)
        ip_options = b"\x01\x01\x01\x00" if rng.random() < self.odd / 2 else b""
        packet = ipv4(src, dst, _TCP, segment, self.ident, ip_options)
        return ethernet(packet, _ETH_IPV4, vlans, from_client)

    def emit(self, from_client: bool, flags: int, payload: bytes = b"", gap: float = -1) -> None:
        self.out.append((gap, self.frame(from_client, flags, payload)))
        self.seq[from_client] += len(payload) + (1 if flags & (SYN | FIN) else 0)

    def handshake(self, gap: float = -1) -> None:
        """SYN, SYN-ACK, ACK; sometimes a SYN sent again (same or another ISN, before or
        after the answer), sometimes no handshake at all (the capture began later)."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.05:
            return
        isn = self.seq[True]
        self.emit(True, SYN, gap=gap)
        if roll < 0.15:
            self.seq[True] = isn if rng.random() < 0.5 else rng.getrandbits(32)
            self.emit(True, SYN)
        self.emit(False, SYN | ACK)
        if roll > 0.92:
            self.seq[True] = isn if rng.random() < 0.5 else rng.getrandbits(32)
            self.emit(True, SYN)
            self.emit(False, SYN | ACK)
        self.emit(True, ACK)

    def send(self, from_client: bool, data: bytes, pieces: int = 1) -> None:
        """`data` in `pieces` segments; sometimes one is sent twice or two swap places."""
        rng = self.rng
        cuts = cut_points(rng, len(data), pieces) if pieces > 1 else []
        frames: list[bytes] = []
        for a, b in zip((0, *cuts), (*cuts, len(data)), strict=True):
            frames.append(self.frame(from_client, PSH | ACK, data[a:b]))
            self.seq[from_client] += b - a
        if len(frames) > 1 and rng.random() < 0.08:
            i = rng.randrange(len(frames) - 1)
            frames[i], frames[i + 1] = frames[i + 1], frames[i]
        if rng.random() < 0.08:
            i = rng.randrange(len(frames))
            frames.insert(rng.randint(i + 1, len(frames)), frames[i])
        self.out.extend((-1, f) for f in frames)
        if rng.random() < 0.5:
            self.emit(not from_client, ACK)

    def close(self) -> None:
        roll = self.rng.random()
        if roll < 0.05:  # the last bytes with the FIN
            self.emit(True, FIN | PSH | ACK, b"\x15\x03\x03\x00\x02\x01\x00")
            self.emit(False, FIN | ACK)
        elif roll < 0.5:
            self.emit(True, FIN | ACK)
            self.emit(False, FIN | ACK)
            self.emit(True, ACK)
        elif roll < 0.65:
            self.emit(True, RST | ACK)
        elif roll < 0.75:
            self.emit(False, RST)

    def again(self) -> Tcp:
        """The same 5-tuple's next connection (the same ISN now and then)."""
        seq = {True: self.seq[True], False: self.rng.getrandbits(32)}
        if self.rng.random() < 0.7:
            seq[True] = self.rng.getrandbits(32)
        return dataclasses.replace(self, seq=seq)


# --- sessions ------------------------------------------------------------------------------


@dataclass
class Pools:
    """What repeats inside one capture (the inspector remembers first payloads)."""

    connects: list[bytes]
    answers: list[bytes]
    requests: list[bytes]


def connect_request(rng: Random, host: str, auth: bool = False) -> bytes:
    """A CONNECT request; now and then padded to about the 1024 bytes up to which the
    inspector remembers first payloads (FIRST_PAYLOAD_MEMO_BYTES)."""
    head = _connect_head(rng, host, auth)
    if rng.random() < 0.05:
        size = len(head) + len("X-Pad: \r\n")
        pad = "p" * max(0, rng.randint(1021, 1027) - size)
        head = head[:-2] + f"X-Pad: {pad}\r\n\r\n".encode()
    return head


def _connect_head(rng: Random, host: str, auth: bool) -> bytes:
    method = "CONNECT" if rng.random() < 0.85 else "connect"
    head = [f"{method} {host}:443 HTTP/1.1"]
    if rng.random() < 0.9:
        head.append(f"Host: {host}:443")
    if rng.random() < 0.3:
        head.append("User-Agent: ucx-agent/1.0")
    if rng.random() < 0.2:
        head.append("Proxy-Connection: keep-alive")
    if auth:
        head.append("Proxy-Authorization: Basic dXNlcjpwYXNz")
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def http_request(rng: Random, host: str) -> bytes:
    path = rng.choice(("/", "/v1/telemetry/beat", "/v1/licensing/poll", "/health"))
    if rng.random() < 0.6:
        return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n".encode()
    body = b'{"beat": 1}'
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def make_pools(rng: Random) -> Pools:
    connects = [connect_request(rng, rng.choice(HOSTS)) for _ in range(rng.randint(1, 3))]
    answers = [
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nProxy-Agent: squid\r\n\r\n",
    ]
    requests = [http_request(rng, rng.choice(HOSTS)) for _ in range(rng.randint(1, 3))]
    return Pools(connects, answers, requests)


def pieces(rng: Random) -> int:
    """Segments for a payload: mostly one, else 2..6, now and then 10..20 (past the bound
    of segments a hello may span)."""
    roll = rng.random()
    return 1 if roll < 0.55 else rng.randint(2, 6) if roll < 0.97 else rng.randint(10, 20)


def tls_exchange(c: Tcp, rng: Random, first: bytes = b"", answer: bytes = b"") -> bool:
    """ClientHello, ServerHello (maybe after a HelloRetryRequest and a second ClientHello),
    then a little application data. `first`/`answer`: bytes sent before the client's hello
    and the server's in the same segment. False when a RST cut the hello short."""
    tls13 = rng.random() < 0.7
    sni = rng.choice(HOSTS) if rng.random() < 0.85 else None
    ech = rng.random() < 0.1
    hello = tls_records(rng, client_hello_message(rng, sni, tls13, ech), server=False)
    if rng.random() < 0.04:
        hello = hello[: rng.randint(1, max(1, len(hello) - 1))]  # the rest never comes
    if rng.random() < 0.05:  # RST in the middle of the hello
        c.send(True, first + hello[: rng.randint(1, max(1, len(hello) - 1))], pieces(rng))
        c.emit(rng.random() < 0.5, RST | ACK)
        return False
    if rng.random() < 0.03:  # a byte or two before the hello (a keep-alive, junk)
        c.send(True, rng.choice((b"\x00", b"\x16", b"\x16\x03", b"A")))
    c.send(True, first + hello, pieces(rng))
    if rng.random() < 0.1:
        retry = tls_records(rng, server_hello_message(rng, True, retry=True), server=True)
        c.send(False, answer + retry, pieces(rng))
        answer = b""
        again = client_hello_message(rng, sni, True, ech)
        c.send(True, tls_records(rng, again, server=False), pieces(rng))
    if rng.random() < 0.9:
        reply = tls_records(rng, server_hello_message(rng, tls13), server=True)
        c.send(False, answer + reply, pieces(rng))
    for _ in range(rng.randint(0, 3)):
        c.send(rng.random() < 0.5, b"\x17\x03\x03\x00\x10" + rng.randbytes(16))
    return True


def direct_tls(c: Tcp, rng: Random, _pools: Pools) -> None:
    if rng.random() < 0.04:  # TCP Fast Open: the ClientHello in the SYN
        hello = tls_records(rng, client_hello_message(rng, rng.choice(HOSTS), True, False), False)
        c.emit(True, SYN, hello)
        c.emit(False, SYN | ACK)
        c.send(False, tls_records(rng, server_hello_message(rng, True), server=True))
        c.close()
        return
    c.handshake()
    if tls_exchange(c, rng):
        c.close()


def proxy_tls(c: Tcp, rng: Random, pools: Pools) -> None:
    """CONNECT (mostly a request this capture repeats), the proxy's answer, then TLS."""
    c.handshake()
    request = rng.choice(pools.connects) if rng.random() < 0.8 else connect_request(rng, "x.test")
    answer = rng.choice(pools.answers)
    if rng.random() < 0.1:  # refused first, asked again with credentials
        c.send(True, request)
        c.send(False, b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
        request = connect_request(rng, rng.choice(HOSTS), auth=True)
    roll = rng.random()
    if roll < 0.1:  # the hello behind the request, in its segment
        if tls_exchange(c, rng, first=request, answer=answer):
            c.close()
        return
    c.send(True, request, 1 if rng.random() < 0.9 else 2)
    if roll < 0.25:  # the answer and the ServerHello in one segment, or no answer seen
        if tls_exchange(c, rng, answer=answer if roll < 0.2 else b""):
            c.close()
        return
    c.send(False, answer, 1 if roll < 0.9 else rng.randint(2, 3))
    if rng.random() < 0.05:  # plain HTTP inside the tunnel
        c.send(True, rng.choice(pools.requests))
        c.close()
        return
    if tls_exchange(c, rng):
        c.close()


def plain_http(c: Tcp, rng: Random, pools: Pools) -> None:
    c.handshake()
    for _ in range(rng.randint(1, 3)):
        c.send(True, rng.choice(pools.requests), 1 if rng.random() < 0.85 else 2)
        c.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
    c.close()


_STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
STARTTLS = (
    bytes((0x30, len(_STARTTLS_OID) + 7, 0x02, 0x01, 0x01, 0x77, len(_STARTTLS_OID) + 2, 0x80))
    + bytes((len(_STARTTLS_OID),))
    + _STARTTLS_OID
)
STARTTLS_OK = bytes.fromhex("300c02010178070a010004000400")
OTHER_FIRSTS = (
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.6\r\n",
    b"hello there\r\n",
    b"HTTP/1.1 200 Connection established\r\n\r\n",  # an answer where a request goes
)


def ldap_starttls(c: Tcp, rng: Random, _pools: Pools) -> None:
    """LDAP's StartTLS request and its answer, then TLS on the same connection."""
    c.handshake()
    c.send(True, STARTTLS)
    c.send(False, STARTTLS_OK)
    if tls_exchange(c, rng):
        c.close()


def other_first(c: Tcp, rng: Random, pools: Pools) -> None:
    """A first payload of another kind (HTTP/2, SSH, text), then maybe a request or TLS."""
    c.handshake()
    c.send(True, rng.choice(OTHER_FIRSTS))
    c.send(False, rng.choice(OTHER_FIRSTS))
    if rng.random() < 0.5:
        c.send(True, rng.choice(pools.requests))
    elif tls_exchange(c, rng):
        c.close()


Session = Callable[[Tcp, Random, Pools], None]
SESSIONS: tuple[tuple[Session, float], ...] = (
    (direct_tls, 0.35),
    (proxy_tls, 0.4),
    (plain_http, 0.15),
    (ldap_starttls, 0.04),
    (other_first, 0.06),
)


def connection(rng: Random, ports: Iterator[int], pools: Pools) -> list[Item]:
    """One TCP 5-tuple's frames: a session, and maybe more on the same 5-tuple after it
    (at once, or after it was idle past TCP_REUSE_IDLE_S)."""
    out: list[Item] = []
    v6 = rng.random() < 0.25
    kind = _session(rng)
    if kind is proxy_tls:
        server, port = (PROXY6 if v6 else PROXY4), rng.choice((3128, 8080))
    else:
        server = (SERVERS6 if v6 else SERVERS4)[rng.choice(HOSTS)]
        port = 443 if kind is direct_tls else 389 if kind is ldap_starttls else 0
        port = port or rng.choice((80, 443, 8080))
    c = Tcp(
        rng,
        out,
        v6,
        rng.choice(CLIENTS6 if v6 else CLIENTS4),
        server,
        (next(ports), port),
        vlans=(rng.randrange(1, 4095),) if rng.random() < 0.1 else (),
        timestamps=rng.random() < 0.4,
        odd=rng.choice((0.0, 0.0, 0.03, 0.15, 0.5)),
    )
    kind(c, rng, pools)
    while rng.random() < 0.25:
        c = c.again()
        begins = len(out)
        _session(rng)(c, rng, pools)
        if begins < len(out) and rng.random() < 0.3:
            out[begins] = (130.0, out[begins][1])
    return out


def _session(rng: Random) -> Session:
    return rng.choices([s for s, _ in SESSIONS], [w for _, w in SESSIONS])[0]


def dns_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def dns_lookup(rng: Random, ports: Iterator[int]) -> list[Item]:
    """A query over UDP and (mostly) its answer: A or AAAA, sometimes NXDOMAIN."""
    v6 = rng.random() < 0.25
    client, resolver = (CLIENTS6[0], RESOLVER6) if v6 else (CLIENTS4[0], RESOLVER4)
    host = rng.choice(HOSTS)
    qtype = rng.choice((1, 28))
    txid = rng.getrandbits(16)
    question = dns_name(host) + struct.pack("!HH", qtype, 1)
    query = struct.pack("!HHHHHH", txid, 0x0100, 1, 0, 0, 0) + question
    port = next(ports)
    out = [(-1.0, _udp_frame(v6, client, resolver, (port, 53), query, True))]
    if rng.random() < 0.85:
        address = (SERVERS6 if qtype == 28 else SERVERS4)[host]
        rcode = 3 if rng.random() < 0.1 else 0
        answer = b"" if rcode else b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 300, len(address))
        reply = struct.pack("!HHHHHH", txid, 0x8180 | rcode, 1, 0 if rcode else 1, 0, 0)
        reply += question + (answer + address if not rcode else b"")
        out.append((-1.0, _udp_frame(v6, resolver, client, (53, port), reply, False)))
    return out


def _udp_frame(
    v6: bool, src: bytes, dst: bytes, ports: tuple[int, int], payload: bytes, out: bool
) -> bytes:
    datagram = udp_datagram(ports, payload)
    if v6:
        return ethernet(ipv6(src, dst, _UDP, datagram), _ETH_IPV6, (), out)
    return ethernet(ipv4(src, dst, _UDP, datagram, 7), _ETH_IPV4, (), out)


def media(rng: Random, ports: Iterator[int]) -> list[Item]:
    """A short RTP-like UDP stream (the hot path's commonest packet)."""
    port = next(ports)
    return [
        (-1.0, _udp_frame(False, CLIENTS4[1], SERVERS4[HOSTS[3]], (port, 5004), payload, True))
        for payload in (b"\x80\x00" + rng.randbytes(30) for _ in range(rng.randint(2, 8)))
    ]


def control(rng: Random) -> list[Item]:
    """ARP, ICMP echo and its reply (v4, v6), and an ICMP error quoting a TCP SYN: frames the
    compiled step settles itself (`_quick`) or leaves to the general path."""
    client, server = CLIENTS4[0], SERVERS4[HOSTS[0]]
    arp = bytes.fromhex("0001080006040001") + _MAC_CLIENT + client + bytes(6) + server
    echo = b"\x08\x00\x00\x00\x12\x34\x00\x01" + rng.randbytes(16)
    reply = b"\x00" + echo[1:]
    syn = ipv4(client, server, _TCP, tcp_segment((40001, 443), 1000, 0, SYN), 9)
    unreachable = b"\x03\x03\x00\x00\x00\x00\x00\x00" + syn[:28]
    echo6 = b"\x80\x00\x00\x00\x12\x34\x00\x01" + rng.randbytes(8)
    frames = [
        ethernet(arp, 0x0806, (), True),
        ethernet(ipv4(client, server, 1, echo, 3), _ETH_IPV4, (), True),
        ethernet(ipv4(server, client, 1, reply, 4), _ETH_IPV4, (), False),
        ethernet(syn, _ETH_IPV4, (), True),
        ethernet(ipv4(server, client, 1, unreachable, 5), _ETH_IPV4, (), False),
        ethernet(ipv6(CLIENTS6[0], SERVERS6[HOSTS[0]], 58, echo6), _ETH_IPV6, (), True),
        ethernet(
            ipv6(SERVERS6[HOSTS[0]], CLIENTS6[0], 58, b"\x81" + echo6[1:]), _ETH_IPV6, (), False
        ),
    ]
    return [(-1.0, f) for f in rng.sample(frames, rng.randint(1, len(frames)))]


def interleave(rng: Random, chains: list[list[Item]]) -> list[tuple[float, bytes]]:
    """The chains' frames in one capture, each chain in its order, with times."""
    chains = [list(reversed(c)) for c in chains if c]
    out: list[tuple[float, bytes]] = []
    t = START
    while chains:
        i = rng.randrange(len(chains))
        gap, frame = chains[i].pop()
        if not chains[i]:
            chains.pop(i)
        t += gap if gap >= 0 else rng.choice((0.0001, 0.001, 0.02))
        if rng.random() < 0.003:
            t -= 0.5  # a step back in time
        out.append((t, frame))
    return out


_INTERESTING = (0x00, 0x01, 0x02, 0x04, 0x05, 0x0F, 0x10, 0x16, 0x40, 0x45, 0x7F, 0x80, 0xFF)


def mutate(rng: Random, frames: list[tuple[float, bytes]]) -> None:
    """One to three frames get one to three bytes changed past their MAC addresses."""
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(frames))
        t, frame = frames[i]
        data = bytearray(frame)
        change_bytes(data, 12, len(data), rng, _INTERESTING)
        frames[i] = (t, bytes(data))


@dataclass
class Case:
    """One fuzz case: its frames, and how they are written (one or two capture files)."""

    frames: list[tuple[float, bytes]]
    snaplen: int = 262144
    split: int = 0  # frames from here on go to a second file (0: one file)
    damage: list[tuple[int, int]] = field(default_factory=list)  # (offset, byte) in file 0
    cut: int = 0  # bytes cut off the end of the last file
    pcapng: bool = False  # pcapng, each packet with its direction (epb_flags), not pcap
    flag_errors: float = 0.0  # share of packets whose direction flag is wrong or absent

    def files(self) -> list[bytes]:
        parts = (
            [self.frames[: self.split], self.frames[self.split :]] if self.split else [self.frames]
        )
        out = [bytearray(self._file(part, i)) for i, part in enumerate(parts)]
        for offset, value in self.damage:
            out[0][offset % len(out[0])] = value
        if self.cut:
            del out[-1][-self.cut :]
        return [bytes(data) for data in out]

    def _file(self, frames: list[tuple[float, bytes]], index: int) -> bytes:
        if not self.pcapng:
            return pcap_bytes(frames, snaplen=self.snaplen)
        rng = Random(index)
        records = []
        for t, frame in frames:
            flags: int | None = OUTBOUND if frame[6:12] == _MAC_CLIENT else INBOUND
            if rng.random() < self.flag_errors:
                flags = rng.choice((None, 0, INBOUND, OUTBOUND))
            records.append(Epb(frame, time=t, flags=flags))
        return pcapng_section(records)


def padded(rng: Random, frames: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """Frames shorter than Ethernet's minimum padded to 60 bytes (zeros, or a trailer)."""
    fill = b"\x00" if rng.random() < 0.7 else b"\xaa"
    return [(t, f + fill * (60 - len(f)) if len(f) < 60 else f) for t, f in frames]


def file_damage(
    rng: Random, frames: list[tuple[float, bytes]], snaplen: int
) -> list[tuple[int, int]]:
    """One or two bytes of pcap record headers changed (mostly their lengths)."""
    starts = []
    at = 24
    for _, frame in frames:
        starts.append(at)
        at += 16 + min(len(frame), snaplen)
    out = []
    for _ in range(rng.randint(1, 2)):
        where = rng.choice(starts) + rng.choice((0, 3, 8, 9, 10, 12, 13, 14))
        out.append((where, rng.choice((0x00, 0x01, 0x10, 0x7F, 0xFF, rng.randrange(256)))))
    return out


def build_case(case: int, seed: int = SEED) -> Case:
    """Case `case`: the same frames and files for the same seed and case."""
    rng = Random(f"{seed}-{case}")
    pools = make_pools(rng)
    ports = itertools.count(rng.randrange(40000, 50000))
    chains: list[list[Item]] = []
    for _ in range(rng.randint(2, 14)):
        roll = rng.random()
        if roll < 0.8:
            chains.append(connection(rng, ports, pools))
        elif roll < 0.9:
            chains.append(dns_lookup(rng, ports))
        elif roll < 0.95:
            chains.append(media(rng, ports))
        else:
            chains.append(control(rng))
    frames = interleave(rng, chains)
    if rng.random() < 0.3:
        frames = padded(rng, frames)
    if frames and rng.random() < MUTATED_SHARE:
        mutate(rng, frames)
    out = Case(frames)
    roll = rng.random()
    if roll < 0.05:
        out.snaplen = rng.randint(54, 200)  # frames cut short by the capture
    elif roll < 0.1 and len(frames) > 1:
        out.split = rng.randrange(1, len(frames))  # two files, one after the other
    elif roll < 0.14:
        out.damage = file_damage(rng, frames, out.snaplen)
    elif roll < 0.16:
        out.cut = rng.randint(1, 40)
    if rng.random() < 0.2:
        out.pcapng, out.flag_errors = True, rng.choice((0.0, 0.1))
        out.damage = []  # (offsets are a pcap's)
    return out


# --- observing both ways, and saying what differs ------------------------------------------


def _records(obs: Observations, part: str) -> tuple[object, ...]:
    return tuple(getattr(obs, part))


def _fields(a: object, b: object) -> str:
    """The fields two records differ in, by name (floats to the microsecond)."""
    if not (dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b)) or type(a) is not type(b):
        return f"compiled {_short(a)}\n      pure     {_short(b)}"
    shown = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, float) and isinstance(y, float):
            x, y = round(x, 6), round(y, 6)
        if x != y:
            shown.append(f"{f.name}: {_delta(x, y)}")
    where = [
        f"{n}={getattr(a, n)!r}" for n in ("flow_id", "packet", "first_packet") if hasattr(a, n)
    ]
    return f"{' '.join(where)}: " + "; ".join(shown or [f"(same fields) {a!r}"])


def _delta(x: object, y: object) -> str:
    """Two differing values: of tuples, the items only one of them holds."""
    if isinstance(x, tuple) and isinstance(y, tuple) and (x or y):
        ours = [item for item in x if item not in y]
        theirs = [item for item in y if item not in x]
        if ours or theirs:
            return f"only compiled {_short(ours)} / only pure {_short(theirs)}"
    return f"compiled {_short(x)} / pure {_short(y)}"


def _short(value: object, size: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= size else text[:size] + "..."


def difference(compiled: Observations, pure: Observations, limit: int = 4) -> str:
    """What differs between the two observations' facts, part by part, record by record."""
    ours, theirs = facts(compiled), facts(pure)
    assert isinstance(ours, tuple) and isinstance(theirs, tuple)
    lines = []
    for part, a, b in zip(CAPTURE_PARTS, ours, theirs, strict=True):
        if a == b:
            continue
        left, right = _records(compiled, part), _records(pure, part)
        lines.append(f"{part}: compiled {len(left)}, pure {len(right)}")
        shown = 0
        for i, (x, y, fx, fy) in enumerate(itertools.zip_longest(left, right, a, b)):
            if fx == fy:
                continue
            lines.append(f"  [{i}] " + _fields(x, y))
            shown += 1
            if shown >= limit:
                break
    return "\n".join(lines)


def observe_both(files: Sequence[bytes], path: Path) -> str:
    """'' when both steps conclude the same from the capture files' bytes, else what differs
    or raised (the files are written to `path`, `path` with suffix .2.pcap, ...)."""
    paths = []
    for i, data in enumerate(files):
        paths.append(path if not i else path.with_suffix(f".{i + 1}{path.suffix}"))
        paths[-1].write_bytes(data)
    results: list[Observations | str] = []
    for run in (_compiled, _pure):
        try:
            results.append(run(paths))
        except CaptureError as err:  # a file header that is none: refused either way
            results.append(f"CaptureError: {err}")
        except Exception:  # the property under test: nothing raises, whatever the bytes
            results.append(traceback.format_exc(limit=-4))
    compiled, pure = results
    if isinstance(compiled, str) and compiled == pure and compiled.startswith("CaptureError"):
        return ""
    if isinstance(compiled, str) or isinstance(pure, str):
        return f"raised:\ncompiled: {compiled if isinstance(compiled, str) else 'ok'}\n" + (
            f"pure: {pure if isinstance(pure, str) else 'ok'}"
        )
    if facts(compiled) == facts(pure):
        return ""
    return difference(compiled, pure)


def _compiled(paths: list[Path]) -> Observations:
    return observe_captures(paths)


def _pure(paths: list[Path]) -> Observations:
    with pure_python():
        return observe_captures(paths)


def check_case(case: int, directory: Path, seed: int = SEED) -> str:
    """'' when case `case` is observed alike both ways, else the case and what differs."""
    found = observe_both(build_case(case, seed).files(), directory / f"case-{case}.pcap")
    return f"seed {seed} case {case}:\n{found}" if found else ""


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_differential(chunk: int, tmp_path: Path) -> None:
    """Every case of this chunk: the compiled and the pure-Python step agree."""
    failures = []
    for case in range(chunk, CASES, CHUNKS):
        found = check_case(case, tmp_path)
        if found:
            failures.append(found)
        for path in tmp_path.glob(f"case-{case}.*"):
            path.unlink()
    assert not failures, f"{len(failures)} cases differ; the first ones:\n" + "\n\n".join(
        failures[:3]
    )


def _payload_kind(segment: bytes) -> str:
    """What a TCP segment the compiled step read itself carries (see the test below)."""
    payload = segment[(segment[12] >> 4) * 4 :]
    if not payload:
        return "no payload"
    if payload[0] == 0x16 and len(payload) > 8 and payload[5] in (1, 2):
        need = 9 + int.from_bytes(payload[6:9], "big")
        if payload[5] == 2:
            return "ServerHello"
        return "ClientHello begun" if need > len(payload) else "ClientHello"
    if payload[:8].upper() == b"CONNECT ":
        return "CONNECT"
    if payload.startswith(b"HTTP/1."):
        return "proxy answer"
    if payload[:4] in (b"GET ", b"POST"):
        return "request"
    return "ClientHello continued"


def test_the_fuzz_reaches_the_compiled_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cases are worth comparing: on a tenth of them, the compiled step itself reads
    payloads of every kind its fast paths take (the pure step shows them to the inspector,
    the compiled one does not), and 5-tuples are reused (`_syn` retires connections)."""
    asked: list[int] = []
    inspect = PayloadInspector.inspect
    segments: dict[int, bytes] = {}

    def spy(self: PayloadInspector, *args: Any) -> None:
        _e, proto, _key, buf, l4, end, _time, packet = args
        if proto == _TCP:
            asked.append(packet)
            segments[packet] = bytes(buf[l4:end])
        inspect(self, *args)

    finish = FlowTable.finish
    retired: list[int] = []

    def finish_spy(self: FlowTable, *args: Any) -> Any:
        retired.append(len(self._retired))
        return finish(self, *args)

    monkeypatch.setattr(PayloadInspector, "inspect", spy)
    monkeypatch.setattr(FlowTable, "finish", finish_spy)
    taken: Counter[str] = Counter()
    for case in range(0, CASES, 10):
        path = tmp_path / "case.pcap"
        made = build_case(case)
        if len(made.files()) > 1:
            continue
        path.write_bytes(made.files()[0])
        asked.clear()
        segments.clear()
        with contextlib.suppress(CaptureError):
            observe_captures([path])
        compiled = set(asked)
        asked.clear()
        with pure_python(), contextlib.suppress(CaptureError):
            observe_captures([path])
        taken.update(_payload_kind(segments[n]) for n in set(asked) - compiled)
    kinds = (
        "ClientHello",  # _usual_hello
        "ServerHello",
        "ClientHello begun",  # _hello_begins
        "ClientHello continued",  # _hello_more
        "CONNECT",  # _known_first, _request
        "proxy answer",  # _known_first, the search
        "request",
        "no payload",  # _nothing_to_read
    )
    assert all(taken[kind] >= 10 for kind in kinds), taken
    assert sum(retired) >= 10, "too few reused 5-tuples"


def main(argv: Sequence[str]) -> int:
    """`python -m tests.observe.test_step_differential CASE [SEED [DIRECTORY]]`: that case's
    difference; with DIRECTORY its capture files stay there (case-CASE.pcap, ...)."""
    case = int(argv[0])
    seed = int(argv[1]) if len(argv) > 1 else SEED
    if len(argv) > 2:
        found = check_case(case, Path(argv[2]), seed)
    else:
        with tempfile.TemporaryDirectory() as directory:
            found = check_case(case, Path(directory), seed)
    print(found or f"seed {seed} case {case}: the same")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


@pytest.mark.parametrize("first", range(4))
def test_the_compiled_steps_hellos_are_numbered_by_either_finish(
    first: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hello the compiled step records names its flow by its direction's entry, which
    FlowTable.finish numbers: the Python finish (compiled step, flows.py's finish and
    builder's `_in_flows`) gives every hello the id the compiled one does, reused 5-tuples
    and retired connections included."""
    hellos = 0
    for case in range(first, CASES, 40):
        made = build_case(case)
        path = tmp_path / "case.pcap"
        path.write_bytes(made.files()[0])
        try:
            compiled = observe_captures([path])
        except CaptureError:
            continue
        with monkeypatch.context() as patched:
            patched.setattr(ingest, "_COMPILED_FLOWS", None)
            python_finish = observe_captures([path])
        assert facts(compiled) == facts(python_finish), difference(compiled, python_finish)
        hellos += len(compiled.client_hellos) + len(compiled.server_hellos)
    assert hellos
