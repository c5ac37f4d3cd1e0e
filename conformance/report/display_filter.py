"""Wireshark/tshark display filters that show exactly a finding's packets (interface.md).

The filter is for the finding's capture as copied into the report (`evidence/capture-N.*`):

- Always the finding's packet numbers, `frame.number in {12,14..17}`: exact by
  construction, as the observers number packets as Wireshark does (1-based, per file).
- When every one of those packets is known to belong to the finding's flow (its sample
  packets, first and last packets, or a DNS, TLS, HTTP or name record on it) and Wireshark
  decodes the encapsulation it came in by default, the flow's addresses and ports are
  added, at the layer the flow was carried at
  (`Flow.encapsulation`, `Flow.ip_layer`): `ip.addr#2` is the inner IPv4 header of a GRE
  tunnel or an IPv4 VXLAN mirror, so the outer header never matches, and `udp.port#2` the
  UDP header inside VXLAN (the outer one is `udp#1`). An ICMP error the observers filed
  under the flow carries the flow's addresses one IP layer further in (the quoted header),
  so that layer is accepted inside ICMP; a fragment that does not complete its datagram
  shows no ports in Wireshark, so fragments are accepted without them. Remove the
  `frame.number` part to see the whole flow (and other connections on the same addresses
  and ports).

Layer operators (`#N`) and `in {a,b..c}` sets need Wireshark or tshark 4.0 or later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from conformance.judge.result import Finding
from conformance.observe.records import Flow, Observations

# Wireshark's protocol names for the IP headers of each version.
_IP_PROTOCOL = {4: "ip", 6: "ipv6"}
_ICMP_PROTOCOL = {4: "icmp", 6: "icmpv6"}
# Runs of this many consecutive packet numbers or more are written as a range: `3..9`.
_RANGE_RUN = 3

# VXLAN on Linux's default port (8472): the observers decode it, Wireshark decodes VXLAN
# on 4789 only unless told (`-d udp.port==8472,vxlan`); inner layers then do not exist.
_DECODE_AS_PORTS = frozenset({8472})
_DECODE_AS_LAYERS = frozenset({"vxlan"})


def frames_set(numbers: Iterable[int]) -> str:
    """`frame.number in {1,3..6}`: the packet numbers, runs as ranges."""
    ordered = sorted(set(numbers))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i + 1 >= _RANGE_RUN:
            parts.append(f"{ordered[i]}..{ordered[j]}")
        else:
            parts.extend(str(n) for n in ordered[i : j + 1])
        i = j + 1
    return "frame.number in {" + ",".join(parts) + "}"


def flow_filter(flow: Flow) -> str:
    """Both directions of `flow` (and ICMP errors quoting it), at the layer it was carried."""
    ip = _IP_PROTOCOL[flow.ip_version]
    layer = flow.ip_layer
    ends = (flow.initiator, flow.responder)

    def addresses(at: int) -> str:
        return " && ".join(f"{ip}.addr#{at} == {a}" for a in dict.fromkeys(ends))

    quoted = f"{_ICMP_PROTOCOL[flow.ip_version]} && {addresses(layer + 1)}"
    where = f"(({addresses(layer)}) || ({quoted}))"
    if flow.transport in ("tcp", "udp"):
        # this transport's headers before the flow's own: the outer UDP of VXLAN or Geneve
        at = flow.encapsulation.split(">").count(flow.transport) + 1
        ports = dict.fromkeys((flow.initiator_port, flow.responder_port))
        held = " && ".join(f"{flow.transport}.port#{at} == {p}" for p in ports)
        # Wireshark shows the ports only in the fragment that completes a datagram
        fragment = (
            f"ip.flags.mf#{layer} == 1 || ip.frag_offset#{layer} > 0"
            if flow.ip_version == 4
            else "ipv6.fraghdr"
        )
        return f"{where} && (({held}) || {fragment})"
    if flow.transport in ("icmp", "icmpv6"):
        return f"{where} && {flow.transport}"
    return where


@dataclass(frozen=True, slots=True)
class FilterContext:
    """What display filters need from the observations, computed once per report."""

    obs: Observations | None
    known: Mapping[int, frozenset[int]]  # flow id -> packets known to be that flow's
    # captures where an encapsulation rides a port Wireshark does not decode by default
    undecoded: frozenset[int] = frozenset()


def filter_context(obs: Observations | None, flow_ids: Iterable[int]) -> FilterContext:
    """The packets the observations tie to each of `flow_ids`, in one pass over records."""
    if obs is None:
        return FilterContext(None, {})
    wanted = {i for i in flow_ids if _flow(obs, i) is not None}
    known: dict[int, set[int]] = {}
    for flow_id in wanted:
        flow = obs.flows[flow_id - 1]
        packets = {*flow.sample_packets, flow.first_packet, flow.last_packet}
        if flow.first_payload_packet is not None:
            packets.add(flow.first_payload_packet)
        known[flow_id] = packets
    records: Sequence[Iterable[tuple[int, int | None]]] = (
        ((q.flow_id, p) for q in obs.dns for p in (q.packet, q.response_packet, q.last_packet)),
        ((h.flow_id, h.packet) for h in obs.client_hellos),
        ((h.flow_id, h.packet) for h in obs.server_hellos),
        ((r.flow_id, r.packet) for r in obs.http_requests),
        ((m.flow_id, m.packet) for m in obs.names),
    )
    for pairs in records:
        for flow_id, packet in pairs:
            if flow_id in known and packet is not None:
                known[flow_id].add(packet)
    undecoded = frozenset(
        f.capture
        for f in obs.flows
        if f.transport == "udp"
        and (f.initiator_port in _DECODE_AS_PORTS or f.responder_port in _DECODE_AS_PORTS)
    )
    return FilterContext(obs, {k: frozenset(v) for k, v in known.items()}, undecoded)


def display_filter(finding: Finding, context: FilterContext) -> str | None:
    """The filter showing exactly `finding`'s packets in its capture, or None without any."""
    if finding.packets is None or not finding.packets.packets:
        return None
    numbers = finding.packets.packets
    frames = frames_set(numbers)
    flow = _flow(context.obs, finding.flow_id)
    if flow is None or flow.capture != finding.packets.capture:
        return frames
    if not set(numbers) <= context.known.get(flow.flow_id, frozenset()):
        return frames
    if flow.capture in context.undecoded and _DECODE_AS_LAYERS & set(flow.encapsulation.split(">")):
        return frames  # Wireshark shows no inner layers there unless told to ("Decode As")
    return f"{frames} && {flow_filter(flow)}"


def _flow(obs: Observations | None, flow_id: int | None) -> Flow | None:
    if obs is None or flow_id is None or not 0 < flow_id <= len(obs.flows):
        return None
    flow = obs.flows[flow_id - 1]
    return flow if flow.flow_id == flow_id else None
