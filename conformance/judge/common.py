"""Helpers every judge shares: target flows, flow descriptions, names, and fail-closed gating.

Judges read only `Observations` and the `Profile`; this module holds what each of them
would otherwise write again: which flows concern the target, which addresses are
outside the Customer Environment (and which are scope-limited, decision 6), how a flow
is described in a finding, which names a flow carries, and how a list of findings plus
the state of the evidence becomes a verdict (architecture.md "Fail closed").
"""

from __future__ import annotations

import functools
import ipaddress
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TypeVar, cast, overload
from urllib.parse import urlsplit

from conformance.judge.platform import looks_like
from conformance.judge.result import ControlResult, Finding, PacketRef, Severity
from conformance.names import CLOUD_NAME_PATTERNS, matches
from conformance.observe.coverage import Coverage, coverage_of, duration_text, window_seconds
from conformance.observe.records import (
    SAMPLE_PACKETS_PER_FLOW,
    CaptureSummary,
    Flow,
    HttpRequest,
    InitiatorBasis,
    IPAddress,
    NotUnderstood,
    Observations,
    Parties,
)
from conformance.profile_model import Environment, Profile
from conformance.verdict import Verdict, worst

# IPv6 multicast scopes that routers keep inside the site (RFC 7346 §2: interface-, link-,
# realm-, admin-, site- and organization-local); global scope (0xe) and unassigned scopes may
# be routed anywhere, so a group with one of those is not scope-limited.
_IPV6_CONTAINED_SCOPES = (0x1, 0x2, 0x3, 0x4, 0x5, 0x8)

# Decision 6: traffic that cannot leave the segment (or the host) is not egress.
# Link-local, multicast that routers keep in (the IPv4 local network control block, RFC 5771
# §4, and administratively scoped groups, RFC 2365; the IPv6 scopes above, whatever the
# flags nibble), limited broadcast, loopback and the unspecified address. Other multicast
# (224.0.1.0 to 238.255.255.255, ff0e::/16, ...) is globally routable: judged like unicast.
SCOPE_LIMITED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.IPv4Network("169.254.0.0/16"),
    ipaddress.IPv4Network("224.0.0.0/24"),
    ipaddress.IPv4Network("239.0.0.0/8"),
    ipaddress.IPv4Network("255.255.255.255/32"),
    ipaddress.IPv4Network("127.0.0.0/8"),
    ipaddress.IPv4Network("0.0.0.0/32"),
    ipaddress.IPv6Network("fe80::/10"),
    *(
        ipaddress.IPv6Network(f"ff{flags:x}{scope:x}::/16")
        for scope in _IPV6_CONTAINED_SCOPES
        for flags in range(16)
    ),
    ipaddress.IPv6Network("::1/128"),
    ipaddress.IPv6Network("::/128"),
)

# A report with tens of thousands of identical findings helps nobody; counts in the
# control's facts stay exact and every flow is in evidence/flows.csv.
MAX_FINDINGS = 500

# Names listed in a finding's facts: enough to recognise the service, bounded.
MAX_NAMES_PER_FINDING = 5

# Below this, a port is a well-known service port (RFC 6335 system ports).
WELL_KNOWN_PORT_LIMIT = 1024

# Distinct texts (names, authorities, address literals) whose parse is remembered: the same
# few repeat in thousands of requests; bounded for a long-lived process (`watch`).
MAX_PARSED_TEXTS = 4096

_K = TypeVar("_K")
_T = TypeVar("_T")

_SEVERITY_ORDER = {Severity.VIOLATION: 0, Severity.WARNING: 1, Severity.INFO: 2}

_BASIS_NOTE: Mapping[InitiatorBasis, str] = {
    # Decision 1: a flow already open when the capture began says how its direction was found.
    InitiatorBasis.PORT_HEURISTIC: " (direction by port heuristic)",
    InitiatorBasis.DIRECTION_FLAG: " (direction from pcapng direction flags)",
    InitiatorBasis.SYN_ACK: " (direction from the SYN-ACK; the SYN is not in the capture)",
    InitiatorBasis.RESPONSE_FIRST: " (its first packet is a response: the other side asked)",
}

_ICMP_NAMES: Mapping[tuple[str, int], str] = {
    ("icmp", 0): "echo-reply",
    ("icmp", 3): "unreachable",
    ("icmp", 8): "echo-request",
    ("icmp", 11): "time-exceeded",
    ("icmp", 13): "timestamp-request",
    ("icmpv6", 1): "unreachable",
    ("icmpv6", 128): "echo-request",
    ("icmpv6", 129): "echo-reply",
    ("icmpv6", 133): "router-solicitation",
    ("icmpv6", 135): "neighbour-solicitation",
    ("icmpv6", 143): "listener-report",
}


