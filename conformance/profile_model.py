"""Typed, frozen form of a deployment profile (interface.md). Built only by `profile.load_profile`.

Nothing downstream re-checks these values: the loader guarantees the invariants
documented on each field. Every section is typed here, the live-target ones (`lab`,
`probes`, `stimuli`, `host`) too; their features read these records, never raw YAML.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Transport = Literal["tcp", "udp"]

CLOUD_SERVICES: tuple[str, ...] = (
    # CT 1-6: the Cloud Connected services of the UCX Suite itself.
    "licensing",
    "telemetry",
    "sso",
    "user-sync",
    "presence",
    "call-control",
    # HA 2.3: the cloud services a self-hosted platform may interoperate with.
    "voice-analytics",
    "smartflows",
    "virtual-receptionist",
)
"""Names of the Cloud-Connected Services a hybrid profile may activate (`cloud.services`)."""

SERVICES_NEEDING_LICENSING: frozenset[str] = frozenset(
    {"telemetry", "sso", "user-sync", "presence", "call-control"}
)
"""Services whose prerequisite is cloud licensing (CT 2: "required to access any Cloud Service")."""

TLS_VERSIONS: tuple[str, ...] = ("1.0", "1.1", "1.2", "1.3")
"""Values of `cloud.min_tls`, oldest first."""

# The live-target sections' vocabularies. The lab's modules use these names (lab/perimeter.py,
# lab/certs.py, lab/options.py, lab/stimuli.py); the profile only needs to know the words.
PERIMETER_POLICIES: tuple[str, ...] = ("closed", "cloud", "open")
"""Values of `lab.perimeter`: what the lab's perimeter router lets out."""

CLOUD_CERT_KINDS: tuple[str, ...] = ("valid", "untrusted", "expired", "wrong-name")
"""Values of `lab.cloud_cert`: the certificate the lab's cloud stand-ins present."""

LAB_BEHAVIOURS: tuple[str, ...] = (
    "sip",
    "dns",
    "ldap",
    "ntp",
    "licensing",
    "telemetry",
    "grpc",
    "user_sync",
    "fault",
)
"""Keys of `lab.periods`: the reference target's repeated behaviours."""

STIMULUS_ACTIONS: tuple[str, ...] = (
    "licence-refresh",
    "restart",
    "telemetry-beat",
    "directory-sync",
)
"""Admin actions of the reference target (`stimuli[].action`: POST /actions/<name>)."""

STIMULUS_METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE", "HEAD")
"""HTTP methods of `stimuli[].http.method` (written in any case)."""

LAB_NETWORKS: tuple[str, ...] = (
    "192.0.2.0/24",
    "2001:db8:1::/64",
    "203.0.113.0/24",
    "198.51.100.0/24",
    "2001:db8:ffff::/64",
)
"""The lab's segments (lab/topology.py; a test keeps them equal): a stimulus URL names one."""


class Mode(StrEnum):
    """Deployment mode (HA 1): what the site promises about cloud connectivity."""

    AIR_GAPPED = "air-gapped"
    HYBRID = "hybrid"


class Telemetry(StrEnum):
    """Whether the site lets telemetry flow to the Imagicle Cloud (CT 3)."""

    ENABLED = "enabled"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class PortSpec:
    """`N/tcp` or `N/udp` (controls.md decision 2)."""

    number: int
    transport: Transport

    def __str__(self) -> str:
        return f"{self.number}/{self.transport}"


@dataclass(frozen=True, slots=True)
class OnPremEndpoint:
    """A documented on-prem integration (AG-ONPREM)."""

    name: str
    address: IPAddress
    ports: tuple[PortSpec, ...]


@dataclass(frozen=True, slots=True)
class Environment:
    """The Customer Environment: everything inside `networks` is on-prem."""

    networks: tuple[IPNetwork, ...]
    endpoints: tuple[OnPremEndpoint, ...] = ()
    strict: bool = False

    def contains(self, address: IPAddress) -> bool:
        return any(address in net for net in self.networks if net.version == address.version)


@dataclass(frozen=True, slots=True)
class CloudEndpoint:
    """An allowed cloud endpoint: a name pattern (decision 4), a port and its transport.

    `tcp` is TLS over TCP; `udp` (written `name:port/udp`) allows QUIC (HTTP/3) to it.
    """

    pattern: str  # lower-case, IDNA, no trailing dot; may start with "*."
    port: int
    justification: str | None = None  # required for endpoints beyond Imagicle's documented ones
    transport: Transport = "tcp"

    def __str__(self) -> str:
        """As written in a profile: `name:port` (TCP) or `name:port/udp`."""
        suffix = "/udp" if self.transport == "udp" else ""
        return f"{self.pattern}:{self.port}{suffix}"


@dataclass(frozen=True, slots=True)
class NameHint:
    """Static name for an address, used last when mapping a flow to a name (HY-DEST)."""

    address: IPAddress
    name: str


@dataclass(frozen=True, slots=True)
class Cloud:
    """Hybrid-mode cloud section."""

    services: tuple[str, ...]  # each one of CLOUD_SERVICES, no repeats; may be empty
    endpoints: tuple[CloudEndpoint, ...]  # never empty while a service is activated
    min_tls: str = "1.2"  # one of TLS_VERSIONS
    hints: tuple[NameHint, ...] = ()

    def activates(self, service: str) -> bool:
        """Whether the profile activates `service` (one of CLOUD_SERVICES)."""
        return service in self.services


