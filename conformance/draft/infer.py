"""What a capture shows about a deployment: the target, its segment, its endpoints, its cloud.

Every inference says why, so the draft can carry the reason as a comment:

- Target: the addresses given, else the unicast address in the most flows, with any address
  of the other IP version that sends from the same MAC (one host, two stacks).
- Link role of each address the target talks to: *on-link* when it sends from, or is reached
  at, a MAC that carries no other address of its IP version (its own), or ARP / neighbour
  discovery binds it to that MAC; *routed* when its MAC also carries other addresses (a
  router forwards for many), with no binding; *unknown* when the capture has no MACs.
- Networks: given with `--network`, else per IP version the target's /24 (IPv4) or /64
  (IPv6), the size of one segment. A routed destination is never put inside a network by
  inference: when one falls inside that prefix, the network shrinks to the smallest prefix
  covering the target and its on-link peers, and if even that holds a routed destination,
  to one host route per on-link address. Without MACs (raw IP captures) only the target
  itself is inside: give `--network`.
- Endpoints: each inside address the target opened flows to, with the ports and transports,
  flow counts, first and last time, the names DNS answers gave it (any resolver) and its
  link role. Flows on-prem clients opened to the target are listed apart.
- Proxy (hybrid): the inside address:port the target sent CONNECT requests to, most first.
- Cloud endpoints (hybrid): each external conversation named as HY-DEST names it (SNI, Host,
  CONNECT, then the target's own DNS answers); a name Imagicle documents is proposed as
  `name:port` (`/udp` for QUIC), any other is only reported.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from conformance.draft.links import LinkFacts
from conformance.errors import ConformanceError
from conformance.judge.common import SCOPE_LIMITED_NETWORKS, is_scope_limited
from conformance.judge.hybrid import external_conversations
from conformance.names import DOCUMENTED_ENDPOINT_PATTERNS, covers, normalize_name
from conformance.observe.records import Flow, IPAddress, Observations
from conformance.profile_model import (
    Environment,
    IPNetwork,
    Mode,
    Profile,
    ProxySpec,
    Target,
)

# Initial IPv4 TTLs and IPv6 hop limits of common stacks (Linux/macOS 64, Windows 128, network
# gear 255, old stacks 32): a packet that arrives with another value was forwarded.
INITIAL_HOPS: Final = frozenset({32, 64, 128, 255})
SEGMENT_PREFIX: Final = {4: 24, 6: 64}  # one segment: an IPv4 /24, an IPv6 /64 (RFC 4291 2.5.1)
HOST_PREFIX: Final = {4: 32, 6: 128}

LinkRole = Literal["on-link", "routed", "unknown"]


@dataclass
class Seen:
    """Flows of one kind: how many, when first and last."""

    flows: int = 0
    first: float = float("inf")
    last: float = float("-inf")

    def add(self, flow: Flow) -> None:
        self.flows += 1
        self.first = min(self.first, flow.first_time)
        self.last = max(self.last, flow.last_time)


@dataclass
class Peer:
    """An inside address the target opened flows to (a proposed on-prem endpoint)."""

    address: IPAddress
    ports: dict[tuple[int, str], Seen] = field(default_factory=dict)  # (port, tcp|udp)
    other: dict[str, Seen] = field(default_factory=dict)  # port-less transports: icmp, ...
    names: list[str] = field(default_factory=list)
    role: LinkRole = "unknown"
    why: str = ""

    @property
    def seen(self) -> Seen:
        total = Seen()
        for one in (*self.ports.values(), *self.other.values()):
            total.flows += one.flows
            total.first = min(total.first, one.first)
            total.last = max(total.last, one.last)
        return total


@dataclass
class Client:
    """An inside address that opened flows to the target (not an integration)."""

    address: IPAddress
    ports: dict[str, Seen] = field(default_factory=dict)  # "443/tcp" -> flows


@dataclass
class CloudEndpointSeen:
    """A documented cloud name the target reached: proposed as an allowed endpoint."""

    name: str
    port: int
    transport: str
    seen: Seen = field(default_factory=Seen)
    bases: set[str] = field(default_factory=set)  # how the flows were named: sni, connect, dns
    tunnel: bool = False

    def __str__(self) -> str:
        suffix = "/udp" if self.transport == "udp" else ""
        return f"{self.name}:{self.port}{suffix}"


@dataclass
class Network:
    """A network of the draft and why it is there."""

    network: IPNetwork
    why: str


@dataclass
class Inference:
    """Everything the draft writes, with reasons."""

    mode: Mode
    targets: tuple[IPAddress, ...]
    target_why: list[str]
    networks: list[Network]
    network_notes: list[str]
    peers: list[Peer]
    clients: list[Client]
    proxy: ProxySpec | None = None
    proxy_why: str = ""
    cloud: list[CloudEndpointSeen] = field(default_factory=list)
    cloud_unproposed: list[str] = field(default_factory=list)  # seen, not documented: reported
    outside: list[str] = field(default_factory=list)  # outside destinations, one line each
    notes: list[str] = field(default_factory=list)  # for the person reviewing


def parse_targets(given: Sequence[str]) -> tuple[IPAddress, ...]:
    """`--target` values as addresses; ConformanceError (exit 3) naming a bad one."""
    out: list[IPAddress] = []
    for text in given:
        try:
            out.append(ipaddress.ip_address(text))
        except ValueError:
            raise ConformanceError(f"--target {text}: not an IPv4 or IPv6 address") from None
    return tuple(dict.fromkeys(out))


def parse_networks(given: Sequence[str]) -> tuple[IPNetwork, ...]:
    """`--network` values (CIDR, no host bits); ConformanceError (exit 3) naming a bad one."""
    out: list[IPNetwork] = []
    for text in given:
        try:
            out.append(ipaddress.ip_network(text))
        except ValueError as exc:
            raise ConformanceError(f"--network {text}: {exc}") from None
    return tuple(dict.fromkeys(out))


def choose_targets(
    obs: Observations, links: LinkFacts, given: tuple[IPAddress, ...]
) -> tuple[tuple[IPAddress, ...], list[str]]:
    """The target's addresses and why: given, or the busiest unicast address and its twin."""
    if given:
        return given, [f"{a}: given with --target" for a in given]
    counts: Counter[IPAddress] = Counter()
    for flow in obs.flows:
        for address in (flow.initiator, flow.responder):
            if not _scope_limited(address):
                counts[address] += 1
    if not counts:
        raise ConformanceError(
            "no unicast traffic in the captures to propose a target from; give --target ADDR"
        )
    ranked = counts.most_common(3)
    best, flows = ranked[0]
    others = ", ".join(f"{a} in {n}" for a, n in ranked[1:])
    why = [
        f"{best}: proposed, in {flows} of {len(obs.flows)} flows, the most of any address"
        + (f" (next: {others})" if others else "")
        + "; give --target if it is not the UCX host"
    ]
    if len(ranked) > 1 and ranked[1][1] == flows:
        why.append(f"{ranked[1][0]} is in as many flows: the choice is a guess, give --target")
    chosen = [best]
    macs = links.source_macs.get(best, set())
    for mac in sorted(macs):
        for twin in sorted(links.addresses_of(mac, 10 - best.version), key=str):
            if twin in links.source_macs and not _scope_limited(twin) and twin not in chosen:
                chosen.append(twin)
                why.append(f"{twin}: proposed, sends from {best}'s MAC {mac} (the same host)")
    return tuple(chosen), why