def is_scope_limited(address: IPAddress, environment: Environment) -> bool:
    """Whether packets to `address` stay on the segment or the host (decision 6).

    Besides the fixed ranges, the directed broadcast address of every IPv4 network of
    the environment counts (it reaches that segment only).
    """
    if any(address in net for net in SCOPE_LIMITED_NETWORKS if net.version == address.version):
        return True
    return any(
        net.version == 4 and net.prefixlen < 31 and address == net.broadcast_address
        for net in environment.networks
    )


# ICMPv6 neighbour discovery (RFC 4861: RS, RA, NS, NA, redirect) is sent with hop limit 255
# and never forwarded, even when addressed to a global unicast address (neighbour
# unreachability detection): it cannot leave the segment whatever its destination.
_NEIGHBOUR_DISCOVERY_TYPES = frozenset({133, 134, 135, 136, 137})


def is_link_scoped_flow(flow: Flow) -> bool:
    """Whether `flow`'s protocol keeps it on the link regardless of its addresses."""
    return flow.transport == "icmpv6" and flow.initiator_port in _NEIGHBOUR_DISCOVERY_TYPES


def is_outside(address: IPAddress, environment: Environment) -> bool:
    """Whether `address` is outside the Customer Environment and not scope-limited."""
    return not environment.contains(address) and not is_scope_limited(address, environment)


@functools.lru_cache(maxsize=MAX_PARSED_TEXTS)
def is_cloud_name(name: str) -> bool:
    """Whether `name` is an Imagicle cloud name (decision 4 matching; malformed names too)."""
    return any(matches(pattern, name) for pattern in CLOUD_NAME_PATTERNS)


@functools.lru_cache(maxsize=MAX_PARSED_TEXTS)
def host_of(authority_or_url: str) -> str:
    """The host part of "host", "host:port", "[v6]:port" or "scheme://host:port/path".

    Lower-case, without brackets or trailing dot; empty when there is none.
    """
    text = authority_or_url.strip()
    if "://" not in text:
        text = "//" + text
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:  # a bracket without its pair: take the text before the last colon
        host = text.lstrip("/").rsplit(":", 1)[0].strip("[]").lower()
    return host.rstrip(".")


@functools.lru_cache(maxsize=MAX_PARSED_TEXTS)
def address_of(text: str) -> IPAddress | None:
    """`text` as an IP address, or None when it is a name."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def once(obs: Observations, profile: Profile, build: Callable[[Observations, Profile], _T]) -> _T:
    """`build(obs, profile)`, computed once for every control of a run that asks for it.

    The profile's memo keeps it, under `build`, while `obs` is the evidence judged
    (profile_model.Memo): what several judges derive alike (the target's flows, the names
    of each flow) is derived once. `build` must return something nobody changes afterwards.
    """
    values = profile.memo.values(obs)
    if build not in values:
        values[build] = build(obs, profile)
    return cast(_T, values[build])


# `address_text`'s memo: each address object's text, by identity (hashing an address takes
# as long as writing an IPv4 one out). Holding the object keeps its id from being reused.
_ADDRESS_TEXTS: dict[int, tuple[IPAddress, str]] = {}


def address_text(address: IPAddress) -> str:
    """`str(address)`, remembered: an IPv6 address takes microseconds to write out."""
    known = _ADDRESS_TEXTS.get(id(address))
    if known is not None and known[0] is address:
        return known[1]
    text = str(address)
    if len(_ADDRESS_TEXTS) >= MAX_PARSED_TEXTS:
        del _ADDRESS_TEXTS[next(iter(_ADDRESS_TEXTS))]  # the oldest
    _ADDRESS_TEXTS[id(address)] = (address, text)
    return text


@dataclass(frozen=True, slots=True)
class TargetView:
    """The part of the observations that concerns the target: computed once per run (`once`).

    Every control asks, of each target flow, who opened it and whether its peer is outside
    the environment: what the profile says of an address (the target's, outside,
    scope-limited) is remembered per address object.
    """

    obs: Observations
    profile: Profile
    flows: Sequence[Flow]  # flows with a target address at either end
    sent: bool  # some flow carries at least one packet from the target
    outgoing: Sequence[Flow] = ()  # those of `flows` the target initiated, in order
    incoming: Sequence[Flow] = ()  # the others (the target is their responder), in order
    opened: bytes = b""  # 1 where the target initiated that flow of `flows`, else 0
    # What is known of each address object, by identity (hashing an address costs more than
    # the lookup saves): the view holds every object it remembers, so no other object can
    # have its id. Whether an address is the target's (every flow's ends, from the start):
    _targets: dict[int, tuple[IPAddress, bool]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _outside: dict[int, tuple[IPAddress, bool]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _scope_limited: dict[int, tuple[IPAddress, bool]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def initiated(self, flow: Flow) -> bool:
        """Whether the target is the flow's initiator."""
        return self.is_target(flow.initiator)

    def is_target(self, address: IPAddress) -> bool:
        """`profile.is_target(address)`, remembered."""
        known = self._targets.get(id(address))
        if known is None:
            known = self._targets[id(address)] = (address, self.profile.is_target(address))
        return known[1]

    def outside(self, address: IPAddress) -> bool:
        """`is_outside(address, profile.environment)`, remembered."""
        known = self._outside.get(id(address))
        if known is None:
            known = (address, is_outside(address, self.profile.environment))
            self._outside[id(address)] = known
        return known[1]

    def scope_limited(self, address: IPAddress) -> bool:
        """`is_scope_limited(address, profile.environment)`, remembered."""
        known = self._scope_limited.get(id(address))
        if known is None:
            known = (address, is_scope_limited(address, self.profile.environment))
            self._scope_limited[id(address)] = known
        return known[1]


