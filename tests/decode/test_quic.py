"""QUIC Initial decoding: RFC vectors, a real client and server (aioquic), and damage.

data/rfc9001_*.hex and data/rfc9369_*.hex are the protected Initial packets of
RFC 9001 Appendix A.2/A.3 and RFC 9369 Appendix A.2/A.3 (QUIC v2). They were
rebuilt with aioquic from the RFCs' unprotected payloads (rfc9001_client_crypto_frame,
rfc9001_server_frames; v2 reuses them) and agree with the RFCs' printed packets:
`test_stored_vectors_are_what_aioquic_builds` keeps that link, and
`test_rfc_printed_bytes` checks the bytes the RFCs print (protected headers, the
header-protection samples, the v1 client packet's AEAD tag, the whole v1 server
packet), so a wrong payload could not pass.
"""

from __future__ import annotations

import datetime
import random
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import QuicProtocolVersion
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.tls.extensions import (
    ProtocolName,
    ServerName,
    TLS_Ext_ALPN,
    TLS_Ext_ServerName,
    TLS_Ext_SupportedVersion_CH,
)
from scapy.layers.tls.handshake import TLSClientHello
from scapy.utils import rdpcap

from conformance.decode.errors import DecodeError
from conformance.decode.quic import (
    MAX_CRYPTO_BYTES,
    MAX_CRYPTO_FRAGMENTS,
    MAX_KEY_CONTEXTS,
    MAX_QUIET_DATAGRAMS,
    SUPPORTED_VERSIONS,
    VERSION_1,
    VERSION_2,
    QuicAuthError,
    QuicClientReader,
    QuicServerReader,
    initial_keys,
    looks_like_quic_initial,
    version_name,
)
from conformance.decode.tls import ClientHelloInfo, EchExtension, ServerHelloInfo
from tests.capture_files import write_pcap
from tests.decode.quic_packets import (
    MIN_CLIENT_DATAGRAM,
    ack_frame,
    crypto_frame,
    handshake_message,
    initial,
    other_long_packet,
    varint,
)
from tests.tshark_version import needs_tshark

DATA = Path(__file__).parent / "data"
TLS13 = 0x0304
RFC_DCID = bytes.fromhex("8394c8f03e515708")  # RFC 9001 A.1
RFC_SERVER_SCID = bytes.fromhex("f067a5502a4262b5")  # RFC 9001 A.3
CLIENT, SERVER = "192.0.2.10", "198.51.100.7"
NAME = "api.imagicle.com"


def vector(name: str) -> bytes:
    """A hex file from data/ (whitespace ignored)."""
    return bytes.fromhex((DATA / f"{name}.hex").read_text())


def rfc_client_hello() -> bytes:
    """The ClientHello of RFC 9001 A.2, as a bare handshake message."""
    frame = vector("rfc9001_client_crypto_frame")
    assert frame[:4] == bytes.fromhex("060040f1")  # CRYPTO, offset 0, length 241
    return frame[4:]


def client_hello(
    name: str = NAME, *, alpn: tuple[bytes, ...] = (b"h3",), ext: bytes = b""
) -> bytes:
    """A bare TLS 1.3 ClientHello handshake message built by scapy (plus raw extensions)."""
    hello = bytes(
        TLSClientHello(
            version=0x0303,
            ciphers=[0x1301, 0x1302],
            ext=[
                TLS_Ext_ServerName(servernames=[ServerName(servername=name.encode())]),
                TLS_Ext_SupportedVersion_CH(versions=[TLS13]),
                TLS_Ext_ALPN(protocols=[ProtocolName(protocol=p) for p in alpn]),
            ],
        )
    )
    if not ext:
        return hello
    body = bytearray(hello[4:])
    ext_at = 2 + 32 + 1 + body[34] + 2  # version, random, session id, suites length...
    ext_at += int.from_bytes(body[ext_at - 2 : ext_at], "big")
    ext_at += 1 + body[ext_at]  # compression methods
    old = int.from_bytes(body[ext_at : ext_at + 2], "big")
    body[ext_at : ext_at + 2] = (old + len(ext)).to_bytes(2, "big")
    body += ext
    return handshake_message(1, bytes(body))


def large_client_hello() -> bytes:
    """A ClientHello too big for one 1200-byte Initial (long ALPN names)."""
    hello = client_hello(alpn=(b"h3", *(bytes([0x61 + i]) * 200 for i in range(8))))
    assert len(hello) > MIN_CLIENT_DATAGRAM
    return hello


def server_hello(*, retry: bool = False, suite: int = 0x1301) -> bytes:
    """A bare TLS 1.3 ServerHello (or HelloRetryRequest) handshake message."""
    import hashlib

    random_ = hashlib.sha256(b"HelloRetryRequest").digest() if retry else bytes(32)
    body = (
        b"\x03\x03"
        + random_
        + b"\x00"
        + suite.to_bytes(2, "big")
        + b"\x00"
        + b"\x00\x06\x00\x2b\x00\x02\x03\x04"
    )
    return handshake_message(2, body)


