"""Classify a direction's first payload bytes by content, never by port.

Called once per flow direction, so every test is a prefix or a bounded `find`.
DNS over TCP has no reliable signature and is left to callers (they know the
flow's other evidence); it never comes out of here.
"""

from __future__ import annotations

from enum import StrEnum


class PayloadKind(StrEnum):
    """Classification of a direction's first payload bytes (by content, not by port)."""

    NONE = "none"
    TLS = "tls"  # a TLS record header (handshake, alert, application data, ...)
    HTTP = "http"
    HTTP2_PREFACE = "http2-preface"  # "PRI * HTTP/2.0" (plaintext h2 or gRPC)
    LDAP = "ldap"  # BER LDAPMessage
    DNS = "dns"
    SSH = "ssh"
    SIP = "sip"
    # a QUIC long-header packet of a version decode/quic.py reads (its Initial's hello, when
    # it could be read, is a TlsClientHello with quic_version set)
    QUIC = "quic"
    OTHER = "other"  # something not recognised: treated as plaintext where TLS is required


# RFC 5246 §6.2.3: TLSCiphertext.length may reach 2^14 + 2048, the most any version allows.
MAX_TLS_RECORD = 2**14 + 2048
TLS_RECORD_HEADER = 5
# RFC 8446 §5.1 (and every earlier version): change_cipher_spec(20), alert(21),
# handshake(22), application_data(23).
_TLS_CONTENT_TYPES = range(20, 24)
# SSL 2.0 CLIENT-HELLO (RFC 6101 Appendix E.2; RFC 5246 Appendix E.2): a two-byte
# header with the top bit set, message type 1, then the version. Body >= 9 bytes.
_SSL2_MIN_BODY = 9
_SSL2_VERSIONS = frozenset({0x0002, 0x0300, 0x0301, 0x0302, 0x0303, 0x0304})

# RFC 9113 §3.4: the client connection preface; gRPC without TLS starts the same way.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HTTP2_MIN_PREFIX = len(b"PRI * HTTP/2.0")

# A request line longer than this is not looked at in full (RFC 9112 §3 suggests
# supporting at least 8000 octets).
MAX_FIRST_LINE = 8192
# Method tokens: the RFC 9110 §9 set and others (WebDAV, SSDP's M-SEARCH) are short.
MAX_METHOD = 20
_METHOD_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_HTTP_METHODS = frozenset(
    {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"CONNECT", b"OPTIONS", b"TRACE", b"PATCH"}
)
_SIP_URI_SCHEMES = (b"sip:", b"sips:", b"tel:")  # RFC 3261 §25.1, RFC 3966

# RFC 4511 §4.2: LDAPMessage ::= SEQUENCE { messageID INTEGER, protocolOp CHOICE
# [APPLICATION n] ... }. Constructed ops are 0x60 | n; unbind, delete and abandon
# are primitive (0x40 | n).
_LDAP_OPS = frozenset(
    {
        0x60,  # bindRequest
        0x61,  # bindResponse
        0x42,  # unbindRequest
        0x63,  # searchRequest
        0x64,  # searchResEntry
        0x65,  # searchResDone
        0x66,  # modifyRequest
        0x67,  # modifyResponse
        0x68,  # addRequest
        0x69,  # addResponse
        0x4A,  # delRequest
        0x6B,  # delResponse
        0x6C,  # modDNRequest
        0x6D,  # modDNResponse
        0x6E,  # compareRequest
        0x6F,  # compareResponse
        0x50,  # abandonRequest
        0x73,  # searchResRef
        0x77,  # extendedReq (StartTLS, RFC 4511 §4.14)
        0x78,  # extendedResp
        0x79,  # intermediateResponse
    }
)
# RFC 4511 §4.1.1: MessageID ::= INTEGER (0 .. 2^31 - 1): at most 4 content bytes
# (a fifth only for a leading zero, which DER forbids and BER encoders do not emit).
_LDAP_MAX_ID_BYTES = 4
_BER_MAX_LENGTH_BYTES = 4


def classify_payload(payload: bytes) -> PayloadKind:
    """The kind of protocol that `payload` (a direction's first bytes) starts with."""
    if not payload:
        return PayloadKind.NONE
    if _is_tls(payload):
        return PayloadKind.TLS
    if payload.startswith(b"SSH-"):  # RFC 4253 §4.2
        return PayloadKind.SSH
    if _is_ldap(payload):
        return PayloadKind.LDAP
    head = payload[: len(HTTP2_PREFACE)]
    if len(head) >= _HTTP2_MIN_PREFIX and HTTP2_PREFACE.startswith(head):
        return PayloadKind.HTTP2_PREFACE
    return _classify_text(payload)


def _is_tls(p: bytes) -> bool:
    """A TLS record header, or an SSL 2.0-format ClientHello."""
    if len(p) < TLS_RECORD_HEADER:
        return False
    if p[0] in _TLS_CONTENT_TYPES and p[1] == 3 and p[2] <= 4:
        return ((p[3] << 8) | p[4]) <= MAX_TLS_RECORD
    if p[0] & 0x80 and p[2] == 1:
        body = ((p[0] & 0x7F) << 8) | p[1]
        return body >= _SSL2_MIN_BODY and ((p[3] << 8) | p[4]) in _SSL2_VERSIONS
    return False


def _is_ldap(p: bytes) -> bool:
    """A BER LDAPMessage: SEQUENCE, INTEGER messageID, an LDAP application tag."""
    if len(p) < 2 or p[0] != 0x30:
        return False
    pos = 2
    if p[1] & 0x80:  # long-form length: the low bits count the length bytes
        count = p[1] & 0x7F
        if not 1 <= count <= _BER_MAX_LENGTH_BYTES:
            return False
        pos += count
    if len(p) < pos + 3 or p[pos] != 0x02:
        return False
    id_len = p[pos + 1]
    if not 1 <= id_len <= _LDAP_MAX_ID_BYTES:
        return False
    op = pos + 2 + id_len
    return len(p) > op and p[op] in _LDAP_OPS


def _classify_text(p: bytes) -> PayloadKind:
    """HTTP/1.x or SIP by the first line; anything else is OTHER."""
    if p.startswith(b"HTTP/1."):
        return PayloadKind.HTTP
    if p.startswith(b"SIP/2.0 "):
        return PayloadKind.SIP
    space = p.find(b" ", 0, MAX_METHOD + 1)
    if space <= 0 or not _METHOD_CHARS.issuperset(p[:space]):
        return PayloadKind.OTHER
    newline = p.find(b"\n", 0, MAX_FIRST_LINE)
    if newline < 0:
        # The request line goes on past this segment: judge by what it starts with.
        if p.startswith(_SIP_URI_SCHEMES, space + 1):
            return PayloadKind.SIP
        if p[:space] in _HTTP_METHODS:
            return PayloadKind.HTTP
        return PayloadKind.OTHER
    line = p[:newline].rstrip(b"\r")
    if line.endswith(b" SIP/2.0"):  # RFC 3261 §7.1
        return PayloadKind.SIP
    version = line[-9:]  # " HTTP/1.x", RFC 9112 §3: method SP target SP version
    if len(line) > space + 9 and version.startswith(b" HTTP/1.") and version[-1:].isdigit():
        return PayloadKind.HTTP
    return PayloadKind.OTHER
