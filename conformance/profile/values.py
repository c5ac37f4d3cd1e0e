"""Where a value sits in a profile, how problems are worded, and the typed values of every section.

Each function takes the YAML value and its position (`At`: file and key path) and returns a
typed value or raises ProfileError naming both. Keys, choices and spellings come from the
table in shape.py; the wording of each problem, with the spelling meant, is here.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Final, NoReturn

from conformance.errors import ProfileError
from conformance.profile import shape
from conformance.profile_model import Environment, IPAddress, IPNetwork, PortSpec

MAX_TEXT: Final = 200  # names and labels are shown on one line of the report

_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_PORT_SPEC = re.compile(shape.PORT_SPEC_PATTERN, re.ASCII)
# Finds the parts of a port spec that does not match, to name the problem.
_PARTS = re.compile(r"(0|[1-9][0-9]*)/(tcp|udp)", re.ASCII)
_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)
# What a person may have meant (other digits, leading zeros, upper case, spaces): named in the
# error with the accepted spelling, never accepted (one spelling, one meaning in the report).
_LOOSE_PORT_SPEC = re.compile(r"\s*(\d+)\s*/\s*(tcp|udp)\s*", re.IGNORECASE)
_PREFIX_LENGTH = re.compile(r"0|[1-9][0-9]{0,2}", re.ASCII)
_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")
MAX_PORT_DIGITS: Final = 5  # 65535; longer is out of range (and int() of 4,300 digits fails)
BOOL_HINT: Final = "YAML reads unquoted yes/no/on/off/true/false as booleans; quote the value"


# --- where a value sits, and how problems are worded -------------------------------------


@dataclass(frozen=True, slots=True)
class At:
    """A position in the profile: the file and the key path (`environment.endpoints[1]`)."""

    file: str
    key: str = ""

    def __truediv__(self, name: str) -> At:
        return At(self.file, join(self.key, name))

    def __getitem__(self, index: int) -> At:
        return At(self.file, f"{self.key}[{index}]")

    def fail(self, problem: str) -> NoReturn:
        raise ProfileError(self.file, self.key, problem)


def join(key: str, name: str) -> str:
    part = name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)
    return f"{key}.{part}" if key else part


def quote(text: str) -> str:
    """`text` in double quotes on one line, shortened if long."""
    return json.dumps(_short(text), ensure_ascii=False)


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def describe(value: object) -> str:
    """What a YAML value is, for "expected X, got Y" messages."""
    match value:
        case None:
            return "nothing (an empty value)"
        case bool():
            return f"the boolean {str(value).lower()}"
        case int() | float():
            return f"the number {_short(str(value))}"
        case str():
            return f"the string {quote(value)}"
        case list():
            return "a list"
        case dict():
            return "a mapping"
        case date():
            return f"the date {value.isoformat()}"
        case bytes():
            return "binary data"
        case _:
            return f"a {type(value).__name__}"


def expected(at: At, what: str, value: object) -> NoReturn:
    hint = ""
    if isinstance(value, bool):
        hint = f" ({BOOL_HINT})"
    elif isinstance(value, str) and what.startswith("a list"):
        hint = " (write [item] even for one item)"
    at.fail(f"expected {what}, got {describe(value)}{hint}")


def unknown_key(at: At, key: str, allowed: Iterable[str]) -> NoReturn:
    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    guess = f"did you mean {quote(close[0])}? " if close else ""
    at.fail(f"unknown key; {guess}allowed here: {', '.join(allowed)}")


# --- typed values ------------------------------------------------------------------------


def fields(value: object, at: At, section: shape.Section) -> dict[str, object]:
    """`value` as a mapping with only the section's keys and every required one (shape.py)."""
    allowed = section.names
    if not isinstance(value, dict):
        expected(at, f"a mapping with {', '.join(allowed)}", value)
    refused = dict(section.refused)
    for key in value:
        if not isinstance(key, str):
            at.fail(f"keys are names, got {describe(key)}")
        if key in refused:
            (at / key).fail(f"not a profile key: {refused[key]}")
        if key not in allowed:
            unknown_key(at / key, key, allowed)
    for key in section.required:
        if key not in value:
            (at / key).fail("missing; this key is required")
    if section.one_of:
        present = [key for key in section.one_of if key in value]
        if len(present) != 1:
            given = f" (given: {', '.join(present)})" if present else ""
            at.fail(f"give exactly one of {', '.join(section.one_of)}{given}")
    return value


