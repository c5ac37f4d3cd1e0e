"""ClientHellos whose lengths lie or whose end never came: read what the bytes say.

Controls.md decision 10: a record length is never trusted over the bytes present. A
ClientHello can hide behind a record header claiming 0 bytes or fewer than the handshake
message holds (a peer that wants it unseen reads it anyway), or its tail can be missing
from the capture. `tls.parse_client_hello` reads well-framed hellos; this module

- `lenient_client_hello_length`: the bytes a hello needs going by its handshake header
  alone, ignoring the first record's length;
- `reframed_client_hello`: the handshake message re-wrapped in honest records, for
  `parse_client_hello`;
- `partial_client_hello`: the server name (and what precedes it) from a hello cut short.
"""

from __future__ import annotations

import struct

from conformance.decode.tls import (
    CLIENT_HELLO,
    CONTENT_HANDSHAKE,
    EXT_SERVER_NAME,
    HANDSHAKE_HEADER,
    MAX_PLAINTEXT_RECORD,
    RANDOM_LENGTH,
    RECORD_HEADER,
    SNI_HOST_NAME,
    ClientHelloInfo,
)

_TLS_MAJOR = 3
_GREASE_MASK = 0x0F0F
_GREASE_PATTERN = 0x0A0A
_U16 = struct.Struct("!H")


def lenient_client_hello_length(buf: bytes) -> int | None:
    """Bytes from the start of `buf` the ClientHello needs by its handshake header, or None.

    `buf` must start with a handshake record header (any length) followed directly by
    a ClientHello handshake header; the record length is not looked at.
    """
    if len(buf) < RECORD_HEADER + HANDSHAKE_HEADER:
        return None
    if buf[0] != CONTENT_HANDSHAKE or buf[1] != _TLS_MAJOR or buf[RECORD_HEADER] != CLIENT_HELLO:
        return None
    body = int.from_bytes(buf[RECORD_HEADER + 1 : RECORD_HEADER + HANDSHAKE_HEADER], "big")
    return RECORD_HEADER + HANDSHAKE_HEADER + body


def reframed_client_hello(buf: bytes) -> bytes | None:
    """The ClientHello `buf` starts with, wrapped in records whose lengths are true."""
    need = lenient_client_hello_length(buf)
    if need is None or need > len(buf):
        return None
    message = buf[RECORD_HEADER:need]
    out = bytearray()
    for start in range(0, len(message), MAX_PLAINTEXT_RECORD):
        chunk = message[start : start + MAX_PLAINTEXT_RECORD]
        out += bytes((CONTENT_HANDSHAKE, _TLS_MAJOR, 1)) + _U16.pack(len(chunk)) + chunk
    return bytes(out)


def partial_client_hello(buf: bytes) -> ClientHelloInfo | None:
    """What a ClientHello cut short still shows: its server name, offered suites, version.

    Reads the handshake message that follows the first record header as one run of
    bytes (so a hello fragmented over several records is not salvaged), field by field,
    as far as the bytes go. None when not even the cipher suites are there.
    """
    if len(buf) < RECORD_HEADER + HANDSHAKE_HEADER or buf[RECORD_HEADER] != CLIENT_HELLO:
        return None
    data = buf[RECORD_HEADER + HANDSHAKE_HEADER :]
    pos = 2 + RANDOM_LENGTH
    if pos + 1 > len(data):
        return None
    legacy = _U16.unpack_from(data, 0)[0]
    pos += 1 + data[pos]  # session id
    if pos + 2 > len(data):
        return None
    suites_len = _U16.unpack_from(data, pos)[0]
    suites_end = pos + 2 + suites_len
    if suites_end > len(data):
        return None
    suites = tuple(
        s
        for s in (_U16.unpack_from(data, i)[0] for i in range(pos + 2, suites_end - 1, 2))
        if not (s & _GREASE_MASK == _GREASE_PATTERN and s >> 8 == s & 0xFF)  # RFC 8701
    )
    pos = suites_end
    if pos >= len(data):
        return ClientHelloInfo(sni=None, versions=(legacy,), cipher_suites=suites, alpn=())
    pos += 1 + data[pos]  # compression methods
    pos += 2  # extensions length: not trusted, the extensions are walked as far as they go
    sni = None
    while pos + 4 <= len(data):
        ext_type, ext_len = struct.unpack_from("!HH", data, pos)
        start = pos + 4
        pos = start + ext_len
        if ext_type == EXT_SERVER_NAME:
            sni = _server_name(data[start : min(pos, len(data))])
            break
    return ClientHelloInfo(sni=sni, versions=(legacy,), cipher_suites=suites, alpn=())


def _server_name(ext: bytes) -> str | None:
    """The host_name in a (possibly cut) server_name extension, if whole."""
    pos = 2  # server_name_list length
    while pos + 3 <= len(ext):
        name_type = ext[pos]
        length = _U16.unpack_from(ext, pos + 1)[0]
        start = pos + 3
        pos = start + length
        if pos > len(ext):
            return None
        if name_type == SNI_HOST_NAME:
            text = ext[start:pos].decode("ascii", "backslashreplace")
            return text.rstrip(".").lower() or None
    return None
