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


class Mode(StrEnum):
    AIR_GAPPED = "air-gapped"
    HYBRID = "hybrid"


class Telemetry(StrEnum):
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
    """An allowed cloud endpoint: a name pattern (decision 4) and a TCP port."""

    pattern: str  # lower-case, IDNA, no trailing dot; may start with "*."
    port: int
    justification: str | None = None  # required for endpoints beyond Imagicle's documented ones

    def __str__(self) -> str:
        return f"{self.pattern}:{self.port}"


@dataclass(frozen=True, slots=True)
class NameHint:
    """Static name for an address, used last when mapping a flow to a name (HY-DEST)."""

    address: IPAddress
    name: str


@dataclass(frozen=True, slots=True)
class Cloud:
    """Hybrid-mode cloud section."""

    services: tuple[str, ...]
    endpoints: tuple[CloudEndpoint, ...]
    min_tls: str = "1.2"  # "1.0" | "1.1" | "1.2" | "1.3"
    hints: tuple[NameHint, ...] = ()


@dataclass(frozen=True, slots=True)
class ProxySpec:
    address: IPAddress
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Target:
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
    extra: dict[str, object] = field(default_factory=dict)  # sections owned by later features

    def is_target(self, address: IPAddress) -> bool:
        return address in self.target.addresses