def listed(value: object, at: At, *, nonempty: bool = False) -> list[object]:
    if not isinstance(value, list):
        expected(at, "a list", value)
    if nonempty and not value:
        at.fail("empty; list at least one item")
    return value


def string(value: object, at: At, what: str = "a string") -> str:
    if not isinstance(value, str):
        expected(at, what, value)
    return value


def one_line(value: object, at: At, limit: int = MAX_TEXT) -> str:
    """A non-empty line of free text (shown in reports)."""
    text = string(value, at)
    if not text.strip():
        at.fail("empty; write some text")
    if any(not ch.isprintable() for ch in text):
        at.fail(f"{quote(text)} holds a line break or control character; write one line")
    if len(text) > limit:
        at.fail(f"longer than {limit} characters")
    return text.strip()


def flag(value: object, at: At) -> bool:
    if not isinstance(value, bool):
        expected(at, "true or false", value)
    return value


def choice(value: object, at: At, choices: tuple[str, ...]) -> str:
    listed = " or ".join(choices) if len(choices) == 2 else f"one of {', '.join(choices)}"
    text = string(value, at, listed)
    if text not in choices:
        close = difflib.get_close_matches(text, choices, n=1)
        guess = f"; did you mean {quote(close[0])}?" if close else ""
        at.fail(f"{quote(text)} is not {listed}{guess}")
    return text


def ip_address(value: object, at: At) -> IPAddress:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 1:2:3 as a base-60 number, so IPv6 may arrive as one.
        at.fail(f"expected an IP address, got the number {value}; quote the address")
    text = string(value, at, "an IP address")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        if "/" in text:
            at.fail(f"{quote(text)} is a network; write an address without /prefix")
        at.fail(f"{quote(text)} is not an IPv4 or IPv6 address")
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            at.fail(f"{quote(text)} has a zone index (%...); write the address alone")
        if address.ipv4_mapped is not None:
            at.fail(f"{quote(text)} is IPv4-mapped; write {address.ipv4_mapped}")
    return address


def ip_network(value: object, at: At) -> IPNetwork:
    text = string(value, at, "a network such as 192.0.2.0/24")
    if "%" in text:
        at.fail(f"{quote(text)} has a zone index (%...); write the network alone")
    address, slash, prefix = text.partition("/")
    if slash and not _PREFIX_LENGTH.fullmatch(prefix):
        # ipaddress also reads a netmask (/255.255.255.0), a host mask and leading zeros;
        # int() reads other scripts' digits and a sign. Either way, name the one spelling.
        meant = _prefix_form(address, prefix)
        if meant is None:
            at.fail(f"{quote(text)} is not an IPv4 or IPv6 network (such as 192.0.2.0/24)")
        at.fail(f"{quote(text)} is not in CIDR prefix form (address/prefix length): write {meant}")
    try:
        network = ipaddress.ip_network(text)
    except ValueError:
        pass
    else:
        _not_mapped(network, text, at)
        return network
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        at.fail(f"{quote(text)} is not an IPv4 or IPv6 network (such as 192.0.2.0/24)")
    at.fail(f"{quote(text)} has host bits set; did you mean {network}?")


def _not_mapped(network: IPNetwork, text: str, at: At) -> None:
    """Refuse an IPv4-mapped network, as ip_address refuses a mapped address: packets never
    carry one, and `::ffff:0:0/96` names every IPv4 address in an IPv6 spelling."""
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_MAPPED):
        meant = f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}"
        at.fail(f"{quote(text)} is IPv4-mapped; write {meant}")


