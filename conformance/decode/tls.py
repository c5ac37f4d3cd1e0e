"""TLS ClientHello / ServerHello decoding and cipher-suite facts.

Hellos are read from the TCP payload as sent: a sequence of TLS records (RFC 8446
§5.1, RFC 5246 §6.2.1) whose handshake message may be fragmented over several of
them. Offsets in DecodeError messages are offsets in that payload. QUIC carries
the bare handshake messages in CRYPTO frames, without records (RFC 9001 §4):
`parse_client_hello_message` and `parse_server_hello_message` read those, with
offsets in the message.

The encrypted_client_hello extension (ECH, RFC 9849 §5) is decoded into
`EchExtension`; whether it is real or GREASE is `decode/ech.py`'s question.

Two readers share the work. A hello held whole by one record (or a bare message) is
read in one pass over the payload (`_quick_client_hello`, `_quick_server_hello`),
which gives up at anything unusual; the field-by-field `_Reader` then reads it again
and says what is wrong, and where. The one-pass reader answers only what the
field-by-field one would (tests/decode/test_tls.py holds them to that). `quick_hello`,
asked of the first payload of every TLS direction, has a compiled twin (decode/_hello.pyx,
loaded through decode/compiled.py) that answers the same
(tests/decode/test_hello_compiled.py).
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

from conformance.decode import compiled
from conformance.decode.errors import DecodeError
from conformance.tls_registry import is_grease

RECORD_HEADER = 5  # type(1) version(2) length(2)
HANDSHAKE_HEADER = 4  # msg_type(1) length(3)
CONTENT_CHANGE_CIPHER_SPEC = 20
CONTENT_HANDSHAKE = 22
CLIENT_HELLO = 1
SERVER_HELLO = 2
# RFC 8446 §5.1, RFC 5246 §6.2.1: a plaintext record holds at most 2^14 bytes, and
# hellos always travel in plaintext (uncompressed: compression is negotiated by them).
MAX_PLAINTEXT_RECORD = 2**14
# Same sections: zero-length handshake fragments MUST NOT be sent, so every record
# still to come carries at least one handshake byte. That bounds what is unseen.
_WORST_BYTES_PER_HANDSHAKE_BYTE = RECORD_HEADER + 1
RANDOM_LENGTH = 32
MAX_SESSION_ID = 32  # RFC 8446 §4.1.2, RFC 5246 §7.4.1.2: opaque legacy_session_id<0..32>
# RFC 8446 §4.1.3: a HelloRetryRequest is a ServerHello with this fixed random.
HELLO_RETRY_RANDOM = hashlib.sha256(b"HelloRetryRequest").digest()

EXT_SERVER_NAME = 0  # RFC 6066 §3
EXT_ALPN = 16  # RFC 7301 §3.1
EXT_SUPPORTED_VERSIONS = 43  # RFC 8446 §4.2.1
EXT_ECH = 0xFE0D  # encrypted_client_hello, RFC 9849 §5
EXT_ECH_OUTER_EXTENSIONS = 0xFD00  # ech_outer_extensions, RFC 9849 §5.1
ECH_OUTER = 0  # ECHClientHelloType (RFC 9849 §5)
ECH_INNER = 1
# RFC 9849 §7.2.1: a HelloRetryRequest's ECH extension is an 8-byte confirmation.
ECH_HRR_CONFIRMATION = 8
SNI_HOST_NAME = 0

# SSL 2.0-format CLIENT-HELLO (RFC 6101 Appendix E.2, RFC 5246 Appendix E.2): a
# two-byte header with the top bit set, then msg_type(1) version(2) and three lengths.
SSL2_HEADER = 2
SSL2_FIXED = 9  # msg_type + version + cipher_spec/session_id/challenge lengths

SSL2_SPEC_LENGTH = 3

_T = TypeVar("_T")
_WALK = -1  # `_one_record_length`: the record walk has to answer

# Distinct hellos (by what their decoding depends on), cipher-suite/version lists and
# server_name/ALPN extensions whose decoding is remembered: a network's clients and
# servers repeat the same few all day. Bounded; a cache starts over when full.
HELLO_FIELD_CACHE = 1024
# Only keys of up to this many bytes are remembered (a real suite list is under 100
# bytes, a server_name under 260): a cache holds at most HELLO_FIELD_CACHE times this.
MAX_CACHED_FIELD = 1024

_RECORD = struct.Struct("!BHH")
_EXTENSION_HEADER = struct.Struct("!HH")  # extension type, length
_SSL2_FIXED = struct.Struct("!BHHHH")


@dataclass(frozen=True, slots=True)
class EchExtension:
    """An encrypted_client_hello extension as a ClientHello carries it (RFC 9849 §5).

    An outer extension names the HPKE suite and ECHConfig the client used (or, for
    GREASE, pretends to: RFC 9849 §6.2 makes the two look alike on purpose). An
    inner one (`inner=True`) marks a ClientHelloInner, which is only ever sent
    encrypted; the other fields are then None/0.
    """

    inner: bool
    kdf_id: int | None = None  # HpkeSymmetricCipherSuite (RFC 9180 §7.2, §7.3)
    aead_id: int | None = None
    config_id: int | None = None  # the ECHConfig's config_id (RFC 9849 §4)
    enc_length: int = 0  # HPKE encapsulated key; empty after a HelloRetryRequest
    payload_length: int = 0  # the encrypted ClientHelloInner


@dataclass(frozen=True, slots=True)
class ClientHelloInfo:
    """What a ClientHello offers (GREASE values, RFC 8701, removed)."""

    sni: str | None  # host_name, lower-case, no trailing dot
    versions: tuple[int, ...]  # supported_versions if present, else (legacy_version,)
    cipher_suites: tuple[int, ...]  # SSL 2.0 cipher specs not mapping to TLS are 24-bit
    alpn: tuple[str, ...]
    ech: EchExtension | None = None  # with an outer ECH, `sni` is only the public name
    ech_outer_extensions: bool = False  # RFC 9849 §5.1: belongs inside ClientHelloInner only


@dataclass(frozen=True, slots=True)
class ServerHelloInfo:
    """What a ServerHello chose."""

    version: int  # supported_versions (TLS 1.3) if present, else legacy_version
    cipher_suite: int
    hello_retry: bool = False  # a HelloRetryRequest (RFC 8446 §4.1.4), not a real choice
    # RFC 9849 §7.2.1: a HelloRetryRequest carries an ECH extension only when the
    # server accepted ECH (it decrypted a real ClientHelloInner).
    ech_confirmation: bool = False


def client_hello_length(buf: bytes) -> int | None:
    """Bytes of TCP payload needed to hold the whole ClientHello, or None if not one.

    `buf` is the initiator's payload from its first byte. The answer N means:

    - None: `buf` does not start with a handshake record carrying a ClientHello
      (nor with an SSL 2.0-format CLIENT-HELLO).
    - N <= len(buf): `buf[:N]` holds the whole ClientHello with every record header;
      pass it to `parse_client_hello`. When the record framing breaks before the
      message is complete, N points just past the offending record header so the
      caller stops waiting and `parse_client_hello` reports the problem.
    - N > len(buf): more bytes are needed; append the next segment and ask again.
      Where the next record headers are not visible yet, N is a conservative upper
      bound: every remaining handshake byte is assumed to come in its own record
      (6 bytes each; empty handshake fragments are forbidden, RFC 8446 §5.1). If
      even the 4-byte handshake header is not visible, N is what it takes to see it.

    N never exceeds what the ClientHello can need, so a caller may wait for N bytes
    but should still cap its buffer: the handshake length field allows 16 MiB.
    """
    size = len(buf)
    if not size:
        return None
    if buf[0] & 0x80:
        return _ssl2_client_hello_length(buf)
    if (quick := _one_record_length(buf)) != _WALK:
        return quick
    head = bytearray()  # the handshake header, gathered across records
    need: int | None = None  # HANDSHAKE_HEADER + the handshake body length
    got = 0  # handshake bytes in the records walked so far
    pos = 0
    while True:
        if pos + RECORD_HEADER > size:
            if pos == 0 and not _record_prefix_ok(buf):
                return None
            missing = (HANDSHAKE_HEADER if need is None else need) - got
            return pos + _WORST_BYTES_PER_HANDSHAKE_BYTE * missing
        ctype, version, length = _record_header(buf, pos)
        if ctype != CONTENT_HANDSHAKE or not _record_ok(version, length):
            return None if pos == 0 else pos + RECORD_HEADER
        body = pos + RECORD_HEADER
        if need is None:
            take = min(length, HANDSHAKE_HEADER - len(head))
            head += buf[body : body + take]
            if len(head) < HANDSHAKE_HEADER and body + take > size:
                return body + take  # the handshake header goes on past `buf`
            if len(head) == HANDSHAKE_HEADER:
                if head[0] != CLIENT_HELLO:
                    return None
                need = HANDSHAKE_HEADER + int.from_bytes(head[1:], "big")
        if need is not None and got + length >= need:
            return body + (need - got)
        got += length
        pos = body + length


def _one_record_length(buf: bytes) -> int | None:
    """`client_hello_length` when the first record holds the whole handshake header and
    the message (the usual case), or when that header shows no ClientHello; else _WALK."""
    if len(buf) < RECORD_HEADER + HANDSHAKE_HEADER or buf[0] != CONTENT_HANDSHAKE:
        return _WALK
    _, version, length = _RECORD.unpack_from(buf, 0)
    if not (0x0300 <= version <= 0x0304 and HANDSHAKE_HEADER <= length <= MAX_PLAINTEXT_RECORD):
        return _WALK
    if buf[RECORD_HEADER] != CLIENT_HELLO:
        return None
    need = HANDSHAKE_HEADER + ((buf[6] << 16) | (buf[7] << 8) | buf[8])
    return RECORD_HEADER + need if need <= length else _WALK


def parse_client_hello(buf: bytes) -> ClientHelloInfo:
    """Decode the ClientHello at the start of `buf`; raise DecodeError if malformed.

    The message may be fragmented over several records; bytes after it are ignored,
    and so are change_cipher_spec records before it (sent before a second
    ClientHello, RFC 8446 Appendix D.4). An SSL 2.0-format CLIENT-HELLO is decoded
    too (no extensions, so no SNI).
    """
    if buf and buf[0] & 0x80:
        return _parse_ssl2_client_hello(buf)
    if (end := _one_record_end(buf, CLIENT_HELLO)) is not None:
        try:
            return _quick_client_hello(bytes(buf), RECORD_HEADER + HANDSHAKE_HEADER, end)
        except _UnusualError:
            pass  # read it again field by field: that reader says what is wrong, and where
    return _client_hello(_handshake_message(buf, CLIENT_HELLO, "ClientHello"))


def parse_client_hello_message(message: bytes) -> ClientHelloInfo:
    """Decode a bare ClientHello handshake message (no record header, as QUIC carries it).

    `message` starts with the handshake header (msg_type, 3-byte length); bytes after
    the message are ignored. DecodeError offsets are offsets in `message`.
    """
    if (end := _bare_end(message, CLIENT_HELLO)) is not None:
        try:
            return _quick_client_hello(bytes(message), HANDSHAKE_HEADER, end)
        except _UnusualError:
            pass
    return _client_hello(_bare_message(message, CLIENT_HELLO, "ClientHello"))


def _python_quick_hello(buf: bytes) -> ClientHelloInfo | ServerHelloInfo | None:
    """The ClientHello or ServerHello one sound handshake record at the start of `buf`
    holds whole (the usual first payload), read in one pass; else None.

    None also for such a hello with anything unusual in it: `client_hello_length`,
    `parse_client_hello` and the rest then frame and read it (and say what is wrong).
    What comes back is what `parse_client_hello` / `parse_server_hello` would return for
    the message (record header included) with nothing after it.
    """
    if len(buf) < RECORD_HEADER + HANDSHAKE_HEADER or buf[0] != CONTENT_HANDSHAKE:
        return None
    msg_type = buf[RECORD_HEADER]
    if msg_type not in (CLIENT_HELLO, SERVER_HELLO):
        return None
    if (end := _one_record_end(buf, msg_type)) is None:
        return None
    try:
        if msg_type == CLIENT_HELLO:
            return _quick_client_hello(bytes(buf), RECORD_HEADER + HANDSHAKE_HEADER, end)
        return _quick_server_hello(bytes(buf), RECORD_HEADER + HANDSHAKE_HEADER, end)
    except _UnusualError:
        return None


# The compiled twin (decode/_hello.pyx) where it is built: the same answers, read in C for
# the usual hello; it hands anything else to the function above, which stays the reference.
_COMPILED = compiled.load(compiled.MODULES[2])
quick_hello: Callable[[bytes], ClientHelloInfo | ServerHelloInfo | None] = (
    _python_quick_hello if _COMPILED is None else _COMPILED.quick_hello
)


def handshake_message_length(buf: bytes) -> int | None:
    """Bytes the handshake message at the start of `buf` takes (header included).

    None while the 4-byte handshake header is not complete.
    """
    if len(buf) < HANDSHAKE_HEADER:
        return None
    return HANDSHAKE_HEADER + int.from_bytes(buf[1:HANDSHAKE_HEADER], "big")


def parse_server_hello(buf: bytes) -> ServerHelloInfo:
    """Decode the ServerHello at the start of `buf`; raise DecodeError if malformed.

    A HelloRetryRequest (RFC 8446 §4.1.3: a ServerHello with a fixed random) comes
    back with `hello_retry=True`; the real ServerHello follows later in the flow.
    """
    if (end := _one_record_end(buf, SERVER_HELLO)) is not None:
        try:
            return _quick_server_hello(bytes(buf), RECORD_HEADER + HANDSHAKE_HEADER, end)
        except _UnusualError:
            pass
    return _server_hello(_handshake_message(buf, SERVER_HELLO, "ServerHello"))


def parse_server_hello_message(message: bytes) -> ServerHelloInfo:
    """Decode a bare ServerHello handshake message (no record header, as QUIC carries it)."""
    if (end := _bare_end(message, SERVER_HELLO)) is not None:
        try:
            return _quick_server_hello(bytes(message), HANDSHAKE_HEADER, end)
        except _UnusualError:
            pass
    return _server_hello(_bare_message(message, SERVER_HELLO, "ServerHello"))


class _Reader:
    """A bounds-checked cursor over a reassembled handshake message."""

    __slots__ = ("data", "end", "pos", "spans", "what")

    def __init__(
        self, data: bytes, what: str, spans: list[tuple[int, int]], pos: int, end: int
    ) -> None:
        self.data = data
        self.what = what
        self.spans = spans  # (message offset, payload offset) where each record's part starts
        self.pos = pos
        self.end = end

    def fail(self, problem: str, at: int | None = None) -> NoReturn:
        """Raise DecodeError naming the payload offset of message offset `at`."""
        at = self.pos if at is None else at
        i = bisect.bisect_right(self.spans, (at, 2**63)) - 1
        msg_start, buf_start = self.spans[max(i, 0)]
        raise DecodeError(f"{self.what}: {problem}", buf_start + at - msg_start)

    def take(self, n: int, field: str) -> bytes:
        """The next `n` bytes."""
        if self.pos + n > self.end:
            self.fail(f"{field} runs past end ({n} bytes needed, {self.end - self.pos} left)")
        start = self.pos
        self.pos += n
        return self.data[start : self.pos]

    # The readers below check bounds inline and build a field's name only to report a
    # failure (through `take`): a hello is some sixty fields, and it is parsed per session.

    def skip(self, n: int, field: str) -> None:
        """Step over `n` bytes."""
        if self.pos + n > self.end:
            self.take(n, field)  # raises
        self.pos += n

    def u8(self, field: str) -> int:
        """The next byte."""
        pos = self.pos
        if pos + 1 > self.end:
            self.take(1, field)  # raises
        self.pos = pos + 1
        return self.data[pos]

    def u16(self, field: str) -> int:
        """The next big-endian 16-bit integer."""
        pos = self.pos
        if pos + 2 > self.end:
            self.take(2, field)  # raises
        self.pos = pos + 2
        data = self.data
        return (data[pos] << 8) | data[pos + 1]

    def _length(self, length_bytes: int) -> int | None:
        """The next `length_bytes`-byte length and the position after it, if both fit."""
        pos = self.pos
        after = pos + length_bytes
        if after > self.end:
            return None
        length = int.from_bytes(self.data[pos:after], "big")
        if after + length > self.end:
            return None
        self.pos = after
        return length

    def vector(self, length_bytes: int, field: str, floor: int, ceiling: int) -> bytes:
        """A length-prefixed vector (RFC 8446 §3.4) whose length lies in [floor, ceiling]."""
        at = self.pos
        length = self._length(length_bytes)
        if length is None or not floor <= length <= ceiling:
            self.pos = at
            length = int.from_bytes(self.take(length_bytes, f"{field} length"), "big")
            if not floor <= length <= ceiling:
                self.fail(f"{field} length {length} outside {floor}..{ceiling}", at)
            return self.take(length, field)  # raises
        start = self.pos
        self.pos = start + length
        return self.data[start : self.pos]

    def span(self, length_bytes: int, field: str) -> tuple[int, int]:
        """Like `vector` with no bounds, but the (start, end) offsets of its content."""
        length = self._length(length_bytes)
        if length is None:
            length = int.from_bytes(self.take(length_bytes, f"{field} length"), "big")
            self.take(length, field)  # raises
        start = self.pos
        self.pos = start + length
        return start, self.pos

    def sub(self, start: int, end: int, what: str) -> _Reader:
        """A reader over [start, end) of the same message."""
        return _Reader(self.data, f"{self.what}: {what}", self.spans, start, end)

    def end_here(self) -> None:
        """Fail unless every byte has been read."""
        if self.pos != self.end:
            self.fail(f"{self.end - self.pos} trailing bytes")


def _record_header(buf: bytes, pos: int) -> tuple[int, int, int]:
    """Content type, version and length of the record header at `pos`."""
    ctype, version, length = _RECORD.unpack_from(buf, pos)
    return int(ctype), int(version), int(length)


def _record_ok(version: int, length: int) -> bool:
    """A record header fit to carry a hello: TLS version and a non-empty plaintext length."""
    return 0x0300 <= version <= 0x0304 and 0 < length <= MAX_PLAINTEXT_RECORD


def _record_prefix_ok(buf: bytes) -> bool:
    """Whether the visible part of a short first record header could be a handshake record."""
    return buf[0] == CONTENT_HANDSHAKE and (len(buf) < 2 or buf[1] == 3)


def _handshake_message(buf: bytes, msg_type: int, what: str) -> _Reader:
    """A reader at the body of the handshake message of `msg_type` that `buf` starts with."""
    size = len(buf)
    parts: list[bytes] = []
    spans: list[tuple[int, int]] = []  # (message offset, payload offset) per record part
    got = 0
    need: int | None = None
    pos = 0
    while need is None or got < need:
        if pos + RECORD_HEADER > size:
            raise DecodeError(f"{what}: record header truncated ({size - pos} bytes)", pos)
        ctype, version, length = _record_header(buf, pos)
        if ctype == CONTENT_CHANGE_CIPHER_SPEC and not parts and length == 1:
            # RFC 8446 Appendix D.4: in middlebox compatibility mode a client sends
            # change_cipher_spec before its second ClientHello (after a HelloRetryRequest).
            pos += RECORD_HEADER + length
            continue
        if ctype != CONTENT_HANDSHAKE:
            raise DecodeError(f"{what}: content type {ctype} where a handshake record is due", pos)
        if not _record_ok(version, length):
            raise DecodeError(f"{what}: bad record header (0x{version:04x}, {length} bytes)", pos)
        body = pos + RECORD_HEADER
        part = buf[body : body + length]
        spans.append((got, body))
        parts.append(part)
        got += len(part)
        if need is None and got >= HANDSHAKE_HEADER:
            head = parts[0] if len(parts) == 1 else b"".join(parts)
            if head[0] != msg_type:
                raise DecodeError(f"{what}: handshake type {head[0]}, not {msg_type}", spans[0][1])
            need = HANDSHAKE_HEADER + int.from_bytes(head[1:HANDSHAKE_HEADER], "big")
        if len(part) < length and (need is None or got < need):
            raise DecodeError(f"{what}: record of {length} bytes runs past end", pos)
        pos = body + length
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    return _Reader(bytes(data), what, spans, HANDSHAKE_HEADER, need)


def _client_hello(r: _Reader) -> ClientHelloInfo:
    """Decode a ClientHello body from a reader placed after its handshake header."""
    legacy_version = r.u16("legacy_version")
    r.skip(RANDOM_LENGTH, "random")
    r.vector(1, "legacy_session_id", 0, MAX_SESSION_ID)
    suites = r.vector(2, "cipher_suites", 2, 2**16 - 2)
    if len(suites) % 2:
        r.fail("cipher_suites length is odd", r.pos - len(suites) - 2)
    r.vector(1, "legacy_compression_methods", 1, 2**8 - 1)
    extensions = _extensions(r)

    sni: str | None = None
    if (span := extensions.get(EXT_SERVER_NAME)) is not None:
        sni = _server_name(r.sub(*span, "server_name extension"))
    alpn: tuple[str, ...] = ()
    if (span := extensions.get(EXT_ALPN)) is not None:
        alpn = _alpn(r.sub(*span, "ALPN extension"))
    versions: tuple[int, ...] = (legacy_version,)
    if (span := extensions.get(EXT_SUPPORTED_VERSIONS)) is not None:
        sv = r.sub(*span, "supported_versions extension")
        listed = sv.vector(1, "versions", 2, 254)
        sv.end_here()
        if len(listed) % 2:
            sv.fail("versions length is odd", span[0])
        versions = _without_grease(listed)
    ech: EchExtension | None = None
    if (span := extensions.get(EXT_ECH)) is not None:
        ech = _ech_client_hello(r.sub(*span, "encrypted_client_hello extension"))
    return ClientHelloInfo(
        sni,
        versions,
        _without_grease(suites),
        alpn,
        ech=ech,
        ech_outer_extensions=EXT_ECH_OUTER_EXTENSIONS in extensions,
    )


def _server_hello(r: _Reader) -> ServerHelloInfo:
    """Decode a ServerHello body from a reader placed after its handshake header."""
    version = r.u16("legacy_version")
    hello_retry = r.take(RANDOM_LENGTH, "random") == HELLO_RETRY_RANDOM
    r.vector(1, "legacy_session_id", 0, MAX_SESSION_ID)
    suite = r.u16("cipher_suite")
    r.skip(1, "legacy_compression_method")
    extensions = _extensions(r)
    if (span := extensions.get(EXT_SUPPORTED_VERSIONS)) is not None:
        sv = r.sub(*span, "supported_versions extension")
        version = sv.u16("selected_version")
        sv.end_here()
    ech_confirmation = False
    if hello_retry and (span := extensions.get(EXT_ECH)) is not None:
        if span[1] - span[0] != ECH_HRR_CONFIRMATION:
            r.fail(f"ECH confirmation of {span[1] - span[0]} bytes, not 8", span[0])
        ech_confirmation = True
    return ServerHelloInfo(version, suite, hello_retry, ech_confirmation)


def _bare_message(message: bytes, msg_type: int, what: str) -> _Reader:
    """A reader at the body of a handshake message given without record framing."""
    size = len(message)
    if size < HANDSHAKE_HEADER:
        raise DecodeError(f"{what}: handshake header truncated ({size} bytes)", 0)
    if message[0] != msg_type:
        raise DecodeError(f"{what}: handshake type {message[0]}, not {msg_type}", 0)
    need = HANDSHAKE_HEADER + int.from_bytes(message[1:HANDSHAKE_HEADER], "big")
    if need > size:
        raise DecodeError(f"{what}: message of {need} bytes runs past end ({size})", 1)
    return _Reader(bytes(message), what, [(0, 0)], HANDSHAKE_HEADER, need)


def _extensions(r: _Reader) -> dict[int, tuple[int, int]]:
    """The extension block at the end of a hello: type -> (start, end) of its data.

    Absent entirely in hellos older than TLS 1.2-era clients (RFC 5246 §7.4.1.2).
    """
    if r.pos == r.end:
        return {}
    block_start = r.pos
    block_end = r.span(2, "extensions")[1]
    r.end_here()
    found = _extension_spans(r.data, block_start + 2, block_end)
    if found is not None:
        r.pos = block_end
        return found
    # Something is wrong in the block: walk it again field by field to say what and where.
    r.pos = block_start + 2
    found = {}
    while r.pos < block_end:
        at = r.pos
        ext_type = r.u16("extension type")
        span = r.span(2, f"extension {ext_type}")
        if ext_type in found:  # RFC 8446 §4.2: at most one of each type
            r.fail(f"duplicate extension {ext_type}", at)
        found[ext_type] = span
    return found


def _extension_spans(data: bytes, pos: int, end: int) -> dict[int, tuple[int, int]] | None:
    """`_extensions`' result for a sound block [pos, end); None if anything is wrong in it."""
    found: dict[int, tuple[int, int]] = {}
    unpack = _EXTENSION_HEADER.unpack_from
    while pos < end:
        if pos + 4 > end:
            return None
        ext_type, length = unpack(data, pos)
        start = pos + 4
        pos = start + length
        if pos > end or ext_type in found:
            return None
        found[ext_type] = (start, pos)
    return found


