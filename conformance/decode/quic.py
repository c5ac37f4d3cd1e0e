"""QUIC Initial packets: recognise them on any UDP port, decrypt them, read the hellos.

QUIC (RFC 9000) carries the TLS 1.3 handshake in CRYPTO frames. Its Initial packets
are encrypted, but with keys anyone can derive: the version's public salt and the
Destination Connection ID of the client's first Initial (RFC 9001 §5.2; RFC 9369
§3.3 for QUIC version 2). So a capture shows every QUIC connection's ClientHello
(SNI, ALPN, versions, ECH) and ServerHello, as it shows a TLS-over-TCP one.

One reader per UDP direction is fed that direction's datagram payloads in capture
order; the server's reader borrows the keys its client reader found:

    client = QuicClientReader()
    server = QuicServerReader(client)
    got = client.feed(payload)        # QuicDatagram: hellos completed, error if any
    for quic_hello in got.hellos: ...  # .hello is a tls.ClientHelloInfo
    if client.done: ...                # stop feeding: the Initial exchange is over

`looks_like_quic_initial(payload)` is the cheap test for a flow's first payload.

A ClientHello may span several Initial packets and datagrams, its CRYPTO frames may
come out of order, overlap or repeat, and an Initial may share its datagram with other
packets (RFC 9000 §12.2). Nothing trusts a length over the bytes present, and no
frame is read before the packet's AEAD tag verified: random UDP that happens to look
like a long header is reported (`QuicAuthError`), never taken for QUIC. Packet
protection uses `cryptography` (AES-128-GCM and AES-ECB header protection, RFC 9001
§5.3-5.4); nothing here implements a cipher.

Offsets in DecodeError are offsets in the datagram payload, except for errors in a
hello, whose offsets are in the Initial CRYPTO stream (the message says so).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from conformance.decode.errors import DecodeError
from conformance.decode.tls import (
    ClientHelloInfo,
    ServerHelloInfo,
    handshake_message_length,
    parse_client_hello_message,
    parse_server_hello_message,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import CipherContext

VERSION_NEGOTIATION = 0  # RFC 9000 §17.2.1
VERSION_1 = 0x0000_0001  # RFC 9000
VERSION_2 = 0x6B33_43CF  # RFC 9369 §3.1
# draft-ietf-quic-tls-23..32 shared v1's packet layout, types and labels; only the
# Initial salt differs (drafts 23-28 one salt, 29-32 another). Older drafts had other
# headers and are not read.
_DRAFTS_23_TO_28 = range(0xFF00_0017, 0xFF00_001D)
_DRAFTS_29_TO_32 = range(0xFF00_001D, 0xFF00_0021)

SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")  # RFC 9001 §5.2
SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")  # RFC 9369 §3.3.1
SALT_DRAFT_23 = bytes.fromhex("c3eef712c72ebb5a11a7d2432bb46365bef9f502")  # drafts 23-28
SALT_DRAFT_29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")  # drafts 29-32

# RFC 9000 §17.2: a version 1 connection ID is at most 20 bytes (and so in v2 and drafts).
MAX_CID_LENGTH = 20
# RFC 9001 §5.4.2: the header-protection sample is 16 bytes taken 4 bytes after the
# packet number's start, so a protected packet holds at least 20 bytes from there.
SAMPLE_LENGTH = 16
SAMPLE_OFFSET = 4
HEADER_FORM = 0x80  # long header (RFC 9000 §17.2)
FIXED_BIT = 0x40  # must be 1 (RFC 9000 §17.2; RFC 9287 lets it be greased only after
# the peer offered grease_quic_bit, which an Initial to a new server cannot rely on)
RESERVED_BITS = 0x0C  # long header, must be 0 after header protection is removed

# Bounds: what one direction of one UDP flow may cost.
# A ClientHello with post-quantum key shares and ECH is a few KiB; 64 KiB is as much
# as the TCP path keeps (observe/payloads.py MAX_HELLO_BYTES).
MAX_CRYPTO_BYTES = 65536
# Enough 1200-byte Initials to carry MAX_CRYPTO_BYTES, with room for retransmissions.
MAX_INITIAL_PACKETS = 64
# CRYPTO frames waiting for a gap before them to fill: real senders send in order.
MAX_CRYPTO_FRAGMENTS = 64
# Initial key contexts (client connection IDs) per direction: the first Initial's DCID,
# a Retry's, a second attempt or two on the same 4-tuple.
MAX_KEY_CONTEXTS = 4
# Datagrams a reader looks at in all; the Initial exchange takes a handful.
MAX_DATAGRAMS = 128
# Datagrams in a row without any Initial after which the Initial exchange is over
# (once a hello is complete, one such datagram is enough).
MAX_QUIET_DATAGRAMS = 8

# Long header packet types (RFC 9000 §17.2; RFC 9369 §3.2 moved them in v2).
INITIAL, ZERO_RTT, HANDSHAKE, RETRY = "Initial", "0-RTT", "Handshake", "Retry"
_V1_TYPES = (INITIAL, ZERO_RTT, HANDSHAKE, RETRY)
_V2_TYPES = (RETRY, INITIAL, ZERO_RTT, HANDSHAKE)

# Frame types allowed in an Initial packet (RFC 9000 §12.4, Table 3).
FRAME_PADDING = 0x00
FRAME_PING = 0x01
FRAME_ACK = 0x02
FRAME_ACK_ECN = 0x03
FRAME_CRYPTO = 0x06
FRAME_CONNECTION_CLOSE = 0x1C
FRAME_CONNECTION_CLOSE_APP = 0x1D  # not allowed in Initial (§12.5), but read alike

_NONZERO = re.compile(rb"[^\x00]")
_CLIENT_LABEL = b"client in"  # RFC 9001 §5.2
_SERVER_LABEL = b"server in"

HelloT = TypeVar("HelloT", ClientHelloInfo, ServerHelloInfo)


class QuicAuthError(DecodeError):
    """A packet that looks like a QUIC Initial but that no Initial key opens.

    Either not QUIC at all (other UDP that happens to look like a long header), an
    Initial whose keys come from a connection ID the capture did not show, or a
    corrupted packet. Counted as not understood, like any DecodeError.
    """


@dataclass(frozen=True, slots=True)
class QuicVersion:
    """What differs between the QUIC versions whose Initials this module reads."""

    version: int
    name: str
    salt: bytes
    types: tuple[str, str, str, str]  # packet type by the two type bits
    label_prefix: bytes  # HKDF labels: b"quic " (v1, drafts) or b"quicv2 " (RFC 9369 §3.3.2)


def _versions() -> dict[int, QuicVersion]:
    """Every supported version by number."""
    table = {
        VERSION_1: QuicVersion(VERSION_1, "QUIC v1", SALT_V1, _V1_TYPES, b"quic "),
        VERSION_2: QuicVersion(VERSION_2, "QUIC v2", SALT_V2, _V2_TYPES, b"quicv2 "),
    }
    for number in (*_DRAFTS_23_TO_28, *_DRAFTS_29_TO_32):
        salt = SALT_DRAFT_29 if number in _DRAFTS_29_TO_32 else SALT_DRAFT_23
        name = f"QUIC draft-{number & 0xFF}"
        table[number] = QuicVersion(number, name, salt, _V1_TYPES, b"quic ")
    return table


SUPPORTED_VERSIONS: dict[int, QuicVersion] = _versions()


@dataclass(frozen=True, slots=True)
class InitialKeys:
    """The Initial packet protection keys of one sender (RFC 9001 §5.2)."""

    secret: bytes
    key: bytes
    iv: bytes
    hp: bytes


@dataclass(frozen=True, slots=True)
class QuicHello(Generic[HelloT]):
    """A ClientHello or ServerHello read from the Initial CRYPTO stream."""

    version: int  # QUIC version of the Initial that completed it
    dcid: bytes  # the client connection ID its Initial keys came from
    hello: HelloT
    offset: int  # where it starts in the CRYPTO stream (0 unless after a HelloRetryRequest)
    datagrams: tuple[int, ...]  # the reader's datagram indices (0-based) that carried it


@dataclass(frozen=True, slots=True)
class QuicDatagram(Generic[HelloT]):
    """What one datagram gave: hellos it completed, Initials it held, what went wrong."""

    hellos: tuple[QuicHello[HelloT], ...] = ()
    initials: int = 0  # Initial packets decrypted
    packets: int = 0  # long header packets walked (Initials, Handshake, 0-RTT, Retry, ...)
    error: DecodeError | None = None  # the first problem; packets after it were not read


def version_name(version: int) -> str:
    """A QUIC version's name, e.g. "QUIC v2" for 0x6b3343cf."""
    if (known := SUPPORTED_VERSIONS.get(version)) is not None:
        return known.name
    return f"QUIC version 0x{version:08x}"


