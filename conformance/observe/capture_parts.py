"""Observe one capture file on several cores, and join the parts into the one pass's records.

Issue #17: a single large capture is read by `parts` processes at once. Each one reads every
record (the file is in the page cache after the first) and steps only the frames it owns
(observe/frame_owner.py: by the unordered address pair of the first IP header, or the pair an
ICMP error quotes). Part 0 runs in this process with the capture's hashing and evidence copy;
the others are forked from it, so they start with every module imported, and send their
records back through a pipe.

`join_parts` gives exactly what one pass would have concluded, or None when it cannot be
sure, and the caller then reads the capture again in one pass (never a guess):

- flows, DNS exchanges, hellos, HTTP requests and name mentions belong to one flow each and
  so to one part; they are merged in first-packet (or packet) order and flows renumbered;
- every frame is accounted by its part; the accountings add up (observe/accounting.py keeps
  the lowest frame numbers, so the order frames were settled in does not matter), except
  where a bound was reached;
- every part checks every frame's time, so each has the whole timeline; it is taken once;
- what links flows across parts makes the join give up: two parts with flows of the same
  endpoints (an inner flow in two tunnels), time running backwards, IP fragment sets given
  up for time or room (when depends on other datagrams' fragments), a DNS query table or
  QUIC waiting list that could have reached its bound, reader facts that differ (the
  file changed while being read).
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import math
import os
import pickle
import signal
import warnings
from collections.abc import Callable, Iterator, MutableSequence, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from conformance.decode.ip import FRAGMENT_TIMEOUT
from conformance.decode.tls import EchExtension
from conformance.observe.accounting import Accounting
from conformance.observe.dnsmap import MAX_PENDING_QUERIES
from conformance.observe.payloads import MAX_QUIC_WAITING
from conformance.observe.records import (
    DnsQuery,
    Flow,
    HttpRequest,
    NameMention,
    TlsClientHello,
    TlsServerHello,
    record_store,
)
from conformance.observe.timeline import Timeline

__all__ = [
    "CapturePart",
    "ReaderFacts",
    "file_identity",
    "join_parts",
    "observe_in_parts",
    "parts_for",
]

# Below this size a file is read in one pass: forking and joining cost more than they save.
MIN_SPLIT_BYTES: Final = 64 << 20
# Parts beyond this stop paying: every part reads every record.
MAX_PARTS: Final = 4
# Fewer cores than this read a file in one pass by default (see `parts_for`).
MIN_SPLIT_CORES: Final = 3
# Parts 1.. run in forked children; the tests set this False to read them all here.
FORK_PARTS = True

_R = TypeVar("_R", DnsQuery, TlsClientHello, TlsServerHello, HttpRequest, NameMention)


@dataclass(frozen=True, slots=True)
class ReaderFacts:
    """What the reader saw of the whole file: the same in every part of one capture."""

    path: str
    format: str
    link_types: tuple[int, ...]
    interfaces: int
    packets: int
    bytes: int
    first_time: float | None
    last_time: float | None
    snap_truncated: int
    truncated_file: bool
    truncated_detail: str | None
    drops: int | None
    drop_detail: str | None
    direction_flags: bool


@dataclass(slots=True)
class CapturePart:
    """What one part (or the one pass) concluded about one capture, before its summary.

    Flow ids are numbered from 1 within the part; `ech` maps an index in `client_hellos`.
    """

    capture: int
    reader: ReaderFacts
    sha256: str
    accounting: Accounting
    timeline: Timeline
    fragments: int
    reassembled: int
    decoded: int
    flows: MutableSequence[Flow] = dataclasses.field(default_factory=list)
    dns: list[DnsQuery] = dataclasses.field(default_factory=list)
    client_hellos: MutableSequence[TlsClientHello] = dataclasses.field(default_factory=list)
    server_hellos: MutableSequence[TlsServerHello] = dataclasses.field(default_factory=list)
    http: list[HttpRequest] = dataclasses.field(default_factory=list)
    names: list[NameMention] = dataclasses.field(default_factory=list)
    ech: dict[int, EchExtension] = dataclasses.field(default_factory=dict)
    hrr_ech: set[int] = dataclasses.field(default_factory=set)
    # what decides whether parts join exactly (see the module docstring)
    dns_pending_high: int = 0
    quic_waiting_high: int = 0
    fragments_given_up: int = 0
    last_fragment_time: float = -math.inf
    oldest_drained_fragment: float = math.inf


ObservePart = Callable[[int, int], CapturePart]


def parts_for(file_size: int, requested: int | None) -> int:
    """How many parts to read a file of `file_size` bytes in (`requested` None: automatic)."""
    if requested is not None:
        return max(1, requested)
    if file_size < MIN_SPLIT_BYTES:
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    # The one pass already keeps a second core busy hashing and copying the capture
    # (decode/read_ahead.py); parts pay only on the cores beyond those two (measured on two
    # cores: the same wall time for a fifth more CPU).
    return max(1, min(cores - 1, MAX_PARTS)) if cores >= MIN_SPLIT_CORES else 1


def file_identity(path: Path) -> tuple[int, ...]:
    """What changes when a file is written to: any write updates its ctime, which no
    program can set back. Compared before and after the parts read it."""
    status = path.stat()
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def observe_in_parts(parts: int, observe_part: ObservePart) -> list[CapturePart]:
    """`observe_part(k, parts)` for every k: k >= 1 in forked children, 0 here, in order.

    A child that fails (or cannot be forked) has its part read here instead. Children still
    running when this returns early (an exception, Ctrl-C) are killed and reaped.
    """
    if not FORK_PARTS:
        return [observe_part(part, parts) for part in range(parts)]
    # part -> (pid, read end) of its child, while it is neither received nor reaped
    children: dict[int, tuple[int, int]] = {}
    try:
        for part in range(1, parts):
            with contextlib.suppress(OSError):  # no fork (EAGAIN, ENOMEM): read it here
                children[part] = _fork(lambda part=part: observe_part(part, parts))  # type: ignore[misc]
        results = [observe_part(0, parts)]
        for part in range(1, parts):
            child = children.pop(part, None)
            received = _receive(*child) if child is not None else None
            results.append(received if received is not None else observe_part(part, parts))
        return results
    finally:
        for pid, fd in children.values():
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)


def _fork(work: Callable[[], CapturePart]) -> tuple[int, int]:
    """Run `work` in a forked child that pickles its result into a pipe: (pid, read end).

    The child does nothing but decode and write: no output, no locks another thread of this
    process could hold (a progress bar's refresh thread), and it leaves with os._exit, so
    nothing of the parent (pytest, atexit handlers) runs in it.
    """
    read_end, write_end = os.pipe()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        raise
    if pid == 0:  # pragma: no cover (the child: measured through its result)
        code = 1
        try:
            os.close(read_end)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            data = pickle.dumps(work(), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_end, "wb") as out:
                out.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def _receive(pid: int, fd: int) -> CapturePart | None:
    """The child's result, or None if it failed (it is reaped either way)."""
    try:
        with os.fdopen(fd, "rb") as pipe:
            data = pipe.read()
    finally:
        _, status = os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0 or not data:
        return None
    try:
        part = pickle.loads(data)
    except Exception:  # a truncated pipe: read the part here
        return None
    return part if isinstance(part, CapturePart) else None


def join_parts(parts: Sequence[CapturePart]) -> CapturePart | None:
    """The one pass's records from its parts, or None where that cannot be exact."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if not _joinable(parts):
        return None
    flow_ids = _flow_order(parts)
    if flow_ids is None:
        return None
    accounting = first.accounting
    for part in parts[1:]:
        if not accounting.absorb(part.accounting):
            return None
    flows = record_store(
        Flow,
        (
            dataclasses.replace(flow, flow_id=flow_ids[k][flow.flow_id])
            for k, flow in _merged([p.flows for p in parts], lambda f: (f.first_packet, f.flow_id))
        ),
    )
    ech: dict[int, EchExtension] = {}
    positions = _positions([p.client_hellos for p in parts])
    for k, part in enumerate(parts):
        ech.update((positions[k][i], ext) for i, ext in part.ech.items())
    return CapturePart(
        capture=first.capture,
        reader=first.reader,
        sha256=first.sha256,
        accounting=accounting,
        timeline=first.timeline,
        fragments=sum(p.fragments for p in parts),
        reassembled=sum(p.reassembled for p in parts),
        decoded=sum(p.decoded for p in parts),
        flows=flows,
        dns=[r for _, r in _merged_records([p.dns for p in parts], flow_ids)],
        client_hellos=record_store(
            TlsClientHello,
            (r for _, r in _merged_records([p.client_hellos for p in parts], flow_ids)),
        ),
        server_hellos=record_store(
            TlsServerHello,
            (r for _, r in _merged_records([p.server_hellos for p in parts], flow_ids)),
        ),
        http=[r for _, r in _merged_records([p.http for p in parts], flow_ids)],
        names=[r for _, r in _merged_records([p.names for p in parts], flow_ids)],
        ech=ech,
        hrr_ech={flow_ids[k][i] for k, p in enumerate(parts) for i in p.hrr_ech},
    )


def _joinable(parts: Sequence[CapturePart]) -> bool:
    """Whether nothing the parts saw ties one part's records to another's."""
    first = parts[0]
    last_fragment = max(p.last_fragment_time for p in parts)
    return (
        all(p.reader == first.reader for p in parts)
        and first.timeline.backward_count == 0
        and sum(p.dns_pending_high for p in parts) < MAX_PENDING_QUERIES
        and sum(p.quic_waiting_high for p in parts) < MAX_QUIC_WAITING
        and not any(p.fragments_given_up for p in parts)
        and all(last_fragment - p.oldest_drained_fragment <= FRAGMENT_TIMEOUT for p in parts)
    )


def _flow_order(parts: Sequence[CapturePart]) -> list[dict[int, int]] | None:
    """Each part's flow id -> the joined id; None if two parts have flows between the same
    endpoints (a conversation whose frames were not all owned by one part)."""
    owner: dict[tuple[object, ...], int] = {}
    for k, part in enumerate(parts):
        for flow in part.flows:
            ends = sorted(
                (
                    (str(flow.initiator), flow.initiator_port),
                    (str(flow.responder), flow.responder_port),
                )
            )
            key = (flow.transport, *ends)
            if owner.setdefault(key, k) != k:
                return None
    ids: list[dict[int, int]] = [{} for _ in parts]
    merged = _merged([p.flows for p in parts], lambda f: (f.first_packet, f.flow_id))
    for new_id, (k, flow) in enumerate(merged, start=1):
        ids[k][flow.flow_id] = new_id
    return ids


_T = TypeVar("_T")


def _merged(
    lists: Sequence[Sequence[_T]], key: Callable[[_T], tuple[int, int]]
) -> Iterator[tuple[int, _T]]:
    """The items of every list (each in `key` order) in `key` order, with their list's index;
    ties keep the earlier list's first."""

    def tagged(k: int, items: Sequence[_T]) -> Iterator[tuple[tuple[int, int], int, int, _T]]:
        return ((key(item), k, i, item) for i, item in enumerate(items))

    for _, k, _, item in heapq.merge(*(tagged(k, items) for k, items in enumerate(lists))):
        yield k, item


def _merged_records(
    lists: Sequence[Sequence[_R]], flow_ids: Sequence[dict[int, int]]
) -> Iterator[tuple[int, _R]]:
    """Records of every part in packet order, their flow ids renumbered."""
    for k, record in _merged(lists, lambda r: (r.packet, 0)):
        yield k, dataclasses.replace(record, flow_id=flow_ids[k].get(record.flow_id, 0))


def _positions(lists: Sequence[Sequence[TlsClientHello]]) -> list[dict[int, int]]:
    """Each list's index -> the index in the packet-ordered merge (as `_merged_records`)."""
    positions: list[dict[int, int]] = [{} for _ in lists]
    indexed = [list(enumerate(items)) for items in lists]
    for new, (k, (i, _)) in enumerate(_merged(indexed, lambda item: (item[1].packet, 0))):
        positions[k][i] = new
    return positions