def target_view(obs: Observations, profile: Profile) -> TargetView:
    """The target flows (the target is initiator or responder) of `obs`: one view per run."""
    return once(obs, profile, _select_target_flows)


def _select_target_flows(obs: Observations, profile: Profile) -> TargetView:
    # Rows of obs.flows, not the flows: a store's flows are made as they are read, and a
    # list of them all would hold every one again (#17).
    chosen, outgoing, incoming = array("l"), array("l"), array("l")
    opened = bytearray()
    sent = False
    # The observers share one object per address: the profile is asked once per object.
    targets: dict[int, tuple[IPAddress, bool]] = {}
    for row, flow in enumerate(obs.flows):
        initiator, responder = flow.initiator, flow.responder
        by_target = targets.get(id(initiator))
        if by_target is None:
            by_target = targets[id(initiator)] = (initiator, profile.is_target(initiator))
        to_target = targets.get(id(responder))
        if to_target is None:
            to_target = targets[id(responder)] = (responder, profile.is_target(responder))
        if by_target[1]:
            outgoing.append(row)
        elif to_target[1]:
            incoming.append(row)
        else:
            continue
        chosen.append(row)
        opened.append(by_target[1])
        if not sent:
            sent = (by_target[1] and flow.packets_out > 0) or (to_target[1] and flow.packets_in > 0)
    flows = _rows(obs.flows, chosen)
    return TargetView(
        obs=obs,
        profile=profile,
        flows=flows,
        sent=sent,
        outgoing=flows if len(outgoing) == len(chosen) else _rows(obs.flows, outgoing),
        incoming=flows if len(incoming) == len(chosen) else _rows(obs.flows, incoming),
        opened=bytes(opened),
        _targets=targets,
    )


def _rows(flows: Sequence[Flow], rows: array[int]) -> Sequence[Flow]:
    """The flows at `rows` (ascending). All of them: `flows` itself, shared, not copied (on
    a capture of the target's own traffic every flow is one of its flows, and it opened
    most: #17); else a tuple of them, or a `FlowRows` view of a store's."""
    if len(rows) == len(flows):
        return flows
    if isinstance(flows, tuple | list):
        return tuple(flows[row] for row in rows)
    return FlowRows(flows, rows)


class FlowRows(Sequence[Flow]):
    """Some rows of a sequence of flows (a RecordStore's, records.record_store), each flow
    made when it is read."""

    __slots__ = ("_flows", "_rows")

    def __init__(self, flows: Sequence[Flow], rows: array[int]) -> None:
        self._flows = flows
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> Flow: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Flow, ...]: ...

    def __getitem__(self, index: int | slice) -> Flow | tuple[Flow, ...]:
        if isinstance(index, slice):
            return tuple(self._flows[row] for row in self._rows[index])
        return self._flows[self._rows[index]]

    def __iter__(self) -> Iterator[Flow]:
        flows = self._flows
        return (flows[row] for row in self._rows)