def initial_keys(version: int, dcid: bytes, *, server: bool) -> InitialKeys:
    """The client's (or, with `server`, the server's) Initial keys for `dcid`.

    `dcid` is the Destination Connection ID of the client's first Initial packet (or
    the Source Connection ID of a Retry, RFC 9001 §5.2). Raises KeyError for a
    version not in SUPPORTED_VERSIONS.
    """
    spec = SUPPORTED_VERSIONS[version]
    initial_secret = hmac.digest(spec.salt, dcid, hashlib.sha256)  # HKDF-Extract, RFC 5869
    secret = _expand_label(initial_secret, _SERVER_LABEL if server else _CLIENT_LABEL, 32)
    prefix = spec.label_prefix
    return InitialKeys(
        secret=secret,
        key=_expand_label(secret, prefix + b"key", 16),
        iv=_expand_label(secret, prefix + b"iv", 12),
        hp=_expand_label(secret, prefix + b"hp", 16),
    )


def looks_like_quic_initial(payload: bytes) -> bool:
    """Whether a UDP payload starts with what could be a QUIC Initial (cheap, no crypto).

    Checks the long header of the first packet: header form and fixed bit, a version
    this module reads, the Initial type bits of that version, connection IDs of at
    most 20 bytes, and token and Length fields that fit the payload with room for the
    header-protection sample. True is only a candidate: `feed` decides by the AEAD tag.
    """
    if len(payload) < 7 or payload[0] & 0xC0 != 0xC0:  # exceptions cost: reject early
        return False
    spec = SUPPORTED_VERSIONS.get(int.from_bytes(payload[1:5], "big"))
    if spec is None or spec.types[(payload[0] >> 4) & 0x03] != INITIAL:
        return False
    try:
        packet = _long_header(payload, 0)
    except DecodeError:
        return False
    return packet is not None


