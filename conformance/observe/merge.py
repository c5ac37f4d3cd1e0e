"""Merge the observations of two sets of capture files into one `Observations`.

`merge(a, b)` is what the observers would have concluded had they read a's captures and then
b's, as far as separate reading allows. It is the one merge in the harness: parallel judging
of several files (observe.parallel), the periods of `watch`, and the capture reader's split
of one large file all call it. It is associative, `merge(merge(a, b), c) == merge(a,
merge(b, c))`, for captures merged in time order (the files of one rotating capture), and
any split of a capture into files judged apart and merged gives the verdicts of the single
pass (tests/observe/test_merge.py splits built captures at every packet boundary).

How the parts fit together:

- Captures: b's follow a's; every capture index of b's records (flows, DNS, hellos,
  requests, names, anomalies) is shifted by the number of a's captures. Each capture keeps
  its own summary (counts, not-understood frames, drops), so judges sum them as for files
  read one after another.
- Flows: a flow that went on across a file boundary is one flow. A part continues an
  earlier one when both have the same transport, endpoints, encapsulation and IP layer,
  the later part begins in another capture after the earlier ended (no overlap: two
  capture points that saw the same packets stay two flows) and it does not open a new TCP
  connection (its SYN is in it: observe/flows.py makes a SYN a new connection after an
  earlier one ended, and a merge cannot see the ISN that tells a retransmission apart, so a
  SYN across a file boundary always starts a new flow). Counts are summed, flags OR-ed; the
  direction is the strongest basis of any part (TCP: SYN over SYN-ACK over ports and
  direction flags; other protocols: the first packet, the earliest part's), the earliest
  part's on a tie. The flow keeps its first capture, first packet and sample packets; its
  packets in later captures are listed in `Flow.continued`.
- Flow ids are renumbered densely in (capture, first packet) order, as the observers number
  them, and every reference (DNS, hellos, requests, names) follows its flow.
- DNS: identical exchanges on one flow (observe/dnsmap.py's repeats) in two files are one
  record: counts summed, runs of valid answers joined (a run goes on across the boundary
  while the answers were still valid), up to dnsmap.MAX_ANSWER_RUNS per record. HTTP
  requests repeated on one flow are one record with their counts summed; a name mention is
  kept once per flow, as the observers keep it.
- Notes: the observers' notes about flows (how many began before the capture) are counted
  again over the merged flows; every other note is kept once.

What a split cannot give back (docs/continuous.md): bytes that were in neither file alone.
A TLS ClientHello whose segments straddle a file boundary is counted as an incomplete
hello in the first file (payload not understood: HY-DEST and HY-TLS cannot pass on that
evidence) and its server name is read only if it is in the first part; an IP fragment set
cut by a boundary is counted as incomplete in each file; a DNS answer in the file after its
query stays a record of its own (the query unanswered, the answer without its query). None
of these can turn a fail into a pass: the record left is the more cautious one.

Evidence other than captures (proxy log, host facts, probes, ...) belongs to one run: a
merge keeps the one side's, and refuses (ValueError) two different ones.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Final, TypeVar

from conformance.observe.dnsmap import MAX_ANSWER_RUNS
from conformance.observe.records import (
    Anomaly,
    CaptureSummary,
    DnsQuery,
    Flow,
    FlowPart,
    HttpRequest,
    InitiatorBasis,
    NameMention,
    Observations,
    PayloadKind,
    TlsClientHello,
    TlsServerHello,
    record_store,
    sealed_records,
)

__all__ = ["merge", "merge_all"]

_T = TypeVar("_T")
# The records that cite a capture (and, but for Anomaly, a flow).
_Cited = TypeVar(
    "_Cited", DnsQuery, TlsClientHello, TlsServerHello, HttpRequest, NameMention, Anomaly
)
_Named = TypeVar("_Named", DnsQuery, TlsClientHello, TlsServerHello, HttpRequest, NameMention)
_Stored = TypeVar("_Stored", Flow, TlsClientHello, TlsServerHello)
_Side = int  # 0: a, 1: b

# TCP initiator bases by strength: the one the most telling part used decides a merged flow.
_TCP_RANK: Final = {InitiatorBasis.SYN: 3, InitiatorBasis.SYN_ACK: 2}
_TCP_ACK = 0x10
# RFC 1035 address record types: their TTL decides how long an exchange's answers are valid.
_ADDRESS_RTYPES = frozenset({1, 28})

# The observers' own notes about flows (observe/builder.py `_notes`): counted again after a
# merge, since a flow that went on across files is no longer one that began before its file.
_FLOW_NOTES = (
    re.compile(r"\d+ TCP flows began before the capture; their direction was decided .*"),
    re.compile(r"\d+ TCP flows were seen from the SYN-ACK on \(the SYN was not captured\).*"),
    re.compile(r"\d+ packets on unsupported link types were skipped"),
)


def merge(a: Observations, b: Observations) -> Observations:
    """The observations of a's captures followed by b's (see the module docstring)."""
    offset = len(a.captures)
    b = _shifted(b, offset) if offset else b
    flows, ids = _merge_flows(a.flows, b.flows)

    def renumber(side: _Side, old: int) -> int:
        return ids.get((side, old), 0)

    return Observations(
        captures=a.captures + b.captures,
        flows=flows,
        dns=_merge_dns(_remapped(a.dns, b.dns, renumber)),
        client_hellos=_stored(
            TlsClientHello, _sorted(_remapped(a.client_hellos, b.client_hellos, renumber))
        ),
        server_hellos=_stored(
            TlsServerHello, _sorted(_remapped(a.server_hellos, b.server_hellos, renumber))
        ),
        http_requests=_merge_http(_remapped(a.http_requests, b.http_requests, renumber)),
        names=_merge_names(_remapped(a.names, b.names, renumber)),
        notes=_notes(a.notes + b.notes, flows, a.captures + b.captures),
        source=_source(a.source, b.source),
        probes=_one("probes", a.probes, b.probes),
        proxy_log=_one("proxy_log", a.proxy_log, b.proxy_log),
        content=_one("content", a.content, b.content),
        impostors=_one("impostors", a.impostors, b.impostors),
        endpoint_scan=_one("endpoint_scan", a.endpoint_scan, b.endpoint_scan),
        host=_one("host", a.host, b.host),
        stimuli=_one("stimuli", a.stimuli, b.stimuli),
        known_people=tuple(dict.fromkeys(a.known_people + b.known_people)),
    )


def merge_all(parts: Iterable[Observations]) -> Observations:
    """Every part merged in order (no parts: no captures)."""
    merged: Observations | None = None
    for part in parts:
        merged = part if merged is None else merge(merged, part)
    return merged if merged is not None else Observations(captures=(), flows=())


# -- capture indices ------------------------------------------------------------------------


def _shifted(obs: Observations, offset: int) -> Observations:
    """`obs` with every capture index moved up by `offset`."""

    def move(record: _Cited) -> _Cited:
        return dataclasses.replace(record, capture=record.capture + offset)

    flows = _stored(
        Flow,
        (
            dataclasses.replace(
                f,
                capture=f.capture + offset,
                continued=tuple(
                    FlowPart(p.capture + offset, p.first_packet, p.last_packet) for p in f.continued
                ),
            )
            for f in obs.flows
        ),
    )
    captures = tuple(
        dataclasses.replace(c, anomalies=tuple(move(x) for x in c.anomalies)) if c.anomalies else c
        for c in obs.captures
    )
    return dataclasses.replace(
        obs,
        captures=captures,
        flows=flows,
        dns=tuple(move(q) for q in obs.dns),
        client_hellos=_stored(TlsClientHello, (move(h) for h in obs.client_hellos)),
        server_hellos=_stored(TlsServerHello, (move(h) for h in obs.server_hellos)),
        http_requests=tuple(move(r) for r in obs.http_requests),
        names=tuple(move(m) for m in obs.names),
    )


# -- flows ----------------------------------------------------------------------------------

_GroupKey = tuple[Hashable, ...]


def _group_key(flow: Flow) -> _GroupKey:
    """What two parts of one conversation share, whichever way each was oriented."""
    ends = sorted(
        ((int(flow.initiator), flow.initiator_port), (int(flow.responder), flow.responder_port))
    )
    return (flow.transport, flow.ip_version, *ends[0], *ends[1], flow.encapsulation, flow.ip_layer)


def _last_capture(flow: Flow) -> int:
    return flow.continued[-1].capture if flow.continued else flow.capture


def _continues(earlier: Flow, later: Flow) -> bool:
    """Whether `later` is the same conversation going on after a file boundary."""
    if later.capture == _last_capture(earlier) or later.first_time < earlier.last_time:
        return False
    # A SYN opens a new connection (observe/flows.py): never a continuation.
    return not (later.transport == "tcp" and later.handshake_seen)


def _rank(flow: Flow) -> int:
    return _TCP_RANK.get(flow.initiator_basis, 1) if flow.transport == "tcp" else 0


def _same_way(flow: Flow, lead: Flow) -> bool:
    return (flow.initiator, flow.initiator_port) == (lead.initiator, lead.initiator_port)


def _reversed(flow: Flow) -> Flow:
    """`flow` seen from the other side (for a part the merged flow orients the other way).

    What a flow keeps only for its initiator (the first payload's packet and bytes) is
    unknown for the other side: kept empty.
    """
    accepted = flow.packets_out > 0 and (
        flow.transport != "tcp"
        or flow.payload_out is not PayloadKind.NONE
        or bool(flow.tcp_flags_out & _TCP_ACK)
    )
    return dataclasses.replace(
        flow,
        initiator=flow.responder,
        initiator_port=flow.responder_port,
        responder=flow.initiator,
        responder_port=flow.initiator_port,
        answered=flow.packets_out > 0,
        accepted=accepted,
        rejected=False,
        packets_out=flow.packets_in,
        packets_in=flow.packets_out,
        bytes_out=flow.bytes_in,
        bytes_in=flow.bytes_out,
        tcp_flags_out=flow.tcp_flags_in,
        tcp_flags_in=flow.tcp_flags_out,
        payload_out=flow.payload_in,
        payload_in=flow.payload_out,
        first_payload_packet=None,
        payload_head_out=b"",
    )


def _join(earlier: Flow, later: Flow) -> Flow:
    """One flow from two parts of a conversation, `earlier` first in time."""
    lead = later if _rank(later) > _rank(earlier) else earlier
    first = earlier if _same_way(earlier, lead) else _reversed(earlier)
    then = later if _same_way(later, lead) else _reversed(later)
    accepted = first.accepted or then.accepted
    rejected = first.rejected or then.rejected
    if first.transport == "tcp":
        rejected = rejected and not accepted
    payload_from = first if first.payload_out is not PayloadKind.NONE else then
    return dataclasses.replace(
        first,
        initiator=lead.initiator,
        initiator_port=lead.initiator_port,
        responder=lead.responder,
        responder_port=lead.responder_port,
        initiator_basis=lead.initiator_basis,
        handshake_seen=lead.handshake_seen,
        answered=first.answered or then.answered,
        accepted=accepted,
        rejected=rejected,
        packets_out=first.packets_out + then.packets_out,
        packets_in=first.packets_in + then.packets_in,
        bytes_out=first.bytes_out + then.bytes_out,
        bytes_in=first.bytes_in + then.bytes_in,
        last_time=max(first.last_time, then.last_time),
        tcp_flags_out=first.tcp_flags_out | then.tcp_flags_out,
        tcp_flags_in=first.tcp_flags_in | then.tcp_flags_in,
        payload_out=payload_from.payload_out,
        payload_in=(
            first.payload_in if first.payload_in is not PayloadKind.NONE else then.payload_in
        ),
        first_payload_packet=payload_from.first_payload_packet,
        payload_head_out=payload_from.payload_head_out,
        continued=(
            *first.continued,
            FlowPart(then.capture, then.first_packet, then.last_packet),
            *then.continued,
        ),
    )


def _merge_flows(
    a: Sequence[Flow], b: Sequence[Flow]
) -> tuple[Sequence[Flow], dict[tuple[_Side, int], int]]:
    """Every flow of a and b, continuations joined, numbered densely; the new id of each old
    (side, id)."""
    groups: dict[_GroupKey, list[tuple[_Side, Flow]]] = {}
    for side, flows in ((0, a), (1, b)):
        for flow in flows:
            groups.setdefault(_group_key(flow), []).append((side, flow))
    # (merged flow, the (side, old id) of every part)
    merged: list[tuple[Flow, list[tuple[_Side, int]]]] = []
    for parts in groups.values():
        if len(parts) == 1:
            side, flow = parts[0]
            merged.append((flow, [(side, flow.flow_id)]))
            continue
        parts.sort(key=lambda p: (p[1].first_time, p[1].capture, p[1].first_packet))
        side, current = parts[0]
        members = [(side, current.flow_id)]
        for side, flow in parts[1:]:
            # Parts of one side were joined when that side was made: only a boundary
            # between the two sides is new.
            if side != members[-1][0] and _continues(current, flow):
                current = _join(current, flow)
                members.append((side, flow.flow_id))
                continue
            merged.append((current, members))
            current, members = flow, [(side, flow.flow_id)]
        merged.append((current, members))
    merged.sort(key=lambda m: (m[0].capture, m[0].first_packet, m[1][0]))
    numbered: list[Flow] = []
    ids: dict[tuple[_Side, int], int] = {}
    for number, (flow, members) in enumerate(merged, start=1):
        numbered.append(
            dataclasses.replace(flow, flow_id=number) if flow.flow_id != number else flow
        )
        for member in members:
            ids[member] = number
    return _stored(Flow, numbered), ids


# -- records that name a flow ---------------------------------------------------------------


def _remapped(
    a: Sequence[_Named], b: Sequence[_Named], renumber: Callable[[_Side, int], int]
) -> list[tuple[_Side, _Named]]:
    """Both sides' records with their flow ids renumbered, tagged with their side."""
    out: list[tuple[_Side, _Named]] = []
    for side, records in ((0, a), (1, b)):
        for record in records:
            new = renumber(side, record.flow_id)
            same = new == record.flow_id
            out.append((side, record if same else dataclasses.replace(record, flow_id=new)))
    return out


def _stored(kind: type[_Stored], records: Iterable[_Stored]) -> Sequence[_Stored]:
    """Flows or hellos as the observers keep them (records.record_store, sealed)."""
    return sealed_records(record_store(kind, records))


def _sorted(records: list[tuple[_Side, _Named]]) -> tuple[_Named, ...]:
    """The records in capture and packet order (the observers' order within a capture)."""
    ordered = sorted(records, key=lambda r: (r[1].capture, r[1].packet))
    return tuple(r for _, r in ordered)


def _dns_identity(query: DnsQuery) -> Hashable:
    """What makes two records the same exchange repeated (observe/dnsmap.py's identity)."""
    return (
        query.flow_id,
        query.client,
        query.client_port,
        query.protocol,
        query.qname,
        query.qtype,
        query.response_packet is not None,
        query.rcode,
        query.answers,
    )


def _lifetime(query: DnsQuery) -> float:
    """How long the exchange's answers stay valid (as observe/dnsmap.py decides it)."""
    answers = query.answers
    ttls = [a.ttl for a in answers if a.rtype in _ADDRESS_RTYPES] or [a.ttl for a in answers]
    return float(min(ttls)) if ttls else float("inf")


def _runs(query: DnsQuery) -> tuple[tuple[float, float], ...]:
    if query.answer_runs:
        return query.answer_runs
    return ((query.time, query.last_time if query.last_time is not None else query.time),)


def _join_dns(earlier: DnsQuery, later: DnsQuery) -> DnsQuery | None:
    """One record of the exchange repeated in two files, or None past the bound of runs."""
    runs = list(_runs(earlier))
    following = list(_runs(later))
    start, end = following[0]
    if start <= runs[-1][1] + _lifetime(earlier):  # still valid: the run goes on
        runs[-1] = (runs[-1][0], max(runs[-1][1], end))
        following.pop(0)
    runs += following
    if len(runs) > MAX_ANSWER_RUNS:
        return None
    last_time = later.last_time if later.last_time is not None else later.time
    return dataclasses.replace(
        earlier,
        count=earlier.count + later.count,
        # The last repeat's packet is cited only where it is in this record's capture.
        last_time=max(last_time, earlier.last_time or earlier.time),
        answer_runs=tuple(runs),
    )


def _merge_dns(records: list[tuple[_Side, DnsQuery]]) -> tuple[DnsQuery, ...]:
    by_identity: dict[Hashable, list[tuple[_Side, DnsQuery]]] = {}
    for side, query in records:
        by_identity.setdefault(_dns_identity(query), []).append((side, query))
    out: list[DnsQuery] = []
    for group in by_identity.values():
        if len(group) == 1:
            out.append(group[0][1])
            continue
        group.sort(key=lambda r: (r[1].time, r[1].capture, r[1].packet))
        side, current = group[0]
        for other_side, query in group[1:]:
            joined = (
                _join_dns(current, query)
                if other_side != side and query.capture != current.capture
                else None
            )
            if joined is None:
                out.append(current)
                current = query
            else:
                current = joined
            side = other_side
        out.append(current)
    out.sort(key=lambda q: (q.capture, q.packet))
    return tuple(out)


def _merge_http(records: list[tuple[_Side, HttpRequest]]) -> tuple[HttpRequest, ...]:
    """One record per flow and request head, counts summed; the earliest is cited."""
    kept: dict[Hashable, HttpRequest] = {}
    for _, request in sorted(records, key=lambda r: (r[1].capture, r[1].packet)):
        identity = (request.flow_id, request.method, request.target, request.version, request.host)
        known = kept.get(identity)
        if known is None:
            kept[identity] = request
        else:
            kept[identity] = dataclasses.replace(known, count=known.count + request.count)
    return tuple(sorted(kept.values(), key=lambda r: (r.capture, r.packet)))


def _merge_names(records: list[tuple[_Side, NameMention]]) -> tuple[NameMention, ...]:
    """Each name once per flow and protocol, the earliest mention cited."""
    kept: dict[Hashable, NameMention] = {}
    for _, mention in sorted(records, key=lambda r: (r[1].capture, r[1].packet)):
        kept.setdefault((mention.flow_id, mention.protocol, mention.name), mention)
    return tuple(kept.values())


# -- notes and evidence beyond the captures -------------------------------------------------


def flow_notes(flows: Iterable[Flow], captures: Iterable[CaptureSummary]) -> tuple[str, ...]:
    """How directions were decided where the captures did not show who opened a flow
    (the observers' notes, observe/builder.py, counted over `flows`)."""
    by_port = by_flag = by_synack = 0
    for flow in flows:
        if flow.transport != "tcp":
            continue
        basis = flow.initiator_basis
        by_port += basis is InitiatorBasis.PORT_HEURISTIC
        by_flag += basis is InitiatorBasis.DIRECTION_FLAG
        by_synack += basis is InitiatorBasis.SYN_ACK
    notes = []
    if by_port or by_flag:
        if by_port and by_flag:
            how = f"by port ({by_port}) or by the capture's direction flags ({by_flag})"
        else:
            how = "by port" if by_port else "by the capture's direction flags"
        notes.append(
            f"{by_port + by_flag} TCP flows began before the capture; "
            f"their direction was decided {how}"
        )
    if by_synack:
        notes.append(
            f"{by_synack} TCP flows were seen from the SYN-ACK on (the SYN was not captured); "
            "the receiver of the SYN-ACK is taken as the initiator"
        )
    unsupported = sum(c.unsupported_link_packets for c in captures)
    if unsupported:
        notes.append(f"{unsupported} packets on unsupported link types were skipped")
    return tuple(notes)


def _notes(
    notes: Sequence[str], flows: Sequence[Flow], captures: Sequence[CaptureSummary]
) -> tuple[str, ...]:
    others = [n for n in dict.fromkeys(notes) if not any(p.fullmatch(n) for p in _FLOW_NOTES)]
    return (*others, *flow_notes(flows, captures))


def _source(a: str, b: str) -> str:
    """Both sources named once each: "pcap", or "pcap+host" for different ones."""
    parts = dict.fromkeys(p for s in (a, b) for p in s.split("+") if p)
    return "+".join(parts)


def _one(field: str, a: _T | None, b: _T | None) -> _T | None:
    """The evidence of one run that only one side may hold."""
    if a is None or b is None or a == b:
        return a if a is not None else b
    raise ValueError(f"merge: both observations hold a different {field}; merge captures only")
