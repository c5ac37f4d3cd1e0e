"""The one LDAP fact the judges need: does a stream open with the StartTLS extended request?

RFC 4511 §4.14: StartTLS is an ExtendedRequest ([APPLICATION 23]) whose requestName ([0]) is
1.3.6.1.4.1.1466.20037. When it is the first message of a connection, nothing (no bind, no
search) went over the wire before the TLS upgrade.
"""

from __future__ import annotations

LDAP_PORT = 389  # RFC 4511 §5 (IANA ldap)
STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
_SEQUENCE = 0x30
_INTEGER = 0x02
_EXTENDED_REQUEST = 0x77  # [APPLICATION 23], constructed
_REQUEST_NAME = 0x80  # [0], primitive
_MAX_LENGTH_BYTES = 4


def _length(p: bytes, pos: int) -> tuple[int, int] | None:
    """A BER length at `pos`: (value, position after it)."""
    if pos >= len(p):
        return None
    first = p[pos]
    if not first & 0x80:
        return first, pos + 1
    count = first & 0x7F
    if not 1 <= count <= _MAX_LENGTH_BYTES or pos + 1 + count > len(p):
        return None
    return int.from_bytes(p[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def is_starttls_request(payload: bytes) -> bool:
    """True when `payload` starts with an LDAPMessage that is the StartTLS extended request."""
    if not payload or payload[0] != _SEQUENCE:
        return False
    outer = _length(payload, 1)
    if outer is None:
        return False
    pos = outer[1]
    if pos >= len(payload) or payload[pos] != _INTEGER:
        return False
    msgid = _length(payload, pos + 1)
    if msgid is None:
        return False
    pos = msgid[1] + msgid[0]
    if pos >= len(payload) or payload[pos] != _EXTENDED_REQUEST:
        return False
    op = _length(payload, pos + 1)
    if op is None:
        return False
    pos = op[1]
    if pos >= len(payload) or payload[pos] != _REQUEST_NAME:
        return False
    name = _length(payload, pos + 1)
    if name is None:
        return False
    return payload[name[1] : name[1] + name[0]] == STARTTLS_OID
