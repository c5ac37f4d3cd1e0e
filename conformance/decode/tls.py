"""TLS ClientHello / ServerHello decoding and cipher-suite facts.

Hellos are read from the TCP payload as sent: a sequence of TLS records (RFC 8446
§5.1, RFC 5246 §6.2.1) whose handshake message may be fragmented over several of
them. Offsets in DecodeError messages are offsets in that payload. QUIC carries
the bare handshake messages in CRYPTO frames, without records (RFC 9001 §4):
`parse_client_hello_message` and `parse_server_hello_message` read those, with
offsets in the message.

The encrypted_client_hello extension (ECH, RFC 9849 §5) is decoded into
`EchExtension`; whether it is real or GREASE is `decode/ech.py`'s question.
"""

from __future__ import annotations

import bisect
import hashlib
import struct
from dataclasses import dataclass
from typing import NoReturn

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


def parse_client_hello(buf: bytes) -> ClientHelloInfo:
    """Decode the ClientHello at the start of `buf`; raise DecodeError if malformed.

    The message may be fragmented over several records; bytes after it are ignored,
    and so are change_cipher_spec records before it (sent before a second
    ClientHello, RFC 8446 Appendix D.4). An SSL 2.0-format CLIENT-HELLO is decoded
    too (no extensions, so no SNI).
    """
    if buf and buf[0] & 0x80:
        return _parse_ssl2_client_hello(buf)
    return _client_hello(_handshake_message(buf, CLIENT_HELLO, "ClientHello"))


def parse_client_hello_message(message: bytes) -> ClientHelloInfo:
    """Decode a bare ClientHello handshake message (no record header, as QUIC carries it).

    `message` starts with the handshake header (msg_type, 3-byte length); bytes after
    the message are ignored. DecodeError offsets are offsets in `message`.
    """
    return _client_hello(_bare_message(message, CLIENT_HELLO, "ClientHello"))


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
    return _server_hello(_handshake_message(buf, SERVER_HELLO, "ServerHello"))


def parse_server_hello_message(message: bytes) -> ServerHelloInfo:
    """Decode a bare ServerHello handshake message (no record header, as QUIC carries it)."""
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
    values = struct.unpack(f"!{len(data) // 2}H", data)
    # is_grease, inline: a hello lists some twenty values
    return tuple(v for v in values if (v & 0x0F0F) != 0x0A0A or (v >> 8) != (v & 0xFF))


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