def self_signed() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A throwaway certificate for the in-memory aioquic server."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def aioquic_client(
    version: int = VERSION_1, alpn: tuple[str, ...] = ("h3",)
) -> tuple[QuicConnection, list[bytes]]:
    """A real QUIC client (aioquic) connecting nowhere: its first datagrams, unsent."""
    config = QuicConfiguration(
        is_client=True,
        server_name=NAME,
        alpn_protocols=list(alpn),
        supported_versions=[version],
        verify_mode=ssl.CERT_NONE,
    )
    connection = QuicConnection(configuration=config)
    connection.connect((SERVER, 443), now=0.0)
    return connection, [data for data, _addr in connection.datagrams_to_send(now=0.0)]


def aioquic_exchange(version: int) -> tuple[list[bytes], list[bytes]]:
    """A real client and server (aioquic) handshaking in memory: (client, server) datagrams."""
    client, first = aioquic_client(version)
    cert, key = self_signed()
    server = QuicConnection(
        configuration=QuicConfiguration(
            is_client=False,
            alpn_protocols=["h3"],
            certificate=cert,
            private_key=key,
            supported_versions=[version],
        ),
        original_destination_connection_id=client.original_destination_connection_id,
    )
    sent_by_client, sent_by_server = list(first), []
    outbox = first
    for _round in range(4):
        for datagram in outbox:
            server.receive_datagram(datagram, (CLIENT, 40000), now=0.0)
        replies = [data for data, _addr in server.datagrams_to_send(now=0.0)]
        sent_by_server += replies
        for datagram in replies:
            client.receive_datagram(datagram, (SERVER, 443), now=0.0)
        outbox = [data for data, _addr in client.datagrams_to_send(now=0.0)]
        sent_by_client += outbox
    return sent_by_client, sent_by_server


# --- key derivation and the RFC vectors -------------------------------------------


@pytest.mark.parametrize(
    ("version", "server", "secret", "key", "iv", "hp"),
    [
        (  # RFC 9001 A.1
            VERSION_1,
            False,
            "c00cf151ca5be075ed0ebfb5c80323c42d6b7db67881289af4008f1f6c357aea",
            "1f369613dd76d5467730efcbe3b1a22d",
            "fa044b2f42a3fd3b46fb255c",
            "9f50449e04a0e810283a1e9933adedd2",
        ),
        (
            VERSION_1,
            True,
            "3c199828fd139efd216c155ad844cc81fb82fa8d7446fa7d78be803acdda951b",
            "cf3a5331653c364c88f0f379b6067e37",
            "0ac1493ca1905853b0bba03e",
            "c206b8d9b9f0f37644430b490eeaa314",
        ),
        (  # RFC 9369 A.1
            VERSION_2,
            False,
            "14ec9d6eb9fd7af83bf5a668bc17a7e283766aade7ecd0891f70f9ff7f4bf47b",
            "8b1a0bc121284290a29e0971b5cd045d",
            "91f73e2351d8fa91660e909f",
            "45b95e15235d6f45a6b19cbcb0294ba9",
        ),
        (
            VERSION_2,
            True,
            "0263db1782731bf4588e7e4d93b7463907cb8cd8200b5da55a8bd488eafc37c1",
            "82db637861d55e1d011f19ea71d5d2a7",
            "dd13c276499c0249d3310652",
            "edf6d05c83121201b436e16877593c3a",
        ),
    ],
)
def test_initial_keys_of_the_rfcs(
    version: int, server: bool, secret: str, key: str, iv: str, hp: str
) -> None:
    keys = initial_keys(version, RFC_DCID, server=server)
    assert (keys.secret.hex(), keys.key.hex(), keys.iv.hex(), keys.hp.hex()) == (
        secret,
        key,
        iv,
        hp,
    )


