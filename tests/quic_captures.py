"""QUIC and ECH test captures: real aioquic handshakes, hand-built Initials, ECH ClientHellos.

QUIC datagrams come from aioquic (a client and server handshaking in memory, nothing
sent) or from `tests.decode.quic_packets` (Initials protected with aioquic's packet
protection); ECH ClientHellos are hand-made (no ECH-capable client is installed) and
HTTPS answers are built by scapy. Same topology as `tests.defects` (explicit MACs,
documentation ranges); every builder returns scapy packets without timestamps
(`tests.judge.test_hybrid.scenario` stamps them).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from scapy.layers.dns import DNS, DNSQR, DNSRRHTTPS, SvcParam
from scapy.layers.inet import UDP
from scapy.packet import Packet, Raw

from conformance.decode.quic import VERSION_1
from tests.decode.quic_packets import crypto_frame, initial, other_long_packet
from tests.decode.test_ech import config_list, ech_config
from tests.decode.test_quic import aioquic_exchange, client_hello, large_client_hello
from tests.defects import DNS_SERVER, TARGET, _frame, tcp_session

QUIC_PORT = 443
CLIENT_PORT = 50443
ECH_EXTENSION = 0xFE0D  # encrypted_client_hello, RFC 9849 §5
HRR_RANDOM = bytes.fromhex(  # RFC 8446 §4.1.3: SHA-256("HelloRetryRequest")
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)


def datagrams(
    server: str,
    sent: Sequence[bytes],
    answered: Sequence[bytes] = (),
    *,
    port: int = QUIC_PORT,
    cport: int = CLIENT_PORT,
    client: str = TARGET,
) -> list[Packet]:
    """The target's datagrams to `server`, then the server's answers."""
    out = [_frame(client, server, UDP(sport=cport, dport=port) / Raw(d)) for d in sent]
    return out + [_frame(server, client, UDP(sport=port, dport=cport) / Raw(d)) for d in answered]


def quic_session(server: str, version: int = VERSION_1, port: int = QUIC_PORT) -> list[Packet]:
    """A real QUIC handshake (aioquic client and server): the client's first datagram, the
    server's answers, then the client's next datagrams, as a capture shows them."""
    sent, answered = aioquic_exchange(version)
    first = datagrams(server, sent[:1], answered, port=port)
    return first + datagrams(server, sent[1:], port=port)


def quic_hello_in_two_datagrams(
    server: str, port: int = QUIC_PORT, cport: int = CLIENT_PORT
) -> list[Packet]:
    """A ClientHello too big for one Initial, split over two Initials in two datagrams."""
    hello = large_client_hello()
    first = initial(crypto_frame(0, hello[:1100]), pn=0, pad_to=1200)
    second = initial(crypto_frame(1100, hello[1100:]), pn=1, pad_to=1200)
    return datagrams(server, [first, second], port=port, cport=cport)


def quic_coalesced(server: str, port: int = QUIC_PORT, cport: int = CLIENT_PORT) -> list[Packet]:
    """Two Initials carrying one ClientHello, a Handshake and a 0-RTT packet, one datagram."""
    hello = client_hello()
    dcid = bytes.fromhex("8394c8f03e515708")
    datagram = (
        initial(crypto_frame(0, hello[:80]), pn=0, dcid=dcid)
        + initial(crypto_frame(80, hello[80:]), pn=1, dcid=dcid)
        + other_long_packet("Handshake", bytes(60), dcid=dcid)
        + other_long_packet("0-RTT", bytes(30), dcid=dcid)
    )
    return datagrams(server, [datagram + bytes(1200 - len(datagram))], port=port, cport=cport)


def quic_corrupted_initial(server: str, port: int = QUIC_PORT) -> list[Packet]:
    """A QUIC Initial whose AEAD tag does not verify (one bit flipped in its last byte)."""
    packet = bytearray(initial(crypto_frame(0, client_hello()), pad_to=1200))
    packet[-1] ^= 0x01
    return datagrams(server, [bytes(packet)], port=port)


# --- ECH ---------------------------------------------------------------------------------


def ech_extension(config_id: int) -> bytes:
    """An outer encrypted_client_hello extension (RFC 9849 §5): HKDF-SHA256, AES-128-GCM."""
    enc, payload = bytes(32), bytes(range(200))
    body = (
        b"\x00\x00\x01\x00\x01"
        + bytes([config_id])
        + struct.pack("!H", len(enc))
        + enc
        + struct.pack("!H", len(payload))
        + payload
    )
    return struct.pack("!HH", ECH_EXTENSION, len(body)) + body


def ech_client_hello(sni: str, config_id: int) -> bytes:
    """A TLS 1.3 ClientHello record: SNI (the public name), supported_versions, outer ECH."""
    name = sni.encode()
    entry = b"\x00" + struct.pack("!H", len(name)) + name
    extensions = (
        struct.pack("!HHH", 0, len(entry) + 2, len(entry))
        + entry
        + struct.pack("!HHB", 43, 3, 2)
        + b"\x03\x04"
        + ech_extension(config_id)
    )
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


def hello_retry_request(*, ech_confirmed: bool) -> bytes:
    """A TLS 1.3 HelloRetryRequest record, with the ECH confirmation (RFC 9849 §7.2.1)."""
    extensions = struct.pack("!HHH", 43, 2, 0x0304)
    if ech_confirmed:
        extensions += struct.pack("!HH", ECH_EXTENSION, 8) + bytes(8)
    body = (
        b"\x03\x03"
        + HRR_RANDOM
        + b"\x00"
        + b"\x13\x01"
        + b"\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack("!H", len(handshake)) + handshake


def ech_session(
    server: str, public_name: str, config_id: int, *, cport: int = 40443, response: bytes = b""
) -> list[Packet]:
    """A TCP connection whose ClientHello carries ECH behind `public_name`."""
    hello = ech_client_hello(public_name, config_id)
    return tcp_session(TARGET, cport, server, 443, hello, response)


def https_lookup(
    qname: str,
    *,
    configs: Sequence[tuple[int, str]] | None = None,
    rcode: int = 0,
    ttl: int = 300,
    cport: int = 53443,
    client: str = TARGET,
) -> list[Packet]:
    """An HTTPS query and its answer: one ServiceMode record with an `ech` parameter holding
    ECHConfigs (config_id, public_name), or without `ech` when `configs` is None; no record
    at all when `rcode` is not 0 or `configs` is empty."""
    query = _frame(
        client,
        DNS_SERVER,
        UDP(sport=cport, dport=53) / DNS(id=0x4545, rd=1, qd=DNSQR(qname=qname, qtype="HTTPS")),
    )
    params = [SvcParam(key="alpn", value=[b"h2"])]
    if configs:
        params.append(
            SvcParam(key="ech", value=config_list(*(ech_config(i, n) for i, n in configs)))
        )
    records = None
    if rcode == 0 and configs != []:
        records = DNSRRHTTPS(
            rrname=qname, ttl=ttl, svc_priority=1, target_name=".", svc_params=params
        )
    response = _frame(
        DNS_SERVER,
        client,
        UDP(sport=53, dport=cport)
        / DNS(
            id=0x4545,
            qr=1,
            rd=1,
            ra=1,
            rcode=rcode,
            qd=DNSQR(qname=qname, qtype="HTTPS"),
            an=records,
        ),
    )
    return [query, response]