@dataclass(frozen=True, slots=True)
class _Packet:
    """The unprotected fields of one long-header packet in a datagram."""

    start: int
    end: int  # offset after the packet (the datagram's end for Retry / Version Negotiation)
    version: int
    kind: str
    dcid: bytes
    scid: bytes
    pn_offset: int = 0  # Initial only: where the protected packet number starts


def _long_header(buf: bytes, pos: int) -> _Packet | None:
    """The long-header packet at `pos`; None when its version is not one read here.

    Raises DecodeError when the header is malformed or a length runs past the datagram.
    """
    size = len(buf)
    if pos >= size:
        raise DecodeError("empty packet", pos)
    first = buf[pos]
    if not first & HEADER_FORM:
        raise DecodeError("not a long header packet", pos)
    at = pos + 1
    if at + 5 > size:
        raise DecodeError(f"long header truncated ({size - pos} bytes)", pos)
    version = int.from_bytes(buf[at : at + 4], "big")
    at += 4
    if version == VERSION_NEGOTIATION:  # RFC 8999 §6: any first bits, IDs up to 255 bytes
        dcid, at = _cid(buf, at, "Destination Connection ID", 255)
        scid, at = _cid(buf, at, "Source Connection ID", 255)
        return _Packet(pos, size, version, "Version Negotiation", dcid, scid)
    spec = SUPPORTED_VERSIONS.get(version)
    if spec is None:
        return None  # RFC 8999: nothing but the version is known of other versions
    if not first & FIXED_BIT:
        raise DecodeError("long header with the fixed bit clear", pos)
    dcid, at = _cid(buf, at, "Destination Connection ID")
    scid, at = _cid(buf, at, "Source Connection ID")
    kind = spec.types[(first >> 4) & 0x03]
    if kind == RETRY:  # no Length field: the rest of the datagram (RFC 9000 §17.2.5)
        return _Packet(pos, size, version, kind, dcid, scid)
    if kind == INITIAL:
        token_at = at
        token_length, at = _varint(buf, at, "Token Length")
        if at + token_length > size:
            raise DecodeError(f"Initial token of {token_length} bytes runs past end", token_at)
        at += token_length
    length_at = at
    length, at = _varint(buf, at, "Length")
    if at + length > size:
        raise DecodeError(f"{kind} packet Length {length} runs past end ({size - at})", length_at)
    if kind == INITIAL and length < SAMPLE_OFFSET + SAMPLE_LENGTH:
        raise DecodeError(f"Initial packet Length {length} leaves no room to sample", length_at)
    return _Packet(pos, at + length, version, kind, dcid, scid, pn_offset=at)


