"""What the window could not see (controls.md decision 11), computed from Observations.

A pure function of the observations, the target's addresses and the profile's
`observation.minimum_window`, in one pass over flows and hellos: the window (per capture
and overall), what the captures lost (drops, a truncated file, snap-length cuts), what the
clock did (silences, backward steps), TCP flows seen in one direction only, frames and
payloads not understood, and flows whose server name was hidden or never in the window.

The report renders it (report.json `coverage`, the HTML's "What this window could not
see", the terminal summary); `judge.common.conclude` makes absence claims inconclusive
when `window_seconds` is below the profile's minimum window.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter

from conformance.decode.quic import SUPPORTED_VERSIONS
from conformance.observe.records import (
    CaptureSummary,
    EchKind,
    Flow,
    IPAddress,
    NotUnderstood,
    Observations,
    PayloadKind,
    TimeStep,
)

# Decision 11: without observation.minimum_window, a window under one hour is a warning.
SHORT_WINDOW_SECONDS = 3600.0
# Time going back less than this is packets slightly out of order (a capture merging
# interfaces or CPUs timestamps them apart); further back, the clock was set or files joined.
CLOCK_JUMP_SECONDS = 1.0
# Flows named as examples per kind; the counts are exact and flows.csv has every flow.
MAX_EXAMPLES = 5
# A silence the capture's average rate would have filled with this many packets looks like
# a capture that paused rather than a quiet link.
BUSY_SILENCE_PACKETS = 100.0

_TCP_ACK = 0x10
# QUIC (RFC 9000 §17.2): a long header sets the header-form and fixed bits.
_QUIC_LONG_HEADER = 0xC0
_HTTPS_PORT = 443  # where HTTP/3 runs unless an Alt-Svc says otherwise (RFC 9114 §3.1)

_FLOW_ID = attrgetter("flow_id")
_TIME = attrgetter("time")
# Looked up once: an enum member read through its class costs as much as a flow's other tests.
_HIDDEN_ECH = (EchKind.REAL, EchKind.UNKNOWN)  # the SNI is only the public name
_TLS = PayloadKind.TLS

# How many of a not-understood count could be the target's (judge.common says how).
TargetFrames = Callable[[NotUnderstood, CaptureSummary], int]


@dataclass(frozen=True, slots=True)
class Silence:
    """No packet at all between two consecutive packets for longer than SILENCE_SECONDS."""

    capture: int
    before: int  # packet numbers around it
    after: int
    start: float  # the earlier packet's time
    seconds: float
    expected_packets: float  # what the capture's average rate would have put in it
    open_flows: int  # flows of the capture with packets before and after it

    @property
    def busy(self) -> bool:
        """The capture's rate makes a silence this long unlikely: it may have paused."""
        return self.expected_packets >= BUSY_SILENCE_PACKETS


@dataclass(frozen=True, slots=True)
class BackwardStep:
    """A packet whose time is earlier than the one before it in the file."""

    capture: int
    before: int
    after: int
    time: float  # the earlier packet's time
    seconds: float  # how far back, > 0