def test_rfc_printed_bytes() -> None:
    v1_client = vector("rfc9001_client_initial")
    # RFC 9001 A.2: the protected header, then the sample, and the packet's last bytes.
    assert v1_client[:22].hex() == "c000000001088394c8f03e5157080000449e7b9aec34"
    assert v1_client[22:38].hex() == "d1b1c98dd7689fb8ec11d242b123dc9b"
    assert v1_client[-16:].hex() == "e221af44860018ab0856972e194cd934"
    assert len(v1_client) == 1200
    # RFC 9001 A.3, the whole packet.
    assert vector("rfc9001_server_initial").hex() == (
        "cf000000010008f067a5502a4262b5004075c0d95a482cd0991cd25b0aac406a"
        "5816b6394100f37a1c69797554780bb38cc5a99f5ede4cf73c3ec2493a1839b3"
        "dbcba3f6ea46c5b7684df3548e7ddeb9c3bf9c73cc3f3bded74b562bfb19fb84"
        "022f8ef4cdd93795d77d06edbb7aaf2f58891850abbdca3d20398c276456cbc4"
        "2158407dd074ee"
    )
    # RFC 9369 A.2 and A.3: protected headers and the first protected bytes.
    assert vector("rfc9369_client_initial")[:40].hex() == (
        "d76b3343cf088394c8f03e5157080000449ea0c95e82ffe67b6abcdb4298b485dd04de806071bf03"
    )
    assert vector("rfc9369_server_initial")[:128].hex() == (
        "dc6b3343cf0008f067a5502a4262b5004075d92faaf16f05d8a4398c47089698"
        "baeea26b91eb761d9b89237bbf87263017915358230035f7fd3945d88965cf17"
        "f9af6e16886c61bfc703106fbaf3cb4cfa52382dd16a393e42757507698075b2"
        "c984c707f0a0812d8cd5a6881eaf21ceda98f4bd23f6fe1a3e2c43edd9ce7ca8"
    )


@pytest.mark.parametrize(("version", "prefix"), [(VERSION_1, "rfc9001"), (VERSION_2, "rfc9369")])
def test_stored_vectors_are_what_aioquic_builds(version: int, prefix: str) -> None:
    client = initial(
        vector("rfc9001_client_crypto_frame"),
        version=version,
        pn=2,
        pn_length=4,
        pad_to=MIN_CLIENT_DATAGRAM,
    )
    server = initial(
        vector("rfc9001_server_frames"),
        version=version,
        dcid=b"",
        scid=RFC_SERVER_SCID,
        key_dcid=RFC_DCID,
        server=True,
        pn=1,
        pn_length=2,
    )
    assert client == vector(f"{prefix}_client_initial")
    assert server == vector(f"{prefix}_server_initial")


@pytest.mark.parametrize(("version", "prefix"), [(VERSION_1, "rfc9001"), (VERSION_2, "rfc9369")])
def test_rfc_client_and_server_initials(version: int, prefix: str) -> None:
    client_packet = vector(f"{prefix}_client_initial")
    assert looks_like_quic_initial(client_packet)
    client = QuicClientReader()
    got = client.feed(client_packet)
    assert got.error is None and got.initials == 1
    (found,) = got.hellos
    assert (found.version, found.dcid, found.offset, found.datagrams) == (
        version,
        RFC_DCID,
        0,
        (0,),
    )
    assert found.hello == ClientHelloInfo(
        sni="example.com", versions=(TLS13,), cipher_suites=(0x1301, 0x1302), alpn=("alpn",)
    )
    assert client.version == version and client.key_dcids == (RFC_DCID,)

    server = QuicServerReader(client)
    server_packet = vector(f"{prefix}_server_initial")
    assert looks_like_quic_initial(server_packet)
    (answer,) = server.feed(server_packet).hellos
    assert answer.hello == ServerHelloInfo(TLS13, 0x1301)
    assert answer.dcid == RFC_DCID
    assert server.done  # nothing after the ServerHello travels in Initials


def test_version_names() -> None:
    assert version_name(VERSION_1) == "QUIC v1"
    assert version_name(VERSION_2) == "QUIC v2"
    assert version_name(0xFF00001D) == "QUIC draft-29"
    assert version_name(0x0A0A0A0A) == "QUIC version 0x0a0a0a0a"


@pytest.mark.parametrize("version", sorted(SUPPORTED_VERSIONS))
def test_every_supported_version_round_trips(version: int) -> None:
    packet = initial(
        crypto_frame(0, client_hello()), version=version, scid=b"\x01" * 8, pad_to=1200
    )
    (found,) = QuicClientReader().feed(packet).hellos
    assert (found.version, found.hello.sni) == (version, NAME)


# --- a real client and server -------------------------------------------------------


@pytest.mark.parametrize("version", [QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2])
def test_real_client_initial(version: int) -> None:
    connection, datagrams = aioquic_client(version)
    assert len(datagrams) == 1 and len(datagrams[0]) >= MIN_CLIENT_DATAGRAM
    assert looks_like_quic_initial(datagrams[0])
    reader = QuicClientReader()
    (found,) = reader.feed(datagrams[0]).hellos
    assert found.version == version
    assert found.dcid == connection.original_destination_connection_id
    assert found.hello.sni == NAME
    assert found.hello.alpn == ("h3",)
    assert found.hello.versions == (TLS13,)
    assert set(found.hello.cipher_suites) >= {0x1301, 0x1302}


