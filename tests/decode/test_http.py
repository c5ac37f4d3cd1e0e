"""HTTP/1.x request heads and CONNECT authorities."""

from __future__ import annotations

import pytest

from conformance.decode.http import (
    MAX_HEAD,
    HttpRequestHead,
    connect_target,
    parse_request_head,
)

TLS_CLIENT_HELLO_START = bytes.fromhex("16030100b4010000b00303")


def test_get_with_host_and_port() -> None:
    payload = (
        b"GET /api/v1/licence HTTP/1.1\r\nUser-Agent: ucx\r\nHost: API.Imagicle.com:8443\r\n\r\n"
    )
    assert parse_request_head(payload) == HttpRequestHead(
        "GET", "/api/v1/licence", "HTTP/1.1", "api.imagicle.com:8443"
    )


def test_plaintext_proxy_request_in_absolute_form() -> None:
    payload = (
        b"POST http://telemetry.imagicle.com/v1 HTTP/1.0\r\nhost:telemetry.imagicle.com\r\n\r\n{}"
    )
    head = parse_request_head(payload)
    assert head == HttpRequestHead(
        "POST", "http://telemetry.imagicle.com/v1", "HTTP/1.0", "telemetry.imagicle.com"
    )


def test_connect_to_a_name() -> None:
    payload = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    head = parse_request_head(payload)
    assert head is not None
    assert (head.method, head.target) == ("CONNECT", "api.imagicle.com:443")
    assert connect_target(head.target) == ("api.imagicle.com", 443)


def test_connect_to_an_ipv6_authority() -> None:
    head = parse_request_head(b"CONNECT [2001:DB8::1]:443 HTTP/1.1\r\n\r\n")
    assert head == HttpRequestHead("CONNECT", "[2001:DB8::1]:443", "HTTP/1.1", None)
    assert connect_target(head.target) == ("2001:db8::1", 443)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("Grpc.Imagicle.COM:443", ("grpc.imagicle.com", 443)),
        ("192.0.2.1:8080", ("192.0.2.1", 8080)),
        ("[::1]:1", ("::1", 1)),
        ("api.imagicle.com", None),  # the port is required
        ("api.imagicle.com:", None),
        (":443", None),
        ("api.imagicle.com:0", None),
        ("api.imagicle.com:65536", None),
        ("api.imagicle.com:44a", None),
        ("api.imagicle.com:-1", None),
        ("2001:db8::1:443", None),  # IPv6 without brackets
        ("[2001:db8::1]443", None),
        ("[2001:db8::1", None),
        ("[not-an-address]:443", None),
        ("user@host:443", None),
        ("host/path:443", None),
        ("h\u00e9st:443", None),
        ("host:\u0664\u0664\u0663", None),  # non-ASCII digits
    ],
)
def test_connect_target(target: str, expected: tuple[str, int] | None) -> None:
    assert connect_target(target) == expected


def test_bare_lf_line_endings() -> None:
    head = parse_request_head(b"GET / HTTP/1.1\nHost: nas.lan\n\n")
    assert head is not None and head.host == "nas.lan"


def test_no_host_header() -> None:
    head = parse_request_head(b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n")
    assert head is not None and head.host is None


def test_host_in_the_body_is_not_a_header() -> None:
    head = parse_request_head(b"POST / HTTP/1.1\r\nX-A: b\r\n\r\nHost: evil.example\r\n")
    assert head is not None and head.host is None


def test_host_with_space_before_colon_is_not_a_host_header() -> None:
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost : x.example\r\n\r\n")
    assert head is not None and head.host is None


def test_empty_host_header() -> None:
    head = parse_request_head(b"OPTIONS * HTTP/1.1\r\nHost:   \r\n\r\n")
    assert head == HttpRequestHead("OPTIONS", "*", "HTTP/1.1", None)


def test_first_host_header_wins() -> None:
    head = parse_request_head(b"GET / HTTP/1.1\r\nHost: a.example\r\nHOST: b.example\r\n\r\n")
    assert head is not None and head.host == "a.example"


def test_headers_cut_by_the_segment_end() -> None:
    head = parse_request_head(b"GET / HTTP/1.1\r\nAccept: */*\r\nHost: api.imagicle.com")
    assert head is not None and head.host == "api.imagicle.com"


def test_unusual_uppercase_methods() -> None:
    assert parse_request_head(b"M-SEARCH * HTTP/1.1\r\n\r\n") is not None
    assert parse_request_head(b"PROPFIND /dav HTTP/1.1\r\n\r\n") is not None


def test_only_the_first_8_kib_is_read() -> None:
    long_line = b"GET /" + b"a" * MAX_HEAD + b" HTTP/1.1\r\n\r\n"
    assert parse_request_head(long_line) is None
    padded = b"GET / HTTP/1.1\r\nX-Pad: " + b"p" * MAX_HEAD + b"\r\nHost: late.example\r\n\r\n"
    head = parse_request_head(padded)
    assert head is not None and head.host is None


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        TLS_CLIENT_HELLO_START,
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n",
        b"INVITE sip:bob@example.com SIP/2.0\r\n",
        b"get / HTTP/1.1\r\n\r\n",  # methods are case-sensitive
        b"GET / HTTP/1.1",  # no line end in this payload
        b"GET /  HTTP/1.1\r\n\r\n",  # two spaces
        b"GET / HTTP/2\r\n\r\n",
        b"GET /\r\n",  # HTTP/0.9
        b"GET /a b HTTP/1.1\r\n\r\n",
        b"GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n",
        b"ABCDEFGHIJKLMNOPQRSTU / HTTP/1.1\r\n\r\n",  # method longer than 20
        b"\x00\x01\x02 / HTTP/1.1\r\n",
    ],
)
def test_not_an_http1_request(payload: bytes) -> None:
    assert parse_request_head(payload) is None