def name_index(obs: Observations, profile: Profile) -> NameIndex:
    """The names tied to each flow of `obs` (`NameIndex`): one index per run."""
    return once(obs, profile, _index_names)


def _index_names(obs: Observations, _profile: Profile) -> NameIndex:
    return NameIndex(obs)


def endpoint_text(address: IPAddress, port: int | None = None) -> str:
    """An endpoint as text: "192.0.2.10:443", "[2001:db8::1]:443", or the bare address."""
    text = address_text(address)
    if port is None:
        return text
    return f"[{text}]:{port}" if address.version == 6 else f"{text}:{port}"


def describe_flow(flow: Flow, note: str = "") -> str:
    """One line for a finding: "192.0.2.10:51234 -> 198.51.100.7:443 tcp, SYN, 3 packets, ...".

    ICMP flows name their type and code instead of ports; `note` follows the state; a
    direction not decided by a SYN or a first packet ends by saying how it was decided
    (decision 1).
    """
    if flow.transport in ("tcp", "udp"):
        ends = (
            f"{endpoint_text(flow.initiator, flow.initiator_port)} -> "
            f"{endpoint_text(flow.responder, flow.responder_port)} {flow.transport}"
        )
    elif flow.transport in ("icmp", "icmpv6"):
        kind = _ICMP_NAMES.get((flow.transport, flow.initiator_port), f"type {flow.initiator_port}")
        ends = (
            f"{flow.initiator} -> {flow.responder} {flow.transport} {kind}"
            f" code {flow.responder_port}"
        )
    else:
        ends = f"{flow.initiator} -> {flow.responder} {flow.transport}"
    parts = [ends]
    if flow.transport == "tcp":
        if flow.handshake_seen:
            parts.append("SYN")
        elif flow.initiator_basis is InitiatorBasis.SYN_ACK:
            parts.append("SYN-ACK")
        else:
            parts.append("no handshake")
    parts.append(plural(flow.packets_out + flow.packets_in, "packet"))
    parts.append(answer_state(flow))
    return ", ".join(parts) + note + _BASIS_NOTE.get(flow.initiator_basis, "")


def answer_state(flow: Flow) -> str:
    """What the responder did: "accepted", "refused", "answered" or "unanswered"."""
    if flow.accepted:
        return "accepted"
    if flow.rejected:
        return "refused"
    return "answered" if flow.answered else "unanswered"


def flow_packets(flow: Flow) -> PacketRef:
    """The flow's sample packets as a reference into its capture."""
    packets = tuple(flow.sample_packets) or (flow.first_packet,)
    return PacketRef(capture=flow.capture, packets=packets)


class NameIndex:
    """The names tied to each flow: TLS SNI, HTTP Host and CONNECT/proxy targets on the
    flow, names a DNS flow asked for, and DNS names whose answers gave its responder.

    Indexed when first asked: most runs name few flows in findings, or none.
    """

    def __init__(self, obs: Observations) -> None:
        self._obs: Observations | None = obs  # None once indexed
        self._by_flow: dict[int, dict[str, None]] = {}  # dicts as ordered sets
        self._by_address: dict[str, dict[str, None]] = {}
        self._requests: dict[int, list[HttpRequest]] = {}

    def _index(self) -> None:
        obs = self._obs
        if obs is None:
            return
        by_flow: dict[int, dict[str, None]] = {}
        by_address: dict[str, dict[str, None]] = {}
        requests: dict[int, list[HttpRequest]] = {}
        for hello in obs.client_hellos:
            if hello.sni:
                _add(by_flow, hello.flow_id, hello.sni)
        for request in obs.http_requests:
            requests.setdefault(request.flow_id, []).append(request)
            for name in request_names(request):
                _add(by_flow, request.flow_id, name)
        for query in obs.dns:
            _add(by_flow, query.flow_id, query.qname)
            for answer in query.answers:
                address = address_of(answer.value)
                if address is not None:
                    _add(by_address, str(address), query.qname)
                    _add(by_address, str(address), answer.name)
        # Complete tables only: a judge asking meanwhile indexes for itself.
        self._by_flow, self._by_address, self._requests = by_flow, by_address, requests
        self._obs = None

    def names(self, flow: Flow) -> tuple[str, ...]:
        """Names tied to `flow`, those carried on the flow first."""
        self._index()
        merged = dict(self._by_flow.get(flow.flow_id, {}))
        merged.update(self._by_address.get(address_text(flow.responder), {}))
        return tuple(merged)

    def requests(self, flow: Flow) -> tuple[HttpRequest, ...]:
        """The HTTP requests seen on `flow`."""
        self._index()
        return tuple(self._requests.get(flow.flow_id, ()))


