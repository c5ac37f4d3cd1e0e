"""DNS name normalisation and pattern matching (controls.md decision 4)."""

from __future__ import annotations

import re

import pytest

from conformance.names import (
    CLOUD_NAME_PATTERNS,
    DOCUMENTED_ENDPOINT_PATTERNS,
    covers,
    is_valid_pattern,
    matches,
    normalize_name,
    normalize_pattern,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("api.imagicle.com", "api.imagicle.com"),
        ("API.Imagicle.COM", "api.imagicle.com"),
        ("api.imagicle.com.", "api.imagicle.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
        ("\uff21\uff22\uff23.example", "abc.example"),  # fullwidth ABC folds (nameprep)
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("a\u3002b\uff0ec\uff61d", "a.b.c.d"),  # RFC 3490 3.1 full stops
        ("_ldap._tcp.dc._msdcs.corp.example", "_ldap._tcp.dc._msdcs.corp.example"),
        ("localhost", "localhost"),
        ("a-b.example", "a-b.example"),
        ("1.2.3.4.in-addr.arpa", "1.2.3.4.in-addr.arpa"),
        ("a" * 63 + ".example", "a" * 63 + ".example"),
    ],
)
def test_normalize_name(name: str, expected: str) -> None:
    assert normalize_name(name) == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty name"),
        (".", "empty name"),
        ("example.com..", "empty label"),
        ("a..example", "empty label"),
        (".example", "empty label"),
        ("exa mple.com", "no spaces"),
        (" example.com", "no spaces"),
        ("-a.example", "may not start or end with a hyphen"),
        ("a-.example", "may not start or end with a hyphen"),
        ("a/b.example", "only letters, digits"),
        ("a\x00b.example", "only letters, digits"),
        ("*.example.com", "only letters, digits"),
        ("a" * 64 + ".example", "the limit is 63"),
        ("ü" * 64 + ".example", "cannot be IDNA-encoded"),
        ("xn--zz.example", "not valid punycode"),
        (".".join(["a" * 63] * 4), "the limit is 253"),
    ],
)
def test_normalize_name_rejects(name: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_name(name)


def test_name_of_253_characters_is_the_limit() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    assert normalize_name(name + ".") == name


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*.example.com", "*.example.com"),
        ("*.EXAMPLE.com.", "*.example.com"),
        ("*.bücher.example", "*.xn--bcher-kva.example"),
        ("api.imagicle.com", "api.imagicle.com"),
    ],
)
def test_normalize_pattern(pattern: str, expected: str) -> None:
    assert normalize_pattern(pattern) == expected
    assert is_valid_pattern(pattern) is None


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("*", "a lone \\*"),
        ("*.", "nothing after"),
        ("*.com", "whole top-level domain"),
        ("a.*.com", "whole first label"),
        ("*example.com", "whole first label"),
        ("ex*.com", "whole first label"),
        ("**.example.com", "whole first label"),
        ("*.*.example.com", "whole first label"),
        ("example.*", "whole first label"),
        ("*..example.com", "empty label"),
        ("192.0.2.7", "IP address"),
        ("[2001:db8::1]", "IP address"),
        ("2001:db8::1", "IP address"),
        ("host.123", "all-numeric"),
        ("under_score.ok.example", None),
    ],
)
def test_is_valid_pattern(pattern: str, reason: str | None) -> None:
    found = is_valid_pattern(pattern)
    if reason is None:
        assert found is None
    else:
        assert found is not None
        assert re.search(reason, found), found


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        ("*.example.com", "a.example.com"),
        ("*.example.com", "a.b.c.example.com"),
        ("*.example.com", "A.EXAMPLE.COM."),
        ("*.EXAMPLE.COM", "a.example.com"),
        ("example.com", "Example.Com."),
        ("*.bücher.example", "www.xn--bcher-kva.example"),
        ("*.xn--bcher-kva.example", "www.bücher.example"),
        ("*.imagicle.com", "bad label!.imagicle.com"),  # malformed on the wire: fail closed
        ("*.imagicle.com", "x.IMAGICLE.com"),
        ("*.imagicle.cloud", "tenant-1.eu.imagicle.cloud."),
    ],
)
def test_matches(pattern: str, name: str) -> None:
    assert matches(pattern, name)


@pytest.mark.parametrize(
    ("pattern", "name"),
    [
        ("*.example.com", "example.com"),  # decision 4: never the parent itself
        ("*.example.com", "example.com."),
        ("*.example.com", ".example.com"),
        ("*.example.com", "badexample.com"),
        ("*.imagicle.com", "evilimagicle.com"),
        ("*.imagicle.com", "imagicle.com.evil.example"),
        ("*.imagicle.com", "api.imagicle.com.evil.example"),
        ("*.imagicle.com", "api.imagicle.co"),
        ("*.imagicle.com", "api.imagicle.cloud"),
        ("*.imagicle.com", "api.\u0456magicle.com"),  # Cyrillic i: another (punycode) name
        ("api.imagicle.com", "grpc.imagicle.com"),
        ("api.imagicle.com", "x.api.imagicle.com"),
        ("api.imagicle.com", "api.imagicle.com.."),
        ("imagicle.com", "api.imagicle.com"),
    ],
)
def test_does_not_match(pattern: str, name: str) -> None:
    assert not matches(pattern, name)


def test_matches_rejects_invalid_pattern() -> None:
    with pytest.raises(ValueError, match="whole first label"):
        matches("a.*.com", "a.b.com")


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("*.imagicle.com", "api.imagicle.com", True),
        ("*.imagicle.com", "*.eu.imagicle.com", True),
        ("*.imagicle.com", "*.imagicle.com", True),
        ("*.imagicle.com", "imagicle.com", False),
        ("*.imagicle.com", "*.imagicle.cloud", False),
        ("api.imagicle.com", "api.imagicle.com", True),
        ("api.imagicle.com", "*.imagicle.com", False),
        ("*.eu.imagicle.com", "*.imagicle.com", False),
        ("*.imagicle.com", "*.evilimagicle.com", False),
    ],
)
def test_covers(outer: str, inner: str, expected: bool) -> None:
    assert covers(outer, inner) is expected


@pytest.mark.parametrize("pattern", CLOUD_NAME_PATTERNS + DOCUMENTED_ENDPOINT_PATTERNS)
def test_shipped_patterns_are_canonical(pattern: str) -> None:
    assert normalize_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("name", "is_cloud"),
    [
        ("imagicle.com", True),
        ("licensing.imagicle.com.", True),
        ("ldap.IMAGICLE.cloud", True),
        ("imagicle.cloud", True),
        ("imagicle.com.evil.example", False),
        ("evilimagicle.com", False),
        ("imagicle.co", False),
        ("imagicle.cloud.example", False),
    ],
)
def test_cloud_name_patterns(name: str, is_cloud: bool) -> None:
    assert any(matches(p, name) for p in CLOUD_NAME_PATTERNS) is is_cloud
