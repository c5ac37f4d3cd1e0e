"""Build protected QUIC Initial packets for tests, with aioquic's packet protection.

aioquic (installed with mitmproxy) is a separate QUIC implementation: packets it
protects and `conformance.decode.quic` opens show both read RFC 9001 / RFC 9369 the
same way. For v1 and v2 its own `setup_initial` derives the keys; for the drafts it
has no salt table, so the secret is derived here with its HKDF helpers and the
draft's salt.
"""

from __future__ import annotations

from aioquic.quic.crypto import CryptoContext, CryptoPair
from aioquic.tls import CipherSuite, cipher_suite_hash, hkdf_expand_label, hkdf_extract

from conformance.decode.quic import SUPPORTED_VERSIONS, VERSION_1, VERSION_2

MIN_CLIENT_DATAGRAM = 1200  # RFC 9000 §14.1
TAG = 16


def varint(value: int) -> bytes:
    """A QUIC variable-length integer (RFC 9000 §16), shortest form."""
    for length, prefix in ((1, 0x00), (2, 0x40), (4, 0x80), (8, 0xC0)):
        if value < 1 << (8 * length - 2):
            data = bytearray(value.to_bytes(length, "big"))
            data[0] |= prefix
            return bytes(data)
    raise ValueError(value)


def crypto_frame(offset: int, data: bytes) -> bytes:
    """A CRYPTO frame (RFC 9000 §19.6)."""
    return b"\x06" + varint(offset) + varint(len(data)) + data


def ack_frame(largest: int, ecn: bool = False) -> bytes:
    """An ACK frame acknowledging packets 0..largest (one range)."""
    body = varint(largest) + varint(0) + varint(0) + varint(largest)
    return (b"\x03" + body + b"\x00\x00\x00") if ecn else (b"\x02" + body)


def handshake_message(msg_type: int, body: bytes) -> bytes:
    """A TLS handshake message (RFC 8446 §4) without record framing."""
    return bytes([msg_type]) + len(body).to_bytes(3, "big") + body


def _sender(version: int, key_dcid: bytes, server: bool) -> CryptoContext:
    """The sending side's Initial protection, derived by aioquic."""
    if version in (VERSION_1, VERSION_2):
        pair = CryptoPair()
        pair.setup_initial(key_dcid, is_client=not server, version=version)
        return pair.send
    algorithm = cipher_suite_hash(CipherSuite.AES_128_GCM_SHA256)
    initial = hkdf_extract(algorithm, SUPPORTED_VERSIONS[version].salt, key_dcid)
    label = b"server in" if server else b"client in"
    context = CryptoContext()
    context.setup(
        cipher_suite=CipherSuite.AES_128_GCM_SHA256,
        secret=hkdf_expand_label(algorithm, initial, label, b"", algorithm.digest_size),
        version=VERSION_1,  # drafts 23-32 used v1's labels
    )
    return context


def long_header_first_byte(version: int, kind: str, pn_length: int) -> int:
    """The unprotected first byte of a long header packet of `kind`."""
    types = SUPPORTED_VERSIONS[version].types
    return 0xC0 | (types.index(kind) << 4) | (pn_length - 1)


def initial(
    frames: bytes,
    *,
    version: int = VERSION_1,
    dcid: bytes = bytes.fromhex("8394c8f03e515708"),
    scid: bytes = b"",
    key_dcid: bytes | None = None,
    server: bool = False,
    pn: int = 0,
    pn_length: int = 2,
    token: bytes = b"",
    pad_to: int | None = None,
) -> bytes:
    """A protected Initial packet holding `frames`.

    Keys come from `key_dcid` (default: `dcid`), as the client's first Initial does.
    `pad_to` adds PADDING frames until the packet is that long (client datagrams
    must be 1200 bytes: pass MIN_CLIENT_DATAGRAM).
    """
    first = long_header_first_byte(version, "Initial", pn_length)
    head = (
        bytes([first])
        + version.to_bytes(4, "big")
        + bytes([len(dcid)])
        + dcid
        + bytes([len(scid)])
        + scid
        + varint(len(token))
        + token
    )

    def build(payload: bytes) -> bytes:
        length = varint(pn_length + len(payload) + TAG)
        if len(length) == 1:  # a two-byte Length keeps the size arithmetic simple
            length = bytes([0x40, length[0]])
        return head + length + (pn & ((1 << (8 * pn_length)) - 1)).to_bytes(pn_length, "big")

    payload = frames
    if pad_to is not None:
        overhead = len(build(payload)) + TAG
        payload += bytes(max(0, pad_to - overhead - len(payload)))
    header = build(payload)
    return _sender(version, key_dcid or dcid, server).encrypt_packet(header, payload, pn)


def other_long_packet(kind: str, body: bytes, *, version: int = VERSION_1, dcid: bytes) -> bytes:
    """An (unprotected, opaque) Handshake or 0-RTT packet with a correct Length."""
    first = long_header_first_byte(version, kind, 1)
    return (
        bytes([first])
        + version.to_bytes(4, "big")
        + bytes([len(dcid)])
        + dcid
        + b"\x00"
        + varint(len(body))
        + body
    )
