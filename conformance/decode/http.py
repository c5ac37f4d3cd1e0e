"""HTTP/1.x request heads (RFC 9112) and CONNECT authorities (RFC 9110 §9.3.6)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# Only the start of a payload is read: 8 KiB is the usual server limit for a whole
# request head (RFC 9112 §3 asks for request lines of at least 8000 octets).
MAX_HEAD = 8192
# RFC 9110 §9 methods and PATCH (RFC 5789); other uppercase tokens up to this length
# pass too (WebDAV, SSDP's M-SEARCH), so an unusual method is still seen.
MAX_METHOD = 20
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_METHOD_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
_VERSIONS = frozenset({b"HTTP/1.0", b"HTTP/1.1"})
MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class HttpRequestHead:
    """An HTTP/1.x request line plus the Host header when in the same payload."""

    method: str
    target: str  # as written: "/path", "http://host/path", or "host:port" for CONNECT
    version: str  # "HTTP/1.1"
    host: str | None  # Host header value, lower-case, port kept as written


def parse_request_head(payload: bytes, *, lenient: bool = False) -> HttpRequestHead | None:
    """The request head `payload` starts with, or None if it is not HTTP/1.x.

    Needs a whole request line "METHOD SP target SP HTTP/1.x" ended by CRLF (a bare
    LF is accepted too, RFC 9112 §2.2) within the first MAX_HEAD bytes. The Host
    header is looked for in the header lines that follow, up to the blank line.

    `lenient`: a request line that is damaged (a method with bytes no method has, a
    missing or extra space, a mangled version) does not hide the Host header after it
    (controls.md decision 10): when one is there, the head comes back with the first
    line's parts as printable text (non-ASCII escaped) and whatever is missing empty.
    """
    head = payload[:MAX_HEAD]
    eol = head.find(b"\n")
    if eol < 0:
        return None
    line = head[:eol].removesuffix(b"\r")
    parts = line.split(b" ")
    if _request_line_ok(parts):
        method, target, version = parts
        return HttpRequestHead(
            method=method.decode("ascii"),
            target=target.decode("ascii"),
            version=version.decode("ascii"),
            host=_host_header(head, eol + 1),
        )
    if not lenient:
        return None
    host = _host_header(head, eol + 1)
    if host is None:
        return None
    words = [_printable(p) for p in line.split(None, 2)] + ["", "", ""]
    return HttpRequestHead(method=words[0], target=words[1], version=words[2], host=host)


def _request_line_ok(parts: list[bytes]) -> bool:
    """RFC 9112 §3: exactly "method SP request-target SP HTTP-version"."""
    if len(parts) != 3:
        return False
    method, target, version = parts
    if not 0 < len(method) <= MAX_METHOD or not _METHOD_CHARS.issuperset(method):
        return False
    return version in _VERSIONS and bool(target) and _visible_ascii(target)


def _printable(data: bytes) -> str:
    """`data` as text a report can show: ASCII, anything else escaped."""
    text = data.decode("ascii", "backslashreplace")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def connect_target(target: str) -> tuple[str, int] | None:
    """Split a CONNECT authority ("host:port", "[v6]:port") into (host, port), or None.

    The host comes back lower-case without brackets; the port must be 1..65535.
    RFC 9110 §9.3.6 requires the port, so "host" alone is malformed.
    """
    if target.startswith("["):
        close = target.find("]")
        if close < 0 or target[close + 1 : close + 2] != ":":
            return None
        host, port_text = target[1:close], target[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, sep, port_text = target.rpartition(":")
        if not sep or not host or ":" in host:  # an IPv6 literal must be bracketed
            return None
        if not _reg_name_like(host):
            return None
    if not port_text.isascii() or not port_text.isdigit():
        return None
    port = int(port_text)
    if not 0 < port <= MAX_PORT:
        return None
    return host.lower(), port


def _host_header(head: bytes, start: int) -> str | None:
    """The first Host header value in the header lines from `start` (None if absent or empty)."""
    end = head.find(b"\r\n\r\n", start - 2)
    if end < 0:
        end = head.find(b"\n\n", start - 1)
    block = head[start - 1 : end if end >= 0 else len(head)]  # begins with the request's LF
    found = block.lower().find(b"\nhost:")
    if found < 0:
        return None
    line_end = block.find(b"\n", found + 1)
    value = block[found + len(b"\nhost:") : line_end if line_end >= 0 else len(block)]
    host = value.strip(b" \t\r").decode("ascii", "backslashreplace").lower()
    return host or None


def _reg_name_like(host: str) -> bool:
    """Printable ASCII with none of the characters that end an authority's host part."""
    return host.isascii() and host.isprintable() and not any(c in host for c in " /@?#[]")


def _visible_ascii(data: bytes) -> bool:
    """Printable ASCII without spaces (what a request-target may hold, RFC 9112 §3.2)."""
    return data.isascii() and data.decode("ascii").isprintable() and b" " not in data