def _server_name(r: _Reader) -> str | None:
    """The host_name of a server_name extension (RFC 6066 §3)."""
    names = r.span(2, "server_name_list")
    r.end_here()
    r.pos, r.end = names
    host: str | None = None
    while r.pos < r.end:
        at = r.pos
        name_type = r.u8("name_type")
        name = r.vector(2, "host_name", 1, 2**16 - 1)
        if name_type == SNI_HOST_NAME:
            if host is not None:  # RFC 6066 §3: one name per type
                r.fail("second host_name", at)
            host = name.decode("ascii", "backslashreplace").rstrip(".").lower()
    return host


def _alpn(r: _Reader) -> tuple[str, ...]:
    """The protocol names of an ALPN extension (RFC 7301 §3.1), GREASE removed."""
    names = r.span(2, "protocol_name_list")
    r.end_here()
    r.pos, r.end = names
    out = []
    while r.pos < r.end:
        name = r.vector(1, "protocol name", 1, 2**8 - 1)
        if not (len(name) == 2 and is_grease(int.from_bytes(name, "big"))):  # RFC 8701 §2
            out.append(name.decode("ascii", "backslashreplace"))
    return tuple(out)


def _ech_client_hello(r: _Reader) -> EchExtension:
    """An ECHClientHello (RFC 9849 §5): outer with suite, config_id, enc, payload; or inner."""
    at = r.pos
    kind = r.u8("ECHClientHelloType")
    if kind == ECH_INNER:
        r.end_here()
        return EchExtension(inner=True)
    if kind != ECH_OUTER:
        r.fail(f"ECHClientHelloType {kind} is neither outer (0) nor inner (1)", at)
    kdf_id = r.u16("kdf_id")
    aead_id = r.u16("aead_id")
    config_id = r.u8("config_id")
    enc = r.vector(2, "enc", 0, 2**16 - 1)
    payload = r.vector(2, "payload", 1, 2**16 - 1)
    r.end_here()
    return EchExtension(False, kdf_id, aead_id, config_id, len(enc), len(payload))


