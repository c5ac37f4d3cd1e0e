"""HTTP/1.x request heads (RFC 9112) and CONNECT authorities."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HttpRequestHead:
    """An HTTP/1.x request line plus the Host header when in the same payload."""

    method: str
    target: str
    version: str
    host: str | None


def parse_request_head(payload: bytes) -> HttpRequestHead | None:
    """The request head `payload` starts with, or None if it is not HTTP/1.x."""
    raise NotImplementedError  # being written


def connect_target(target: str) -> tuple[str, int] | None:
    """Split a CONNECT authority into (host, port), or None if malformed."""
    raise NotImplementedError  # being written