@pytest.mark.parametrize("version", [QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2])
def test_real_handshake_both_directions(version: int) -> None:
    client_datagrams, server_datagrams = aioquic_exchange(version)
    client = QuicClientReader()
    server = QuicServerReader(client)
    client_hellos = [h for d in client_datagrams for h in client.feed(d).hellos]
    server_hellos = [h for d in server_datagrams for h in server.feed(d).hellos]
    assert [h.hello.sni for h in client_hellos] == [NAME]
    (answer,) = server_hellos
    assert answer.hello.version == TLS13 and answer.hello.cipher_suite in (0x1301, 0x1302, 0x1303)
    assert server.done  # the ServerHello ends what server Initials can carry
    # The client's later Initials use the server's connection ID (RFC 9000 §7.2) and
    # still open with the keys of the original one.
    assert client.initial_packets >= 2 and len(client.key_dcids) == 1


def test_real_server_coalesces_initial_and_handshake() -> None:
    client_datagrams, server_datagrams = aioquic_exchange(VERSION_1)
    first = server_datagrams[0]
    client = QuicClientReader()
    client.feed(client_datagrams[0])
    got = QuicServerReader(client).feed(first)
    assert got.error is None and got.initials == 1 and len(got.hellos) == 1
    # Byte 0 is an Initial; a Handshake packet (type 2) follows it in the same datagram.
    initial_length = _first_packet_length(first)
    assert initial_length < len(first)
    assert (first[initial_length] & 0xF0) == 0xE0


def _first_packet_length(datagram: bytes) -> int:
    """The size of the first (Initial) packet of a datagram, from its header fields."""
    at = 6 + datagram[5]
    at += 1 + datagram[at]
    token_length, at = _read_varint(datagram, at)
    length, at = _read_varint(datagram, at + token_length)
    return at + length


def _read_varint(buf: bytes, at: int) -> tuple[int, int]:
    size = 1 << (buf[at] >> 6)
    return int.from_bytes(buf[at : at + size], "big") & ((1 << (8 * size - 2)) - 1), at + size


def test_real_client_hello_over_several_datagrams() -> None:
    alpn = ("h3", *(f"proto-{i:03d}-" + "x" * 180 for i in range(16)))
    _connection, datagrams = aioquic_client(VERSION_1, alpn)
    assert len(datagrams) >= 3
    reader = QuicClientReader()
    results = [reader.feed(d) for d in datagrams]
    assert all(r.error is None for r in results)
    assert [len(r.hellos) for r in results] == [0] * (len(datagrams) - 1) + [1]
    found = results[-1].hellos[0]
    assert found.hello.alpn == alpn
    assert found.datagrams == tuple(range(len(datagrams)))


# --- hand-built Initials: reassembly ------------------------------------------------


def test_client_hello_split_over_two_initials_in_two_datagrams() -> None:
    hello = large_client_hello()
    first = initial(crypto_frame(0, hello[:1100]), pn=0, pad_to=1200)
    second = initial(crypto_frame(1100, hello[1100:]), pn=1, pad_to=1200)
    assert len(first) == len(second) == MIN_CLIENT_DATAGRAM
    reader = QuicClientReader()
    assert reader.feed(first).hellos == ()
    assert not reader.done
    (found,) = reader.feed(second).hellos
    assert found.hello.sni == NAME and found.datagrams == (0, 1)


def test_second_datagram_first() -> None:
    hello = large_client_hello()
    first = initial(crypto_frame(0, hello[:1100]), pn=0, pad_to=1200)
    second = initial(crypto_frame(1100, hello[1100:]), pn=1, pad_to=1200)
    assert len(first) == len(second) == MIN_CLIENT_DATAGRAM
    reader = QuicClientReader()
    assert reader.feed(second).hellos == ()
    (found,) = reader.feed(first).hellos
    assert found.hello.sni == NAME and found.datagrams == (0, 1)


def test_crypto_frames_out_of_order_overlapping_and_repeated() -> None:
    hello = large_client_hello()
    late = crypto_frame(1300, hello[1300:]) + crypto_frame(400, hello[400:1350])  # overlap
    early = b"\x01" + crypto_frame(0, hello[:500]) + crypto_frame(0, hello[:10])  # repeat
    reader = QuicClientReader()
    assert reader.feed(initial(late, pn=1)).hellos == ()
    (found,) = reader.feed(initial(early, pn=0)).hellos
    assert found.hello.sni == NAME and len(found.hello.alpn) == 9
    assert found.datagrams == (0, 1)


def test_conflicting_overlap_is_an_error() -> None:
    hello = client_hello()
    forged = bytearray(hello[:60])
    forged[50] ^= 0xFF
    frames = crypto_frame(0, hello[:60]) + crypto_frame(40, bytes(forged[40:60]))
    got = QuicClientReader().feed(initial(frames, pad_to=1200))
    assert isinstance(got.error, DecodeError) and "differs" in got.error.what