def _add(table: dict[_K, dict[str, None]], key: _K, name: str) -> None:
    """Add `name` to the ordered set under `key`."""
    if name:
        names = table.get(key)
        if names is None:
            table[key] = {name: None}
        else:
            names[name] = None


def request_hosts(request: HttpRequest) -> tuple[tuple[str, bool], ...]:
    """Hosts an HTTP request names, each with whether a proxy is asked to reach it.

    The Host header names the server spoken to (False); a CONNECT authority or an
    absolute-form target names where a proxy should go (True).
    """
    return _hosts(request.method, request.target, request.host)


def request_names(request: HttpRequest) -> tuple[str, ...]:
    """The names (not address literals) an HTTP request carries, each once."""
    return _names(request.method, request.target, request.host)


# Remembered by the request's method, target and Host: thousands of requests repeat a few.
@functools.lru_cache(maxsize=MAX_PARSED_TEXTS)
def _hosts(method: str, target: str, host: str | None) -> tuple[tuple[str, bool], ...]:
    hosts: list[tuple[str, bool]] = []
    if host:
        hosts.append((host_of(host), False))
    if method == "CONNECT" or "://" in target:
        hosts.append((host_of(target), True))
    return tuple((name, proxied) for name, proxied in hosts if name)


@functools.lru_cache(maxsize=MAX_PARSED_TEXTS)
def _names(method: str, target: str, host: str | None) -> tuple[str, ...]:
    hosts = _hosts(method, target, host)
    return tuple(dict.fromkeys(h for h, _ in hosts if address_of(h) is None))


def flow_finding(
    severity: Severity,
    flow: Flow,
    index: NameIndex | None = None,
    note: str = "",
    facts: Mapping[str, str] | None = None,
) -> Finding:
    """A finding about one flow: its description, packets, and what it looks like (decision 5)."""
    names = index.names(flow) if index else ()
    requests = index.requests(flow) if index else ()
    all_facts: dict[str, str] = {}
    label = looks_like(flow, names, requests)
    if label:
        all_facts["looks_like"] = label
    if names:
        all_facts["names"] = ", ".join(names[:MAX_NAMES_PER_FINDING])
    all_facts.update(facts or {})
    return Finding(
        severity=severity,
        summary=describe_flow(flow, note),
        flow_id=flow.flow_id,
        packets=flow_packets(flow),
        facts=all_facts,
    )


@dataclass(slots=True)
class _Group:
    severity: Severity
    summary: str
    capture: int
    flow_id: int | None
    facts: dict[str, str]
    unit: str
    packets: dict[int, None] = field(default_factory=dict)
    count: int = 0

    def repeat(self, packets: Iterable[int], count: int) -> None:
        """Count `count` more occurrences, keeping up to SAMPLE_PACKETS_PER_FLOW packets."""
        self.count += count
        for packet in packets:
            if len(self.packets) >= SAMPLE_PACKETS_PER_FLOW:
                break
            self.packets[packet] = None