def _cid(buf: bytes, at: int, what: str, most: int = MAX_CID_LENGTH) -> tuple[bytes, int]:
    """A length-prefixed connection ID of at most `most` bytes, and the offset after it."""
    if at >= len(buf):
        raise DecodeError(f"{what} length missing", at)
    length = buf[at]
    if length > most:
        raise DecodeError(f"{what} of {length} bytes (at most {most})", at)
    if at + 1 + length > len(buf):
        raise DecodeError(f"{what} of {length} bytes runs past end", at)
    return bytes(buf[at + 1 : at + 1 + length]), at + 1 + length


def _varint(buf: bytes, at: int, what: str) -> tuple[int, int]:
    """A variable-length integer (RFC 9000 §16) and the offset after it."""
    if at >= len(buf):
        raise DecodeError(f"{what} missing", at)
    length = 1 << (buf[at] >> 6)
    if at + length > len(buf):
        raise DecodeError(f"{what} ({length}-byte integer) runs past end", at)
    value = int.from_bytes(buf[at : at + length], "big") & ((1 << (8 * length - 2)) - 1)
    return value, at + length


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1) with SHA-256 and an empty context."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    # HKDF-Expand (RFC 5869 §2.3) with the standard library's HMAC: the keys of a capture's
    # QUIC Initials need no more, and `cryptography` loads only where a packet is opened.
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(secret, block + info + bytes([counter]), hashlib.sha256)
        out += block
        counter += 1
    return out[:length]


def _decode_packet_number(truncated: int, bits: int, expected: int) -> int:
    """The full packet number nearest `expected` (RFC 9000 Appendix A.3)."""
    window = 1 << bits
    half = window // 2
    candidate = (expected & ~(window - 1)) | truncated
    if candidate <= expected - half and candidate < (1 << 62) - window:
        return candidate + window
    if candidate > expected + half and candidate >= window:
        return candidate - window
    return candidate