def _without_grease(data: bytes) -> tuple[int, ...]:
    """Big-endian uint16 values, GREASE removed."""
    known = _GREASE_FREE.get(data)
    if known is None:
        values = struct.unpack(f"!{len(data) // 2}H", data)
        known = tuple(v for v in values if v not in _GREASE_VALUES)
        _remember(_GREASE_FREE, data, known)
    return known


# RFC 8701 §2: 0x0A0A, 0x1A1A, ... 0xFAFA (`is_grease`, as a set: a hello lists some
# twenty values).
_GREASE_VALUES = frozenset(0x0A0A + 0x1010 * i for i in range(16))
_GREASE_FREE: dict[bytes, tuple[int, ...]] = {}
_SERVER_NAMES: dict[bytes, tuple[str | None]] = {}
_ALPNS: dict[bytes, tuple[str, ...]] = {}
# Whole results (immutable, so shared), by what they depend on.
_CLIENT_HELLOS: dict[
    tuple[int, bytes, bytes | None, bytes | None, bytes | None, bool], ClientHelloInfo
] = {}
_SERVER_HELLOS: dict[tuple[int, int, bool, bool], ServerHelloInfo] = {}


def _remember(cache: dict[bytes, _T], key: bytes, value: _T) -> None:
    """Keep a decoded field for its next sighting (small ones only, HELLO_FIELD_CACHE)."""
    if len(key) <= MAX_CACHED_FIELD:
        if len(cache) >= HELLO_FIELD_CACHE:
            cache.clear()
        cache[key] = value


