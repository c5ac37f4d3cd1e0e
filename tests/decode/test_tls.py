"""TLS hello decoding: real OpenSSL hellos, scapy-built hellos, and hand-made damage.

The files in data/ are TCP payloads captured on 127.0.0.1 between OpenSSL 3.0
`s_server` and `s_client -servername api.imagicle.com` (TLS 1.2 with ALPN, TLS 1.3
with ALPN, and TLS 1.3 with a HelloRetryRequest forced by `-groups`), recorded with
`tcpdump -i lo` and cut out with `tshark -T fields -e tcp.payload`:

    s_client -tls1_2 -alpn h2,http/1.1 -cipher ECDHE-ECDSA-AES128-GCM-SHA256:...
    s_client -tls1_3 -alpn h2,http/1.1
    s_server -groups P-256  /  s_client -tls1_3 -groups X25519:P-256   (HRR)
"""

from __future__ import annotations

import hashlib
import random
import struct
from pathlib import Path

import pytest
from scapy.layers.tls.extensions import (
    ProtocolName,
    ServerName,
    TLS_Ext_ALPN,
    TLS_Ext_ServerName,
    TLS_Ext_SupportedVersion_CH,
    TLS_Ext_SupportedVersion_SH,
)
from scapy.layers.tls.handshake import TLSClientHello, TLSServerHello
from scapy.layers.tls.record import TLS

from conformance.decode import tls as tls_module
from conformance.decode.errors import DecodeError
from conformance.decode.tls import (
    HELLO_RETRY_RANDOM,
    ClientHelloInfo,
    EchExtension,
    ServerHelloInfo,
    client_hello_length,
    handshake_message_length,
    parse_client_hello,
    parse_client_hello_message,
    parse_server_hello,
    parse_server_hello_message,
)
from conformance.tls_registry import (
    TLS_VERSION_NAMES,
    is_grease,
    is_weak_suite,
    suite_name,
    version_name,
)

DATA = Path(__file__).parent / "data"
TLS12, TLS13 = 0x0303, 0x0304
GREASE_SUITE, GREASE_VERSION = 0x0A0A, 0x3A3A


def captured(name: str) -> bytes:
    """A captured TCP payload from data/<name>.hex."""
    return bytes.fromhex((DATA / f"{name}.hex").read_text().strip())


def first_message(payload: bytes) -> bytes:
    """The handshake message in the first record of a one-record hello."""
    length = struct.unpack_from("!H", payload, 3)[0]
    return payload[5 : 5 + length]


def records(message: bytes, *sizes: int, content_type: int = 22) -> bytes:
    """`message` framed as TLS 1.0-versioned records of `sizes`, the last taking the rest."""
    out, pos = b"", 0
    for size in (*sizes, len(message)):
        part = message[pos : pos + size]
        if not part:
            break
        out += struct.pack("!BHH", content_type, 0x0301, len(part)) + part
        pos += len(part)
    return out


def grease_client_hello() -> bytes:
    """A scapy ClientHello with GREASE in suites, versions and ALPN, and an odd-cased SNI."""
    hello = TLSClientHello(
        version=TLS12,
        ciphers=[GREASE_SUITE, 0x1301, 0xC02F],
        ext=[
            TLS_Ext_ServerName(servernames=[ServerName(servername=b"API.Imagicle.com.")]),
            TLS_Ext_SupportedVersion_CH(versions=[GREASE_VERSION, TLS13, TLS12]),
            TLS_Ext_ALPN(
                protocols=[ProtocolName(protocol=b"\x2a\x2a"), ProtocolName(protocol=b"h2")]
            ),
        ],
    )
    return bytes(TLS(msg=[hello]))


def client_hello_without_extensions() -> bytes:
    """A TLS 1.0-era ClientHello: no extension block at all."""
    body = b"\x03\x01" + bytes(32) + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
    return records(b"\x01" + len(body).to_bytes(3, "big") + body)


def hand_made_client_hello(extension_block: bytes) -> bytes:
    """A one-record TLS 1.2 ClientHello offering TLS_AES_128_GCM_SHA256 with these extensions."""
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00" + extension_block
    return records(b"\x01" + len(body).to_bytes(3, "big") + body)


# --- real captures ------------------------------------------------------------------


def test_tls12_client_hello_from_openssl() -> None:
    payload = captured("tls12_client_hello")
    assert client_hello_length(payload) == len(payload)
    assert parse_client_hello(payload) == ClientHelloInfo(
        sni="api.imagicle.com",
        versions=(TLS12,),
        cipher_suites=(0xC02B, 0xC02C, 0x00FF),
        alpn=("h2", "http/1.1"),
    )


def test_tls12_server_hello_followed_by_certificate_records() -> None:
    assert parse_server_hello(captured("tls12_server_flight")) == ServerHelloInfo(TLS12, 0xC02B)


