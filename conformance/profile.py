"""Load a deployment profile (interface.md) into a frozen Profile, or raise ProfileError.

Every problem is reported as one line naming the file, the key path and the problem, e.g.
`site.yaml: environment.endpoints[1].ports[0]: "5060/sctp" is not N/tcp or N/udp`.
docs/profile.md describes every key; this module is the authority on what is accepted.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final, NoReturn

import yaml

from conformance.errors import ProfileError
from conformance.names import DOCUMENTED_ENDPOINT_PATTERNS, covers, normalize_pattern
from conformance.profile_model import (
    CLOUD_SERVICES,
    SERVICES_NEEDING_LICENSING,
    TLS_VERSIONS,
    Cloud,
    CloudEndpoint,
    Environment,
    IPAddress,
    IPNetwork,
    Mode,
    NameHint,
    OnPremEndpoint,
    PortSpec,
    Profile,
    ProxySpec,
    Target,
    Telemetry,
    Transport,
)

MAX_PROFILE_BYTES: Final = 1 << 20  # a profile is a page of YAML; 1 MiB is a mistake or an attack
MAX_NODES: Final = 100_000  # YAML nodes after alias expansion; stops "billion laughs" bombs
MAX_DEPTH: Final = 32  # nesting; real profiles use 4 levels, and this keeps recursion shallow
MAX_TEXT: Final = 200  # names and labels are shown on one line of the report
MAX_JUSTIFICATION: Final = 2000  # a paragraph, shown in the report next to the endpoint
MAX_WINDOW_SECONDS: Final = 86_400  # a live observation longer than a day is not a plan
# observation.minimum_window: a period of continuous judgement may be weeks; a year is a typo.
MAX_MINIMUM_WINDOW_SECONDS: Final = 366 * 86_400

LATER_SECTIONS: Final = ("lab", "stimuli", "probes", "host", "image")
"""Top-level sections owned and validated by later features; kept in `Profile.extra`."""

_TOP_REQUIRED = ("name", "mode", "target", "environment")
_TOP_OPTIONAL = ("cloud", "proxy", "telemetry", "window", "observation", "draft", *LATER_SECTIONS)
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
# A cloud endpoint's port: ASCII digits, then `/tcp` (the default) or `/udp` (QUIC), lower case.
_CLOUD_PORT = re.compile(r"([0-9]{1,10})(?:/(tcp|udp))?", re.ASCII)
_CLOUD_SPELLING = "name:port (TCP), name:port/tcp, or name:port/udp (QUIC)"
# The one spelling of a port: decimal ASCII digits, no leading zero, lower-case transport.
_PORT_SPEC = re.compile(r"(0|[1-9][0-9]*)/(tcp|udp)", re.ASCII)
_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)
# What a person may have meant (other digits, leading zeros, upper case, spaces): named in the
# error with the accepted spelling, never accepted (one spelling, one meaning in the report).
_LOOSE_PORT_SPEC = re.compile(r"\s*(\d+)\s*/\s*(tcp|udp)\s*", re.IGNORECASE)
_PREFIX_LENGTH = re.compile(r"0|[1-9][0-9]{0,2}", re.ASCII)
_WINDOW = re.compile(r"(\d+(?:\.\d+)?)\s*([smh]?)", re.ASCII)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd]?)", re.ASCII)
_WINDOW_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_BOOL_HINT = "YAML reads unquoted yes/no/on/off/true/false as booleans; quote the value"
_HA_NO_CLOUD = (
    'air-gapped mode has no cloud connectivity (HA 2.2: "Cloud-Connected Services and AI'
    ' Features are not available in Air-Gapped Mode"); remove it or set mode: hybrid'
)


def load_profile(path: Path | str) -> Profile:
    """Parse the YAML profile at `path` into a frozen Profile, or raise ProfileError."""
    source = Path(path)
    at = _At(str(path))
    profile = _profile(_read_yaml(source, at), at, source)
    if "host" in profile.extra:
        from conformance.host.options import host_options

        host_options(profile)  # `host:` is checked on load, not only when --host reads it
    return profile


# --- where a value sits, and how problems are worded -------------------------------------


@dataclass(frozen=True, slots=True)
class _At:
    """A position in the profile: the file and the key path (`environment.endpoints[1]`)."""

    file: str
    key: str = ""

    def __truediv__(self, name: str) -> _At:
        return _At(self.file, _join(self.key, name))

    def __getitem__(self, index: int) -> _At:
        return _At(self.file, f"{self.key}[{index}]")

    def fail(self, problem: str) -> NoReturn:
        raise ProfileError(self.file, self.key, problem)


def _join(key: str, name: str) -> str:
    part = name if _BARE_KEY.fullmatch(name) else json.dumps(name, ensure_ascii=False)
    return f"{key}.{part}" if key else part


def _quote(text: str) -> str:
    """`text` in double quotes on one line, shortened if long."""
    short = text if len(text) <= 60 else text[:57] + "..."
    return json.dumps(short, ensure_ascii=False)


def _describe(value: object) -> str:
    """What a YAML value is, for "expected X, got Y" messages."""
    match value:
        case None:
            return "nothing (an empty value)"
        case bool():
            return f"the boolean {str(value).lower()}"
        case int() | float():
            return f"the number {value}"
        case str():
            return f"the string {_quote(value)}"
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


def _expected(at: _At, what: str, value: object) -> NoReturn:
    hint = ""
    if isinstance(value, bool):
        hint = f" ({_BOOL_HINT})"
    elif isinstance(value, str) and what.startswith("a list"):
        hint = " (write [item] even for one item)"
    at.fail(f"expected {what}, got {_describe(value)}{hint}")


def _unknown_key(at: _At, key: str, allowed: Iterable[str]) -> NoReturn:
    allowed = list(allowed)
    close = difflib.get_close_matches(key, allowed, n=1)
    guess = f"did you mean {_quote(close[0])}? " if close else ""
    at.fail(f"unknown key; {guess}allowed here: {', '.join(allowed)}")


# --- reading YAML ------------------------------------------------------------------------


class _TreeError(Exception):
    """A problem found in the YAML node tree, before any object is built."""

    def __init__(self, key: str, mark: yaml.Mark, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = f"line {mark.line + 1}: {problem}"


class _ProfileLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, alias bombs and deep nesting.

    The node tree is checked before any object is built, so an error can name the key path
    and line, and an alias bomb is counted, never expanded.
    """

    def load_checked(self) -> object:
        """Compose the single document, check its node tree, then construct it."""
        node = self.get_single_node()
        if node is None:
            return None
        self._size(node, "", 0, {}, set())
        return self.construct_document(node)

    def _size(
        self, node: yaml.Node, key: str, depth: int, sizes: dict[int, int], open_: set[int]
    ) -> int:
        """Nodes under `node` with aliases expanded; each distinct node is walked once."""
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_:
            raise _TreeError(key, node.start_mark, "an alias refers to its own anchor")
        if depth > MAX_DEPTH:
            raise _TreeError(key, node.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        open_.add(id(node))
        total = 1
        if isinstance(node, yaml.MappingNode):
            first_seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                child = key
                if isinstance(key_node, yaml.ScalarNode):
                    child = _join(key, str(key_node.value))
                    ident = (key_node.tag, str(key_node.value))
                    # "<<" merge keys are YAML's way to reuse a mapping, not a duplicate.
                    if key_node.tag != "tag:yaml.org,2002:merge":
                        if ident in first_seen:
                            problem = f"duplicate key (first at line {first_seen[ident]})"
                            raise _TreeError(child, key_node.start_mark, problem)
                        first_seen[ident] = key_node.start_mark.line + 1
                total += self._size(key_node, child, depth + 1, sizes, open_)
                total += self._size(value_node, child, depth + 1, sizes, open_)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                total += self._size(item, f"{key}[{index}]", depth + 1, sizes, open_)
        open_.discard(id(node))
        if total > MAX_NODES:
            problem = f"expands to more than {MAX_NODES} values (anchors and aliases)"
            raise _TreeError(key, node.start_mark, problem)
        sizes[id(node)] = total
        return total


def _read_yaml(source: Path, at: _At) -> object:
    """The file's single YAML document as plain Python values."""
    try:
        with source.open("rb") as handle:
            data = handle.read(MAX_PROFILE_BYTES + 1)
    except FileNotFoundError:
        at.fail("no such file")
    except IsADirectoryError:
        at.fail("is a directory, not a profile file")
    except OSError as exc:
        at.fail(f"cannot read: {exc.strerror or exc}")
    if len(data) > MAX_PROFILE_BYTES:
        at.fail("larger than 1 MiB; a profile is a page of YAML")
    loader: _ProfileLoader | None = None
    try:
        loader = _ProfileLoader(data)  # reads the first characters already
        return loader.load_checked()
    except _TreeError as exc:
        raise ProfileError(at.file, exc.key, exc.problem) from None
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        if exc.encoding == "unicode":  # decoded fine, but YAML forbids the character
            at.fail(f"character #x{code:04x} at offset {exc.position} is not allowed in YAML")
        at.fail(f"not {exc.encoding.upper()} text: byte 0x{code:02x} at offset {exc.position}")
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(at, exc) from None
    except yaml.YAMLError as exc:
        at.fail(f"not valid YAML: {' '.join(str(exc).split())}")
    except RecursionError:
        at.fail("not valid YAML: nested too deeply")
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_error(at: _At, exc: yaml.MarkedYAMLError) -> ProfileError:
    """One-line ProfileError for a YAML syntax error: where, what, and in which context."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = f"not valid YAML: {exc.problem or 'syntax error'}"
    if exc.context:
        context_line = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        problem += f" ({exc.context}{context_line})"
    return ProfileError(at.file, where, " ".join(problem.split()))


# --- typed values ------------------------------------------------------------------------


def _fields(
    value: object, at: _At, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> dict[str, object]:
    """`value` as a mapping with only the allowed keys and every required one."""
    allowed = (*required, *optional)
    if not isinstance(value, dict):
        _expected(at, f"a mapping with {', '.join(allowed)}", value)
    for key in value:
        if not isinstance(key, str):
            at.fail(f"keys are names, got {_describe(key)}")
        if key not in allowed:
            _unknown_key(at / key, key, allowed)
    for key in required:
        if key not in value:
            (at / key).fail("missing; this key is required")
    return value


def _list(value: object, at: _At, *, nonempty: bool = False) -> list[object]:
    if not isinstance(value, list):
        _expected(at, "a list", value)
    if nonempty and not value:
        at.fail("empty; list at least one item")
    return value


def _string(value: object, at: _At, what: str = "a string") -> str:
    if not isinstance(value, str):
        _expected(at, what, value)
    return value


def _text(value: object, at: _At, limit: int = MAX_TEXT) -> str:
    """A non-empty line of free text (shown in reports)."""
    text = _string(value, at)
    if not text.strip():
        at.fail("empty; write some text")
    if any(not ch.isprintable() for ch in text):
        at.fail(f"{_quote(text)} holds a line break or control character; write one line")
    if len(text) > limit:
        at.fail(f"longer than {limit} characters")
    return text.strip()


def _bool(value: object, at: _At) -> bool:
    if not isinstance(value, bool):
        _expected(at, "true or false", value)
    return value


def _choice(value: object, at: _At, choices: tuple[str, ...]) -> str:
    listed = " or ".join(choices) if len(choices) == 2 else f"one of {', '.join(choices)}"
    text = _string(value, at, listed)
    if text not in choices:
        close = difflib.get_close_matches(text, choices, n=1)
        guess = f"; did you mean {_quote(close[0])}?" if close else ""
        at.fail(f"{_quote(text)} is not {listed}{guess}")
    return text


def _address(value: object, at: _At) -> IPAddress:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 1:2:3 as a base-60 number, so IPv6 may arrive as one.
        at.fail(f"expected an IP address, got the number {value}; quote the address")
    text = _string(value, at, "an IP address")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        if "/" in text:
            at.fail(f"{_quote(text)} is a network; write an address without /prefix")
        at.fail(f"{_quote(text)} is not an IPv4 or IPv6 address")
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            at.fail(f"{_quote(text)} has a zone index (%...); write the address alone")
        if address.ipv4_mapped is not None:
            at.fail(f"{_quote(text)} is IPv4-mapped; write {address.ipv4_mapped}")
    return address


def _network(value: object, at: _At) -> IPNetwork:
    text = _string(value, at, "a network such as 192.0.2.0/24")
    if "%" in text:
        at.fail(f"{_quote(text)} has a zone index (%...); write the network alone")
    address, slash, prefix = text.partition("/")
    if slash and not _PREFIX_LENGTH.fullmatch(prefix):
        # ipaddress also reads a netmask (/255.255.255.0), a host mask and leading zeros;
        # int() reads other scripts' digits and a sign. Either way, name the one spelling.
        meant = _prefix_form(address, prefix)
        if meant is None:
            at.fail(f"{_quote(text)} is not an IPv4 or IPv6 network (such as 192.0.2.0/24)")
        at.fail(f"{_quote(text)} is not in CIDR prefix form (address/prefix length): write {meant}")
    try:
        return ipaddress.ip_network(text)
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        at.fail(f"{_quote(text)} is not an IPv4 or IPv6 network (such as 192.0.2.0/24)")
    at.fail(f"{_quote(text)} has host bits set; did you mean {network}?")


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


def _port_number(text: str, at: _At, written: str, spelled: Callable[[int], str] = str) -> int:
    """The port `text` of `written`; `spelled(n)` is how `written` should read with port n."""
    if not _DECIMAL.fullmatch(text):
        try:
            meant = int(text)  # also reads other scripts' digits, leading zeros, "+", "_"
        except ValueError:
            at.fail(f"{_quote(written)}: {_quote(text)} is not a port number")
        hint = f": write {spelled(meant)}" if 1 <= meant <= 65535 else ""
        at.fail(f"{_quote(written)}: a port is decimal ASCII digits without leading zeros{hint}")
    number = int(text)
    if not 1 <= number <= 65535:
        at.fail(f"{_quote(written)}: port {number} is out of range 1-65535")
    return number


def _port_spec(value: object, at: _At) -> PortSpec:
    """`N/tcp` or `N/udp` (controls.md decision 2)."""
    bare_number = isinstance(value, int) and not isinstance(value, bool)
    if bare_number or (isinstance(value, str) and _DECIMAL.fullmatch(value)):
        at.fail(
            f"{value} has no transport; write {value}/tcp or {value}/udp (controls.md decision 2)"
        )
    text = _string(value, at, "N/tcp or N/udp")
    found = _PORT_SPEC.fullmatch(text)
    if found is None:
        loose = _LOOSE_PORT_SPEC.fullmatch(text)
        if loose is not None and 1 <= int(loose[1]) <= 65535:
            at.fail(
                f"{_quote(text)} is not N/tcp or N/udp: write {int(loose[1])}/{loose[2].lower()}"
            )
        at.fail(f"{_quote(text)} is not N/tcp or N/udp")
    number = _port_number(found[1], at, text)
    return PortSpec(number, "tcp") if found[2].lower() == "tcp" else PortSpec(number, "udp")


def _inside(environment: Environment, address: IPAddress, at: _At, role: str) -> None:
    if not environment.contains(address):
        at.fail(f"{address} is outside environment.networks; {role}")


# --- sections ----------------------------------------------------------------------------


def _profile(data: object, at: _At, source: Path) -> Profile:
    if data is None:
        at.fail(f"empty; a profile is a mapping with {', '.join(_TOP_REQUIRED)}")
    top = _fields(data, at, _TOP_REQUIRED, _TOP_OPTIONAL)
    name = _text(top["name"], at / "name")
    mode = Mode(_choice(top["mode"], at / "mode", tuple(Mode)))
    addresses = _target_addresses(top["target"], at / "target")
    environment = _environment(top["environment"], at / "environment")
    for index, address in enumerate(addresses):
        role = "the target is part of the Customer Environment (HA 1)"
        _inside(environment, address, (at / "target" / "addresses")[index], role)
    if mode is Mode.AIR_GAPPED:
        for key in ("cloud", "proxy"):
            if key in top:
                (at / key).fail(f"hybrid-only section: {_HA_NO_CLOUD}")
    cloud = _cloud(top["cloud"], at / "cloud") if "cloud" in top else None
    proxy = _proxy(top["proxy"], at / "proxy", environment) if "proxy" in top else None
    return Profile(
        source=source,
        name=name,
        mode=mode,
        target=Target(addresses),
        environment=environment,
        cloud=cloud,
        proxy=proxy,
        telemetry=_telemetry(top, at / "telemetry", mode, cloud),
        window_seconds=_window(top["window"], at / "window") if "window" in top else None,
        minimum_window_seconds=(
            _observation(top["observation"], at / "observation") if "observation" in top else None
        ),
        draft=_bool(top["draft"], at / "draft") if "draft" in top else False,
        extra={key: _later(top[key], at / key) for key in LATER_SECTIONS if key in top},
    )


def _target_addresses(value: object, at: _At) -> tuple[IPAddress, ...]:
    fields = _fields(value, at, ("addresses",))
    items = _list(fields["addresses"], at / "addresses", nonempty=True)
    return tuple(_address(item, (at / "addresses")[index]) for index, item in enumerate(items))


def _environment(value: object, at: _At) -> Environment:
    fields = _fields(value, at, ("networks",), ("strict", "endpoints"))
    items = _list(fields["networks"], at / "networks", nonempty=True)
    networks = tuple(_network(item, (at / "networks")[index]) for index, item in enumerate(items))
    strict = _bool(fields["strict"], at / "strict") if "strict" in fields else False
    environment = Environment(networks=networks, strict=strict)
    endpoints = _list(fields.get("endpoints", []), at / "endpoints")
    return Environment(
        networks=networks,
        strict=strict,
        endpoints=tuple(
            _endpoint(item, (at / "endpoints")[index], environment)
            for index, item in enumerate(endpoints)
        ),
    )


def _endpoint(value: object, at: _At, environment: Environment) -> OnPremEndpoint:
    fields = _fields(value, at, ("name", "address", "ports"))
    address = _address(fields["address"], at / "address")
    role = "on-prem endpoints are part of the Customer Environment"
    _inside(environment, address, at / "address", role)
    ports = _list(fields["ports"], at / "ports", nonempty=True)
    return OnPremEndpoint(
        name=_text(fields["name"], at / "name"),
        address=address,
        ports=tuple(_port_spec(item, (at / "ports")[index]) for index, item in enumerate(ports)),
    )


def _cloud(value: object, at: _At) -> Cloud:
    fields = _fields(value, at, ("services",), ("endpoints", "min_tls", "hints"))
    services = _services(fields["services"], at / "services")
    endpoints = _list(fields.get("endpoints", []), at / "endpoints")
    if services and not endpoints:
        (at / "endpoints").fail(
            "missing or empty while cloud.services activates a service;"
            " list the endpoints the target may reach"
        )
    hints = _list(fields.get("hints", []), at / "hints")
    return Cloud(
        services=services,
        endpoints=tuple(
            _cloud_endpoint(item, (at / "endpoints")[index]) for index, item in enumerate(endpoints)
        ),
        min_tls=_min_tls(fields["min_tls"], at / "min_tls") if "min_tls" in fields else "1.2",
        hints=tuple(_hint(item, (at / "hints")[index]) for index, item in enumerate(hints)),
    )


def _services(value: object, at: _At) -> tuple[str, ...]:
    services: list[str] = []
    for index, item in enumerate(_list(value, at)):
        service = _choice(item, at[index], CLOUD_SERVICES)
        if service in services:
            at[index].fail(f"{_quote(service)} is listed twice")
        services.append(service)
    dependent = [service for service in services if service in SERVICES_NEEDING_LICENSING]
    if dependent and "licensing" not in services:
        at.fail(
            f"{', '.join(dependent)} need licensing: cloud licensing is the prerequisite of"
            " every Cloud Connected service (CT 2, 3); add licensing"
        )
    return tuple(services)


def _cloud_endpoint(value: object, at: _At) -> CloudEndpoint:
    """`"name:port"`, or `{endpoint: "name:port", justification: "..."}` (decision 5)."""
    justification: str | None = None
    where = at
    if isinstance(value, dict):
        fields = _fields(value, at, ("endpoint",), ("justification",))
        where = at / "endpoint"
        written = _string(fields["endpoint"], where, '"name:port"')
        if "justification" in fields:
            justification = _justification(fields["justification"], at / "justification")
    else:
        what = '"name:port" or {endpoint: "name:port", justification: "..."}'
        written = _string(value, at, what)
    pattern, port, transport = _name_port(written, where)
    endpoint = CloudEndpoint(pattern, port, justification, transport)
    documented = any(covers(known, pattern) for known in DOCUMENTED_ENDPOINT_PATTERNS)
    if justification is None and not documented:
        missing = at / "justification" if isinstance(value, dict) else at
        missing.fail(
            f"{endpoint} is not a documented Imagicle endpoint"
            f" ({', '.join(DOCUMENTED_ENDPOINT_PATTERNS)}); allow it only with a written"
            " justification, which the report shows (controls.md decision 5):"
            f' {{endpoint: "{endpoint}", justification: "..."}}'
        )
    return endpoint


def _name_port(written: str, at: _At) -> tuple[str, int, Transport]:
    """`name:port` or `name:port/tcp` (TLS over TCP), `name:port/udp` (QUIC, HTTP/3).

    Spelled strictly, as the report writes it back: ASCII digits without leading zeros,
    the transport in lower case.
    """
    host, colon, port = written.rpartition(":")
    if not colon:
        at.fail(f"{_quote(written)} has no port; write {_CLOUD_SPELLING}")
    found = _CLOUD_PORT.fullmatch(port)
    if found is None:
        written_number, slash, suffix = port.partition("/")
        if slash and suffix.lower() in ("tcp", "udp"):
            at.fail(
                f"{_quote(written)}: write the transport in lower case"
                f" ({written_number}/{suffix.lower()}): {host}:{written_number}/{suffix.lower()}"
            )
        if slash:
            at.fail(f"{_quote(written)}: {_quote(suffix)} is not tcp or udp; {_CLOUD_SPELLING}")
        try:
            meant = int(port)  # other scripts' digits, "+443": name the accepted spelling
        except ValueError:
            meant = 0
        hint = f": write {host}:{meant}" if 1 <= meant <= 65535 else f"; {_CLOUD_SPELLING}"
        at.fail(f"{_quote(written)}: {_quote(port)} is not a port number{hint}")
    transport: Transport = "udp" if found[2] == "udp" else "tcp"
    suffix = "/udp" if transport == "udp" else ""
    number = _port_number(found[1], at, written, lambda n: f"{host}:{n}{suffix}")
    try:
        return normalize_pattern(host), number, transport
    except ValueError as exc:
        at.fail(f"{_quote(host)} is not a valid name pattern: {exc}")


def _justification(value: object, at: _At) -> str:
    text = " ".join(_string(value, at).split())  # folded to one line for the report
    if not text:
        at.fail("empty; say why the target may reach this endpoint")
    if len(text) > MAX_JUSTIFICATION:
        at.fail(f"longer than {MAX_JUSTIFICATION} characters")
    return text


def _min_tls(value: object, at: _At) -> str:
    # An unquoted 1.2 is a YAML float; its text is the version meant.
    if isinstance(value, float):
        value = str(value)
    return _choice(value, at, TLS_VERSIONS)


def _hint(value: object, at: _At) -> NameHint:
    fields = _fields(value, at, ("address", "name"))
    address = _address(fields["address"], at / "address")
    written = _string(fields["name"], at / "name", "a name")
    try:
        name = normalize_pattern(written)
    except ValueError as exc:
        (at / "name").fail(f"{_quote(written)} is not a valid name: {exc}")
    if name.startswith("*."):
        (at / "name").fail(f"{_quote(written)}: a hint names one host; write it without *.")
    return NameHint(address=address, name=name)


def _proxy(value: object, at: _At, environment: Environment) -> ProxySpec:
    """`addr:port`, IPv6 as `[addr]:port`; an address because the harness resolves nothing."""
    written = _string(value, at, '"address:port"')
    if written.startswith("["):
        host, close, port = written[1:].partition("]:")
        if not close:
            at.fail(f"{_quote(written)} is not [address]:port")
    else:
        if written.count(":") > 1:
            at.fail(f"{_quote(written)}: write an IPv6 proxy as [address]:port")
        host, colon, port = written.rpartition(":")
        if not colon:
            at.fail(f"{_quote(written)} has no port; write address:port")
    if not port.isdigit():
        at.fail(f"{_quote(written)}: {_quote(port)} is not a port number")
    proxy_host = f"[{host}]" if written.startswith("[") else host
    number = _port_number(port, at, written, lambda n: f"{proxy_host}:{n}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        at.fail(
            f"{_quote(host)} is not an IP address; the harness never resolves names"
            " (controls.md decision 7), so write the proxy's address"
        )
    _inside(environment, address, at, "the proxy is part of the Customer Environment")
    return ProxySpec(address=address, port=number)


def _telemetry(top: Mapping[str, object], at: _At, mode: Mode, cloud: Cloud | None) -> Telemetry:
    if "telemetry" not in top:
        if mode is Mode.HYBRID:
            at.fail(
                "missing; a hybrid profile must say enabled or disabled, because the contract"
                " turns telemetry on by default with cloud licensing (CT 3)"
            )
        return Telemetry.DISABLED
    value = top["telemetry"]
    if isinstance(value, bool):
        meant = "enabled" if value else "disabled"
        at.fail(f"expected enabled or disabled, got {_describe(value)} ({_BOOL_HINT}: {meant})")
    telemetry = Telemetry(_choice(value, at, tuple(Telemetry)))
    if telemetry is Telemetry.ENABLED:
        if mode is Mode.AIR_GAPPED:
            at.fail(
                "enabled is hybrid-only; air-gapped mode implies disabled"
                ' (HA 2.2: "No cloud-based licensing or telemetry is used")'
            )
        if cloud is None or not cloud.activates("telemetry"):
            at.fail("enabled, but cloud.services does not activate telemetry; add it there")
    return telemetry


def _window(value: object, at: _At) -> float:
    """Observation window for live targets: `20s`, `2m`, `1h` or plain seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        _expected(at, "a duration such as 20s, 2m or 30", value)
    if isinstance(value, str):
        found = _WINDOW.fullmatch(value.strip())
        if found is None:
            at.fail(f"{_quote(value)} is not a duration such as 20s, 2m or 30")
        seconds = float(found[1]) * _WINDOW_UNITS[found[2]]
    else:
        seconds = float(value)
    if not 0 < seconds <= MAX_WINDOW_SECONDS:
        at.fail(f"{seconds:g} seconds is not between 0 and {MAX_WINDOW_SECONDS} (a day)")
    return seconds


def _observation(value: object, at: _At) -> float | None:
    """`observation: {minimum_window: 1h}`: the shortest window that can prove absence."""
    fields = _fields(value, at, (), ("minimum_window",))
    if "minimum_window" not in fields:
        return None
    where = at / "minimum_window"
    raw = fields["minimum_window"]
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        _expected(where, "a duration such as 1h, 30m, 2d or 3600", raw)
    if isinstance(raw, str):
        found = _DURATION.fullmatch(raw.strip())
        if found is None:
            where.fail(f"{_quote(raw)} is not a duration such as 1h, 30m, 2d or 3600")
        seconds = float(found[1]) * _WINDOW_UNITS[found[2]]
    else:
        seconds = float(raw)
    if not 0 < seconds <= MAX_MINIMUM_WINDOW_SECONDS:
        where.fail(
            f"{seconds:g} seconds is not between 0 and {MAX_MINIMUM_WINDOW_SECONDS} (a year)"
        )
    return seconds


def _later(value: object, at: _At) -> object:
    """A section a later feature validates: only its shape is checked here."""
    if not isinstance(value, dict | list):
        _expected(at, "a mapping or a list (the feature that owns it validates the rest)", value)
    return value