def test_coalesced_initial_handshake_and_padding() -> None:
    dcid = RFC_DCID
    datagram = (
        initial(crypto_frame(0, client_hello()), dcid=dcid)
        + other_long_packet("Handshake", bytes(60), dcid=dcid)
        + other_long_packet("0-RTT", bytes(30), dcid=dcid)
    )
    datagram += bytes(1200 - len(datagram))  # padding after the packets
    got = QuicClientReader().feed(datagram)
    assert got.error is None and got.initials == 1 and len(got.hellos) == 1
    assert got.packets == 3


def test_two_initials_coalesced_in_one_datagram() -> None:
    hello = client_hello()
    datagram = initial(crypto_frame(0, hello[:80]), pn=0) + initial(
        crypto_frame(80, hello[80:]), pn=1
    )
    got = QuicClientReader().feed(datagram)
    assert got.initials == 2 and [h.hello.sni for h in got.hellos] == [NAME]


def test_coalesced_packet_of_another_connection_is_ignored() -> None:
    hello = client_hello()
    datagram = initial(crypto_frame(0, hello[:80]), pn=0) + initial(
        crypto_frame(80, hello[80:]), pn=1, dcid=b"\x07" * 8
    )
    got = QuicClientReader().feed(datagram)
    assert got.initials == got.packets == 1 and got.hellos == () and got.error is None


def test_coalesced_length_past_the_datagram() -> None:
    datagram = initial(crypto_frame(0, client_hello())) + other_long_packet(
        "Handshake", bytes(60), dcid=RFC_DCID
    )
    got = QuicClientReader().feed(datagram[:-10])
    assert len(got.hellos) == 1  # the Initial before it still counts
    assert got.error is not None and "Length 60 runs past end" in got.error.what


def test_ack_ping_and_connection_close_frames() -> None:
    close = b"\x1c" + varint(0x0178) + varint(0x06) + varint(6) + b"no alp"
    frames = ack_frame(3) + ack_frame(5, ecn=True) + b"\x01" + close
    reader = QuicClientReader()
    got = reader.feed(initial(frames, pad_to=1200))
    assert got.error is None and got.initials == 1
    assert reader.connection_close == (0x0178, "no alp")


def test_frame_not_allowed_in_initial() -> None:
    packet = initial(b"\x01\x08\x00\x00", pad_to=1200)  # PING, then STREAM
    got = QuicClientReader().feed(packet)
    assert got.error is not None and "frame type 0x8 is not allowed" in got.error.what
    # 20-byte header (8-byte DCID, empty SCID and token, 2-byte Length and packet
    # number), the PING at 20: the STREAM frame's type byte is datagram byte 21.
    assert got.error.offset == 21


def test_ack_range_count_past_end() -> None:
    frames = b"\x02" + varint(1) + varint(0) + varint(1000) + varint(0)
    got = QuicClientReader().feed(initial(frames))
    assert got.error is not None and "ACK range count 1000" in got.error.what


def test_hello_retry_request_in_both_streams() -> None:
    first, second = client_hello(), client_hello(alpn=(b"h3", b"h3-29"))
    client = QuicClientReader()
    server = QuicServerReader(client)
    hello1 = client.feed(initial(crypto_frame(0, first), pad_to=1200)).hellos
    retry = server.feed(
        initial(crypto_frame(0, server_hello(retry=True)), dcid=b"", key_dcid=RFC_DCID, server=True)
    ).hellos
    hello2 = client.feed(
        initial(crypto_frame(len(first), second), pn=1, dcid=b"\x05" * 8, key_dcid=RFC_DCID)
    ).hellos
    answer = server.feed(
        initial(
            crypto_frame(len(server_hello(retry=True)), server_hello()),
            pn=1,
            dcid=b"",
            key_dcid=RFC_DCID,
            server=True,
        )
    ).hellos
    assert [h.hello.alpn for h in hello1 + hello2] == [("h3",), ("h3", "h3-29")]
    assert hello2[0].offset == len(first)
    assert [h.hello.hello_retry for h in retry + answer] == [True, False]


def test_retry_keys_come_from_the_retry_source_connection_id() -> None:
    retry_cid = b"\x0b" * 12
    client = QuicClientReader()
    server = QuicServerReader(client)
    client.feed(initial(crypto_frame(0, client_hello()), pad_to=1200))
    retry = (
        bytes([0xF0])
        + VERSION_1.to_bytes(4, "big")
        + b"\x00"
        + bytes([len(retry_cid)])
        + retry_cid
        + b"token"
        + bytes(16)
    )
    assert server.feed(retry).error is None
    again = client.feed(initial(crypto_frame(0, client_hello()), dcid=retry_cid, pn=1, pad_to=1200))
    assert [h.dcid for h in again.hellos] == [retry_cid]
    assert client.key_dcids == (RFC_DCID, retry_cid)
    answer = server.feed(
        initial(crypto_frame(0, server_hello()), dcid=b"", key_dcid=retry_cid, server=True)
    )
    assert [h.dcid for h in answer.hellos] == [retry_cid]