def _scope_limited(address: IPAddress) -> bool:
    return any(address in n for n in SCOPE_LIMITED_NETWORKS if n.version == address.version)


def link_role(address: IPAddress, links: LinkFacts) -> tuple[LinkRole, str]:
    """Whether `address` is on the target's segment or behind a router, and why."""
    bound = links.bound.get(address, set())
    macs = links.macs_of(address)
    forwarded = sorted(links.hops.get(address, set()) - INITIAL_HOPS)
    if forwarded and not bound:
        return "routed", f"through a router: its packets arrive with TTL/hop limit {forwarded[0]}"
    if not macs and not bound:
        return "unknown", "no link-layer address for it in the capture"
    for mac in sorted(macs):
        sharing = links.addresses_of(mac, address.version) - {address}
        if sharing and mac not in bound:
            example = ", ".join(sorted((str(a) for a in sharing), key=len)[:2])
            more = f" and {len(sharing) - 2} more" if len(sharing) > 2 else ""
            return "routed", f"through a router: its MAC {mac} also carries {example}{more}"
    mac = sorted(bound or macs)[0]
    how = "ARP/neighbour discovery binds it to" if bound else "its own MAC"
    return "on-link", f"on-link: {how} {mac}"


def infer_networks(
    targets: Sequence[IPAddress],
    roles: dict[IPAddress, tuple[LinkRole, str]],
    links: LinkFacts,
) -> tuple[list[Network], list[str]]:
    """Networks by the rule in the module docstring, with reasons and notes."""
    notes: list[str] = []
    out: list[Network] = []
    if links.frames_with_macs == 0:
        notes.append(
            "the captures carry no link-layer addresses (raw IP or loopback), so the segment"
            " cannot be told from routed destinations: only the target's own addresses are"
            " inside; give --network CIDR for the Customer Environment"
        )
        for target in targets:
            host = ipaddress.ip_network(f"{target}/{HOST_PREFIX[target.version]}")
            out.append(Network(host, "the target itself (no link-layer addresses to infer from)"))
        return out, notes
    for version in (4, 6):
        own = [t for t in targets if t.version == version]
        if not own:
            continue
        on_link = [
            a for a, (role, _) in roles.items() if role == "on-link" and a.version == version
        ]
        routed = [a for a, (role, _) in roles.items() if role == "routed" and a.version == version]
        target = own[0]
        segment = ipaddress.ip_network(f"{target}/{SEGMENT_PREFIX[version]}", strict=False)
        members = [a for a in (*own, *on_link) if a in segment]
        outside_segment = sorted((a for a in on_link if a not in segment), key=str)
        if outside_segment:
            shown = ", ".join(str(a) for a in outside_segment[:5])
            notes.append(
                f"on-link beyond {segment} (left outside; add --network if they are on-prem):"
                f" {shown}"
            )
        inside_routed = [a for a in routed if a in segment]
        peers = len(members) - len(own)
        if not inside_routed:
            out.append(
                Network(
                    segment,
                    f"the target's /{segment.prefixlen} (one segment): it reaches {peers} address"
                    f"{'es' if peers != 1 else ''} in it on-link and none through a router",
                )
            )
            continue
        covering = _covering(members)
        shown = ", ".join(str(a) for a in sorted(inside_routed, key=str)[:3])
        if not any(a in covering for a in inside_routed):
            out.append(
                Network(
                    covering,
                    f"the smallest prefix covering the target and its {peers} on-link peer"
                    f"{'s' if peers != 1 else ''}: {segment} would hold {shown}, reached"
                    " through a router",
                )
            )
            continue
        notes.append(
            f"no prefix covers the target's on-link peers without {shown}, reached through a"
            " router: each on-link address is a network of its own; give --network"
        )
        for address in sorted(members, key=int):
            host = ipaddress.ip_network(f"{address}/{HOST_PREFIX[version]}")
            out.append(Network(host, "on-link; a router's destination lies between"))
    return out, notes