def _prefix_form(address: str, prefix: str) -> str | None:
    """`address/prefix` with the prefix as a length, if `prefix` is a mask or a number."""
    candidates = [prefix]
    with contextlib.suppress(ValueError):
        candidates.append(str(int(prefix)))
    for candidate in candidates:
        try:
            network = ipaddress.ip_network(f"{address}/{candidate}", strict=False)
        except ValueError:
            continue
        return f"{address}/{network.prefixlen}"
    return None


def port_number(text: str, at: At, written: str, spelled: Callable[[int], str] = str) -> int:
    """The port `text` of `written`; `spelled(n)` is how `written` should read with port n."""
    if not _DECIMAL.fullmatch(text):
        try:
            meant = int(text)  # also reads other scripts' digits, leading zeros, "+", "_"
        except ValueError:
            at.fail(f"{quote(written)}: {quote(text)} is not a port number")
        hint = f": write {spelled(meant)}" if 1 <= meant <= 65535 else ""
        at.fail(f"{quote(written)}: a port is decimal ASCII digits without leading zeros{hint}")
    number = int(text) if len(text) <= MAX_PORT_DIGITS else 65536
    if not 1 <= number <= 65535:
        at.fail(f"{quote(written)}: port {_short(text)} is out of range 1-65535")
    return number


def port_spec(value: object, at: At) -> PortSpec:
    """`N/tcp` or `N/udp` (controls.md decision 2), spelled as shape.PORT_SPEC_PATTERN says."""
    if isinstance(value, str) and _PORT_SPEC.fullmatch(value):
        number, _, transport = value.partition("/")
        return PortSpec(int(number), "tcp") if transport == "tcp" else PortSpec(int(number), "udp")
    bare_number = isinstance(value, int) and not isinstance(value, bool)
    if bare_number or (isinstance(value, str) and _DECIMAL.fullmatch(value)):
        at.fail(
            f"{value} has no transport; write {value}/tcp or {value}/udp (controls.md decision 2)"
        )
    text = string(value, at, "N/tcp or N/udp")
    found = _PARTS.fullmatch(text)
    if found is None:
        loose = _LOOSE_PORT_SPEC.fullmatch(text)
        if loose is not None and len(loose[1]) <= MAX_PORT_DIGITS and 1 <= int(loose[1]) <= 65535:
            at.fail(
                f"{quote(text)} is not N/tcp or N/udp: write {int(loose[1])}/{loose[2].lower()}"
            )
        at.fail(f"{quote(text)} is not N/tcp or N/udp")
    port_number(found[1], at, text)  # names the problem: the number is out of range
    at.fail(f"{quote(text)} is not N/tcp or N/udp")


def duration(value: object, at: At, spelling: str, units: dict[str, float], examples: str) -> float:
    """Seconds of a duration: a number, or a string spelled as `spelling` (shape.py).

    `units` maps each unit suffix (and "" for none) to its seconds.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        expected(at, f"a duration such as {examples}", value)
    if isinstance(value, int | float):
        return finite(value, at, describe(value))
    if re.fullmatch(spelling, value) is None:
        at.fail(f"{quote(value)} is not a duration such as {examples}")
    written = value.strip()
    number = written.rstrip("smhd").rstrip()
    return finite(float(number) * units[written[len(number) :].strip()], at, quote(value))


def finite(value: float, at: At, shown: str) -> float:
    """`value` as a float that is a number: .nan, .inf and 1e309 mean nothing as seconds.

    `shown` is the value as the error names it."""
    try:
        number = float(value)
    except OverflowError:  # an int past 1.8e308
        number = math.inf
    if not math.isfinite(number):
        at.fail(f"{shown} is not a finite number")
    return number


def inside(environment: Environment, address: IPAddress, at: At, role: str) -> None:
    if not environment.contains(address):
        at.fail(f"{address} is outside environment.networks; {role}")