class _Protection:
    """One sender's Initial packet protection: AES-128-GCM and AES-ECB header masks."""

    __slots__ = ("_aead", "_hp", "_invalid_tag", "_iv")

    def __init__(self, keys: InitialKeys) -> None:
        # Imported here, at the first QUIC packet to open: `cryptography` is 11 MiB of a run's
        # memory, and most captures have no QUIC (#17; the report's signature loads it last).
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(keys.key)
        # RFC 9001 §5.4.3: the mask is AES-ECB of the 16-byte sample under the hp key.
        self._hp: CipherContext = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
        self._invalid_tag = InvalidTag
        self._iv = int.from_bytes(keys.iv, "big")

    def open(self, buf: bytes, packet: _Packet, expected_pn: int) -> tuple[int, int, bytes] | None:
        """(first byte, packet number, plaintext) of the packet, or None if the tag fails."""
        pn_at = packet.pn_offset
        sample_at = pn_at + SAMPLE_OFFSET
        mask = self._hp.update(bytes(buf[sample_at : sample_at + SAMPLE_LENGTH]))
        first = buf[packet.start] ^ (mask[0] & 0x0F)
        pn_length = (first & 0x03) + 1
        truncated = bytes(
            b ^ m
            for b, m in zip(buf[pn_at : pn_at + pn_length], mask[1 : 1 + pn_length], strict=True)
        )
        pn = _decode_packet_number(int.from_bytes(truncated, "big"), 8 * pn_length, expected_pn)
        header = bytes([first]) + bytes(buf[packet.start + 1 : pn_at]) + truncated
        nonce = (self._iv ^ pn).to_bytes(12, "big")
        try:
            plain = self._aead.decrypt(nonce, bytes(buf[pn_at + pn_length : packet.end]), header)
        except self._invalid_tag:
            return None
        return first, pn, plain


@dataclass(slots=True)
class _CryptoStream:
    """The Initial CRYPTO stream of one sender, reassembled from offset 0 (RFC 9000 §19.6)."""

    data: bytearray = field(default_factory=bytearray)
    # offset -> (bytes, datagram index) of frames beyond a gap
    pending: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    pending_bytes: int = 0
    # (start, end, datagram index) of every piece appended to `data`
    sources: list[tuple[int, int, int]] = field(default_factory=list)
    parsed: int = 0  # where the next handshake message starts

    def add(self, offset: int, chunk: bytes, datagram: int, at: int) -> None:
        """Take the CRYPTO frame data `chunk` at stream `offset` (frame at datagram `at`)."""
        end = offset + len(chunk)
        if end > MAX_CRYPTO_BYTES:
            raise DecodeError(f"CRYPTO data up to offset {end} exceeds {MAX_CRYPTO_BYTES}", at)
        if offset > len(self.data):
            if offset in self.pending and len(self.pending[offset][0]) >= len(chunk):
                return
            if len(self.pending) >= MAX_CRYPTO_FRAGMENTS or (
                self.pending_bytes + len(chunk) > MAX_CRYPTO_BYTES
            ):
                raise DecodeError("too many CRYPTO frames waiting for a gap to fill", at)
            if offset in self.pending:
                self.pending_bytes -= len(self.pending[offset][0])
            self.pending[offset] = (chunk, datagram)
            self.pending_bytes += len(chunk)
            return
        self._append(offset, chunk, datagram, at)
        for waiting in sorted(self.pending):
            if waiting > len(self.data):
                break
            piece, source = self.pending.pop(waiting)
            self.pending_bytes -= len(piece)
            self._append(waiting, piece, source, at)

    def _append(self, offset: int, chunk: bytes, datagram: int, at: int) -> None:
        """Append what `chunk` adds past the end; its overlap must repeat the same bytes."""
        have = len(self.data)
        overlap = min(offset + len(chunk), have) - offset
        if overlap > 0 and self.data[offset : offset + overlap] != chunk[:overlap]:
            raise DecodeError(f"CRYPTO data at stream offset {offset} differs from before", at)
        if offset + len(chunk) > have:
            self.data += chunk[have - offset :]
            self.sources.append((have, len(self.data), datagram))

    def next_message(self) -> tuple[int, bytes, tuple[int, ...]] | None:
        """The next whole handshake message: (stream offset, bytes, datagram indices)."""
        start = self.parsed
        need = handshake_message_length(bytes(self.data[start : start + 4]))
        if need is None:
            return None
        if start + need > MAX_CRYPTO_BYTES:
            raise DecodeError(
                f"CRYPTO stream: handshake message of {need} bytes exceeds {MAX_CRYPTO_BYTES}"
                " (offsets in the CRYPTO stream)",
                start,
            )
        end = start + need
        if end > len(self.data):
            return None
        self.parsed = end
        datagrams = sorted({d for s, e, d in self.sources if s < end and e > start})
        return start, bytes(self.data[start:end]), tuple(datagrams)


