"""DNS name normalisation and wildcard name patterns (controls.md decision 4).

A *name* is compared lower-cased, IDNA-encoded (Python's `idna` codec: RFC 3490 with
nameprep), without its trailing dot. A *pattern* is a name, or `*.` followed by a name of at
least two labels; `*.example.com` matches any name with one or more labels before
`.example.com`, never `example.com` itself.

Labels may hold letters, digits, hyphens (not first or last) and underscores. Underscores are
allowed because the target really queries such names (`_ldap._tcp.dc._msdcs.corp.example` for
Active Directory, `_sip._tcp...` for calling): names seen on the wire must normalise so that
AG-CLOUD-NAMES can judge them, and patterns follow the same rule.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Final

CLOUD_NAME_PATTERNS: Final = (
    "*.imagicle.com",
    "imagicle.com",
    "*.imagicle.cloud",
    "imagicle.cloud",
)
"""Names that count as Imagicle cloud names for AG-CLOUD-NAMES (controls.md)."""

DOCUMENTED_ENDPOINT_PATTERNS: Final = (
    "api.imagicle.com",  # CT 7
    "grpc.imagicle.com",  # CT 7
    "*.imagicle.com",  # CT 2
    "*.imagicle.cloud",  # CT 2, CT 6 (secure LDAP)
)
"""Imagicle's documented cloud endpoints: a profile may allow these without a justification."""

MAX_NAME_LENGTH: Final = 253  # RFC 1035 2.3.4: 255 octets on the wire, 253 characters as text
MAX_LABEL_LENGTH: Final = 63  # RFC 1035 2.3.4

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")
# RFC 3490 3.1: these full stops separate labels as "." does.
_DOTS = re.compile("[\u3002\uff0e\uff61]")
_WILDCARD_RULE = "* is allowed only as the whole first label, as in *.example.com"


@functools.lru_cache(maxsize=4096)
def normalize_name(name: str) -> str:
    """Return `name` lower-cased, IDNA-encoded, without trailing dot; ValueError says why not."""
    if any(ch.isspace() for ch in name):
        raise ValueError("a name has no spaces")
    text = _DOTS.sub(".", name)
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise ValueError("empty name")
    result = ".".join(_label(label) for label in text.split("."))
    if len(result) > MAX_NAME_LENGTH:
        raise ValueError(
            f"the name is {len(result)} characters long; the limit is {MAX_NAME_LENGTH}"
        )
    return result


@functools.lru_cache(maxsize=1024)
def normalize_pattern(pattern: str) -> str:
    """Return the canonical form of a name pattern (decision 4); ValueError says why not."""
    if pattern == "*":
        raise ValueError("a lone * would match every name; write *.example.com")
    head, _, rest = pattern.partition(".")
    if head == "*":
        if not rest:
            raise ValueError("nothing after *.; write *.example.com")
        if "*" in rest:
            raise ValueError(_WILDCARD_RULE)
        base = _host_name(rest)
        if "." not in base:
            # "*.com" would allow a whole top-level domain: no allow-list means that.
            raise ValueError(f"*.{base} covers a whole top-level domain; name two labels or more")
        return f"*.{base}"
    if "*" in pattern:
        raise ValueError(_WILDCARD_RULE)
    return _host_name(pattern)


def is_valid_pattern(pattern: str) -> str | None:
    """Return why `pattern` is not a valid name pattern, or None when it is valid."""
    try:
        normalize_pattern(pattern)
    except ValueError as exc:
        return str(exc)
    return None


def matches(pattern: str, name: str) -> bool:
    """Whether `name` is matched by `pattern` (decision 4). ValueError if the pattern is invalid.

    `name` is usually seen on the wire (DNS query, TLS SNI, HTTP Host). A name that does not
    normalise is still compared, lower-cased and without its trailing dot, so a malformed
    name under a cloud suffix still counts as that suffix (fail closed).
    """
    canonical = normalize_pattern(pattern)
    observed = _comparable(name)
    if canonical.startswith("*."):
        suffix = canonical[1:]
        return len(observed) > len(suffix) and observed.endswith(suffix)
    return observed == canonical


def covers(outer: str, inner: str) -> bool:
    """Whether every name that pattern `inner` matches is also matched by pattern `outer`."""
    inner_canonical = normalize_pattern(inner)
    if not inner_canonical.startswith("*."):
        return matches(outer, inner_canonical)
    outer_canonical = normalize_pattern(outer)
    return outer_canonical.startswith("*.") and (
        inner_canonical == outer_canonical or inner_canonical.endswith(outer_canonical[1:])
    )


def _host_name(text: str) -> str:
    """Normalise a name written in a profile, which must not be an address."""
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValueError("is an IP address, not a name")
    name = normalize_name(text)
    if name.rsplit(".", 1)[-1].isdigit():
        # RFC 3696 2: a top-level domain is never all-numeric, so this is a mistyped address.
        raise ValueError("ends in an all-numeric label: that is an address, not a name")
    return name


def _label(label: str) -> str:
    """One label in ASCII form, lower-case; ValueError says why it is invalid."""
    if not label:
        raise ValueError("empty label (two dots in a row, or a leading dot)")
    if label.isascii():
        ascii_label = label.lower()
        if ascii_label.startswith("xn--"):
            try:
                ascii_label.encode("ascii").decode("idna")
            except UnicodeError:
                raise ValueError(f"label {label!r} is not valid punycode") from None
    else:
        try:
            # nameprep in the codec folds case and width: "BÜCHER" -> "xn--bcher-kva".
            ascii_label = label.encode("idna").decode("ascii")
        except UnicodeError as exc:
            reason = exc.__cause__ or exc
            raise ValueError(f"label {label!r} cannot be IDNA-encoded: {reason}") from None
    if len(ascii_label) > MAX_LABEL_LENGTH:
        raise ValueError(
            f"label {ascii_label[:20]!r}... is {len(ascii_label)} characters long;"
            f" the limit is {MAX_LABEL_LENGTH}"
        )
    if not _LABEL.fullmatch(ascii_label):
        raise ValueError(
            f"label {label!r} may hold only letters, digits, hyphens and underscores,"
            " and may not start or end with a hyphen"
        )
    return ascii_label


def _comparable(name: str) -> str:
    """`name` normalised when it can be, else lower-cased without its trailing dot."""
    try:
        return normalize_name(name)
    except ValueError:
        text = _DOTS.sub(".", name).lower()
        return text[:-1] if text.endswith(".") else text