def test_compatible_version_negotiation_keeps_the_original_keys() -> None:
    """RFC 9368: the client offers v1, the server answers in v2, the client goes on in v2."""
    client = QuicClientReader()
    server = QuicServerReader(client)
    (offered,) = client.feed(initial(crypto_frame(0, client_hello()), pad_to=1200)).hellos
    (answer,) = server.feed(
        initial(
            crypto_frame(0, server_hello()),
            version=VERSION_2,
            dcid=b"",
            scid=RFC_SERVER_SCID,
            key_dcid=RFC_DCID,
            server=True,
        )
    ).hellos
    later = client.feed(
        initial(ack_frame(0), version=VERSION_2, dcid=RFC_SERVER_SCID, key_dcid=RFC_DCID, pn=1)
    )
    assert (offered.version, answer.version) == (VERSION_1, VERSION_2)
    assert later.error is None and later.initials == 1
    assert client.key_dcids == (RFC_DCID,)


def test_new_attempt_after_version_negotiation() -> None:
    """After Version Negotiation the client starts over: a new ClientHello at offset 0."""
    client = QuicClientReader()
    first = client.feed(initial(crypto_frame(0, client_hello("a.example.com")), pad_to=1200))
    second = client.feed(
        initial(crypto_frame(0, client_hello("b.example.com")), version=VERSION_2, pad_to=1200)
    )
    assert [h.hello.sni for h in first.hellos + second.hellos] == [
        "a.example.com",
        "b.example.com",
    ]


def test_key_contexts_are_bounded() -> None:
    reader = QuicClientReader()
    for n in range(MAX_KEY_CONTEXTS):
        got = reader.feed(initial(ack_frame(0), dcid=bytes([n + 1]) * 8, pad_to=1200))
        assert got.error is None
    got = reader.feed(initial(ack_frame(0), dcid=b"\xee" * 8, pad_to=1200))
    assert got.error is not None and "more than 4 Initial key contexts" in got.error.what


def test_incomplete_hello_is_visible() -> None:
    reader = QuicClientReader()
    reader.feed(initial(crypto_frame(0, large_client_hello()[:900]), pad_to=1200))
    assert reader.incomplete and reader.initial_packets == 1
    reader.feed(initial(crypto_frame(900, large_client_hello()[900:]), pn=1, pad_to=1200))
    assert not reader.incomplete


def test_packet_numbers_beyond_one_byte() -> None:
    hello = client_hello()
    reader = QuicClientReader()
    assert reader.feed(initial(crypto_frame(0, hello[:50]), pn=300, pn_length=2)).initials
    # 301 sent in one byte (0x2d): only the largest packet number seen makes it 301.
    (found,) = reader.feed(
        initial(crypto_frame(50, hello[50:]), pn=301, pn_length=1, pad_to=1200)
    ).hellos
    assert found.hello.sni == NAME


def test_ech_in_a_quic_client_hello() -> None:
    body = b"\x00\x00\x01\x00\x01\x2a" + (32).to_bytes(2, "big") + bytes(32)
    body += (3).to_bytes(2, "big") + b"abc"  # outer, HKDF-SHA256, AES-128-GCM, config 42
    ech = b"\xfe\x0d" + len(body).to_bytes(2, "big") + body
    (found,) = QuicClientReader().feed(initial(crypto_frame(0, client_hello(ext=ech)))).hellos
    assert found.hello.ech == EchExtension(False, 1, 1, 0x2A, 32, 3)


# --- not QUIC, damaged, and bounded -------------------------------------------------


def test_truncated_datagram() -> None:
    packet = vector("rfc9001_client_initial")
    for cut in (5, 12, 21, 600, 1199):
        short = packet[:cut]
        assert not looks_like_quic_initial(short), cut
        got = QuicClientReader().feed(short)
        assert got.hellos == () and isinstance(got.error, DecodeError), cut
    got = QuicClientReader().feed(packet[:600])
    assert got.error is not None and got.error.offset == 16  # the Length field
    assert "runs past end" in got.error.what


def test_corrupted_tag() -> None:
    packet = bytearray(vector("rfc9001_client_initial"))
    packet[-1] ^= 0x01
    assert looks_like_quic_initial(bytes(packet))  # the header cannot tell
    reader = QuicClientReader()
    got = reader.feed(bytes(packet))
    assert isinstance(got.error, QuicAuthError) and got.error.offset == 0
    assert got.hellos == () and reader.initial_packets == 0 and reader.key_dcids == ()