# -- one-pass readers --------------------------------------------------------------------


class _UnusualError(Exception):
    """A one-pass reader met something it leaves to the field-by-field reader."""


def _one_record_end(buf: bytes, msg_type: int) -> int | None:
    """Where the hello of `msg_type` ends if one sound record at the start of `buf` holds
    it whole (the usual case), else None: `_handshake_message` then frames it."""
    if (
        len(buf) < RECORD_HEADER + HANDSHAKE_HEADER
        or buf[0] != CONTENT_HANDSHAKE
        or buf[RECORD_HEADER] != msg_type
    ):
        return None
    _, version, length = _RECORD.unpack_from(buf, 0)
    end = RECORD_HEADER + HANDSHAKE_HEADER + ((buf[6] << 16) | (buf[7] << 8) | buf[8])
    # `end - RECORD_HEADER` is the message, at least HANDSHAKE_HEADER > 0 bytes long
    if not (
        0x0300 <= version <= 0x0304
        and end - RECORD_HEADER <= length <= MAX_PLAINTEXT_RECORD
        and end <= len(buf)
    ):
        return None
    return end


def _bare_end(message: bytes, msg_type: int) -> int | None:
    """Where a bare handshake message of `msg_type` ends, if it is whole, else None."""
    if len(message) < HANDSHAKE_HEADER or message[0] != msg_type:
        return None
    end = HANDSHAKE_HEADER + ((message[1] << 16) | (message[2] << 8) | message[3])
    return end if end <= len(message) else None