class FindingGroups:
    """Merge repeated findings (same key) into one, with a count and sample packets.

    One finding per DNS name or endpoint keeps a report readable when the target repeats
    itself thousands of times; the first flow and up to SAMPLE_PACKETS_PER_FLOW packets
    stay as evidence.
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[object, ...], _Group] = {}

    def add(
        self,
        key: tuple[object, ...],
        severity: Severity,
        summary: str,
        *,
        capture: int,
        packets: Iterable[int],
        flow_id: int | None,
        count: int = 1,
        unit: str = "time",
        facts: Mapping[str, str] | None = None,
    ) -> None:
        """Count `count` occurrences under `key`; the first one's summary and flow are kept.

        `unit` names what is counted in the summary: ", 12 times", ", 12 flows".
        """
        group = self._groups.get(key)
        if group is None:
            group = _Group(severity, summary, capture, flow_id, dict(facts or {}), unit)
            self._groups[key] = group
        group.repeat(packets, count)

    def add_again(self, key: tuple[object, ...], *, packets: Iterable[int], count: int = 1) -> bool:
        """Count `count` more occurrences under `key` when it has a finding already (True), as
        `add` would; False, counting nothing, when `key` is new: then `add` it. Saves writing
        a summary that would not be kept."""
        group = self._groups.get(key)
        if group is None:
            return False
        group.repeat(packets, count)
        return True

    def findings(self) -> list[Finding]:
        """One finding per key, ", N times" (or its unit) added when it repeated."""
        return [
            Finding(
                severity=g.severity,
                summary=g.summary + (f", {plural(g.count, g.unit)}" if g.count > 1 else ""),
                flow_id=g.flow_id,
                packets=PacketRef(g.capture, tuple(g.packets)) if g.packets else None,
                facts=g.facts,
            )
            for g in self._groups.values()
        ]


class Findings(list[Finding]):
    """A judge's findings, in the order found, for `conclude`.

    `cap_findings` keeps the first MAX_FINDINGS of the most severe and counts the rest by
    severity, so a flow finding past the first MAX_FINDINGS of its severity can never be
    listed: it is counted by a blank finding of its severity instead of being described
    (describing tens of thousands of flows cost more than judging them).
    """

    def __init__(self) -> None:
        super().__init__()
        self._described = dict.fromkeys(Severity, 0)

    def flow(
        self,
        severity: Severity,
        flow: Flow,
        index: NameIndex | None = None,
        note: str = "",
        facts: Mapping[str, str] | None = None,
    ) -> None:
        """Add `flow_finding(severity, flow, index, note, facts)`, or its blank."""
        described = self._described[severity]
        if described >= MAX_FINDINGS:
            self.append(_UNLISTED[severity])
            return
        self._described[severity] = described + 1
        self.append(flow_finding(severity, flow, index, note, facts))


# What `Findings` counts a flow finding by when no report could list it.
_UNLISTED = {s: Finding(s, "(past the findings a report lists)") for s in Severity}


def cap_findings(findings: Sequence[Finding], limit: int = MAX_FINDINGS) -> tuple[Finding, ...]:
    """The most severe `limit` findings, plus one that counts the rest (never hidden silently)."""
    ordered = sorted(findings, key=lambda f: _SEVERITY_ORDER[f.severity])  # stable
    if len(ordered) <= limit:
        return tuple(ordered)
    kept, rest = ordered[:limit], ordered[limit:]
    counts = {s: sum(1 for f in rest if f.severity is s) for s in Severity}
    detail = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    more = Finding(
        severity=rest[0].severity,
        summary=f"{len(rest)} more findings not listed ({detail}); every flow is in flows.csv",
    )
    return (*kept, more)


# Reasons named in a gap, the commonest first; the rest are counted (the full list is in
# the capture's summary and evidence/captures.json).
MAX_REASONS_IN_GAP = 3


def target_link_addresses(capture: CaptureSummary, profile: Profile) -> frozenset[str]:
    """The MACs frames from the target's addresses were sent from, in `capture`."""
    return frozenset(
        link.mac
        for link in capture.link_addresses
        if any(profile.is_target(a) for a in link.addresses)
    )


def could_be_target(parties: Parties, profile: Profile, target_macs: frozenset[str]) -> bool:
    """Whether frames with these addresses could be the target's (decision 10).

    Yes when one of them is a target address or a MAC the target sent from, when they
    carry no address at all, and when they carry MACs but no MAC of the target is known
    (nothing then shows the MACs are someone else's).
    """
    if any(profile.is_target(a) for a in parties.addresses):
        return True
    if parties.macs and (not target_macs or any(m in target_macs for m in parties.macs)):
        return True
    return not parties.addresses and not parties.macs


def target_not_understood(
    counted: Sequence[NotUnderstood], capture: CaptureSummary, profile: Profile | None
) -> list[tuple[NotUnderstood, int]]:
    """Each not-understood count with how many of its frames could be the target's.

    Without a profile, all of them could be. Counts with none are left out.
    """
    if not counted:
        return []
    macs = target_link_addresses(capture, profile) if profile is not None else frozenset()
    out = []
    for record in counted:
        if profile is None:
            n = record.count
        else:
            n = record.untold + sum(
                p.count for p in record.parties if could_be_target(p, profile, macs)
            )
        if n:
            out.append((record, n))
    return out


def _counted_gap(found: list[tuple[NotUnderstood, int]]) -> str:
    """ "12 (incomplete fragments: 10, e.g. packet 40; unknown EtherType 0x88b5: 2, ...)" """
    total = sum(n for _, n in found)
    ordered = sorted(found, key=lambda item: -item[1])
    named = [
        f"{record.reason}: {n}" + (f", e.g. packet {record.frames[0]}" if record.frames else "")
        for record, n in ordered[:MAX_REASONS_IN_GAP]
    ]
    if len(ordered) > MAX_REASONS_IN_GAP:
        named.append(f"{len(ordered) - MAX_REASONS_IN_GAP} more reasons")
    return f"{total} ({'; '.join(named)})"