@dataclass(frozen=True, slots=True)
class ProxySpec:
    """The customer's proxy for cloud traffic (CT 7); always inside the environment."""

    address: IPAddress
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Target:
    """The UCX host(s) whose traffic is judged; every address is inside the environment."""

    addresses: tuple[IPAddress, ...]


StimulusKind = Literal["action", "http", "shell"]


@dataclass(frozen=True, slots=True)
class LabSettings:
    """`lab:`: what the built-in lab does beyond the profile's promises (docs/lab.md)."""

    perimeter: str | None = None  # one of PERIMETER_POLICIES; None: closed air-gapped, cloud hybrid
    cloud_cert: str = "valid"  # one of CLOUD_CERT_KINDS
    scanner: bool = True  # the outside scanner tries to connect in (AG-INGRESS evidence)
    periods: tuple[tuple[str, float], ...] = ()  # (LAB_BEHAVIOURS name, seconds > 0) overrides
    intercept: bool | None = None  # None ("auto"): on with a proxy and a valid cloud certificate
    tls_keylog: bool = False  # the reference target writes its TLS key log


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """`probes:`: active probes after the observation window."""

    perimeter: bool = False  # AG-PERIMETER canary probes


@dataclass(frozen=True, slots=True)
class StimulusSpec:
    """One entry of `stimuli:`: something done `at` seconds into the observation window."""

    at: float  # >= 0
    kind: StimulusKind
    action: str = ""  # action: one of STIMULUS_ACTIONS
    method: str = ""  # http: one of STIMULUS_METHODS (upper case)
    url: str = ""  # http: an http(s) URL whose host is an address of LAB_NETWORKS
    command: str = ""  # shell: a command line run inside the target's namespace


@dataclass(frozen=True, slots=True)
class HostSettings:
    """`host:`: how a live host is reached and read (docs/hosts.md)."""

    ssh_config: Path | None = None  # existing files; relative paths are the profile's
    identity: Path | None = None
    known_hosts: Path | None = None
    settings: str | None = None  # absolute path of the product's settings file on the host
    command_timeout: float = 20.0  # seconds, 0 < t <= 600
    sample_interval: float = 2.0  # seconds, 0 < t <= 600
    sudo: bool = False
    capture: str | None = None  # interface for a remote capture during the window


# Evidence objects (a run's observations) whose derived values a profile's memo keeps at once:
# a run judges one, and the HY-CERT impostor phase a second.
MEMO_EVIDENCE = 2


class Memo:
    """Values derived from a profile and one run's evidence, computed once for all controls.

    The judges keep what every control would otherwise compute again (judge/common.py
    `once`); the values belong to the evidence object, by identity, and to this profile.
    The evidence is held while its values are, so its id cannot be reused for other evidence,
    and at most MEMO_EVIDENCE of them are kept (the oldest goes first). A copy or a pickle of
    the memo starts empty: nothing derived crosses to another profile or process.
    """

    __slots__ = ("_by_evidence",)

    def __init__(self) -> None:
        self._by_evidence: dict[int, tuple[object, dict[object, object]]] = {}

    def values(self, evidence: object) -> dict[object, object]:
        """The values derived from `evidence` so far (a dict the caller fills)."""
        entry = self._by_evidence.get(id(evidence))
        if entry is not None and entry[0] is evidence:
            return entry[1]
        while len(self._by_evidence) >= MEMO_EVIDENCE:
            del self._by_evidence[next(iter(self._by_evidence))]
        values: dict[object, object] = {}
        self._by_evidence[id(evidence)] = (evidence, values)
        return values

    def forget(self, evidence: object) -> None:
        """Let go of what was derived from `evidence` (a later `values` starts afresh)."""
        entry = self._by_evidence.get(id(evidence))
        if entry is not None and entry[0] is evidence:
            del self._by_evidence[id(evidence)]

    def __len__(self) -> int:
        """How many pieces of evidence it keeps values for."""
        return len(self._by_evidence)

    def __reduce__(self) -> tuple[type[Memo], tuple[()]]:
        return (Memo, ())

    def __deepcopy__(self, _memo: dict[int, object]) -> Memo:
        return Memo()


@dataclass(frozen=True, slots=True)
class Profile:
    """One UCX deployment and what it promises."""

    source: Path
    name: str
    mode: Mode
    target: Target
    environment: Environment
    cloud: Cloud | None = None
    proxy: ProxySpec | None = None
    telemetry: Telemetry = Telemetry.DISABLED
    window_seconds: float | None = None  # observation window for live targets
    # observation.minimum_window: a shorter capture window makes absence claims inconclusive
    minimum_window_seconds: float | None = None
    draft: bool = False  # written by `profile draft`; `run` refuses it until a person removes it
    lab: LabSettings = LabSettings()
    probes: ProbeSettings = ProbeSettings()
    stimuli: tuple[StimulusSpec, ...] = ()  # in the order written
    host: HostSettings = HostSettings()
    # The bytes load_profile read and judged (None from parse_profile): the file may change or
    # be a pipe, so the evidence copy should be these bytes, not the file read again.
    loaded: bytes | None = field(default=None, repr=False, compare=False)
    # What the judges derived from a run's evidence with this profile: never compared or shown.
    memo: Memo = field(default_factory=Memo, init=False, repr=False, compare=False)

    def is_target(self, address: IPAddress) -> bool:
        return address in self.target.addresses