def _quick_client_hello(d: bytes, p: int, end: int) -> ClientHelloInfo:
    """`_client_hello` of the body at d[p:end], in one pass; raises _UnusualError where that
    reader might fail (its checks, the same, all up front)."""
    if p + 2 + RANDOM_LENGTH + 1 > end:
        raise _UnusualError
    legacy_version = (d[p] << 8) | d[p + 1]
    p += 2 + RANDOM_LENGTH
    n = d[p]  # legacy_session_id <0..32>
    p += 1 + n
    if n > MAX_SESSION_ID or p + 2 > end:
        raise _UnusualError
    n = (d[p] << 8) | d[p + 1]  # cipher_suites <2..2^16-2>, whole suites
    suites = d[p + 2 : p + 2 + n]
    p += 2 + n
    if n < 2 or n & 1 or p >= end:
        raise _UnusualError
    n = d[p]  # legacy_compression_methods <1..2^8-1>
    p += 1 + n
    if not n or p > end:
        raise _UnusualError
    found = _quick_extensions(d, p, end)
    if not found:
        return ClientHelloInfo(None, (legacy_version,), _without_grease(suites), ())
    if EXT_ECH in found:  # its enc and payload differ hello by hello: not remembered
        return _quick_client_hello_fields(d, found, legacy_version, suites)
    # What the result depends on, as raw bytes: a client's hellos mostly repeat it.
    at = found.get(EXT_SERVER_NAME)
    sni_ext = None if at is None else d[at : at + ((d[at - 2] << 8) | d[at - 1])]
    at = found.get(EXT_ALPN)
    alpn_ext = None if at is None else d[at : at + ((d[at - 2] << 8) | d[at - 1])]
    at = found.get(EXT_SUPPORTED_VERSIONS)
    versions_ext = None if at is None else d[at : at + ((d[at - 2] << 8) | d[at - 1])]
    outer_extensions = EXT_ECH_OUTER_EXTENSIONS in found
    key = (legacy_version, suites, sni_ext, alpn_ext, versions_ext, outer_extensions)
    if (info := _CLIENT_HELLOS.get(key)) is None:
        info = _quick_client_hello_fields(d, found, legacy_version, suites)
        if len(_CLIENT_HELLOS) >= HELLO_FIELD_CACHE:
            _CLIENT_HELLOS.clear()
        fields = (suites, sni_ext, alpn_ext, versions_ext)
        if sum(len(field) for field in fields if field is not None) <= MAX_CACHED_FIELD:
            _CLIENT_HELLOS[key] = info
    return info