class _KeyContext:
    """One sender's Initial keys (version, client connection ID), packet numbers and stream.

    A new version or connection ID means a new connection attempt (after Version
    Negotiation or Retry) whose ClientHello starts again at CRYPTO offset 0.
    """

    __slots__ = ("broken", "dcid", "largest_pn", "protection", "stream", "version")

    def __init__(self, version: int, dcid: bytes, server: bool) -> None:
        self.version = version
        self.dcid = dcid
        self.protection = _Protection(initial_keys(version, dcid, server=server))
        self.largest_pn = -1
        self.stream = _CryptoStream()
        self.broken = False  # its stream hit a bound or a bad message: read no further


class _InitialReader(Generic[HelloT]):
    """What the client and server readers share: datagrams in, hellos out."""

    _server = False  # which sender's keys open this direction's packets

    def __init__(self) -> None:
        self._contexts: dict[tuple[int, bytes], _KeyContext] = {}  # oldest first
        self._datagrams = 0
        self._initials = 0
        self._quiet = 0  # datagrams in a row without an Initial
        self._hellos = 0
        self._finished = False
        self.version: int | None = None  # of the first Initial decrypted
        self.connection_close: tuple[int, str] | None = None  # (error code, reason) if sent

    @property
    def done(self) -> bool:
        """Whether later datagrams can add nothing: the Initial exchange is over or bounds hit."""
        return (
            self._finished
            or self._datagrams >= MAX_DATAGRAMS
            or self._initials >= MAX_INITIAL_PACKETS
            or self._quiet >= (1 if self._hellos else MAX_QUIET_DATAGRAMS)
        )

    @property
    def initial_packets(self) -> int:
        """Initial packets decrypted so far."""
        return self._initials

    @property
    def key_dcids(self) -> tuple[bytes, ...]:
        """The client connection IDs whose Initial keys opened packets, oldest first."""
        return tuple(dict.fromkeys(dcid for _version, dcid in self._contexts))

    @property
    def incomplete(self) -> bool:
        """Whether decrypted CRYPTO data holds the start of a hello that never completed."""
        return any(
            len(context.stream.data) > context.stream.parsed or context.stream.pending
            for context in self._contexts.values()
        )

    def feed(self, payload: bytes) -> QuicDatagram[HelloT]:
        """Read the next datagram payload of this direction; see QuicDatagram."""
        index = self._datagrams
        self._datagrams += 1
        hellos: list[QuicHello[HelloT]] = []
        initials = packets = 0
        error: DecodeError | None = None
        pos = 0
        first_dcid: bytes | None = None
        try:
            # A short header packet, or padding, ends the datagram (RFC 9000 §12.2).
            while pos < len(payload) and payload[pos] & HEADER_FORM:
                packet = _long_header(payload, pos)
                if packet is None:
                    break  # a version not read here: nothing after it can be parsed
                if first_dcid is None:
                    first_dcid = packet.dcid
                elif packet.dcid != first_dcid:
                    break  # RFC 9000 §12.2: another connection's packet; receivers ignore it
                packets += 1
                if packet.kind == INITIAL and self._initials < MAX_INITIAL_PACKETS:
                    self._initial(payload, packet, index, hellos)
                    initials += 1
                elif packet.kind == RETRY:
                    self._retry(packet)
                pos = packet.end
        except DecodeError as problem:
            error = problem
        self._quiet = 0 if initials else self._quiet + 1
        self._hellos += len(hellos)
        return QuicDatagram(tuple(hellos), initials, packets, error)

    def _initial(
        self, buf: bytes, packet: _Packet, index: int, hellos: list[QuicHello[HelloT]]
    ) -> None:
        """Decrypt one Initial packet, take its frames, collect completed hellos."""
        candidates = self._candidates(packet)
        if not candidates:
            raise QuicAuthError("no client Initial seen, so no key for this Initial", packet.start)
        for context in candidates:
            opened = context.protection.open(buf, packet, context.largest_pn + 1)
            if opened is not None:
                break
        else:
            raise QuicAuthError(
                f"no {version_name(packet.version)} Initial key opens this packet"
                " (not QUIC, keys from an unseen connection ID, or corrupted)",
                packet.start,
            )
        first, pn, plain = opened
        if first & RESERVED_BITS:
            raise DecodeError("Initial packet with reserved bits set", packet.start)
        key = (context.version, context.dcid)
        if key not in self._contexts:
            if len(self._contexts) >= MAX_KEY_CONTEXTS:
                raise DecodeError(
                    f"more than {MAX_KEY_CONTEXTS} Initial key contexts", packet.start
                )
            self._contexts[key] = context
        self._initials += 1
        if self.version is None:
            self.version = packet.version
        context.largest_pn = max(context.largest_pn, pn)
        if context.broken:
            return
        base = packet.pn_offset + (first & 0x03) + 1  # datagram offset of plain[0]
        try:
            try:
                self._frames(plain, context.stream, index)
            except DecodeError as problem:  # plaintext offsets -> datagram offsets
                raise DecodeError(problem.what, base + problem.offset) from None
            while (message := context.stream.next_message()) is not None:
                offset, data, datagrams = message
                hello = self._parse(data, offset)
                hellos.append(QuicHello(packet.version, context.dcid, hello, offset, datagrams))
        except DecodeError:
            context.broken = True
            raise

    def _frames(self, plain: bytes, stream: _CryptoStream, index: int) -> None:
        """Walk the frames of a decrypted Initial payload, feeding CRYPTO data to `stream`.

        DecodeError offsets are offsets in `plain`.
        """
        size = len(plain)
        i = 0
        while i < size:
            at = i
            frame_type, i = _varint(plain, i, "frame type")
            if frame_type == FRAME_PADDING:  # runs of them fill most client Initials
                found = _NONZERO.search(plain, i)
                i = found.start() if found else size
            elif frame_type == FRAME_PING:
                pass
            elif frame_type in (FRAME_ACK, FRAME_ACK_ECN):
                i = _skip_ack(plain, i, frame_type == FRAME_ACK_ECN)
            elif frame_type == FRAME_CRYPTO:
                offset, i = _varint(plain, i, "CRYPTO offset")
                length, i = _varint(plain, i, "CRYPTO length")
                if i + length > size:
                    raise DecodeError(f"CRYPTO frame of {length} bytes runs past end", at)
                stream.add(offset, bytes(plain[i : i + length]), index, at)
                i += length
            elif frame_type in (FRAME_CONNECTION_CLOSE, FRAME_CONNECTION_CLOSE_APP):
                i = self._connection_close(plain, i, frame_type)
            else:
                raise DecodeError(
                    f"frame type 0x{frame_type:x} is not allowed in an Initial packet", at
                )

    def _connection_close(self, plain: bytes, i: int, frame_type: int) -> int:
        """Record a CONNECTION_CLOSE frame (RFC 9000 §19.19); the offset after it."""
        code, i = _varint(plain, i, "error code")
        if frame_type == FRAME_CONNECTION_CLOSE:
            _frame, i = _varint(plain, i, "offending frame type")
        length, i = _varint(plain, i, "reason length")
        if i + length > len(plain):
            raise DecodeError(f"CONNECTION_CLOSE reason of {length} bytes runs past end", i)
        self.connection_close = (code, plain[i : i + length].decode("utf-8", "replace"))
        return i + length

    def _contexts_for(self, version: int, dcids: Iterable[bytes]) -> list[_KeyContext]:
        """The key contexts of `version` for each of `dcids` (new ones where none exists)."""
        out: list[_KeyContext] = []
        for dcid in dict.fromkeys(dcids):
            context = self._contexts.get((version, dcid))
            out.append(context or _KeyContext(version, dcid, self._server))
        return out

    def _parse(self, message: bytes, offset: int) -> HelloT:
        """Decode one handshake message of the stream (stream offsets in errors)."""
        raise NotImplementedError

    def _candidates(self, packet: _Packet) -> list[_KeyContext]:
        """Key contexts to try on an Initial, most likely first."""
        raise NotImplementedError

    def _retry(self, packet: _Packet) -> None:
        """Note a Retry packet (only the server sends them)."""