def _covering(addresses: Sequence[IPAddress]) -> IPNetwork:
    """The smallest CIDR prefix holding every address (all of one version)."""
    first = addresses[0]
    prefix = HOST_PREFIX[first.version]
    while True:
        network = ipaddress.ip_network(f"{first}/{prefix}", strict=False)
        if all(a in network for a in addresses):
            return network
        prefix -= 1


def onprem_peers(
    obs: Observations,
    targets: Sequence[IPAddress],
    environment: Environment,
    links: LinkFacts,
    skip: ProxySpec | None,
) -> tuple[list[Peer], list[Client]]:
    """Inside addresses the target opened flows to, and inside clients that opened flows to it."""
    names = _dns_names(obs)
    peers: dict[IPAddress, Peer] = {}
    clients: dict[IPAddress, Client] = {}
    for flow in obs.flows:
        initiated = flow.initiator in targets
        other = flow.responder if initiated else flow.initiator
        if not initiated and flow.responder not in targets:
            continue
        if other in targets or is_scope_limited(other, environment):
            continue
        if not environment.contains(other):
            continue
        if not initiated:
            client = clients.setdefault(other, Client(other))
            key = (
                f"{flow.responder_port}/{flow.transport}"
                if flow.transport in ("tcp", "udp")
                else flow.transport
            )
            client.ports.setdefault(key, Seen()).add(flow)
            continue
        if skip is not None and (other, flow.responder_port) == (skip.address, skip.port):
            continue  # the proxy: declared by `proxy:`, not an endpoint
        peer = peers.setdefault(other, Peer(other))
        if flow.transport in ("tcp", "udp"):
            peer.ports.setdefault((flow.responder_port, flow.transport), Seen()).add(flow)
        else:
            peer.other.setdefault(flow.transport, Seen()).add(flow)
    for peer in peers.values():
        peer.names = names.get(peer.address, [])
        peer.role, peer.why = link_role(peer.address, links)
    ordered = sorted(peers.values(), key=lambda p: (p.address.version, int(p.address)))
    return ordered, sorted(clients.values(), key=lambda c: (c.address.version, int(c.address)))


def _dns_names(obs: Observations) -> dict[IPAddress, list[str]]:
    """Names DNS answers in the capture gave each address (any resolver, any client)."""
    found: dict[IPAddress, dict[str, None]] = {}
    for query in obs.dns:
        for answer in query.answers:
            if answer.rtype not in (1, 28):  # A, AAAA
                continue
            try:
                address = ipaddress.ip_address(answer.value)
            except ValueError:
                continue
            for name in (query.qname, answer.name):
                if name:
                    found.setdefault(address, {})[name.rstrip(".").lower()] = None
    return {address: list(names) for address, names in found.items()}