def _quick_client_hello_fields(
    d: bytes, found: dict[int, int], legacy_version: int, suites: bytes
) -> ClientHelloInfo:
    """`_quick_client_hello`'s result from the extensions `_quick_extensions` found."""
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = (legacy_version,)
    ech: EchExtension | None = None
    if (at := found.get(EXT_SERVER_NAME)) is not None:
        ext = d[at : at + ((d[at - 2] << 8) | d[at - 1])]
        if (name := _SERVER_NAMES.get(ext)) is None:
            name = (_quick_server_name(ext),)
            _remember(_SERVER_NAMES, ext, name)
        sni = name[0]
    if (at := found.get(EXT_ALPN)) is not None:
        ext = d[at : at + ((d[at - 2] << 8) | d[at - 1])]
        if (protocols := _ALPNS.get(ext)) is None:
            protocols = _quick_alpn(ext)
            _remember(_ALPNS, ext, protocols)
        alpn = protocols
    if (at := found.get(EXT_SUPPORTED_VERSIONS)) is not None:
        size = (d[at - 2] << 8) | d[at - 1]
        n = d[at] if size else 0  # versions <2..254>, filling the extension, whole versions
        if size != 1 + n or n < 2 or n > 254 or n & 1:
            raise _UnusualError
        versions = _without_grease(d[at + 1 : at + 1 + n])
    if (at := found.get(EXT_ECH)) is not None:
        ech = _quick_ech(d, at, at + ((d[at - 2] << 8) | d[at - 1]))
    return ClientHelloInfo(
        sni,
        versions,
        _without_grease(suites),
        alpn,
        ech,
        EXT_ECH_OUTER_EXTENSIONS in found,
    )


