"""What a live host told us: each fact with the command that produced it and its raw output."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from conformance.profile_model import IPAddress

HOST_DIR = "host"  # the host's files under the report's evidence/


def raw_output_name(command_name: str) -> str:
    """Where a command's raw output sits under the report's evidence/."""
    return f"{HOST_DIR}/{command_name}.txt"


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """One command run on the host: what was asked, what came back, or why nothing did."""

    name: str  # "listeners", "connections-3", ...
    command: str
    exit_status: int | None  # None: it never ran to an end (connection failed, timed out)
    stdout: str
    stderr: str
    error: str | None = None  # why the command gave no usable output
    at: float = 0.0  # seconds since collection began

    @property
    def ok(self) -> bool:
        return self.error is None and self.exit_status == 0


@dataclass(frozen=True, slots=True)
class Socket:
    """One line of `ss`: a listener or a connected socket."""

    transport: str  # "tcp" | "udp"
    state: str  # "LISTEN", "UNCONN", "ESTAB", "SYN-SENT", ...
    local: IPAddress | None  # None: the wildcard address ("*", "0.0.0.0", "::")
    local_port: int
    peer: IPAddress | None
    peer_port: int
    process: str  # ss's users:(...) column, may be empty
    command: str  # the CommandRecord name it came from
    line: int  # 1-based line of that command's output

    @property
    def wildcard(self) -> bool:
        return self.local is None


@dataclass(frozen=True, slots=True)
class HostsEntry:
    address: str
    names: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class HostFacts:
    """Everything collected from one host in one run."""

    url: str  # the testinfra URL, without secrets
    commands: tuple[CommandRecord, ...]
    listeners: tuple[Socket, ...] = ()
    connections: tuple[Socket, ...] = ()  # every sample, deduplicated
    samples: int = 0  # connection samples that succeeded
    resolvers: tuple[str, ...] = ()
    hosts_entries: tuple[HostsEntry, ...] = ()
    proxy_settings: dict[str, str] = field(default_factory=dict)  # source:key -> value
    firewall: str = ""  # "nftables" | "iptables" | "" (unknown)
    firewall_input_restricted: bool | None = None  # None: could not tell
    firewall_output_restricted: bool | None = None
    product_settings: dict[str, object] | None = None  # the product's own settings file
    problems: tuple[str, ...] = ()  # what could not be collected, in words

    def record(self, name: str) -> CommandRecord | None:
        return next((c for c in self.commands if c.name == name), None)


@dataclass(frozen=True, slots=True)
class HostOptions:
    """The profile's `host:` section (docs/profile.md), resolved."""

    ssh_config: Path | None = None
    ssh_identity: Path | None = None
    known_hosts: Path | None = None  # the only host keys trusted (written into a per-run config)
    settings_path: str | None = None  # the product's settings file on the host
    command_timeout: float = 20.0
    sample_interval: float = 2.0
    sudo: bool = False
    capture_interface: str | None = None  # remote tcpdump on this interface for the window
