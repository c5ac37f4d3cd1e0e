"""DNS-format messages (RFC 1035), NetBIOS names (RFC 1002) and SSDP host names.

The same wire format carries unicast DNS, mDNS (RFC 6762) and LLMNR (RFC 4795), so
`parse_dns` serves all three. DNS over TCP prefixes each message with a two-byte
length (RFC 1035 §4.2.2): callers strip it before calling. SVCB and HTTPS answers
(RFC 9460) keep their RDATA as hex in `DnsAnswer.value`; `parse_svcb_rdata` decodes
it, ECH configs included.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from urllib.parse import urlsplit

from conformance.decode.ech import EchConfig, parse_ech_config_list
from conformance.decode.errors import DecodeError


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str
    rtype: int  # 1 A, 28 AAAA, 5 CNAME, ...
    ttl: int
    value: str  # address text, or target name for CNAME/PTR/...


HEADER_LENGTH = 12  # RFC 1035 §4.1.1
# RFC 1035 §2.3.4: a name is at most 255 octets on the wire, length bytes included.
MAX_NAME_LENGTH = 255
# A 255-octet name has at most 127 labels; a name that needs more jumps than that
# can only be a pointer loop (RFC 1035 §4.1.4 pointers name a *prior* occurrence).
MAX_POINTER_JUMPS = 127
# Smallest possible question (root name + QTYPE + QCLASS) and resource record
# (root name + TYPE, CLASS, TTL, RDLENGTH): lets counts be checked against the size.
MIN_QUESTION = 5
MIN_RECORD = 11
# RFC 2181 §8: a TTL with the top bit set is treated as zero.
TTL_TOP_BIT = 0x8000_0000

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_PTR = 12
TYPE_AAAA = 28
TYPE_SVCB = 64  # RFC 9460
TYPE_HTTPS = 65
# Types whose RDATA is a single (possibly compressed) domain name.
_NAME_TYPES = frozenset({TYPE_NS, TYPE_CNAME, TYPE_PTR})
_ADDRESS_TYPES = frozenset({TYPE_A, TYPE_AAAA})

_HEADER = struct.Struct("!6H")
_QUESTION_TAIL = struct.Struct("!HH")
_RECORD_TAIL = struct.Struct("!HHIH")

# SvcParamKeys (RFC 9460 §14.3.2); ech is RFC 9848's.
SVC_MANDATORY = 0
SVC_ALPN = 1
SVC_NO_DEFAULT_ALPN = 2
SVC_PORT = 3
SVC_ECH = 5

# NBNS (RFC 1002 §4.1): the first-level encoding turns a 16-byte NetBIOS name into a
# 32-byte label of letters 'A'..'P', one per half-byte.
NBNS_ENCODED_LENGTH = 32
_NBNS_LETTERS = b"ABCDEFGHIJKLMNOP"

# SSDP is HTTP over UDP (UPnP Device Architecture 2.0 §1): its head is small; 8 KiB
# is the usual HTTP server limit for a whole request head.
MAX_SSDP_HEAD = 8192
_SSDP_HOST_HEADERS = (b"host", b"location", b"al")


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """One decoded DNS message: header fields, questions and answer records.

    Names are lower-case without a trailing dot; IDNA labels stay as ASCII
    (`xn--...`). A label byte that is not printable ASCII, or a dot or backslash
    inside a label, is written in RFC 1035 §5.1 presentation form (`\\DDD`, `\\.`),
    so a label can never pass for several.
    """

    txid: int
    is_response: bool
    opcode: int
    rcode: int
    questions: tuple[tuple[str, int], ...]  # (qname, qtype)
    answers: tuple[DnsAnswer, ...]  # the answer section only


def parse_dns(payload: bytes) -> DnsMessage:
    """Decode a DNS message; raise DecodeError on anything malformed.

    Reads the header, the question section and the answer section; the authority
    and additional sections are only checked against the message size. Answer
    values: address text for A/AAAA, the target name for CNAME/PTR/NS, the RDATA in
    hex for every other type.
    """
    size = len(payload)
    if size < HEADER_LENGTH:
        raise DecodeError(f"DNS header needs {HEADER_LENGTH} bytes, have {size}", 0)
    txid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(payload)
    if HEADER_LENGTH + qdcount * MIN_QUESTION + (ancount + nscount + arcount) * MIN_RECORD > size:
        raise DecodeError(f"DNS section counts exceed the {size}-byte message", 4)

    off = HEADER_LENGTH
    known: dict[int, str] = {}
    questions: list[tuple[str, int]] = []
    for _ in range(qdcount):
        qname, off = _read_name(payload, off, known)
        if off + 4 > size:
            raise DecodeError("DNS question truncated", off)
        qtype, _qclass = _QUESTION_TAIL.unpack_from(payload, off)
        off += 4
        questions.append((qname, qtype))

    answers: list[DnsAnswer] = []
    for _ in range(ancount):
        name, off = _read_name(payload, off, known)
        if off + 10 > size:
            raise DecodeError("DNS resource record truncated", off)
        rtype, _rclass, ttl, rdlength = _RECORD_TAIL.unpack_from(payload, off)
        start = off + 10
        off = start + rdlength
        if off > size:
            raise DecodeError(f"DNS RDATA of {rdlength} bytes runs past end", start - 2)
        if ttl & TTL_TOP_BIT:
            ttl = 0
        value = _rdata_value(payload, rtype, start, off, known)
        answers.append(DnsAnswer(name, rtype, ttl, value))

    return DnsMessage(
        txid=txid,
        is_response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        rcode=flags & 0xF,
        questions=tuple(questions),
        answers=tuple(answers),
    )


@dataclass(frozen=True, slots=True)
class SvcbRecord:
    """The RDATA of one SVCB or HTTPS record (RFC 9460 §2.2).

    `priority` 0 is AliasMode (its target names where the real records are; its
    SvcParams are ignored, §2.4.2). `target` is lower-case without a trailing dot;
    "" is the root, which in ServiceMode means the owner name itself.
    """

    priority: int
    target: str
    keys: tuple[int, ...]  # every SvcParamKey present, in (increasing) wire order
    alpn: tuple[str, ...] = ()
    port: int | None = None
    ech: tuple[EchConfig, ...] | None = None  # None: no `ech` SvcParam


def parse_svcb_rdata(rdata: bytes) -> SvcbRecord:
    """Decode SVCB/HTTPS RDATA (`bytes.fromhex(answer.value)`); raise DecodeError if malformed.

    The target name is never compressed (RFC 9460 §2.2); keys must come in strictly
    increasing order (§2.2), and alpn, port and ech values must fill their lengths.
    Offsets in DecodeError are offsets in `rdata`.
    """
    size = len(rdata)
    if size < 3:
        raise DecodeError(f"SVCB RDATA of {size} bytes", 0)
    priority = int.from_bytes(rdata[:2], "big")
    target, pos = _uncompressed_name(rdata, 2)
    keys: list[int] = []
    alpn: tuple[str, ...] = ()
    port: int | None = None
    ech: tuple[EchConfig, ...] | None = None
    while pos < size:
        if pos + 4 > size:
            raise DecodeError("SvcParam header truncated", pos)
        key = int.from_bytes(rdata[pos : pos + 2], "big")
        length = int.from_bytes(rdata[pos + 2 : pos + 4], "big")
        start = pos + 4
        end = start + length
        if end > size:
            raise DecodeError(f"SvcParam {key} of {length} bytes runs past end", pos + 2)
        if keys and key <= keys[-1]:
            raise DecodeError(f"SvcParamKey {key} after {keys[-1]}: not increasing", pos)
        keys.append(key)
        value = rdata[start:end]
        if priority == 0:
            pass  # AliasMode: SvcParams are ignored (RFC 9460 §2.4.2)
        elif key == SVC_ALPN:
            alpn = _alpn_ids(value, start)
        elif key == SVC_PORT:
            if length != 2:
                raise DecodeError(f"SvcParam port of {length} bytes", pos + 2)
            port = int.from_bytes(value, "big")
        elif key == SVC_ECH:
            try:
                ech = parse_ech_config_list(value)
            except DecodeError as problem:
                raise DecodeError(f"SvcParam ech: {problem.what}", start + problem.offset) from None
        pos = end
    return SvcbRecord(priority, target, tuple(keys), alpn, port, ech)


def parse_nbns_name(payload: bytes) -> str | None:
    """The first-level decoded name of a NetBIOS name service packet (RFC 1002 §4.1).

    The name at offset 12 is the question name of a query and the RR name of a
    response (responses have no question section). Returns it lower-case with the
    padding spaces removed and the 16th (service type) byte dropped; a NetBIOS scope,
    if any, follows after a dot. None when the packet carries no name at all; raises
    DecodeError when the name is not a valid first-level encoding.
    """
    size = len(payload)
    if size < HEADER_LENGTH:
        raise DecodeError(f"NBNS header needs {HEADER_LENGTH} bytes, have {size}", 0)
    if not any(_HEADER.unpack_from(payload)[2:]):
        return None
    labels, _end = _read_labels(payload, HEADER_LENGTH)
    if not labels or len(labels[0]) != NBNS_ENCODED_LENGTH:
        raise DecodeError("NBNS name is not a 32-byte first-level encoding", HEADER_LENGTH)
    encoded = labels[0].upper()  # RFC 1002 uses upper case; accept lower on receipt
    if encoded.translate(None, _NBNS_LETTERS):
        raise DecodeError("NBNS name has letters outside A-P", HEADER_LENGTH + 1)
    # Two letters per byte: (high nibble + 'A', low nibble + 'A').
    raw = bytes(
        ((hi - 0x41) << 4) | (lo - 0x41)
        for hi, lo in zip(encoded[0::2], encoded[1::2], strict=True)
    )
    netbios = _label_text(raw[:15].rstrip(b" "))
    scope = [_label_text(label) for label in labels[1:]]
    return ".".join([netbios, *scope]).lower()


def ssdp_names(payload: bytes) -> tuple[str, ...]:
    """Host names in an SSDP message's HOST, LOCATION and AL headers.

    Lower-case, without port or trailing dot, each once, in order of appearance.
    Address literals (IPv4, bracketed IPv6) are left out: they are addresses, not
    names, and the flow table already judges where packets go. Empty when the
    payload does not start like an HTTP-over-UDP message.
    """
    head = payload[:MAX_SSDP_HEAD]
    end = head.find(b"\r\n\r\n")
    if end >= 0:
        head = head[:end]
    lines = head.split(b"\n")
    if b"HTTP/1." not in lines[0]:
        return ()
    names: dict[str, None] = {}  # ordered set
    for line in lines[1:]:
        key, sep, value = line.partition(b":")
        if not sep:
            continue
        key = key.strip().lower()
        if key not in _SSDP_HOST_HEADERS:
            continue
        text = value.strip().decode("latin-1")
        if key == b"host":
            hosts = [_authority_host(text)]
        elif key == b"location":
            hosts = [_url_host(text)]
        else:  # AL: one or more <URL> (UPnP Device Architecture 2.0 §1.2.2)
            hosts = [_url_host(part.strip("<> \t")) for part in text.split(">") if part.strip()]
        for host in hosts:
            if host and not _is_address(host):
                names[host] = None
    return tuple(names)


def _read_labels(buf: bytes, off: int) -> tuple[list[bytes], int]:
    """The raw labels of the name at `off`, following pointers, and the offset after it."""
    size = len(buf)
    labels: list[bytes] = []
    after = -1  # offset after the name where it was found (set at the first pointer)
    jumps = 0
    wire_length = 1  # the terminating zero byte
    while True:
        if off >= size:
            raise DecodeError("DNS name runs past end of message", off)
        length = buf[off]
        if length == 0:
            off += 1
            break
        kind = length & 0xC0
        if kind == 0xC0:  # RFC 1035 §4.1.4 compression pointer
            if off + 1 >= size:
                raise DecodeError("DNS compression pointer truncated", off)
            jumps += 1
            if jumps > MAX_POINTER_JUMPS:
                raise DecodeError("DNS compression pointer loop", off)
            if after < 0:
                after = off + 2
            off = ((length & 0x3F) << 8) | buf[off + 1]
            continue
        if kind:  # 0x40 extended (RFC 6891 §5, deprecated by RFC 6891) and 0x80 reserved
            raise DecodeError(f"DNS label type 0x{length:02x} not supported", off)
        start = off + 1
        off = start + length
        if off > size:
            raise DecodeError(f"DNS label of {length} bytes runs past end", start - 1)
        wire_length += length + 1
        if wire_length > MAX_NAME_LENGTH:
            raise DecodeError(f"DNS name longer than {MAX_NAME_LENGTH} bytes", start - 1)
        labels.append(buf[start:off])
    return labels, (off if after < 0 else after)


def _uncompressed_name(buf: bytes, off: int) -> tuple[str, int]:
    """A name that must not be compressed (RFC 9460 §2.2), in text form, and the offset after."""
    labels: list[str] = []
    wire_length = 1
    while True:
        if off >= len(buf):
            raise DecodeError("SVCB TargetName runs past end", off)
        length = buf[off]
        if length == 0:
            return ".".join(labels).lower(), off + 1
        if length & 0xC0:
            raise DecodeError(f"SVCB TargetName label type 0x{length:02x} (compressed?)", off)
        start = off + 1
        off = start + length
        if off > len(buf):
            raise DecodeError(f"SVCB TargetName label of {length} bytes runs past end", start - 1)
        wire_length += length + 1
        if wire_length > MAX_NAME_LENGTH:
            raise DecodeError(f"SVCB TargetName longer than {MAX_NAME_LENGTH} bytes", start - 1)
        labels.append(_label_text(buf[start:off]))


def _alpn_ids(value: bytes, at: int) -> tuple[str, ...]:
    """The alpn SvcParam (RFC 9460 §7.1.1): length-prefixed protocol ids, at least one."""
    ids: list[str] = []
    pos = 0
    while pos < len(value):
        length = value[pos]
        if length == 0 or pos + 1 + length > len(value):
            raise DecodeError(f"SvcParam alpn id of {length} bytes does not fit", at + pos)
        ids.append(value[pos + 1 : pos + 1 + length].decode("ascii", "backslashreplace"))
        pos += 1 + length
    if not ids:
        raise DecodeError("SvcParam alpn is empty", at)
    return tuple(ids)


def _read_name(buf: bytes, off: int, known: dict[int, str]) -> tuple[str, int]:
    """The name at `off` in text form (lower-case, no trailing dot) and the offset after it.

    `known` maps offsets where a name was already read to its text: answers mostly
    point back at the question name, so that name is decoded once per message.
    """
    if off + 1 < len(buf) and buf[off] >= 0xC0:  # the whole name is one pointer
        target = ((buf[off] & 0x3F) << 8) | buf[off + 1]
        if (cached := known.get(target)) is not None:
            return cached, off + 2
        start = target
    else:
        start = off
    labels, end = _read_labels(buf, off)
    joined = b".".join(labels)
    # Fast path: printable ASCII, and no dot or backslash hiding inside a label.
    text = joined.decode("ascii") if joined.isascii() else ""
    if text.isprintable() and "\\" not in text and text.count(".") == len(labels) - 1:
        text = text.lower()
    else:
        text = ".".join(_label_text(label) for label in labels).lower()
    known[start] = text
    return text, end


def _label_text(label: bytes) -> str:
    """One label in RFC 1035 §5.1 presentation form: `\\.`, `\\\\`, `\\DDD` for the rest."""
    out = []
    for byte in label:
        if byte in (0x2E, 0x5C):  # '.' and '\'
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def _rdata_value(buf: bytes, rtype: int, start: int, end: int, known: dict[int, str]) -> str:
    """An answer's value: address text, target name, or RDATA hex."""
    if rtype in _ADDRESS_TYPES:
        want = 4 if rtype == TYPE_A else 16
        if end - start != want:
            raise DecodeError(f"DNS type {rtype} RDATA is {end - start} bytes, not {want}", start)
        if rtype == TYPE_A:
            return socket.inet_ntop(socket.AF_INET, buf[start:end])
        # ipaddress, not inet_ntop: its text is what str(IPv6Address) gives elsewhere.
        return str(ipaddress.IPv6Address(bytes(buf[start:end])))
    if rtype in _NAME_TYPES:
        name, after = _read_name(buf, start, known)
        if after != end:
            raise DecodeError(f"DNS type {rtype} name does not fill its RDATA", start)
        return name
    return bytes(buf[start:end]).hex()


def _authority_host(authority: str) -> str:
    """The host of `host[:port]` or `[v6]:port`, lower-case, without a trailing dot."""
    authority = authority.strip()
    if authority.startswith("["):
        return authority[1 : authority.find("]")].lower() if "]" in authority else ""
    return authority.partition(":")[0].rstrip(".").lower()


def _url_host(url: str) -> str:
    """The host of an absolute URL, lower-case, without a trailing dot ("" if none)."""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return ""
    return host.rstrip(".") if host else ""


def _is_address(host: str) -> bool:
    """Whether `host` is an IPv4 or IPv6 address literal."""
    try:
        ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return True