def evidence_gaps(
    obs: Observations, *, payloads: bool = False, profile: Profile | None = None
) -> list[str]:
    """Why the captures cannot prove absence: truncation, drops, frames not understood.

    Frames the decoders could not take to a transport (decision 10) could hold a leak;
    with `profile`, only those that could be the target's count (its address or MAC in
    any header, or no address to tell), without it all of them. With `payloads`, for
    controls that read names, packets whose payload was not understood and packets cut
    short by the snap length count too, since a name (DNS, SNI, Host) in them may be
    unseen.
    """
    gaps: list[str] = []
    many = len(obs.captures) > 1
    for capture in obs.captures:
        prefix = f"{PurePath(capture.path).name}: " if many else ""
        if capture.truncated_file:
            gaps.append(prefix + (capture.truncated_detail or "capture file is truncated"))
        if capture.drops:
            detail = f" ({capture.drop_detail})" if capture.drop_detail else ""
            gaps.append(f"{prefix}{capture.drops} packets dropped{detail}")
        frames = target_not_understood(capture.not_understood, capture, profile)
        if frames:
            gaps.append(
                f"{prefix}{_counted_gap(frames)} frames not understood that could be"
                " the target's: a leak could hide in them"
            )
        if payloads:
            unread = target_not_understood(capture.payload_not_understood, capture, profile)
            if unread:
                gaps.append(
                    f"{prefix}{_counted_gap(unread)} target packets whose payload was not"
                    " understood: a name in them may be unseen"
                )
        if payloads and capture.snap_truncated:
            gaps.append(
                f"{prefix}{capture.snap_truncated} packets cut short by the snap length:"
                " a name in them may be unseen"
            )
    return gaps


SILENT_TARGET = "the target sent no packets: silence proves nothing"


def short_window(obs: Observations, profile: Profile) -> str | None:
    """Why the window is too short to prove absence (decision 11), or None.

    Only a profile's `observation.minimum_window` makes this binding; without it a short
    window is a warning in the coverage statement, not a gap.
    """
    minimum = profile.minimum_window_seconds
    if minimum is None:
        return None
    covered = window_seconds(obs.captures)
    if covered >= minimum:
        return None
    shown, wanted = duration_text(covered), duration_text(minimum)
    if shown == wanted:  # 59 min 59.6 s is not "1 h"
        shown = f"{covered:.1f} s"
    return (
        f"the captures cover {shown}, less than the profile's minimum window of {wanted}"
        " (observation.minimum_window): absence is not proven"
    )


def coverage_for(obs: Observations, profile: Profile) -> Coverage:
    """The coverage statement of `obs` for `profile`'s target and minimum window."""

    def target_frames(record: NotUnderstood, capture: CaptureSummary) -> int:
        return sum(n for _, n in target_not_understood([record], capture, profile))

    return coverage_of(
        obs,
        targets=profile.target.addresses,
        minimum_window=profile.minimum_window_seconds,
        target_frames=target_frames,
    )


def conclude(
    control_id: str,
    view: TargetView,
    findings: Sequence[Finding],
    *,
    passed: str,
    failed: str,
    facts: Mapping[str, object],
    gaps: Sequence[str] = (),
    payloads: bool = False,
) -> ControlResult:
    """Turn findings and the state of the evidence into a verdict, failing closed.

    - no capture: inconclusive;
    - any violation: fail, even when the evidence is incomplete (architecture.md); the
      reason is `failed` (what was found, counted) and the first violation's summary;
    - the target sent nothing: inconclusive, silence proves nothing;
    - incomplete evidence, a window shorter than the profile's minimum (decision 11), or a
      control-specific `gaps` reason: inconclusive, naming why;
    - otherwise pass, with `passed` saying what was checked.
    """
    all_facts = dict(facts)
    kept = cap_findings(findings)
    if not view.obs.captures:
        return ControlResult(control_id, Verdict.INCONCLUSIVE, "no capture", kept, all_facts)
    missing = evidence_gaps(view.obs, payloads=payloads, profile=view.profile)
    short = short_window(view.obs, view.profile)
    if short:
        missing.append(short)
    if missing:
        all_facts["incomplete"] = list(missing)
    first = next((f for f in findings if f.severity is Severity.VIOLATION), None)
    if first is not None:
        # What else keeps the control from passing, had these violations not been found: the
        # waiver layer passes a control whose violations are all waived only when this is empty.
        all_facts["unproven"] = [*gaps] + ([] if view.sent else [SILENT_TARGET])
        reason = f"{failed}; first: {first.summary}"
        if missing:
            reason += f" (the evidence is also incomplete: {'; '.join(missing)})"
        return ControlResult(control_id, Verdict.FAIL, reason, kept, all_facts)
    if not view.sent:
        targets = ", ".join(str(a) for a in view.profile.target.addresses)
        reason = f"{SILENT_TARGET} ({view.obs.packets} packets in the capture, none from {targets})"
        return ControlResult(control_id, Verdict.INCONCLUSIVE, reason, kept, all_facts)
    if missing or gaps:
        return ControlResult(
            control_id, Verdict.INCONCLUSIVE, "; ".join([*missing, *gaps]), kept, all_facts
        )
    return ControlResult(control_id, Verdict.PASS, passed, kept, all_facts)


