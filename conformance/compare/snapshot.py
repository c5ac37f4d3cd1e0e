"""The comparable facts of one report: the target's destinations, names, TLS, verdicts.

Read only from a report's files (evidence/flows.csv, dns.csv, tls.csv, http.csv,
profile.yaml, report.json) through a `Tables` reader: a verified report for `diff`, or the
directory being written for `run --baseline`, so both see exactly the same things.

- destination: address, port and transport of a flow the target initiated, with the names
  that map to it (TLS SNI or HTTP Host on its flows, DNS answers that gave its address);
- names sought: DNS (and mDNS/LLMNR/NBNS) queries the target sent, SNI and HTTP Host on its
  flows;
- TLS per endpoint (SNI or address, port): the versions and suites servers chose, the SNI;
- verdict per control.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml

from conformance.digest import PRIMARY_SUBJECT
from conformance.judge.common import host_of

FLOWS = "evidence/flows.csv"
DNS = "evidence/dns.csv"
TLS = "evidence/tls.csv"
HTTP = "evidence/http.csv"
PROFILE = "evidence/profile.yaml"
# DNS record types whose values are addresses, as tables.py writes them.
_ADDRESS_TYPES = frozenset({"A", "AAAA"})
_PORTED = frozenset({"tcp", "udp"})
# The columns each table must have (report/tables.py writes them): a table read without
# them would look empty, and a diff would then miss what it holds (fail closed).
FLOW_COLUMNS = ("flow_id", "initiator", "responder", "responder_port", "transport")
DNS_COLUMNS = ("client", "protocol", "qname", "answers")
TLS_COLUMNS = ("flow_id", "message", "sni", "versions", "cipher_suites")
HTTP_COLUMNS = ("flow_id", "host")


class Tables(Protocol):
    """Read access to a report's files (conformance.sign.verified.VerifiedReport fits)."""

    def has(self, name: str) -> bool: ...

    def rows(self, name: str, required: Sequence[str] = ()) -> Iterator[dict[str, str]]: ...

    def read_bytes(self, name: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the target's flows went: address, port (None for ICMP and others), transport."""

    address: str
    port: int | None
    transport: str
    names: tuple[str, ...]
    flows: int

    @property
    def key(self) -> tuple[str, int | None, str]:
        return (self.address, self.port, self.transport)

    @property
    def text(self) -> str:
        """ "203.0.113.25:443/tcp", "[2001:db8::1]:443/tcp", "198.51.100.1 icmp"."""
        if self.port is None:
            return f"{self.address} {self.transport}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}/{self.transport}"


@dataclass(frozen=True, slots=True)
class TlsEndpoint:
    """What servers of one endpoint chose: TLS versions and suites, and the SNI sent."""

    endpoint: str  # "api.imagicle.com:443" (SNI) or "203.0.113.25:443" (no SNI)
    versions: frozenset[str]
    suites: frozenset[str]
    sni: frozenset[str]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One report's comparable facts and its identity (path, envelope digest, verdict)."""

    identity: Mapping[str, Any]
    destinations: Mapping[tuple[str, int | None, str], Destination]
    names: Mapping[str, frozenset[str]]  # name -> how it was sought (dns, sni, http, mdns...)
    tls: Mapping[str, TlsEndpoint]
    verdicts: Mapping[str, str]
    notes: tuple[str, ...] = ()


@dataclass(slots=True)
class _Builder:
    targets: frozenset[str] | None
    flows: dict[str, tuple[str, int | None, str]] = field(default_factory=dict)  # id -> key
    counts: dict[tuple[str, int | None, str], int] = field(default_factory=dict)
    flow_names: dict[str, dict[str, None]] = field(default_factory=dict)
    address_names: dict[str, dict[str, None]] = field(default_factory=dict)
    names: dict[str, set[str]] = field(default_factory=dict)
    sni: dict[str, str] = field(default_factory=dict)  # flow id -> SNI
    tls: dict[str, tuple[set[str], set[str], set[str]]] = field(default_factory=dict)

    def is_target(self, address: str) -> bool:
        return self.targets is None or _canonical(address) in self.targets


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _name(text: str) -> str:
    return text.strip().rstrip(".").lower()


def _add(table: dict[str, dict[str, None]], key: str, name: str) -> None:
    if name:
        table.setdefault(key, {})[name] = None


def _targets(tables: Tables) -> tuple[frozenset[str] | None, str | None]:
    """The target addresses from the report's copy of the profile (None: every flow counts)."""
    if not tables.has(PROFILE):
        return None, f"{PROFILE} missing: every host's flows are compared"
    try:
        document = yaml.safe_load(tables.read_bytes(PROFILE))
        addresses = document["target"]["addresses"]
        return frozenset(str(ipaddress.ip_address(str(a))) for a in addresses), None
    except (yaml.YAMLError, TypeError, KeyError, ValueError, RecursionError):
        # RecursionError: YAML nested thousands deep (the file is signed, not necessarily sane).
        return None, f"{PROFILE}: no readable target addresses; every host's flows are compared"


def _port(row: Mapping[str, str]) -> int | None:
    if row.get("transport") not in _PORTED:
        return None
    try:
        return int(row.get("responder_port", ""))
    except ValueError:
        return None


def _read_flows(tables: Tables, b: _Builder) -> None:
    for row in tables.rows(FLOWS, FLOW_COLUMNS):
        if not b.is_target(row.get("initiator", "")):
            continue
        key = (_canonical(row.get("responder", "")), _port(row), row.get("transport", ""))
        b.flows[row.get("flow_id", "")] = key
        b.counts[key] = b.counts.get(key, 0) + 1


def _read_dns(tables: Tables, b: _Builder) -> None:
    for row in tables.rows(DNS, DNS_COLUMNS):
        qname = _name(row.get("qname", ""))
        if b.is_target(row.get("client", "")) and qname:
            b.names.setdefault(qname, set()).add(row.get("protocol") or "dns")
        # Answers map addresses to the name asked for (any client: decision 8).
        for answer in row.get("answers", "").split("; "):
            parts = answer.split(" ")
            if len(parts) >= 3 and parts[1] in _ADDRESS_TYPES and qname:
                _add(b.address_names, _canonical(parts[2]), qname)


def _read_tls(tables: Tables, b: _Builder) -> None:
    server_rows: list[dict[str, str]] = []
    for row in tables.rows(TLS, TLS_COLUMNS):
        flow_id = row.get("flow_id", "")
        if flow_id not in b.flows:
            continue
        if row.get("message") == "client-hello":
            sni = _name(row.get("sni", ""))
            if sni:
                b.sni[flow_id] = sni
                _add(b.flow_names, flow_id, sni)
                b.names.setdefault(sni, set()).add("sni")
        elif row.get("message") == "server-hello":
            server_rows.append(row)
    for row in server_rows:
        flow_id = row.get("flow_id", "")
        address, port, _transport = b.flows[flow_id]
        sni = b.sni.get(flow_id, "")
        host = sni or (f"[{address}]" if ":" in address else address)
        versions, suites, snis = b.tls.setdefault(f"{host}:{port}", (set(), set(), set()))
        versions.add(row.get("versions", ""))
        suites.add(row.get("cipher_suites", ""))
        snis.add(sni or "(none)")


def _read_http(tables: Tables, b: _Builder) -> None:
    if not tables.has(HTTP):
        return
    for row in tables.rows(HTTP, HTTP_COLUMNS):
        flow_id = row.get("flow_id", "")
        host = host_of(row.get("host", ""))
        if flow_id in b.flows and host:
            _add(b.flow_names, flow_id, host)
            b.names.setdefault(host, set()).add("http")


def _verdicts(report: Mapping[str, Any]) -> dict[str, str]:
    controls = report.get("controls")
    if not isinstance(controls, list):
        return {}
    return {
        str(c["id"]): str(c["verdict"])
        for c in controls
        if isinstance(c, dict) and "id" in c and "verdict" in c
    }


def _object(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key)
    return value if isinstance(value, dict) else {}


def identity(document: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Who a snapshot is: profile, verdict, when, signer, plus what the caller knows."""
    profile = _object(document, "profile")
    harness = _object(document, "harness")
    signer = _object(document, "signer")
    return {
        **extra,
        "profile": profile.get("name"),
        "mode": profile.get("mode"),
        "verdict": document.get("verdict"),
        "finished": harness.get("finished"),
        "signer": signer.get("fingerprint"),
    }


def take_snapshot(tables: Tables, report: Mapping[str, Any], who: Mapping[str, Any]) -> Snapshot:
    """Read one report's comparable facts; `report` is its report.json document."""
    targets, note = _targets(tables)
    b = _Builder(targets)
    _read_flows(tables, b)
    if tables.has(DNS):
        _read_dns(tables, b)
    if tables.has(TLS):
        _read_tls(tables, b)
    _read_http(tables, b)
    names_by_key: dict[tuple[str, int | None, str], dict[str, None]] = {}
    for flow_id, key in b.flows.items():
        merged = names_by_key.setdefault(key, {})
        merged.update(b.flow_names.get(flow_id, {}))
    destinations = {}
    for key, count in b.counts.items():
        names = dict(names_by_key.get(key, {}))
        names.update(b.address_names.get(key[0], {}))
        destinations[key] = Destination(key[0], key[1], key[2], tuple(sorted(names)), count)
    tls = {
        endpoint: TlsEndpoint(endpoint, frozenset(v), frozenset(s), frozenset(n))
        for endpoint, (v, s, n) in b.tls.items()
    }
    return Snapshot(
        identity=dict(who),
        destinations=destinations,
        names={k: frozenset(v) for k, v in b.names.items()},
        tls=tls,
        verdicts=_verdicts(report),
        notes=(note,) if note else (),
    )


def report_of(tables: Tables) -> dict[str, Any]:
    """report.json of a `Tables` reader that holds a finished report."""
    from conformance.sign.strict_json import loads_object

    return loads_object(tables.read_bytes(PRIMARY_SUBJECT))
