"""The profile's keys as data: each section's keys, types, required ones, values and spellings.

One source of truth for two readers: the loader (loader.py, sections.py) takes its key lists,
required keys, choices and spelling patterns from `PROFILE`, and schema.py turns the same
table into the JSON Schema that editors use to complete and check profiles. What a value
means, and the rules between keys (an address inside `environment.networks`, a justification
for an undocumented endpoint), is the loader's code; each node's `description` says it in
words, and schema.py expresses the rules JSON Schema can hold as conditions.

Patterns are written without anchors, in the syntax Python's `re` and ECMA-262 (JSON Schema)
share: the loader matches them with `fullmatch`, the schema wraps them in `^(?:...)$`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conformance.names import DOCUMENTED_ENDPOINT_PATTERNS
from conformance.profile_model import (
    CLOUD_CERT_KINDS,
    CLOUD_SERVICES,
    LAB_BEHAVIOURS,
    PERIMETER_POLICIES,
    STIMULUS_ACTIONS,
    STIMULUS_METHODS,
    TLS_VERSIONS,
    Mode,
    Telemetry,
)

# --- spellings --------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
IPV4_PATTERN = rf"(?:{_OCTET}\.){{3}}{_OCTET}"
"""Dotted-quad IPv4, no leading zeros (Python's ipaddress refuses them too)."""


def _ipv6_pattern() -> str:
    """RFC 3986 3.2.2 `IPv6address`: every compressed form, an IPv4 tail allowed."""
    h16 = "[0-9A-Fa-f]{1,4}"
    ls32 = f"(?:{h16}:{h16}|{IPV4_PATTERN})"
    forms = [f"(?:{h16}:){{6}}{ls32}", f"::(?:{h16}:){{5}}{ls32}"]
    for before, after in ((0, 4), (1, 3), (2, 2), (3, 1), (4, 0)):
        head = f"(?:(?:{h16}:){{0,{before}}}{h16})?" if before else f"(?:{h16})?"
        tail = f"(?:{h16}:){{{after}}}{ls32}" if after else ls32
        forms.append(f"{head}::{tail}")
    forms.append(f"(?:(?:{h16}:){{0,5}}{h16})?::{h16}")
    forms.append(f"(?:(?:{h16}:){{0,6}}{h16})?::")
    return "(?:" + "|".join(forms) + ")"


IPV6_PATTERN = _ipv6_pattern()
ADDRESS_PATTERN = f"(?:{IPV4_PATTERN}|{IPV6_PATTERN})"
NETWORK_PATTERN = (
    f"(?:{IPV4_PATTERN}(?:/(?:3[0-2]|[12]?[0-9]))?"
    f"|{IPV6_PATTERN}(?:/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)"
)
"""CIDR prefix form; a bare address is a one-host network."""

PORT_PATTERN = (
    r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
)
"""1-65535 in decimal ASCII digits without leading zeros."""

PORT_SPEC_PATTERN = f"{PORT_PATTERN}/(?:tcp|udp)"
"""`N/tcp` or `N/udp` (controls.md decision 2), one spelling."""

_LABEL = r"[^\s.:*/\[\]@]+"  # what a name label may look like before IDNA (loader: names.py)
NAME_PATTERN = rf"(?:{_LABEL}\.)*{_LABEL}\.?"
"""A host name (checked fully by the loader: IDNA, label rules, not an address)."""
NAME_PATTERN_PATTERN = rf"(?:\*\.)?{NAME_PATTERN}"
"""A name pattern (decision 4): a name, or `*.` and a name."""
CLOUD_ENDPOINT_PATTERN = rf"{NAME_PATTERN_PATTERN}:{PORT_PATTERN}(?:/(?:tcp|udp))?"
"""`name:port` (TCP), `name:port/tcp` or `name:port/udp` (QUIC)."""
PROXY_PATTERN = rf"(?:{IPV4_PATTERN}|\[{IPV6_PATTERN}\]):{PORT_PATTERN}"
"""`address:port`, IPv6 as `[address]:port`."""

DURATION_PATTERN = r"\s*[0-9]+(?:\.[0-9]+)?\s*[smh]?\s*"
"""`window`: seconds, or a number with s, m or h."""
LONG_DURATION_PATTERN = r"\s*[0-9]+(?:\.[0-9]+)?\s*[smhd]?\s*"
"""`observation.minimum_window`: seconds, or a number with s, m, h or d."""
STIMULUS_TIME_PATTERN = r"\s*[0-9]+(?:\.[0-9]+)?\s*(?:ms|s|m)?\s*"
"""`stimuli[].at`: seconds, or a number with ms, s or m."""
_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029"  # C0, DEL, C1, line and paragraph separators
TEXT_PATTERN = rf"[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*"
"""One line with something on it (the loader also refuses other non-printable characters)."""
INTERFACE_PATTERN = "[^ ;'\"$`]+"
"""An interface name that cannot smuggle a second command into the remote capture."""


def _any_case(text: str) -> str:
    """A pattern matching `text` in any ASCII case (JSON Schema has no case-insensitive flag)."""
    out = []
    for ch in text:
        if ch.isalpha() and ch.isascii():
            out.append(f"[{ch.lower()}{ch.upper()}]")
        else:
            out.append("\\" + ch if ch in ".*+?()[]{}|^$\\/" else ch)
    return "".join(out)


def _documented_pattern() -> str:
    """Cloud endpoints covered by Imagicle's documented ones (names.covers), any case."""
    forms = []
    for known in DOCUMENTED_ENDPOINT_PATTERNS:
        if known.startswith("*."):
            suffix = _any_case(known[2:])
            forms.append(rf"(?:\*\.(?:{_LABEL}\.)*|(?:{_LABEL}\.)+){suffix}")
        else:
            forms.append(_any_case(known))
    return rf"(?:{'|'.join(forms)})\.?:{PORT_PATTERN}(?:/(?:tcp|udp))?"


DOCUMENTED_ENDPOINT_PATTERN = _documented_pattern()
"""A cloud endpoint that needs no justification (controls.md decision 5)."""

_METHOD_PATTERN = "(?:" + "|".join(_any_case(m) for m in STIMULUS_METHODS) + ")"

# --- nodes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Text:
    """A string; `pattern` (unanchored) is its one spelling when given."""

    description: str = ""
    pattern: str | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class Choice:
    """One of fixed words; `numbers`: what YAML reads from the unquoted words (`1.2`)."""

    values: tuple[str, ...]
    description: str = ""
    numbers: tuple[float, ...] = ()


@dataclass(frozen=True)
class Flag:
    """true or false."""

    description: str = ""


@dataclass(frozen=True)
class Number:
    """A number (never a boolean) in a range."""

    description: str = ""
    above: float | None = None  # exclusive lower bound
    at_least: float | None = None  # inclusive lower bound
    at_most: float | None = None


@dataclass(frozen=True)
class Either:
    """Any one of several shapes (a duration is a number or a string)."""

    options: tuple[Node, ...]
    description: str = ""


@dataclass(frozen=True)
class ListOf:
    """A list of `item`."""

    item: Node
    description: str = ""
    non_empty: bool = False
    unique: bool = False


@dataclass(frozen=True)
class Key:
    """One key of a section."""

    name: str
    node: Node
    required: bool = False


@dataclass(frozen=True)
class Section:
    """A mapping with exactly these keys; `one_of`: exactly one of these keys is present."""

    keys: tuple[Key, ...]
    description: str = ""
    one_of: tuple[str, ...] = ()
    refused: tuple[tuple[str, str], ...] = field(default=())  # (key, why): a helpful refusal

    @property
    def names(self) -> tuple[str, ...]:
        """The allowed keys, in the order documented."""
        return tuple(key.name for key in self.keys)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(key.name for key in self.keys if key.required)

    def node(self, name: str) -> Node:
        """The shape of key `name` (KeyError if the table has no such key)."""
        for key in self.keys:
            if key.name == name:
                return key.node
        raise KeyError(name)

    def section(self, name: str) -> Section:
        """The mapping under key `name`, looking through lists and alternatives."""
        found = _mapping_in(self.node(name))
        if found is None:
            raise KeyError(name)
        return found


Node = Text | Choice | Flag | Number | Either | ListOf | Section


def _mapping_in(node: Node) -> Section | None:
    if isinstance(node, Section):
        return node
    if isinstance(node, ListOf):
        return _mapping_in(node.item)
    if isinstance(node, Either):
        for option in node.options:
            found = _mapping_in(option)
            if found is not None:
                return found
    return None


def choices(node: Node) -> tuple[str, ...]:
    """The words of a Choice node (TypeError for any other node: a table mistake)."""
    if not isinstance(node, Choice):
        raise TypeError(f"not a choice: {node!r}")
    return node.values


def item(node: Node) -> Node:
    """The item shape of a ListOf node (TypeError for any other node: a table mistake)."""
    if not isinstance(node, ListOf):
        raise TypeError(f"not a list: {node!r}")
    return node.item


def pattern(node: Node) -> str:
    """The spelling of a Text node, or of the Text option of an Either node."""
    if isinstance(node, Text) and node.pattern is not None:
        return node.pattern
    if isinstance(node, Either):
        for option in node.options:
            if isinstance(option, Text) and option.pattern is not None:
                return option.pattern
    raise TypeError(f"no pattern: {node!r}")


# --- the profile ------------------------------------------------------------------------

_ADDRESS = Text(
    "An IPv4 or IPv6 address, without zone index (%eth0) and not IPv4-mapped (::ffff:...).",
    ADDRESS_PATTERN,
)
_PORTS = ListOf(
    Text(
        "N/tcp or N/udp, 1 <= N <= 65535, decimal digits without leading zeros, lower case"
        " (controls.md decision 2).",
        PORT_SPEC_PATTERN,
    ),
    "The ports the endpoint serves; port ranges are not supported, list the ports.",
    non_empty=True,
)
_SECONDS_TO_600 = Number("Seconds, more than 0 and at most 600.", above=0, at_most=600)
_FILE = Text(
    "A file path (~ expanded; relative to the profile's directory); the file must exist.",
    r"[\s\S]+",
)

ENDPOINT = Section(
    (
        Key("name", Text("Free text, one line, at most 200 characters.", TEXT_PATTERN, 200), True),
        Key("address", _ADDRESS, True),
        Key("ports", _PORTS, True),
    ),
    "A documented on-prem integration (AG-ONPREM); its address lies inside environment.networks.",
)

ENVIRONMENT = Section(
    (
        Key(
            "networks",
            ListOf(
                Text(
                    "A network in CIDR prefix form (192.0.2.0/24), no host bits set; a bare"
                    " address is a one-host network.",
                    NETWORK_PATTERN,
                ),
                "Everything inside counts as on-prem.",
                non_empty=True,
            ),
            True,
        ),
        Key(
            "strict",
            Flag("true: a flow to an undeclared on-prem endpoint fails AG-ONPREM (default false)."),
        ),
        Key("endpoints", ListOf(ENDPOINT, "Documented on-prem integrations (AG-ONPREM).")),
    ),
    "The Customer Environment (HA 1).",
)

CLOUD_ENDPOINT = Section(
    (
        Key(
            "endpoint",
            Text(
                "name:port (TCP), name:port/tcp or name:port/udp (QUIC); the name is a pattern"
                " (controls.md decision 4).",
                CLOUD_ENDPOINT_PATTERN,
            ),
            True,
        ),
        Key(
            "justification",
            Text(
                "Why the target may reach it; required for an endpoint beyond Imagicle's"
                " documented ones (controls.md decision 5); shown in the report.",
                r"[\s\S]*\S[\s\S]*",
            ),
        ),
    ),
    "An allowed cloud endpoint with a written justification.",
)

HINT = Section(
    (
        Key("address", _ADDRESS, True),
        Key("name", Text("One host name (not a pattern).", NAME_PATTERN), True),
    ),
    "A static name for an address, used last when mapping a flow to a name (HY-DEST).",
)

CLOUD = Section(
    (
        Key(
            "services",
            ListOf(
                Choice(CLOUD_SERVICES, "A Cloud-Connected Service the site activates."),
                "Activated services, each once; all but the HA 2.3 ones need licensing (CT 2).",
                unique=True,
            ),
            True,
        ),
        Key(
            "endpoints",
            ListOf(
                Either(
                    (
                        Text(
                            "name:port of an endpoint Imagicle documents (api.imagicle.com,"
                            " grpc.imagicle.com, *.imagicle.com, *.imagicle.cloud); any other"
                            " needs {endpoint, justification}.",
                            DOCUMENTED_ENDPOINT_PATTERN,
                        ),
                        CLOUD_ENDPOINT,
                    )
                ),
                "Where the target may connect outside the environment (HY-DEST); required and"
                " non-empty while a service is activated.",
            ),
        ),
        Key(
            "min_tls",
            Choice(
                TLS_VERSIONS,
                'The lowest TLS version HY-TLS accepts (default "1.2").',
                numbers=tuple(float(v) for v in TLS_VERSIONS),
            ),
        ),
        Key("hints", ListOf(HINT, "Static names for addresses.")),
    ),
    "Hybrid only: the Cloud-Connected Services activated and where the target may go for them.",
)

OBSERVATION = Section(
    (
        Key(
            "minimum_window",
            Either(
                (
                    Number("Seconds.", above=0, at_most=366 * 86_400),
                    Text("1h, 30m, 2d, 90s: at most a year.", LONG_DURATION_PATTERN),
                ),
                "A shorter capture window makes absence claims inconclusive.",
            ),
        ),
    ),
    "How much observation proves absence.",
)

LAB = Section(
    (
        Key(
            "perimeter",
            Choice(PERIMETER_POLICIES, "What the perimeter lets out (default: by mode)."),
        ),
        Key("cloud_cert", Choice(CLOUD_CERT_KINDS, "The cloud stand-ins' certificate.")),
        Key("scanner", Flag("The outside scanner tries to connect in (default true).")),
        Key(
            "periods",
            Section(
                tuple(
                    Key(name, Number("Seconds between two of these behaviours.", above=0))
                    for name in LAB_BEHAVIOURS
                ),
                "Seconds between the reference target's behaviours.",
            ),
        ),
        Key(
            "intercept",
            Either(
                (Flag(), Choice(("auto",))),
                "The content-level interceptor behind the proxy: true, false or auto (on with"
                " a proxy and a valid cloud certificate).",
            ),
        ),
        Key("tls_keylog", Flag("The reference target writes its TLS key log (default false).")),
    ),
    "The built-in lab (docs/lab.md).",
)

PROBES = Section(
    (Key("perimeter", Flag("AG-PERIMETER canary probes after the window.")),),
    "Active probes after the observation window.",
)

STIMULUS_HTTP = Section(
    (
        Key("method", Text("GET, POST, PUT, DELETE or HEAD (any case).", _METHOD_PATTERN)),
        Key(
            "url",
            Text("An http(s) URL whose host is a lab address.", r"[hH][tT][tT][pP][sS]?://[\s\S]+"),
            True,
        ),
    ),
    "An HTTP request from the admin workstation.",
)

STIMULUS = Section(
    (
        Key(
            "at",
            Either(
                (
                    Number("Seconds.", at_least=0),
                    Text("5s, 500ms, 1m.", STIMULUS_TIME_PATTERN),
                ),
                "When, from the start of the observation window.",
            ),
            True,
        ),
        Key("action", Choice(STIMULUS_ACTIONS, "An admin action of the reference target.")),
        Key("http", STIMULUS_HTTP),
        Key(
            "shell", Text("A command line run inside the target's namespace.", r"[\s\S]*\S[\s\S]*")
        ),
    ),
    "One stimulus: `at` and exactly one of action, http, shell.",
    one_of=("action", "http", "shell"),
)

HOST = Section(
    (
        Key("ssh_config", _FILE),
        Key("identity", _FILE),
        Key("known_hosts", _FILE),
        Key(
            "settings",
            Text("Absolute path of the product's settings file on the host.", "/[\\s\\S]*"),
        ),
        Key("command_timeout", _SECONDS_TO_600),
        Key("sample_interval", _SECONDS_TO_600),
        Key("sudo", Flag("Run the host's commands with sudo (default false).")),
        Key(
            "capture",
            Text("An interface for a remote capture during the window.", INTERFACE_PATTERN),
        ),
    ),
    "How a live host is reached and read (docs/hosts.md); checked on load.",
)

PROFILE = Section(
    (
        Key(
            "name",
            Text(
                "Free text naming the deployment in reports: one line, at most 200 characters.",
                TEXT_PATTERN,
                200,
            ),
            True,
        ),
        Key("mode", Choice(tuple(Mode), "air-gapped (HA 2.2) or hybrid (HA 2.3)."), True),
        Key(
            "target",
            Section(
                (
                    Key(
                        "addresses",
                        ListOf(_ADDRESS, "Inside environment.networks.", non_empty=True),
                        True,
                    ),
                ),
                "The UCX host(s) whose traffic is judged.",
            ),
            True,
        ),
        Key("environment", ENVIRONMENT, True),
        Key("cloud", CLOUD),
        Key(
            "proxy",
            Text(
                "Hybrid only: the customer's proxy for cloud traffic, address:port (IPv6 as"
                " [address]:port), inside environment.networks.",
                PROXY_PATTERN,
            ),
        ),
        Key(
            "telemetry",
            Choice(tuple(Telemetry), "Required in hybrid mode; air-gapped implies disabled."),
        ),
        Key(
            "window",
            Either(
                (
                    Number("Seconds.", above=0, at_most=86_400),
                    Text("20s, 2m, 1h: at most a day.", DURATION_PATTERN),
                ),
                "The observation window for live targets (--lab, --image, --host).",
            ),
        ),
        Key("observation", OBSERVATION),
        Key(
            "draft",
            Flag("Written by `profile draft`; `run` refuses the profile until it is removed."),
        ),
        Key("lab", LAB),
        Key("probes", PROBES),
        Key("stimuli", ListOf(STIMULUS, "Stimuli run during the observation window.")),
        Key("host", HOST),
    ),
    "An Imagicle UCX deployment profile for ucx-conformance (docs/profile.md).",
    refused=(
        (
            "image",
            "the container image under test is given on the command line"
            " (run --image IMAGE), not in the profile",
        ),
    ),
)
"""The whole profile, top level first."""
