"""TLS ClientHello / ServerHello decoding and cipher-suite facts."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClientHelloInfo:
    """What a ClientHello offers."""

    sni: str | None
    versions: tuple[int, ...]
    cipher_suites: tuple[int, ...]
    alpn: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServerHelloInfo:
    """What a ServerHello chose."""

    version: int
    cipher_suite: int
    hello_retry: bool = False


TLS_VERSION_NAMES: dict[int, str] = {
    0x0300: "SSL 3.0",
    0x0301: "TLS 1.0",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}


def client_hello_length(buf: bytes) -> int | None:
    """Bytes of TCP payload needed to hold the whole ClientHello, or None if not one."""
    raise NotImplementedError  # being written


def parse_client_hello(buf: bytes) -> ClientHelloInfo:
    """Decode a ClientHello from TLS records; raise DecodeError if malformed."""
    raise NotImplementedError  # being written


def parse_server_hello(buf: bytes) -> ServerHelloInfo:
    """Decode a ServerHello from TLS records; raise DecodeError if malformed."""
    raise NotImplementedError  # being written


def version_name(v: int) -> str:
    """A protocol version's name, e.g. "TLS 1.2"."""
    raise NotImplementedError  # being written


def is_weak_suite(suite: int) -> str | None:
    """Why a cipher suite is weak ("NULL", "EXPORT", "RC4", ...), or None."""
    raise NotImplementedError  # being written


def suite_name(suite: int) -> str:
    """The IANA name of a cipher suite."""
    raise NotImplementedError  # being written