def test_tls13_offered_through_supported_versions() -> None:
    info = parse_client_hello(captured("tls13_client_hello"))
    assert info.versions == (TLS13,)
    assert info.sni == "api.imagicle.com"
    assert info.cipher_suites[:3] == (0x1302, 0x1303, 0x1301)


def test_tls13_server_hello_version_comes_from_supported_versions() -> None:
    payload = captured("tls13_server_flight")
    assert first_message(payload)[4:6] == b"\x03\x03"  # legacy_version says TLS 1.2
    assert parse_server_hello(payload) == ServerHelloInfo(TLS13, 0x1302, hello_retry=False)


def test_hello_retry_request_is_marked() -> None:
    info = parse_server_hello(captured("tls13_hello_retry_request"))
    assert info == ServerHelloInfo(TLS13, 0x1302, hello_retry=True)


def test_second_client_hello_after_change_cipher_spec() -> None:
    payload = captured("tls13_client_hello_after_retry")
    assert payload[0] == 20  # middlebox-compatibility change_cipher_spec first
    info = parse_client_hello(payload)
    assert (info.sni, info.versions) == ("api.imagicle.com", (TLS13,))


# --- scapy-built and reframed hellos ------------------------------------------------


def test_grease_is_removed_everywhere() -> None:
    info = parse_client_hello(grease_client_hello())
    assert info == ClientHelloInfo(
        sni="api.imagicle.com",  # lower-cased, trailing dot gone
        versions=(TLS13, TLS12),
        cipher_suites=(0x1301, 0xC02F),
        alpn=("h2",),
    )


def test_client_hello_without_extensions_reports_legacy_version() -> None:
    info = parse_client_hello(client_hello_without_extensions())
    assert info == ClientHelloInfo(None, (0x0301,), (0x002F,), ())


def test_client_hello_split_over_two_records() -> None:
    message = first_message(captured("tls13_client_hello"))
    split = records(message, 100)
    assert split.count(b"\x16\x03\x01") >= 2
    assert client_hello_length(split) == len(split)
    assert parse_client_hello(split) == parse_client_hello(captured("tls13_client_hello"))


def test_handshake_header_split_over_records() -> None:
    message = first_message(captured("tls12_client_hello"))
    split = records(message, 1, 2, 50)
    assert client_hello_length(split) == len(split)
    assert parse_client_hello(split).sni == "api.imagicle.com"


def test_client_hello_length_while_segments_arrive() -> None:
    split = records(first_message(captured("tls13_client_hello")), 100)
    total = len(split)
    for seen in range(1, total):
        needed = client_hello_length(split[:seen])
        assert needed is not None and needed > seen, seen
        if seen >= 9:  # the handshake header is visible: an upper bound
            assert needed >= total, seen
    # Once the second record header is visible the answer is exact.
    assert client_hello_length(split[: 5 + 100 + 5]) == total


def test_client_hello_length_upper_bound_before_next_record_header() -> None:
    message = first_message(captured("tls13_client_hello"))
    split = records(message, 100)
    remaining = len(message) - 100
    assert client_hello_length(split[:105]) == 105 + 6 * remaining


def test_client_hello_length_ignores_what_follows() -> None:
    payload = captured("tls12_client_hello")
    assert client_hello_length(payload + b"\x17\x03\x03\x00\x10" + bytes(16)) == len(payload)


def test_client_hello_length_needs_the_handshake_header() -> None:
    assert client_hello_length(b"\x16\x03\x01") == 6 * 4  # worst case: 4 one-byte records
    assert client_hello_length(b"\x16\x03\x01\x00\x50\x01") == 9


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x17\x03\x03\x00\x10" + bytes(16),  # application data
        b"\x15\x03\x03\x00\x02\x02\x28",  # alert
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x16\x02\x00",  # not a TLS version
        b"\x16\x03\x03\x00\x00",  # empty handshake record: forbidden
    ],
)
def test_client_hello_length_none_for_other_payloads(payload: bytes) -> None:
    assert client_hello_length(payload) is None


def test_client_hello_length_none_for_server_hello() -> None:
    assert client_hello_length(captured("tls12_server_flight")) is None


def test_broken_framing_stops_the_wait() -> None:
    message = first_message(captured("tls12_client_hello"))
    broken = records(message[:60]) + b"\x17\x03\x03\x00\x10" + bytes(16)
    needed = client_hello_length(broken)
    assert needed == 65 + 5 <= len(broken)
    with pytest.raises(DecodeError, match="content type 23") as caught:
        parse_client_hello(broken[:needed])
    assert caught.value.offset == 65


def test_server_hello_built_by_scapy() -> None:
    hello = TLSServerHello(
        version=TLS12, cipher=0x1301, ext=[TLS_Ext_SupportedVersion_SH(version=TLS13)]
    )
    assert parse_server_hello(bytes(TLS(msg=[hello]))) == ServerHelloInfo(TLS13, 0x1301)


