"""Payload classification by content: one example family per PayloadKind."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.dns import DNS, DNSQR

from conformance.decode.classify import HTTP2_PREFACE, classify_payload
from conformance.observe.records import PayloadKind

STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"


def tls_record(content_type: int, version: int = 0x0303, body: bytes = b"\x00" * 16) -> bytes:
    """A TLS record header plus body."""
    return struct.pack("!BHH", content_type, version, len(body)) + body


def ldap_message(op: bytes, long_form: bool = False) -> bytes:
    """An LDAPMessage with messageID 1 around `op` (RFC 4511 §4.2)."""
    content = b"\x02\x01\x01" + op
    length = b"\x84" + struct.pack("!I", len(content)) if long_form else bytes([len(content)])
    return b"\x30" + length + content


SIMPLE_BIND = b"\x60\x07\x02\x01\x03\x04\x00\x80\x00"
STARTTLS = (
    b"\x77" + bytes([len(STARTTLS_OID) + 2]) + b"\x80" + bytes([len(STARTTLS_OID)]) + STARTTLS_OID
)
SEARCH = b"\x63\x05\x04\x00\x0a\x01\x00"
UNBIND = b"\x42\x00"

EXAMPLES: list[tuple[bytes, PayloadKind]] = [
    (b"", PayloadKind.NONE),
    # TLS
    (tls_record(22, 0x0301), PayloadKind.TLS),
    (tls_record(21), PayloadKind.TLS),
    (tls_record(20, body=b"\x01"), PayloadKind.TLS),
    (tls_record(23, 0x0303, b"\x00" * (2**14 + 2048)), PayloadKind.TLS),
    (tls_record(22, 0x0300), PayloadKind.TLS),
    (bytes.fromhex("802e0103010015000000100100800000") + bytes(32), PayloadKind.TLS),  # SSLv2
    # HTTP/1.x
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", PayloadKind.HTTP),
    (b"CONNECT api.imagicle.com:443 HTTP/1.1\r\n\r\n", PayloadKind.HTTP),
    (b"HTTP/1.1 407 Proxy Authentication Required\r\n", PayloadKind.HTTP),
    (b"POST /" + b"x" * 9000, PayloadKind.HTTP),  # request line longer than the segment
    (b"M-SEARCH * HTTP/1.1\n", PayloadKind.HTTP),
    (b"OPTIONS * HTTP/1.0\r\n", PayloadKind.HTTP),
    # HTTP/2 and plaintext gRPC
    (HTTP2_PREFACE + b"\x00\x00\x12\x04\x00", PayloadKind.HTTP2_PREFACE),
    (b"PRI * HTTP/2.0\r\n", PayloadKind.HTTP2_PREFACE),  # preface cut by the segment
    # LDAP
    (ldap_message(SIMPLE_BIND), PayloadKind.LDAP),
    (ldap_message(STARTTLS), PayloadKind.LDAP),
    (ldap_message(SEARCH, long_form=True), PayloadKind.LDAP),
    (ldap_message(UNBIND), PayloadKind.LDAP),
    # SSH
    (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", PayloadKind.SSH),
    # SIP
    (b"INVITE sip:bob@pbx.example SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n", PayloadKind.SIP),
    (b"OPTIONS sip:pbx.example SIP/2.0\r\n", PayloadKind.SIP),
    (b"SIP/2.0 200 OK\r\n", PayloadKind.SIP),
    (b"REGISTER sips:pbx.example", PayloadKind.SIP),  # request line longer than the segment
    # OTHER: plaintext nobody recognised
    (b"\x00\x01\x02\x03\x04\x05", PayloadKind.OTHER),
    (b"hello", PayloadKind.OTHER),
    (b"get / HTTP/1.1\r\n", PayloadKind.OTHER),
    (b"GET HTTP/1.1\r\n", PayloadKind.OTHER),  # no target
    (b"FOO bar baz\r\n", PayloadKind.OTHER),
    (b"FOO bar", PayloadKind.OTHER),
    (b"\x16\x03\x01\x00", PayloadKind.OTHER),  # too short to be a record header
    (tls_record(22, 0x0305), PayloadKind.OTHER),  # no such version
    (tls_record(24), PayloadKind.OTHER),  # heartbeat is not a first payload
    (b"\x17\x03\x03\xff\xff" + bytes(8), PayloadKind.OTHER),  # longer than any record
    (b"\x30\x80\x02\x01\x01\x60\x00", PayloadKind.OTHER),  # BER indefinite length: not LDAP
    (b"\x30\x05\x02\x01\x01\x30\x00", PayloadKind.OTHER),  # not an LDAP operation
    (b"PRI * HTTP", PayloadKind.OTHER),
]


@pytest.mark.parametrize(("payload", "kind"), EXAMPLES)
def test_classify(payload: bytes, kind: PayloadKind) -> None:
    assert classify_payload(payload) is kind


def test_every_kind_but_dns_and_quic_has_an_example() -> None:
    # QUIC is decided by the payload inspector (UDP only, and a server's direction by its
    # client's): observe/payloads.py, tests/observe/test_quic.py.
    left_to_callers = {PayloadKind.DNS, PayloadKind.QUIC}
    assert {kind for _, kind in EXAMPLES} == set(PayloadKind) - left_to_callers


def test_dns_over_tcp_is_left_to_callers() -> None:
    message = bytes(DNS(id=0x1234, qd=[DNSQR(qname="api.imagicle.com")]))
    assert classify_payload(struct.pack("!H", len(message)) + message) is PayloadKind.OTHER