class QuicClientReader(_InitialReader[ClientHelloInfo]):
    """The client-to-server direction of a UDP flow: reads the ClientHello.

    Keys come from the Destination Connection ID of the client's own first Initial;
    later Initials that use the server's connection ID (RFC 9000 §7.2) still open
    with them, and Initials after a Retry open with keys from their own DCID.
    """

    _server = False

    def _candidates(self, packet: _Packet) -> list[_KeyContext]:
        """Connection IDs already known, newest first, then the packet's own DCID.

        Known ones are tried in the packet's version too: with compatible version
        negotiation (RFC 9368) the client goes on in the server's version with keys
        from its original connection ID.
        """
        known = [dcid for _version, dcid in reversed(self._contexts)]
        return self._contexts_for(packet.version, [*known, packet.dcid])

    def _parse(self, message: bytes, offset: int) -> ClientHelloInfo:
        """A ClientHello; any other message in the client's Initial stream is an error."""
        try:
            return parse_client_hello_message(message)
        except DecodeError as problem:
            raise _in_stream(problem, offset) from None


class QuicServerReader(_InitialReader[ServerHelloInfo]):
    """The server-to-client direction of a UDP flow: reads the ServerHello.

    The server's Initial keys come from the client's connection ID, so this reader
    uses the connection IDs its `client` reader found (and those of Retry packets).
    """

    _server = True

    def __init__(self, client: QuicClientReader) -> None:
        super().__init__()
        self._client = client
        self._retry_dcids: list[bytes] = []

    def _candidates(self, packet: _Packet) -> list[_KeyContext]:
        """Contexts for every client connection ID known, newest first."""
        dcids = [*self._client.key_dcids, *self._retry_dcids]
        return self._contexts_for(packet.version, reversed(dcids))

    def _retry(self, packet: _Packet) -> None:
        """A Retry's Source Connection ID keys the Initials after it (RFC 9001 §5.2)."""
        if packet.scid not in self._retry_dcids and len(self._retry_dcids) < MAX_KEY_CONTEXTS:
            self._retry_dcids.append(packet.scid)

    def _parse(self, message: bytes, offset: int) -> ServerHelloInfo:
        """A ServerHello or HelloRetryRequest; anything else is an error."""
        try:
            hello = parse_server_hello_message(message)
        except DecodeError as problem:
            raise _in_stream(problem, offset) from None
        if not hello.hello_retry:
            self._finished = True  # nothing after the ServerHello travels in Initials
        return hello


def _in_stream(problem: DecodeError, offset: int) -> DecodeError:
    """`problem` of the message at stream `offset`, with its offset in the CRYPTO stream."""
    return DecodeError(
        f"CRYPTO stream: {problem.what} (offsets in the CRYPTO stream)", offset + problem.offset
    )


def _skip_ack(plain: bytes, i: int, ecn: bool) -> int:
    """The offset after an ACK frame's fields (RFC 9000 §19.3)."""
    _largest, i = _varint(plain, i, "ACK largest acknowledged")
    _delay, i = _varint(plain, i, "ACK delay")
    count_at = i
    count, i = _varint(plain, i, "ACK range count")
    if 2 * count > len(plain) - i:  # each range is two varints of at least one byte
        raise DecodeError(f"ACK range count {count} runs past end", count_at)
    _first, i = _varint(plain, i, "first ACK range")
    for _ in range(2 * count + (3 if ecn else 0)):
        _value, i = _varint(plain, i, "ACK range")
    return i
