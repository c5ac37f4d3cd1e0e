"""Typed, frozen form of a deployment profile (interface.md). Built only by `profile.load_profile`.

Nothing downstream re-checks these values: the loader guarantees the invariants
documented on each field.
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
    extra: dict[str, object] = field(default_factory=dict)  # sections owned by later features

    def is_target(self, address: IPAddress) -> bool:
        return address in self.target.addresses