def combine(
    control_id: str, parts: Sequence[ControlResult], reason_prefix: str = ""
) -> ControlResult:
    """One control judged as several others (TM-AIRGAP, HY-DEACTIVATED): the worst verdict,
    every finding, and what each part left incomplete or unproven (for the waiver layer)."""
    verdict = worst(p.verdict for p in parts)
    reason = "; ".join(f"{p.control_id} {p.verdict.value}: {p.reason}" for p in parts)
    incomplete: list[str] = []
    unproven: list[str] = []
    for part in parts:
        for gap in _listed(part.facts.get("incomplete")):
            if gap not in incomplete:
                incomplete.append(gap)
        if part.verdict is Verdict.FAIL:
            listed = part.facts.get("unproven")
            unproven += _listed(listed) if isinstance(listed, list) else [part.reason]
        elif part.verdict is not Verdict.PASS:
            unproven.append(f"{part.control_id} {part.verdict.value}: {part.reason}")
    facts: dict[str, object] = {p.control_id: p.facts for p in parts}
    if incomplete:
        facts["incomplete"] = incomplete
    if verdict is Verdict.FAIL:
        facts["unproven"] = unproven
    findings = tuple(f for p in parts for f in p.findings)
    if verdict is Verdict.PASS and reason_prefix:
        reason = reason_prefix + reason
    return ControlResult(control_id, verdict, reason, findings, facts)


def _listed(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else []


def plural(count: int, noun: str) -> str:
    """A count with its noun: "1 flow", "3 flows"."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


# DNS record types whose values are addresses (RFC 1035 A, RFC 3596 AAAA).
ADDRESS_RTYPES = frozenset({1, 28})

_IPV4_REVERSE = ".in-addr.arpa"
_IPV6_REVERSE = ".ip6.arpa"
_IPV6_NIBBLES = 32


def reverse_address(name: str) -> IPAddress | None:
    """The address a full reverse-lookup name stands for ("10.2.0.192.in-addr.arpa"), or None."""
    text = name.lower().rstrip(".")
    try:
        if text.endswith(_IPV4_REVERSE):
            octets = text.removesuffix(_IPV4_REVERSE).split(".")
            return ipaddress.IPv4Address(".".join(reversed(octets))) if len(octets) == 4 else None
        if text.endswith(_IPV6_REVERSE):
            nibbles = text.removesuffix(_IPV6_REVERSE).split(".")
            if len(nibbles) != _IPV6_NIBBLES or any(len(n) != 1 for n in nibbles):
                return None
            return ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16))
    except ValueError:
        return None
    return None


def is_local_name(name: str) -> bool:
    """A name that only means something on the local segment: single-label or under `.local`.

    These are what mDNS (RFC 6762), LLMNR (RFC 4795) and NBNS carry normally.
    """
    text = name.lower().rstrip(".")
    return "." not in text or text == "local" or text.endswith(".local")


def internal_names(obs: Observations, environment: Environment) -> frozenset[str]:
    """Names an on-prem resolver answered with addresses that are all inside the environment.

    The profile has no list of internal zones: what the customer's own resolver says,
    in this capture, is the evidence that a name is internal (CNAME owners in the chain
    included). Queries by any host count.
    """
    names: set[str] = set()
    for query in obs.dns:
        if query.protocol != "dns" or is_outside(query.server, environment):
            continue
        addresses = [address_of(a.value) for a in query.answers if a.rtype in ADDRESS_RTYPES]
        if addresses and all(a is not None and environment.contains(a) for a in addresses):
            names.add(query.qname)
            names.update(a.name for a in query.answers)
    return frozenset(names)