def test_reserved_bits_set() -> None:
    from aioquic.quic.crypto import CryptoPair

    payload = crypto_frame(0, client_hello())
    header = (
        bytes([0xC0 | 0x0C | 0x01])  # Initial, reserved bits set, 2-byte packet number
        + VERSION_1.to_bytes(4, "big")
        + b"\x08"
        + RFC_DCID
        + b"\x00\x00"  # no SCID, no token
        + (0x4000 | (2 + len(payload) + 16)).to_bytes(2, "big")
        + b"\x00\x00"
    )
    pair = CryptoPair()
    pair.setup_initial(RFC_DCID, is_client=True, version=VERSION_1)
    got = QuicClientReader().feed(pair.encrypt_packet(header, payload, 0))
    assert got.error is not None and "reserved bits" in got.error.what


def test_server_initial_without_client_keys() -> None:
    got = QuicServerReader(QuicClientReader()).feed(vector("rfc9001_server_initial"))
    assert isinstance(got.error, QuicAuthError) and "no client Initial" in got.error.what


def test_unsupported_version_and_version_negotiation_are_skipped() -> None:
    packet = bytearray(vector("rfc9001_client_initial"))
    packet[1:5] = (0x0A1A2A3A).to_bytes(4, "big")  # a greased version (RFC 9000 §15)
    assert not looks_like_quic_initial(bytes(packet))
    # Version Negotiation: any "unused" bits, here with the fixed bit clear (RFC 8999 §6).
    negotiation = b"\x8a" + bytes(4) + b"\x00\x08" + RFC_DCID + (1).to_bytes(4, "big")
    reader = QuicServerReader(QuicClientReader())
    for datagram in (bytes(packet), negotiation):
        got = reader.feed(datagram)
        assert (got.hellos, got.initials, got.error) == ((), 0, None)


def test_fixed_bit_clear_is_an_error() -> None:
    packet = bytearray(vector("rfc9001_client_initial"))
    packet[0] &= ~0x40
    assert not looks_like_quic_initial(bytes(packet))
    got = QuicClientReader().feed(bytes(packet))
    assert got.error is not None and "fixed bit clear" in got.error.what


def test_connection_id_longer_than_20_bytes() -> None:
    packet = vector("rfc9001_client_initial")
    longer = packet[:5] + b"\x15" + bytes(21) + packet[14:]
    assert not looks_like_quic_initial(longer)
    got = QuicClientReader().feed(longer)
    assert got.error is not None and "of 21 bytes (at most 20)" in got.error.what
    assert got.error.offset == 5


def test_hello_of_the_wrong_type_reports_a_stream_offset() -> None:
    frames = crypto_frame(0, client_hello()) + crypto_frame(len(client_hello()), server_hello())
    got = QuicClientReader().feed(initial(frames, pad_to=1200))
    assert len(got.hellos) == 1
    assert got.error is not None and "handshake type 2, not 1" in got.error.what
    assert "CRYPTO stream" in got.error.what and got.error.offset == len(client_hello())


def test_crypto_beyond_the_buffer_bound() -> None:
    got = QuicClientReader().feed(initial(crypto_frame(MAX_CRYPTO_BYTES - 2, b"abcd")))
    assert got.error is not None and f"exceeds {MAX_CRYPTO_BYTES}" in got.error.what


def test_handshake_message_longer_than_the_bound() -> None:
    huge = b"\x01" + (MAX_CRYPTO_BYTES).to_bytes(3, "big") + bytes(10)
    got = QuicClientReader().feed(initial(crypto_frame(0, huge)))
    assert got.error is not None and "exceeds" in got.error.what and got.error.offset == 0


def test_too_many_fragments_waiting() -> None:
    frames = b"".join(crypto_frame(100 + 2 * i, b"x") for i in range(MAX_CRYPTO_FRAGMENTS + 1))
    got = QuicClientReader().feed(initial(frames, pad_to=1200))
    assert got.error is not None and "waiting for a gap" in got.error.what


def test_reader_is_done_after_the_hello_and_a_quiet_datagram() -> None:
    reader = QuicClientReader()
    reader.feed(initial(crypto_frame(0, client_hello()), pad_to=1200))
    assert not reader.done
    reader.feed(b"\x40" + bytes(40))  # a short header (1-RTT) packet
    assert reader.done


def test_reader_gives_up_on_quiet_flows() -> None:
    reader = QuicClientReader()
    for _ in range(MAX_QUIET_DATAGRAMS - 1):
        reader.feed(b"\x40" + bytes(40))
    assert not reader.done
    reader.feed(b"\x40" + bytes(40))
    assert reader.done


def rtp(rng: random.Random) -> bytes:
    """An RTP packet (RFC 3550): version 2, any flags, payload type, sequence, timestamp."""
    first = 0x80 | rng.choice((0x00, 0x10, 0x20, 0x30)) | rng.randrange(16)
    return bytes([first, rng.randrange(256)]) + rng.randbytes(rng.randrange(10, 1400))