def test_hello_retry_request_built_by_hand() -> None:
    random = hashlib.sha256(b"HelloRetryRequest").digest()
    body = (
        b"\x03\x03" + random + b"\x00" + b"\x13\x01" + b"\x00" + b"\x00\x06\x00\x2b\x00\x02\x03\x04"
    )
    payload = records(b"\x02" + len(body).to_bytes(3, "big") + body)
    assert parse_server_hello(payload) == ServerHelloInfo(TLS13, 0x1301, hello_retry=True)


def test_ssl2_format_client_hello() -> None:
    specs = bytes.fromhex("010080" + "00002f" + "000a0a")  # SSLv2 RC4, TLS suite, GREASE
    body = b"\x01\x03\x01" + struct.pack("!HHH", len(specs), 0, 16) + specs + bytes(16)
    payload = bytes([0x80 | (len(body) >> 8), len(body) & 0xFF]) + body
    assert client_hello_length(payload) == len(payload)
    info = parse_client_hello(payload)
    assert info == ClientHelloInfo(None, (0x0301,), (0x010080, 0x002F), ())
    assert is_weak_suite(0x010080) == "SSLv2"


# --- malformed hellos ---------------------------------------------------------------


def damaged(offset: int, replacement: bytes) -> bytes:
    """The TLS 1.2 ClientHello message with bytes at `offset` (in the message) replaced."""
    message = bytearray(first_message(captured("tls12_client_hello")))
    message[offset : offset + len(replacement)] = replacement
    return bytes(message)


SESSION_ID_LENGTH_AT = 4 + 2 + 32


def test_cipher_suites_length_past_end() -> None:
    message = damaged(SESSION_ID_LENGTH_AT, b"\x00\xff\xf0")  # no session id, huge suites
    with pytest.raises(DecodeError, match="cipher_suites runs past end"):
        parse_client_hello(records(message))


def test_session_id_longer_than_32() -> None:
    with pytest.raises(DecodeError, match="legacy_session_id length 33"):
        parse_client_hello(records(damaged(SESSION_ID_LENGTH_AT, b"\x21")))


def test_truncated_extension() -> None:
    message = first_message(captured("tls12_client_hello"))
    cut = message[:-3]
    cut = cut[:1] + (len(cut) - 4).to_bytes(3, "big") + cut[4:]  # handshake length agrees
    with pytest.raises(DecodeError, match="extensions runs past end"):
        parse_client_hello(records(cut))


def test_extension_data_past_its_block() -> None:
    extension = b"\x00\x10\x00\x09\x00\x03\x02h2"  # ALPN claims 9 bytes, has 5
    with pytest.raises(DecodeError, match="extension 16 runs past end"):
        parse_client_hello(hand_made_client_hello(len(extension).to_bytes(2, "big") + extension))


def test_sni_list_length_disagrees_with_extension() -> None:
    sni = b"\x00\x20\x00\x00\x04a.bc"  # list claims 32 bytes, has 7
    extension = b"\x00\x00" + len(sni).to_bytes(2, "big") + sni
    with pytest.raises(DecodeError, match="server_name_list runs past end"):
        parse_client_hello(hand_made_client_hello(len(extension).to_bytes(2, "big") + extension))


def test_duplicate_extension() -> None:
    block = b"\x00\x08" + b"\x00\x17\x00\x00" * 2  # extended_master_secret twice
    with pytest.raises(DecodeError, match="duplicate extension 23"):
        parse_client_hello(hand_made_client_hello(block))


def test_trailing_bytes_after_extensions() -> None:
    message = first_message(captured("tls12_client_hello")) + b"\x00"
    message = message[:1] + (len(message) - 4).to_bytes(3, "big") + message[4:]
    with pytest.raises(DecodeError, match="trailing"):
        parse_client_hello(records(message))


def test_message_truncated_in_second_segment() -> None:
    split = records(first_message(captured("tls13_client_hello")), 100)
    with pytest.raises(DecodeError, match="runs past end") as caught:
        parse_client_hello(split[:-10])
    assert caught.value.offset == 105  # the second record's header


def test_error_offsets_point_into_the_payload() -> None:
    message = damaged(SESSION_ID_LENGTH_AT, b"\x21")
    with pytest.raises(DecodeError) as caught:
        parse_client_hello(records(message, 20))  # second record starts at payload 25
    assert caught.value.offset == 5 + 20 + 5 + (SESSION_ID_LENGTH_AT - 20)
    assert "offset" in str(caught.value)


def test_server_hello_is_not_a_client_hello() -> None:
    with pytest.raises(DecodeError, match="handshake type 2, not 1"):
        parse_client_hello(captured("tls12_server_flight"))