def peer_roles(
    obs: Observations, targets: Sequence[IPAddress], links: LinkFacts
) -> dict[IPAddress, tuple[LinkRole, str]]:
    """The link role of every unicast address the target exchanged flows with."""
    roles: dict[IPAddress, tuple[LinkRole, str]] = {}
    for flow in obs.flows:
        if flow.initiator in targets:
            other = flow.responder
        elif flow.responder in targets:
            other = flow.initiator
        else:
            continue
        if other not in roles and other not in targets and not _scope_limited(other):
            roles[other] = link_role(other, links)
    return roles


def outside_destinations(
    obs: Observations,
    targets: Sequence[IPAddress],
    environment: Environment,
    roles: dict[IPAddress, tuple[LinkRole, str]],
) -> list[str]:
    """One line per outside address the target opened flows to: ports, flows, names, link."""
    names = _dns_names(obs)
    seen: dict[IPAddress, dict[str, Seen]] = {}
    for flow in obs.flows:
        if flow.initiator not in targets or flow.responder in targets:
            continue
        if environment.contains(flow.responder) or is_scope_limited(flow.responder, environment):
            continue
        key = (
            f"{flow.responder_port}/{flow.transport}"
            if flow.transport in ("tcp", "udp")
            else flow.transport
        )
        seen.setdefault(flow.responder, {}).setdefault(key, Seen()).add(flow)
    lines = []
    for address in sorted(seen, key=lambda a: (a.version, int(a))):
        ports = seen[address]
        total = sum(one.flows for one in ports.values())
        detail = ", ".join(sorted(ports))
        named = f"; named {', '.join(names[address][:3])}" if address in names else ""
        role = roles.get(address, ("unknown", ""))[1]
        link = f"; {role}" if role else ""
        lines.append(f"{address} {detail}: {total} flow{'s' if total != 1 else ''}{named}{link}")
    return lines


def infer_proxy(
    obs: Observations, targets: Sequence[IPAddress], environment: Environment
) -> tuple[ProxySpec | None, str]:
    """The inside address:port the target sent the most CONNECT requests to, and why."""
    flows = {flow.flow_id: flow for flow in obs.flows}
    counts: Counter[tuple[IPAddress, int]] = Counter()
    for request in obs.http_requests:
        flow = flows.get(request.flow_id)
        if request.method.upper() != "CONNECT" or flow is None or flow.initiator not in targets:
            continue
        if environment.contains(flow.responder):
            counts[(flow.responder, flow.responder_port)] += request.count
    if not counts:
        return None, ""
    (address, port), sent = counts.most_common(1)[0]
    why = f"the target sent {sent} CONNECT request{'s' if sent != 1 else ''} to it"
    if len(counts) > 1:
        others = ", ".join(f"{a}:{p}" for (a, p), _ in counts.most_common()[1:4])
        why += f"; also to {others} (review: one proxy is judged)"
    return ProxySpec(address, port), why


def cloud_endpoints(
    obs: Observations, provisional: Profile
) -> tuple[list[CloudEndpointSeen], list[str]]:
    """Documented cloud names the target reached (proposed), and what else it reached."""
    proposed: dict[tuple[str, int, str], CloudEndpointSeen] = {}
    reported: list[str] = []
    for cloud in external_conversations(obs, provisional):
        names = cloud.dns_names or ((cloud.name,) if cloud.name else ())
        documented = next((n for n in names if _documented(n)), None)
        where = f"{cloud.address}:{cloud.port}/{cloud.transport}"
        if cloud.ech:
            reported.append(f"{where}: its real name is hidden (encrypted ClientHello)")
            continue
        if documented is None:
            why = cloud.mismatch or (
                f"named {', '.join(names)}, not an endpoint Imagicle documents"
                if names
                else "nothing names it (no SNI, Host, CONNECT or DNS answer)"
            )
            reported.append(f"{where}: {why}")
            continue
        key = (documented, cloud.port, cloud.transport)
        entry = proposed.setdefault(key, CloudEndpointSeen(documented, cloud.port, cloud.transport))
        entry.seen.add(cloud.flow)
        entry.bases.add(cloud.basis)
        entry.tunnel = entry.tunnel or cloud.tunnel
    return sorted(proposed.values(), key=str), reported


def _documented(name: str) -> bool:
    try:
        canonical = normalize_name(name)
    except ValueError:
        return False
    return any(covers(known, canonical) for known in DOCUMENTED_ENDPOINT_PATTERNS)


def provisional_profile(
    inference_targets: Iterable[IPAddress],
    networks: Iterable[IPNetwork],
    mode: Mode,
    proxy: ProxySpec | None = None,
) -> Profile:
    """A Profile of what is inferred so far, to name flows as the judges do."""
    from pathlib import Path

    return Profile(
        source=Path("draft"),
        name="draft",
        mode=mode,
        target=Target(tuple(inference_targets)),
        environment=Environment(networks=tuple(networks)),
        proxy=proxy,
    )