def dns_query(rng: random.Random) -> bytes:
    """A DNS query with a random ID and name."""
    name = "".join(rng.choice("abcdefghij") for _ in range(rng.randrange(1, 30))) + ".example"
    return bytes(DNS(id=rng.randrange(65536), rd=rng.randrange(2), qd=DNSQR(qname=name)))


def sip(rng: random.Random) -> bytes:
    """A SIP OPTIONS request."""
    return f"OPTIONS sip:{rng.randrange(10**6)}@192.0.2.1 SIP/2.0\r\n\r\n".encode()


@pytest.mark.parametrize("make", [rtp, dns_query, sip])
def test_other_udp_is_not_quic(make: Callable[[random.Random], bytes]) -> None:
    rng = random.Random(9001)
    for _ in range(500):
        payload = make(rng)
        assert not looks_like_quic_initial(payload), payload[:16].hex()


def test_random_long_headers_never_pass_for_quic() -> None:
    """Random bytes behind a well-formed v1/v2 Initial header: the AEAD tag rejects each."""
    rng = random.Random(9000)
    for _ in range(300):
        version = rng.choice((VERSION_1, VERSION_2))
        type_bits = 0x00 if version == VERSION_1 else 0x10
        dcid, scid = rng.randbytes(rng.randrange(21)), rng.randbytes(rng.randrange(21))
        rest = rng.randbytes(rng.randrange(20, 1200))
        datagram = (
            bytes([0xC0 | type_bits | rng.randrange(16)])
            + version.to_bytes(4, "big")
            + bytes([len(dcid)])
            + dcid
            + bytes([len(scid)])
            + scid
            + b"\x00"  # no token
            + (0x4000 | len(rest)).to_bytes(2, "big")
            + rest
        )
        assert looks_like_quic_initial(datagram)
        got = QuicClientReader().feed(datagram)
        assert got.hellos == () and got.initials == 0
        assert isinstance(got.error, QuicAuthError)


def test_random_bytes_never_crash() -> None:
    rng = random.Random(12)
    packet = vector("rfc9001_client_initial")
    for _ in range(500):
        damaged = bytearray(packet[: rng.randrange(1, len(packet))])
        for _flip in range(rng.randrange(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        got = QuicClientReader().feed(bytes(damaged))
        assert got.hellos == () or got.hellos[0].hello.sni == "example.com"


# --- end to end: a pcap on a port that is not 443 -----------------------------------


def test_pcap_with_quic_on_a_non_443_port(tmp_path: Path) -> None:
    client_datagrams, server_datagrams = aioquic_exchange(VERSION_2)
    frames = [
        bytes(Ether() / IP(src=CLIENT, dst=SERVER) / UDP(sport=40000, dport=8443) / d)
        for d in client_datagrams[:1]
    ]
    frames += [
        bytes(Ether() / IP(src=SERVER, dst=CLIENT) / UDP(sport=8443, dport=40000) / d)
        for d in server_datagrams[:2]
    ]
    path = write_pcap(tmp_path / "quic.pcap", frames)
    client = QuicClientReader()
    server = QuicServerReader(client)
    found: list[str | None] = []
    errors: list[DecodeError | None] = []
    for packet in rdpcap(str(path)):
        datagram = bytes(packet[UDP].payload)
        if packet[UDP].dport == 8443:
            sent = client.feed(datagram)
            found += [h.hello.sni for h in sent.hellos]
            errors.append(sent.error)
        else:
            answered = server.feed(datagram)
            found += [f"ServerHello {h.hello.version:#x}" for h in answered.hellos]
            errors.append(answered.error)
    assert found == [NAME, "ServerHello 0x304"]
    assert errors == [None] * len(frames)


@needs_tshark((4, 0), "Wireshark 3 does not decrypt QUIC version 2 (RFC 9369) Initials")
def test_tshark_reads_the_same_names(tmp_path: Path) -> None:
    """Wireshark's QUIC dissector (an independent implementation) agrees on every version."""
    frames, expected = [], []
    for n, version in enumerate(sorted(SUPPORTED_VERSIONS)):
        name = f"v{n}.example.com"
        dcid = bytes([n + 1]) * 8  # tshark tells connections apart by connection ID
        packet = initial(
            crypto_frame(0, client_hello(name)), version=version, dcid=dcid, pad_to=1200
        )
        (found,) = QuicClientReader().feed(packet).hellos
        expected.append((f"0x{version:08x}", found.hello.sni))
        frames.append(
            bytes(Ether() / IP(src=CLIENT, dst=SERVER) / UDP(sport=40000 + n, dport=4433) / packet)
        )
    path = write_pcap(tmp_path / "versions.pcap", frames)
    out = subprocess.run(
        [
            *("tshark", "-r", str(path), "-d", "udp.port==4433,quic", "-T", "fields"),
            *("-e", "quic.version", "-e", "tls.handshake.extensions_server_name"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [tuple(line.split("\t")) for line in out.splitlines()] == expected