@pytest.mark.parametrize("payload", [b"", b"\x16\x03", b"\x16\x03\x01\x00\x04\x02\x00"])
def test_truncated_server_hello(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_server_hello(payload)


def test_server_hello_supported_versions_wrong_size() -> None:
    body = (
        b"\x03\x03"
        + bytes(32)
        + b"\x00"
        + b"\x13\x01\x00"
        + b"\x00\x07\x00\x2b\x00\x03\x03\x04\x00"
    )
    with pytest.raises(DecodeError, match="trailing"):
        parse_server_hello(records(b"\x02" + len(body).to_bytes(3, "big") + body))


# --- names and weak suites ----------------------------------------------------------


def test_version_names() -> None:
    assert TLS_VERSION_NAMES[0x0300] == "SSL 3.0"
    assert [version_name(v) for v in (0x0301, 0x0302, TLS12, TLS13)] == [
        "TLS 1.0",
        "TLS 1.1",
        "TLS 1.2",
        "TLS 1.3",
    ]
    assert version_name(0x7F17) == "TLS 1.3 draft 23"
    assert version_name(GREASE_VERSION) == "GREASE (0x3a3a)"
    assert version_name(0x0305) == "unknown (0x0305)"


@pytest.mark.parametrize(
    ("suite", "reason"),
    [
        (0x0000, "NULL"),  # TLS_NULL_WITH_NULL_NULL
        (0x0002, "NULL"),  # TLS_RSA_WITH_NULL_SHA
        (0xC0B4, "NULL"),  # TLS_SHA256_SHA256, integrity only (RFC 9150)
        (0x0003, "EXPORT"),  # TLS_RSA_EXPORT_WITH_RC4_40_MD5
        (0x0062, "EXPORT"),  # TLS_RSA_EXPORT1024_WITH_DES_CBC_SHA (pre-standard)
        (0x0018, "anonymous"),  # TLS_DH_anon_WITH_RC4_128_MD5
        (0xC018, "anonymous"),  # TLS_ECDH_anon_WITH_AES_128_CBC_SHA
        (0x0005, "RC4"),  # TLS_RSA_WITH_RC4_128_SHA
        (0xC011, "RC4"),  # TLS_ECDHE_RSA_WITH_RC4_128_SHA
        (0x0009, "DES"),  # TLS_RSA_WITH_DES_CBC_SHA
        (0x000A, "3DES"),  # TLS_RSA_WITH_3DES_EDE_CBC_SHA
        (0xC012, "3DES"),  # TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA
        (0x0007, "IDEA"),  # TLS_RSA_WITH_IDEA_CBC_SHA
        (0x00FF, "SCSV"),
        (0x0A0A, "unregistered"),  # GREASE can never be chosen
        (0x1301, None),
        (0x1303, None),
        (0xC02B, None),
        (0xC02F, None),
        (0xCCA8, None),
        (0x009C, None),  # TLS_RSA_WITH_AES_128_GCM_SHA256: not forward-secret, not weak here
    ],
)
def test_weak_suites(suite: int, reason: str | None) -> None:
    assert is_weak_suite(suite) == reason


def test_weak_suites_agree_with_scapy_names() -> None:
    """An independent table (scapy's) flags nothing that our table misses."""
    from scapy.layers.tls.crypto.suites import _tls_cipher_suites

    markers = ("NULL", "EXPORT", "_anon_", "RC4", "3DES", "_DES", "IDEA", "RC2")
    for suite, name in _tls_cipher_suites.items():
        assert suite_name(suite) != f"unknown (0x{suite:04x})", name
        if any(marker in name for marker in markers):
            assert is_weak_suite(suite) is not None, name


def test_suite_names() -> None:
    assert suite_name(0x1301) == "TLS_AES_128_GCM_SHA256"
    assert suite_name(0xC02F) == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert suite_name(0x0A0A) == "GREASE (0x0a0a)"
    assert suite_name(0xBEEF) == "unknown (0xbeef)"
    assert suite_name(0x0700C0) == "SSL_CK_DES_192_EDE3_CBC_WITH_MD5"


# --- bare handshake messages (as QUIC carries them) ---------------------------------


def test_bare_client_hello_message() -> None:
    payload = captured("tls13_client_hello")
    message = first_message(payload)
    assert handshake_message_length(message) == len(message)
    assert parse_client_hello_message(message + b"trailing") == parse_client_hello(payload)


def test_bare_server_hello_message() -> None:
    payload = captured("tls13_server_flight")
    assert parse_server_hello_message(first_message(payload)) == parse_server_hello(payload)


def test_handshake_message_length_needs_four_bytes() -> None:
    assert handshake_message_length(b"\x01\x00\x01") is None
    assert handshake_message_length(b"\x01\x00\x01\x00") == 4 + 256


@pytest.mark.parametrize(
    ("message", "problem", "offset"),
    [
        (b"\x01\x00", "handshake header truncated", 0),
        (b"\x02\x00\x00\x00", "handshake type 2, not 1", 0),
        (b"\x01\x00\x01\x00" + bytes(10), "message of 260 bytes runs past end", 1),
    ],
)
def test_bare_message_damage(message: bytes, problem: str, offset: int) -> None:
    with pytest.raises(DecodeError, match=problem) as caught:
        parse_client_hello_message(message)
    assert caught.value.offset == offset


def test_bare_message_errors_have_message_offsets() -> None:
    message = damaged(SESSION_ID_LENGTH_AT, b"\x21")
    with pytest.raises(DecodeError, match="legacy_session_id length 33") as caught:
        parse_client_hello_message(message)
    assert caught.value.offset == SESSION_ID_LENGTH_AT


# --- encrypted_client_hello (RFC 9849 §5) -------------------------------------------

EXT_ECH = b"\xfe\x0d"


def extension(ext_type: bytes, data: bytes) -> bytes:
    """One extension: type, length, data."""
    return ext_type + len(data).to_bytes(2, "big") + data


def sni_extension(host: bytes) -> bytes:
    """A server_name extension naming `host`."""
    entry = b"\x00" + len(host).to_bytes(2, "big") + host
    return extension(b"\x00\x00", len(entry).to_bytes(2, "big") + entry)


def outer_ech(config_id: int = 0x2A, enc: bytes = bytes(32), payload: bytes = bytes(200)) -> bytes:
    """An outer ECHClientHello: HKDF-SHA256 (1), AES-128-GCM (1), `config_id`, enc, payload."""
    return (
        b"\x00\x00\x01\x00\x01"
        + bytes([config_id])
        + len(enc).to_bytes(2, "big")
        + enc
        + len(payload).to_bytes(2, "big")
        + payload
    )


def ech_client_hello(ech: bytes, *more: bytes, sni: bytes = b"public.example.com") -> bytes:
    """A ClientHello with SNI `sni`, an encrypted_client_hello extension and `more`."""
    block = sni_extension(sni) + extension(EXT_ECH, ech) + b"".join(more)
    return hand_made_client_hello(len(block).to_bytes(2, "big") + block)


def test_outer_ech_extension() -> None:
    info = parse_client_hello(ech_client_hello(outer_ech()))
    assert info.sni == "public.example.com"
    assert info.ech == EchExtension(
        inner=False, kdf_id=1, aead_id=1, config_id=0x2A, enc_length=32, payload_length=200
    )
    assert not info.ech_outer_extensions


def test_outer_ech_after_hello_retry_has_empty_enc() -> None:
    info = parse_client_hello(ech_client_hello(outer_ech(enc=b"")))
    assert info.ech is not None and info.ech.enc_length == 0


def test_inner_ech_extension_and_outer_extensions() -> None:
    outer_extensions = extension(b"\xfd\x00", b"\x04\x00\x0a\x00\x0d")
    info = parse_client_hello(ech_client_hello(b"\x01", outer_extensions))
    assert info.ech == EchExtension(inner=True)
    assert info.ech_outer_extensions


def test_no_ech_by_default() -> None:
    info = parse_client_hello(captured("tls13_client_hello"))
    assert info.ech is None and not info.ech_outer_extensions


@pytest.mark.parametrize(
    ("ech", "problem"),
    [
        (b"", "ECHClientHelloType runs past end"),
        (b"\x02", "ECHClientHelloType 2"),
        (b"\x01\x00", "1 trailing bytes"),
        (outer_ech(payload=b""), "payload length 0 outside 1..65535"),
        (outer_ech()[:-1], "payload runs past end"),
        (outer_ech() + b"\x00", "1 trailing bytes"),
        (b"\x00\x00\x01\x00", "aead_id runs past end"),
    ],
)
def test_malformed_ech_extension(ech: bytes, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        parse_client_hello(ech_client_hello(ech))


def hello_retry_request(*extensions: bytes) -> bytes:
    """A HelloRetryRequest (TLS 1.3, TLS_AES_128_GCM_SHA256) with extra extensions."""
    random = hashlib.sha256(b"HelloRetryRequest").digest()
    block = b"\x00\x2b\x00\x02\x03\x04" + b"".join(extensions)
    body = b"\x03\x03" + random + b"\x00" + b"\x13\x01" + b"\x00"
    body += len(block).to_bytes(2, "big") + block
    return records(b"\x02" + len(body).to_bytes(3, "big") + body)


def test_hello_retry_request_with_ech_confirmation() -> None:
    info = parse_server_hello(hello_retry_request(extension(EXT_ECH, bytes(8))))
    assert info == ServerHelloInfo(TLS13, 0x1301, hello_retry=True, ech_confirmation=True)


def test_hello_retry_request_without_ech_confirmation() -> None:
    assert not parse_server_hello(hello_retry_request()).ech_confirmation


def test_ech_confirmation_of_the_wrong_size() -> None:
    with pytest.raises(DecodeError, match="ECH confirmation of 7 bytes"):
        parse_server_hello(hello_retry_request(extension(EXT_ECH, bytes(7))))


def _plain_reader_methods(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hello readers as written before their fast paths: every field through `take`."""
    r = tls_module._Reader

    def skip(self: tls_module._Reader, n: int, field: str) -> None:
        self.take(n, field)

    def u8(self: tls_module._Reader, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self: tls_module._Reader, field: str) -> int:
        return int.from_bytes(self.take(2, field), "big")

    def vector(
        self: tls_module._Reader, length_bytes: int, field: str, floor: int, ceiling: int
    ) -> bytes:
        at = self.pos
        length = int.from_bytes(self.take(length_bytes, f"{field} length"), "big")
        if not floor <= length <= ceiling:
            self.fail(f"{field} length {length} outside {floor}..{ceiling}", at)
        return self.take(length, field)

    def span(self: tls_module._Reader, length_bytes: int, field: str) -> tuple[int, int]:
        length = int.from_bytes(self.take(length_bytes, f"{field} length"), "big")
        start = self.pos
        self.take(length, field)
        return start, self.pos

    for name, plain in (("skip", skip), ("u8", u8), ("u16", u16), ("vector", vector)):
        monkeypatch.setattr(r, name, plain)
    monkeypatch.setattr(r, "span", span)
    monkeypatch.setattr(tls_module, "_extension_spans", lambda *_: None)


def _outcome(payload: bytes) -> object:
    try:
        return parse_client_hello(payload)
    except DecodeError as exc:
        return ("error", str(exc), exc.offset)


def test_fast_field_readers_conclude_as_the_plain_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seeded damage to real hellos: the same result, or the same error at the same offset."""
    rng = random.Random(17)
    hellos = [grease_client_hello(), hand_made_client_hello(b"\x00\x04\x00\x00\x00\x00")]
    cases = []
    for hello in hellos:
        cases += [hello[:cut] for cut in range(len(hello))]
        for _ in range(400):
            damaged = bytearray(hello)
            for _ in range(rng.randrange(1, 4)):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            cases.append(bytes(damaged))
    fast = [_outcome(c) for c in cases]
    _plain_reader_methods(monkeypatch)
    assert [_outcome(c) for c in cases] == fast


# --- one-pass readers: the field-by-field reader's conclusions, sooner ----------------

REMEMBERED = (
    tls_module._GREASE_FREE,
    tls_module._SERVER_NAMES,
    tls_module._ALPNS,
    tls_module._CLIENT_HELLOS,
    tls_module._SERVER_HELLOS,
)


def _forget_remembered() -> None:
    for cache in REMEMBERED:
        cache.clear()


def _field_by_field_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every hello framed by the record walk and read by `_Reader`, as before the one-pass
    readers (which these three helpers let in)."""
    monkeypatch.setattr(tls_module, "_one_record_end", lambda *_: None)
    monkeypatch.setattr(tls_module, "_bare_end", lambda *_: None)
    monkeypatch.setattr(tls_module, "_one_record_length", lambda _: tls_module._WALK)


def _usual_hellos() -> list[bytes]:
    """Whole hellos of every kind the readers know, each in one record."""
    alpn = extension(b"\x00\x10", b"\x00\x0d\x02h2\x02\x2a\x2a\x06spdy/3")
    versions = extension(b"\x00\x2b", b"\x06\x3a\x3a\x03\x04\x03\x03")
    return [
        captured("tls12_client_hello"),
        captured("tls13_client_hello"),
        captured("tls12_server_flight"),
        captured("tls13_server_flight"),
        captured("tls13_hello_retry_request"),
        grease_client_hello(),
        client_hello_without_extensions(),
        ech_client_hello(outer_ech(), alpn, versions),
        ech_client_hello(outer_ech(enc=b"")),
        ech_client_hello(b"\x01", extension(b"\xfd\x00", b"\x04\x00\x0a\x00\x0d")),
        hand_made_client_hello(b"\x00\x00"),  # an empty extension block
        hand_made_client_hello(b"\x00\x0a" + extension(b"\x00\x00", b"\x00\x04\x01\x00\x01x")),
        hello_retry_request(extension(EXT_ECH, bytes(8))),
        hello_retry_request(),
        bytes(TLS(msg=[TLSServerHello(version=TLS12, cipher=0xC02F)])),
    ]


def _damaged_cases(rng: random.Random, hellos: list[bytes], per_hello: int) -> list[bytes]:
    """Every cut of each hello, and `per_hello` copies with 1-3 bytes changed: to any
    value, or (to reach length fields' edges) by a small step."""
    cases = []
    for hello in hellos:
        cases += [hello[:cut] for cut in range(len(hello))]
        for _ in range(per_hello):
            damaged = bytearray(hello)
            for _ in range(rng.randrange(1, 4)):
                at = rng.randrange(len(damaged))
                if rng.random() < 0.5:
                    damaged[at] = rng.randrange(256)
                else:
                    damaged[at] = (damaged[at] + rng.choice((-2, -1, 1, 2))) % 256
            cases.append(bytes(damaged))
        cases.append(hello + b"\x17\x03\x03\x00\x02\x00\x00")  # what follows is not read
    return cases


def _vector(length_bytes: int, data: bytes, lie: int = 0) -> bytes:
    """`data` with its length prefix, off by `lie`."""
    return ((len(data) + lie) % 256**length_bytes).to_bytes(length_bytes, "big") + data


# Field values for hellos whose framing is sound while a field may be wrong: each value
# a reader has to accept or refuse on its own (lengths that agree, but odd, empty, too
# long, a second host name, ...). Weighted towards the sound ones.
_SESSIONS = [b"", bytes(32), bytes(33), b"\x01"]
_SUITES = [
    _vector(2, b"\x13\x01\xc0\x2f"),
    _vector(2, b"\x0a\x0a\x13\x01"),
    _vector(2, b"\x13"),
    _vector(2, b"\x13\x01\x0a"),
    _vector(2, b""),
]
_COMPRESSIONS = [b"\x01\x00", b"\x00", b"\x02\x00\x01"]
_HOST = b"\x00" + _vector(2, b"API.example.")
_SERVER_NAMES = [
    _vector(2, _HOST),
    _vector(2, b"\x01" + _vector(2, b"x") + _HOST),
    _vector(2, _HOST + _HOST),  # a second host_name
    _vector(2, b"\x00" + _vector(2, b"")),
    _vector(2, _HOST, lie=1),
    _vector(2, _HOST) + b"\x00",
    _vector(2, b""),
    b"",
    b"\x00",
]
_ALPNS = [
    _vector(2, _vector(1, b"h2") + _vector(1, b"\x2a\x2a") + _vector(1, b"http/1.1")),
    _vector(2, _vector(1, b"")),
    _vector(2, _vector(1, b"h2", lie=1)),
    _vector(2, _vector(1, b"h2")) + b"\x00",
    _vector(2, b""),
    b"",
]
_VERSIONS = [
    _vector(1, b"\x3a\x3a\x03\x04\x03\x03"),
    _vector(1, b"\x03\x04"),
    _vector(1, b"\x03\x04\x03"),
    _vector(1, b"\x03"),
    _vector(1, b""),
    _vector(1, bytes(255)),
    _vector(1, b"\x03\x04") + b"\x00",
    b"",
]
_ECHS = [
    outer_ech(),
    outer_ech(enc=b""),
    outer_ech(payload=b""),
    outer_ech() + b"\x00",
    outer_ech()[:-1],
    outer_ech()[:7],
    b"\x01",
    b"\x01\x00",
    b"\x02",
    b"",
]
_CLIENT_EXTENSIONS = [
    (0x0000, _SERVER_NAMES),
    (0x0010, _ALPNS),
    (0x002B, _VERSIONS),
    (0xFE0D, _ECHS),
    (0xFD00, [b"\x02\x00\x0a"]),
    (0x0017, [b""]),
    (0x0033, [_vector(2, b"\x00\x1d" + _vector(2, bytes(32)))]),
]


def _sometimes_wrong(rng: random.Random, values: list[bytes]) -> bytes:
    return values[0] if rng.random() < 0.6 else rng.choice(values)


def _built_hello(rng: random.Random) -> bytes:
    """A ClientHello or ServerHello from the values above, its framing sound."""
    if rng.random() < 0.7:
        body = b"\x03\x03" + bytes(32) + _vector(1, _sometimes_wrong(rng, _SESSIONS))
        body += _sometimes_wrong(rng, _SUITES) + _sometimes_wrong(rng, _COMPRESSIONS)
        chosen = [e for e in _CLIENT_EXTENSIONS if rng.random() < 0.5]
        msg_type = b"\x01"
    else:
        random_ = HELLO_RETRY_RANDOM if rng.random() < 0.5 else bytes(32)
        body = b"\x03\x03" + random_ + _vector(1, _sometimes_wrong(rng, _SESSIONS))
        body += b"\x13\x01" + rng.choice([b"\x00", b""])
        versions = [b"\x03\x04", b"\x03", b"\x03\x04\x00", b""]
        ech = [bytes(8), bytes(7), bytes(9), b""]
        chosen = [e for e in [(0x002B, versions), (0xFE0D, ech)] if rng.random() < 0.6]
        msg_type = b"\x02"
    extensions = [
        struct.pack("!H", ext_type) + _vector(2, _sometimes_wrong(rng, values))
        for ext_type, values in chosen
    ]
    rng.shuffle(extensions)
    if extensions and rng.random() < 0.05:
        extensions.append(extensions[0])  # a duplicate
    if extensions or rng.random() < 0.5:
        body += _vector(2, b"".join(extensions), lie=rng.choice([0] * 20 + [-1, 1]))
    message = msg_type + len(body).to_bytes(3, "big") + body
    return records(message) if rng.random() < 0.9 else records(message, 40)


def _conclusions(payload: bytes) -> tuple[object, ...]:
    """What every hello reader makes of `payload` (as records, and bare: QUIC)."""
    out: list[object] = [client_hello_length(payload)]
    for read, data in (
        (parse_client_hello, payload),
        (parse_server_hello, payload),
        (parse_client_hello_message, payload[5:]),
        (parse_server_hello_message, payload[5:]),
    ):
        try:
            out.append(read(data))
        except DecodeError as exc:
            out.append(("error", str(exc), exc.offset))
    return tuple(out)


def test_one_pass_readers_conclude_as_the_field_by_field_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seeded damage to every kind of hello: the same result, or the same error at the same
    offset, with nothing remembered yet and with everything remembered."""
    rng = random.Random(9849)
    cases = _damaged_cases(rng, _usual_hellos(), per_hello=300)
    cases += [_built_hello(rng) for _ in range(3000)]
    _forget_remembered()
    first = [_conclusions(c) for c in cases]
    remembered = [_conclusions(c) for c in cases]
    quick = [tls_module.quick_hello(c) for c in cases]
    _field_by_field_only(monkeypatch)
    plain = [_conclusions(c) for c in cases]
    assert first == plain
    assert remembered == plain
    for case, hello, conclusions in zip(cases, quick, plain, strict=True):
        if hello is not None:  # it claims only what a reader concludes
            assert hello in conclusions[1:3], case.hex()


def test_one_pass_readers_answer_the_usual_hellos(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whole one-record hellos never reach the field-by-field reader (else the test above
    compares that reader with itself)."""

    def no_reader(*_: object) -> None:
        raise AssertionError("the field-by-field reader was asked")

    hellos = _usual_hellos()
    expected = [_conclusions(h) for h in hellos]
    monkeypatch.setattr(tls_module, "_handshake_message", no_reader)
    monkeypatch.setattr(tls_module, "_bare_message", no_reader)
    for hello, conclusions in zip(hellos, expected, strict=True):
        client = hello[5] == 1
        if client:
            assert client_hello_length(hello) == 9 + int.from_bytes(hello[6:9], "big")
        read = parse_client_hello if client else parse_server_hello
        bare = parse_client_hello_message if client else parse_server_hello_message
        assert tls_module.quick_hello(hello) == read(hello) == bare(hello[5:])
        assert read(hello) in conclusions


def test_quick_hello_leaves_the_unusual_to_the_readers() -> None:
    split = records(first_message(captured("tls13_client_hello")), 100)
    duplicate = hand_made_client_hello(b"\x00\x08" + b"\x00\x17\x00\x00" * 2)
    for payload in (
        split,  # two records
        split[:-1],  # cut
        captured("tls13_client_hello_after_retry"),  # change_cipher_spec first
        duplicate,  # the field-by-field reader says what is wrong
        b"\x17\x03\x03\x00\x10" + bytes(16),
        b"\x16\x03\x03\x00\x04\x0b\x00\x00\x00",  # a Certificate message
    ):
        assert tls_module.quick_hello(payload) is None
    with pytest.raises(DecodeError, match="duplicate extension 23"):
        parse_client_hello(duplicate)


def test_grease_values_are_rfc_8701s() -> None:
    assert {v for v in range(2**16) if is_grease(v)} == tls_module._GREASE_VALUES


def test_remembered_decodings_are_bounded() -> None:
    _forget_remembered()
    bound = tls_module.HELLO_FIELD_CACHE
    for i in range(bound + 5):
        suites = struct.pack("!HH", 0x1301, 0x2000 + i)  # a distinct list each time
        body = b"\x03\x03" + bytes(32) + b"\x00\x00\x04" + suites + b"\x01\x00"
        block = sni_extension(b"h%d.example" % i)
        body += len(block).to_bytes(2, "big") + block
        info = parse_client_hello(records(b"\x01" + len(body).to_bytes(3, "big") + body))
        assert info.cipher_suites == (0x1301, 0x2000 + i) and info.sni == f"h{i}.example"
    assert all(0 < len(cache) <= bound for cache in REMEMBERED[:2])
    assert 0 < len(tls_module._CLIENT_HELLOS) <= bound
    _forget_remembered()
    long_name = b"a" * 63 + (b"." + b"b" * 63) * 30  # a key too long to keep
    block = sni_extension(long_name)
    info = parse_client_hello(hand_made_client_hello(len(block).to_bytes(2, "big") + block))
    assert info.sni == long_name.decode()
    assert not tls_module._SERVER_NAMES and not tls_module._CLIENT_HELLOS
    parse_client_hello(captured("tls13_client_hello"))
    assert len(tls_module._SERVER_NAMES) == len(tls_module._CLIENT_HELLOS) == 1  # small: kept