@dataclass(frozen=True, slots=True)
class CaptureCoverage:
    """One capture's window and what it lost."""

    capture: int
    path: str
    start: float | None
    end: float | None
    packets: int
    drops: int | None  # None: the file records none (pcap, or pcapng without counters)
    drop_detail: str | None
    truncated: bool
    truncated_detail: str | None
    snap_truncated: int
    silence_count: int
    silence_seconds: float
    silences: tuple[Silence, ...]  # the longest, longest first
    backward_count: int
    backward: tuple[BackwardStep, ...]  # the largest, largest first

    @property
    def seconds(self) -> float:
        if self.start is None or self.end is None:
            return 0.0
        return self.end - self.start

    @property
    def packets_per_second(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class FlowExample:
    """A flow to open: its row in flows.csv and a packet of it."""

    flow_id: int
    capture: int
    packet: int


@dataclass(frozen=True, slots=True)
class FlowSet:
    """Flows of one kind: an exact count, how many touch the target, a few examples."""

    count: int = 0
    target: int | None = None  # None: the target's addresses were not given
    examples: tuple[FlowExample, ...] = ()  # the target's first


@dataclass(frozen=True, slots=True)
class Unread:
    """Frames (or payloads) of one capture not understood for one reason (decision 10)."""

    capture: int
    level: str  # "frame": reached no transport; "payload": a payload parser gave up
    reason: str
    count: int
    target: int | None  # how many could be the target's; None: not known
    packets: tuple[int, ...]  # the first packet numbers


@dataclass(frozen=True, slots=True)
class HiddenNames:
    """Flows whose server name the window did not show."""

    ech: FlowSet  # real or undecided Encrypted ClientHello: the SNI is only the public name
    quic_without_initial: FlowSet  # QUIC-looking UDP with no ClientHello read from an Initial
    tls_without_sni: FlowSet  # a ClientHello with no server_name extension
    tls_without_hello: FlowSet  # TLS records with no ClientHello in the window (decision 1)


@dataclass(frozen=True, slots=True)
class Coverage:
    """The coverage statement of one run (decision 11)."""

    start: float | None
    end: float | None
    seconds: float  # time covered: the union of the captures' windows less their silences
    minimum_window_seconds: float | None  # observation.minimum_window
    captures: tuple[CaptureCoverage, ...]
    one_sided_tcp: FlowSet
    not_understood: tuple[Unread, ...]
    hidden: HiddenNames

    @property
    def span_seconds(self) -> float:
        """From the first packet of any capture to the last of any."""
        if self.start is None or self.end is None:
            return 0.0
        return self.end - self.start

    @property
    def short(self) -> bool:
        """Under the profile's minimum window, or under an hour when it sets none."""
        limit = self.minimum_window_seconds
        return self.seconds < (SHORT_WINDOW_SECONDS if limit is None else limit)

    @property
    def gates(self) -> bool:
        """The window is under the profile's minimum: absence claims are inconclusive."""
        limit = self.minimum_window_seconds
        return limit is not None and self.seconds < limit


def window_seconds(captures: Sequence[CaptureSummary]) -> float:
    """Time the captures cover: the union of their windows less their silences (overlaps
    and gaps between files count once and not at all).

    A silence (no packet at all for SILENCE_SECONDS or more) is a gap in the evidence, not
    time observed: the capture may have paused, and one late packet must not stretch a
    short capture into a long window. A capture whose silences are not all listed (more
    than MAX_TIME_STEPS) has their total taken off instead, which can only count less.
    """
    pieces: list[tuple[float, float]] = []
    unlisted = 0.0
    for c in captures:
        if c.first_time is None or c.last_time is None:
            continue
        if c.silence_count == len(c.silences):
            pieces.extend(_between_silences(c.first_time, c.last_time, c.silences))
        else:
            pieces.append((c.first_time, c.last_time))
            unlisted += c.silence_seconds
    total = 0.0
    end = None
    for first, last in sorted(pieces):
        if end is None or first > end:
            total += last - first
            end = last
        elif last > end:
            total += last - end
            end = last
    return max(0.0, total - unlisted)


def _between_silences(
    first: float, last: float, silences: Sequence[TimeStep]
) -> Iterator[tuple[float, float]]:
    """The parts of the window first..last outside every silence."""
    cursor = first
    for silence in sorted(silences, key=_TIME):
        start = max(silence.time, first)
        if start > cursor:
            yield cursor, start
        cursor = max(cursor, min(silence.time + silence.seconds, last))
    if last > cursor:
        yield cursor, last


def duration_text(seconds: float) -> str:
    """A duration for people: "2 h 5 min", "12 min 3 s", "4.5 s", "0.4 ms"."""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    if seconds < 0.1:
        return f"{seconds * 1000:.1f}".removesuffix(".0") + " ms"
    return f"{seconds:.1f}".removesuffix(".0") + " s"


def coverage_of(
    obs: Observations,
    *,
    targets: Collection[IPAddress] = (),
    minimum_window: float | None = None,
    target_frames: TargetFrames | None = None,
) -> Coverage:
    """The coverage statement of `obs`.

    `targets`: the target's addresses (flows touching them are counted apart and named
    first); `target_frames` says how many frames of a not-understood count could be the
    target's (judge.common.coverage_for passes the judges' rule).
    """
    wanted = frozenset(targets)
    hellos = _hello_flows(obs)
    one_sided = _Collector(wanted)
    ech = _Collector(wanted)
    quic = _Collector(wanted)
    no_sni = _Collector(wanted)
    no_hello = _Collector(wanted)
    for hello in obs.client_hellos:
        if hello.ech in _HIDDEN_ECH:
            kind = ech
        elif not hello.sni:
            kind = no_sni
        else:
            continue
        flow = _flow(obs, hello.flow_id)
        if flow is not None:
            kind.add(flow, hello.packet)
    for flow in obs.flows:
        transport = flow.transport
        if transport == "tcp":
            # Most flows went both ways and have a hello: the cheap tests come first.
            if (not flow.packets_in or not flow.packets_out) and _one_sided(flow):
                one_sided.add(flow, flow.first_packet)
            if flow.flow_id not in hellos and _TLS in (flow.payload_out, flow.payload_in):
                no_hello.add(flow, flow.first_payload_packet or flow.first_packet)
        elif transport == "udp" and flow.flow_id not in hellos and _looks_like_quic(flow):
            quic.add(flow, flow.first_payload_packet or flow.first_packet)
    covered = window_seconds(obs.captures)
    starts = [c.first_time for c in obs.captures if c.first_time is not None]
    ends = [c.last_time for c in obs.captures if c.last_time is not None]
    return Coverage(
        start=min(starts) if starts else None,
        end=max(ends) if ends else None,
        seconds=covered,
        minimum_window_seconds=minimum_window,
        captures=tuple(_capture(i, c, obs.flows) for i, c in enumerate(obs.captures)),
        one_sided_tcp=one_sided.result(),
        not_understood=_unread(obs.captures, target_frames),
        hidden=HiddenNames(
            ech=ech.result(),
            quic_without_initial=quic.result(),
            tls_without_sni=no_sni.result(),
            tls_without_hello=no_hello.result(),
        ),
    )


class _Collector:
    """Counts flows of one kind and keeps a few examples, the target's first."""

    def __init__(self, targets: frozenset[IPAddress]) -> None:
        self.targets = targets
        self.count = 0
        self.target = 0
        self.seen: set[int] = set()
        self.mine: list[FlowExample] = []
        self.other: list[FlowExample] = []

    def add(self, flow: Flow, packet: int) -> None:
        if flow.flow_id in self.seen:
            return
        self.seen.add(flow.flow_id)
        self.count += 1
        # Asked only here: hashing an address costs more than the rest of a flow's tests.
        mine = flow.initiator in self.targets or flow.responder in self.targets
        self.target += mine
        examples = self.mine if mine else self.other
        if len(examples) < MAX_EXAMPLES:
            examples.append(FlowExample(flow.flow_id, flow.capture, packet))

    def result(self) -> FlowSet:
        return FlowSet(
            count=self.count,
            target=self.target if self.targets else None,
            examples=tuple((self.mine + self.other)[:MAX_EXAMPLES]),
        )


def _flow(obs: Observations, flow_id: int) -> Flow | None:
    if 0 < flow_id <= len(obs.flows) and obs.flows[flow_id - 1].flow_id == flow_id:
        return obs.flows[flow_id - 1]
    return None


class _FlowIds:
    """A set of flow ids as a byte per flow (ids are dense from 1), any other id in a set: a
    frozenset of the 2M web mix's 64k hello flows was the report's passing peak (4 MiB, #17)."""

    __slots__ = ("_marks", "_others")

    def __init__(self, ids: Iterable[int], flows: int) -> None:
        marks = bytearray(flows + 1)
        others: set[int] = set()
        for flow_id in ids:
            if 0 < flow_id <= flows:
                marks[flow_id] = 1
            else:
                others.add(flow_id)
        self._marks = marks
        self._others = others

    def __contains__(self, flow_id: int) -> bool:
        if 0 < flow_id < len(self._marks):
            return self._marks[flow_id] == 1
        return flow_id in self._others


def _hello_flows(obs: Observations) -> _FlowIds:
    return _FlowIds(map(_FLOW_ID, obs.client_hellos), len(obs.flows))


def _one_sided(flow: Flow) -> bool:
    """TCP seen one way only although what was seen acknowledges the other way.

    An ACK acknowledges bytes (or a SYN) the other side sent: that side's packets existed
    and the capture does not hold them (asymmetric routing, a one-way mirror or tap).
    A lone SYN, or RST without ACK, claims nothing about the other side.
    """
    if flow.packets_in == 0 and flow.packets_out > 0:
        return bool(flow.tcp_flags_out & _TCP_ACK)
    if flow.packets_out == 0 and flow.packets_in > 0:
        return bool(flow.tcp_flags_in & _TCP_ACK)
    return False


def _looks_like_quic(flow: Flow) -> bool:
    """UDP to port 443, or whose first payload opens with a QUIC long header of a version
    the decoder knows (a DNS query can start with the same two bits)."""
    if flow.responder_port == _HTTPS_PORT:
        return True
    head = flow.payload_head_out
    return (
        len(head) >= 5
        and head[0] & _QUIC_LONG_HEADER == _QUIC_LONG_HEADER
        and int.from_bytes(head[1:5], "big") in SUPPORTED_VERSIONS
    )


def _capture(index: int, capture: CaptureSummary, flows: Sequence[Flow]) -> CaptureCoverage:
    seconds = (
        capture.last_time - capture.first_time
        if capture.first_time is not None and capture.last_time is not None
        else 0.0
    )
    rate = capture.packets / seconds if seconds > 0 else 0.0
    open_flows = _open_across(index, capture, flows)
    return CaptureCoverage(
        capture=index,
        path=capture.path,
        start=capture.first_time,
        end=capture.last_time,
        packets=capture.packets,
        drops=capture.drops,
        drop_detail=capture.drop_detail,
        truncated=capture.truncated_file,
        truncated_detail=capture.truncated_detail,
        snap_truncated=capture.snap_truncated,
        silence_count=capture.silence_count,
        silence_seconds=capture.silence_seconds,
        silences=tuple(
            Silence(
                capture=index,
                before=s.before,
                after=s.after,
                start=s.time,
                seconds=s.seconds,
                expected_packets=rate * s.seconds,
                open_flows=n,
            )
            for s, n in zip(capture.silences, open_flows, strict=True)
        ),
        backward_count=capture.backward_count,
        backward=tuple(
            BackwardStep(index, s.before, s.after, s.time, -s.seconds)
            for s in capture.backward_steps
        ),
    )


def _open_across(index: int, capture: CaptureSummary, flows: Sequence[Flow]) -> list[int]:
    """Per kept silence: the capture's flows with packets before it and after it."""
    counts = [0] * len(capture.silences)
    if not counts:
        return counts
    bounds = [(s.before, s.after) for s in capture.silences]
    for flow in flows:
        if flow.capture != index:
            continue
        for i, (before, after) in enumerate(bounds):
            if flow.first_packet <= before and flow.last_packet >= after:
                counts[i] += 1
    return counts


def _unread(
    captures: Sequence[CaptureSummary], target_frames: TargetFrames | None
) -> tuple[Unread, ...]:
    out = []
    for index, capture in enumerate(captures):
        for level, records in (
            ("frame", capture.not_understood),
            ("payload", capture.payload_not_understood),
        ):
            for record in records:
                out.append(
                    Unread(
                        capture=index,
                        level=level,
                        reason=record.reason,
                        count=record.count,
                        target=target_frames(record, capture) if target_frames else None,
                        packets=record.frames,
                    )
                )
    return tuple(out)