def _quick_server_hello(d: bytes, p: int, end: int) -> ServerHelloInfo:
    """`_server_hello` of the body at d[p:end], in one pass; raises _UnusualError where that
    reader might fail."""
    if p + 2 + RANDOM_LENGTH + 1 > end:
        raise _UnusualError
    version = (d[p] << 8) | d[p + 1]
    hello_retry = d[p + 2 : p + 2 + RANDOM_LENGTH] == HELLO_RETRY_RANDOM
    p += 2 + RANDOM_LENGTH
    n = d[p]  # legacy_session_id <0..32>
    p += 1 + n
    if n > MAX_SESSION_ID or p + 3 > end:  # cipher_suite(2) legacy_compression_method(1)
        raise _UnusualError
    suite = (d[p] << 8) | d[p + 1]
    found = _quick_extensions(d, p + 3, end)
    ech_confirmation = False
    if found:
        if (at := found.get(EXT_SUPPORTED_VERSIONS)) is not None:
            if (d[at - 2] << 8) | d[at - 1] != 2:  # selected_version, nothing else
                raise _UnusualError
            version = (d[at] << 8) | d[at + 1]
        if hello_retry and (at := found.get(EXT_ECH)) is not None:
            if (d[at - 2] << 8) | d[at - 1] != ECH_HRR_CONFIRMATION:
                raise _UnusualError
            ech_confirmation = True
    key = (version, suite, hello_retry, ech_confirmation)
    if (info := _SERVER_HELLOS.get(key)) is None:  # a server answers the same all day
        info = _SERVER_HELLOS[key] = ServerHelloInfo(*key)
        if len(_SERVER_HELLOS) > HELLO_FIELD_CACHE:
            _SERVER_HELLOS.clear()
    return info


def _quick_extensions(d: bytes, p: int, end: int) -> dict[int, int]:
    """The extension block filling d[p:end] (or absent): type -> offset of its data, whose
    length is the two bytes before it. Raises _UnusualError unless `_extensions` would pass."""
    if p == end:
        return {}
    if p + 2 > end or p + 2 + ((d[p] << 8) | d[p + 1]) != end:
        raise _UnusualError
    p += 2
    found: dict[int, int] = {}
    unpack = _EXTENSION_HEADER.unpack_from
    count = 0
    try:
        while p < end:  # a header past `end` overruns it: caught below
            ext_type, length = unpack(d, p)
            found[ext_type] = p + 4
            p += 4 + length
            count += 1
    except struct.error:  # a header past the buffer
        raise _UnusualError from None
    if p != end or len(found) != count:  # overran the block, or a duplicate (RFC 8446 §4.2)
        raise _UnusualError
    return found


def _quick_server_name(ext: bytes) -> str | None:
    """`_server_name` of a server_name extension's data; raises _UnusualError where it fails."""
    size = len(ext)
    if size < 2 or 2 + ((ext[0] << 8) | ext[1]) != size:
        raise _UnusualError
    host: str | None = None
    p = 2
    while p < size:
        if p + 3 > size:
            raise _UnusualError
        name_type = ext[p]
        n = (ext[p + 1] << 8) | ext[p + 2]  # host_name <1..2^16-1>
        start = p + 3
        p = start + n
        if not n or p > size:
            raise _UnusualError
        if name_type == SNI_HOST_NAME:
            if host is not None:
                raise _UnusualError
            host = ext[start:p].decode("ascii", "backslashreplace").rstrip(".").lower()
    return host


def _quick_alpn(ext: bytes) -> tuple[str, ...]:
    """`_alpn` of an ALPN extension's data; raises _UnusualError where it fails."""
    size = len(ext)
    if size < 2 or 2 + ((ext[0] << 8) | ext[1]) != size:
        raise _UnusualError
    out = []
    p = 2
    while p < size:
        n = ext[p]  # ProtocolName <1..2^8-1>
        start = p + 1
        p = start + n
        if not n or p > size:
            raise _UnusualError
        if not (n == 2 and ((ext[start] << 8) | ext[start + 1]) in _GREASE_VALUES):
            out.append(ext[start:p].decode("ascii", "backslashreplace"))
    return tuple(out)


def _quick_ech(d: bytes, p: int, end: int) -> EchExtension:
    """`_ech_client_hello` of the extension data d[p:end]; raises _UnusualError where it fails."""
    if p >= end:
        raise _UnusualError
    kind = d[p]
    if kind == ECH_INNER and p + 1 == end:
        return EchExtension(inner=True)
    # type(1) kdf_id(2) aead_id(2) config_id(1) enc length(2)
    if kind != ECH_OUTER or p + 8 > end:
        raise _UnusualError
    kdf_id = (d[p + 1] << 8) | d[p + 2]
    aead_id = (d[p + 3] << 8) | d[p + 4]
    config_id = d[p + 5]
    enc = (d[p + 6] << 8) | d[p + 7]
    at = p + 8 + enc
    if at + 2 > end:
        raise _UnusualError
    n = (d[at] << 8) | d[at + 1]  # payload <1..2^16-1>, up to the end
    if not n or at + 2 + n != end:
        raise _UnusualError
    return EchExtension(False, kdf_id, aead_id, config_id, enc, n)


def _ssl2_client_hello_length(buf: bytes) -> int | None:
    """The size of an SSL 2.0-format CLIENT-HELLO (two-byte header, no padding)."""
    if len(buf) < 3:
        return SSL2_HEADER + 1  # the message type is not visible yet
    body = ((buf[0] & 0x7F) << 8) | buf[1]
    if buf[2] != CLIENT_HELLO or body < SSL2_FIXED:
        return None
    return SSL2_HEADER + body


def _parse_ssl2_client_hello(buf: bytes) -> ClientHelloInfo:
    """Decode an SSL 2.0-format CLIENT-HELLO (RFC 5246 Appendix E.2)."""
    what = "SSL 2.0 ClientHello"
    length = _ssl2_client_hello_length(buf)
    if length is None or length > len(buf) or len(buf) < SSL2_HEADER + SSL2_FIXED:
        raise DecodeError(f"{what}: truncated or not a CLIENT-HELLO", 0)
    _msg_type, version, specs_len, session_len, challenge_len = _SSL2_FIXED.unpack_from(
        buf, SSL2_HEADER
    )
    specs_at = SSL2_HEADER + SSL2_FIXED
    if specs_len % SSL2_SPEC_LENGTH or specs_at + specs_len + session_len + challenge_len > length:
        raise DecodeError(f"{what}: lengths do not fit the {length}-byte message", 5)
    suites = []
    for at in range(specs_at, specs_at + specs_len, SSL2_SPEC_LENGTH):
        spec = int.from_bytes(buf[at : at + SSL2_SPEC_LENGTH], "big")
        # A spec whose first byte is zero is the TLS suite in its other two bytes.
        if spec > 0xFFFF or not is_grease(spec):
            suites.append(spec)
    return ClientHelloInfo(None, (version,), tuple(suites), ())
