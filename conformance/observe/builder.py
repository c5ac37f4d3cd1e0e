"""Build `Observations` from capture files: the entry point of the observe layer.

Each file is read once, streaming, in constant memory per packet (decode/capture_reader.py,
observe/ingest.py); what is kept grows with flows and names, never with packets.
Flow ids are numbered across all files in the order the files are given, then by
each flow's first packet.

How things are decided (the model's fields say which way each time):

- Initiator: TCP SYN without ACK; else the receiver of a lone SYN-ACK; else, for a
  flow that began before the capture, ports, then capture direction flags, then the
  lower port (observe/direction.py). ICMP request/reply types say who asked; UDP and
  everything else: the sender of the first packet.
- A TCP 5-tuple used again is a new flow: a SYN without ACK opens a new connection (own
  Flow, initiator, payload inspection, ClientHello) when the earlier one ended with FIN or
  RST, was silent for over 120 s, or had its SYN answered under another ISN. The same SYN
  again before any SYN-ACK (retransmission, retry after a refusal) stays in its flow.
  Records (hellos, DNS, HTTP) go to the flow of their 5-tuple whose packets they are among.
- A TLS HelloRetryRequest is not the negotiated ServerHello: the real one that follows is.
- QUIC (observe/payloads.py, decode/quic.py): a UDP direction whose first payload is a QUIC
  long header has its Initials read on any port; their ClientHello and ServerHello are
  TLS records with `quic_version` set, `segments` counting the datagrams that carried it.
- ECH (decision 9): a ClientHello's encrypted_client_hello extension is classified once
  every capture is read, from the SVCB/HTTPS answers of all of them and the flow's
  HelloRetryRequest (observe/ech_kinds.py).
- ICMP errors belong to the flow of the packet they quote (never a flow of their own
  when they quote enough to name it); destination unreachable marks it `rejected`.
- Every frame is decoded to its transport, link-layer control, or not understood
  (controls.md decision 10; observe/accounting.py): `CaptureSummary.decoded`,
  `link_control` and `not_understood` add up to `packets`. A packet whose transport
  decoded but whose payload a parser could not read (DNS, NBNS, TLS, HTTP, a TCP data
  offset or TLS record length that lies) stays in its flow and is counted in
  `payload_not_understood`. `malformed` is the sum of both; the ANOMALY_SAMPLES of the
  lowest frames are kept with their reason.
- Drops: pcapng ISB counters plus EPB drop counts; None when the file gives none.
- Time (decision 11): silences longer than SILENCE_SECONDS and backward steps between
  consecutive packets (observe/timeline.py); the window runs from the earliest to the
  latest time any packet carried.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, MutableSequence, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import pairwise
from operator import attrgetter
from pathlib import Path
from typing import Protocol, TypeVar

from conformance.decode.capture_file import open_capture
from conformance.decode.read_ahead import OnBytes
from conformance.decode.tls import EchExtension
from conformance.errors import CaptureError
from conformance.observe import ingest as ingest_module
from conformance.observe.capture_parts import (
    CapturePart,
    ReaderFacts,
    file_identity,
    join_parts,
    observe_in_parts,
    parts_for,
)
from conformance.observe.ech_kinds import classify_hellos
from conformance.observe.flows import Addresses, FlowIds, FlowRefs
from conformance.observe.heap import release_free_heap
from conformance.observe.ingest import CaptureIngest
from conformance.observe.layers import UNSUPPORTED_LINK
from conformance.observe.merge import flow_notes
from conformance.observe.payloads import PayloadInspector
from conformance.observe.records import (
    CaptureSummary,
    DnsQuery,
    Flow,
    HttpRequest,
    IPAddress,
    NameMention,
    Observations,
    TlsClientHello,
    TlsServerHello,
    numbering,
    record_store,
    sealed_records,
)
from conformance.progress import NULL_PROGRESS, Progress

# Report progress about this often (packets): live enough for a bar, rare enough to
# cost nothing. Checked once per chunk read, never per packet.
PROGRESS_EVERY = 1 << 16
_T = TypeVar("_T")
_R = TypeVar("_R", Flow, DnsQuery, TlsClientHello, TlsServerHello, HttpRequest, NameMention)
_Hello = TypeVar("_Hello", TlsClientHello, TlsServerHello)
_P = TypeVar("_P", TlsServerHello, HttpRequest, NameMention)  # records with a packet
# While decoding, the read-ahead thread (file I/O, SHA-256, the evidence copy) needs the
# GIL briefly a few times per chunk; at CPython's default 5 ms switch interval it would
# wait that long each time behind the decoding loop and fall behind it. Measured on a 600 MB
# capture (4 MiB chunks): the decoder waited for chunks 0.26 s at 2 ms, 0.1 s at 0.5 ms,
# 0.03 s at 0.2 ms; below that the wait is gone but the reader runs further ahead (+10 MiB).
READ_SWITCH_INTERVAL_S = 0.0002


class EvidenceCopies(Protocol):
    """Who copies the captures while the decoder reads them (report.prestage): shown every
    byte as it is read and hashed, then told the file's SHA-256 and whether it saw it all.

    The SHA-256 is None when the decoder read every byte back from the copy and hashed none
    (decode/read_ahead.py): the copy's own digest is then the file's, taken by its owner.
    """

    def copier(self, source: Path) -> OnBytes | None: ...

    def done(self, source: Path, sha256: str | None, complete: bool) -> None: ...


@dataclass(slots=True)
class _Collected:
    captures: list[CaptureSummary] = dataclasses.field(default_factory=list)
    flows: MutableSequence[Flow] = dataclasses.field(default_factory=lambda: record_store(Flow))
    dns: list[DnsQuery] = dataclasses.field(default_factory=list)
    client_hellos: MutableSequence[TlsClientHello] = dataclasses.field(
        default_factory=lambda: record_store(TlsClientHello)
    )
    server_hellos: MutableSequence[TlsServerHello] = dataclasses.field(
        default_factory=lambda: record_store(TlsServerHello)
    )
    http: list[HttpRequest] = dataclasses.field(default_factory=list)
    names: list[NameMention] = dataclasses.field(default_factory=list)
    # ECH extensions by index in client_hellos, and flows whose HRR confirmed ECH
    ech: dict[int, EchExtension] = dataclasses.field(default_factory=dict)
    hrr_ech: set[int] = dataclasses.field(default_factory=set)


def observe_captures(
    paths: Sequence[Path],
    progress: Progress = NULL_PROGRESS,
    copies: EvidenceCopies | None = None,
    parts: int | None = 1,
) -> Observations:
    """Read every capture (index = position in `paths`) into one `Observations`.

    With `copies`, each capture is also copied, in the same pass, to the file
    `copies.open(path)` gives (if any). `parts` > 1 reads each capture in that many
    processes at once (observe/capture_parts.py; None: as many as the cores, for a large
    file); the records are the same as in one pass.

    Raises CaptureError only for a file that cannot be read at all (missing, empty,
    not pcap/pcapng, unsupported version); every header is checked before any file
    is read in full. A damaged tail, drops and malformed packets are recorded in
    the capture's summary instead.
    """
    for path in paths:
        open_capture(path).close()
    out = _Collected()
    address = Addresses()
    with _collector_paused(), _quick_thread_switches():
        for index, path in enumerate(paths):
            _observe_one(index, Path(path), out, progress, address, copies, parts)
    classify_hellos(out.client_hellos, out.ech, out.flows, out.dns, frozenset(out.hrr_ech))
    return Observations(
        captures=tuple(out.captures),
        flows=sealed_records(out.flows),
        dns=tuple(out.dns),
        client_hellos=sealed_records(out.client_hellos),
        server_hellos=sealed_records(out.server_hellos),
        http_requests=tuple(out.http),
        names=tuple(out.names),
        notes=flow_notes(out.flows, out.captures),
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while reading.

    The flow table, name maps and records hold no reference cycles, yet their tens of
    thousands of containers make the collector walk them over and over (measured:
    12% of the run). Reference counting still frees everything; the collector's
    previous state is restored afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def _quick_thread_switches() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(min(previous, READ_SWITCH_INTERVAL_S))
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _observe_one(
    index: int,
    path: Path,
    out: _Collected,
    progress: Progress,
    address: Addresses,
    copies: EvidenceCopies | None,
    parts: int | None,
) -> None:
    count = parts_for(_size(path), parts)
    if count <= 1:
        _append(out, _read_part(index, path, progress, address, copies), address)
        return
    before = file_identity(path)
    read = observe_in_parts(
        count,
        lambda part, of: _read_part(
            index,
            path,
            progress if part == 0 else NULL_PROGRESS,
            address,
            copies if part == 0 else None,
            part,
            of,
        ),
    )
    # Every part must have read the bytes part 0 hashed and copied.
    joined = join_parts(read) if file_identity(path) == before else None
    if joined is None:
        # Something ties the parts together: one pass decides (part 0 made the copy).
        joined = _read_part(index, path, NULL_PROGRESS, address, None)
        if joined.sha256 != read[0].sha256:
            raise CaptureError(
                path,
                "changed while it was being read (SHA-256 "
                f"{read[0].sha256} then {joined.sha256}); capture to a new file and run again",
            )
    _append(out, joined, address)


def copy_stays_cached(size: int, meminfo: Path = Path("/proc/meminfo")) -> bool:
    """Whether a copy of `size` bytes, just written, is likely still in the page cache when
    it is hashed after the walk: at most half the memory the kernel says is available
    (Linux's MemAvailable). A larger one would be read from disk a second time, where
    hashing it during the walk reads nothing twice. Unknown (no /proc/meminfo): no."""
    try:
        with meminfo.open("rb") as lines:
            for line in lines:
                if line.startswith(b"MemAvailable:"):
                    fields = line.split()
                    available = int(fields[1]) * 1024 if fields[2:3] == [b"kB"] else 0
                    return 0 < size <= available // 2
    except (OSError, ValueError, IndexError):
        pass
    return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # open_capture says what is wrong with it


def _read_part(
    index: int,
    path: Path,
    progress: Progress,
    address: Addresses,
    copies: EvidenceCopies | None,
    part: int = 0,
    parts: int = 1,
) -> CapturePart:
    """Read the capture at `path`, stepping the frames `part` of `parts` owns."""
    ingest = CaptureIngest(index, part, parts)
    reported = 0

    def report() -> None:
        nonlocal reported
        if reader.packets_read - reported >= PROGRESS_EVERY:
            reported = reader.packets_read
            progress.advance(reader.bytes_read, f"{reported} packets, {len(ingest.table)} flows")

    copier = copies.copier(path) if copies is not None else None
    complete = by_copy = False
    sha256 = ""
    try:
        with open_capture(path, report, copier, digest=part == 0) as reader:
            if parts == 1 and copy_stays_cached(_size(path)):
                # The copy's hash is taken after the walk, on a core the walk frees (#17).
                # Not for parts: a failed join compares part 0's digest at once.
                reader.hash_in_copy()
            progress.start(f"reading {path.name}", reader.file_size)
            try:
                ingest.run_reader(reader)
                ingest.finish()
            finally:
                progress.advance(
                    reader.bytes_read, f"{ingest.packets} packets, {len(ingest.table)} flows"
                )
                progress.finish()
            sha256 = reader.sha256
            complete = reader.complete
            by_copy = reader.by_copy
    finally:
        if copies is not None and copier is not None:
            copies.done(path, None if by_copy else sha256, complete)
    inspector = ingest.inspector
    # Hellos in packet order (their ECH extensions follow them): the order does not then
    # depend on when a hello's last segment came, which parts of a capture could not know.
    ordered = _packet_order(inspector.client_hellos)
    ech = _reindexed(inspector.ech_extensions, ordered)
    numbered = _Numbered(inspector, ordered, address)
    # Every record that names its flow is numbered (and the flow references let go) before
    # the flows are built: the two never both exist in full (#17: the web mix's peak).
    flows, _ = ingest.table.finish(1, address, numbered.number, record_store(Flow))
    if not numbered.done:  # records that name flows would be lost without a word
        raise RuntimeError("FlowTable.finish did not number the part's records")
    release_free_heap()  # the build's order and entries, before judging reads the records
    reassembler = ingest.walker.reassembler
    return CapturePart(
        capture=index,
        reader=ReaderFacts(
            path=str(path),
            format=reader.format,
            link_types=tuple(reader.link_types),
            interfaces=reader.interfaces,
            packets=reader.packets_read,
            bytes=reader.bytes_read,
            first_time=reader.first_time,
            last_time=reader.last_time,
            snap_truncated=reader.snap_truncated,
            truncated_file=reader.truncated,
            truncated_detail=reader.truncated_detail,
            drops=reader.drops,
            drop_detail=reader.drop_detail,
            direction_flags=reader.direction_flags,
        ),
        sha256=sha256,
        accounting=ingest.accounting,
        timeline=ingest.timeline,
        fragments=ingest.fragments,
        reassembled=ingest.reassembled,
        decoded=ingest.decoded,
        flows=flows,
        dns=numbered.dns,
        client_hellos=numbered.client,
        server_hellos=numbered.server,
        http=numbered.http,
        names=numbered.names,
        ech=ech,
        hrr_ech=numbered.hrr_ech,
        dns_pending_high=inspector.dns.pending_high,
        quic_waiting_high=inspector.quic_waiting_high,
        fragments_given_up=reassembler.given_up,
        last_fragment_time=reassembler.last_time,
        oldest_drained_fragment=reassembler.oldest_drained,
    )


class _Numbered:
    """A part's records that name their flow (DNS exchanges, hellos, HTTP requests, name
    mentions, ECH confirmations), numbered once FlowTable.finish knows the flows' ids and
    before it builds the flows; the ids are let go then."""

    def __init__(
        self,
        inspector: PayloadInspector,
        order: array[int] | None,
        address: Callable[[bytes], IPAddress],
    ) -> None:
        self._inspector = inspector
        self._order = order
        self._address = address
        self.dns: list[DnsQuery] = []
        self.client: MutableSequence[TlsClientHello] = []
        self.server: MutableSequence[TlsServerHello] = []
        self.http: list[HttpRequest] = []
        self.names: list[NameMention] = []
        self.hrr_ech: set[int] = set()
        self.done = False

    def number(self, ids: FlowIds) -> None:
        inspector = self._inspector
        order, self._order = self._order, None
        hellos = inspector.client_hellos
        self.client = _in_flows(
            TlsClientHello,
            inspector.client_refs,
            order,
            _drained(hellos) if order is None else _taken(hellos, order),
            ids,
        )
        del order  # none outlives its use (#17)
        numbered = _in_flows(
            TlsServerHello, inspector.server_refs, None, _drained(inspector.server_hellos), ids
        )
        self.server = _hellos_by_packet(numbered)
        self.dns = inspector.dns.records(ids, self._address)
        self.http = _by_packet(inspector.http_requests(ids))
        self.names = _by_packet(inspector.names(ids))
        self.hrr_ech = {ids.get(ref, packet) for ref, packet in inspector.ech_confirmed}
        ids.release()
        release_free_heap()  # the numbering's arrays and the references, before the flows
        self.done = True


def _in_flows(
    kind: type[_Hello],
    refs: FlowRefs,
    order: Sequence[int] | None,
    hellos: Iterable[_Hello],
    ids: FlowIds,
) -> MutableSequence[_Hello]:
    """Each hello (in the order of the indices `order`, None: as recorded) with the id of
    the flow its reference (the one at its index in `refs`) names at the hello's packet, in
    a new records.record_store; `refs` is emptied."""
    renumbered = numbering(kind)  # the part's own hellos: numbered in place where it can
    into = record_store(kind)
    compiled = ingest_module._COMPILED_FLOWS  # the same, compiled (observe/_flows.pyx)
    if compiled is not None:
        return compiled.in_flows(renumbered, refs, order, hellos, ids, into)  # type: ignore[no-any-return]
    flow_id = ids.get
    into.extend(
        renumbered(hello, flow_id(ref, hello.packet))
        for ref, hello in zip(refs.taken(order), hellos, strict=True)
    )
    return into


def _append(out: _Collected, part: CapturePart, address: Addresses) -> None:
    """Add one capture's records to `out`, flow ids following the earlier captures'."""
    shift = len(out.flows)
    first_hello = len(out.client_hellos)

    def moved(records: MutableSequence[_R]) -> Iterator[_R]:
        if not shift:
            return _drained(records)
        return (dataclasses.replace(r, flow_id=r.flow_id + shift) for r in _drained(records))

    if not shift:  # the first capture's flows are taken as they are (a store is not copied)
        out.flows = part.flows
    else:
        out.flows.extend(moved(part.flows))
    out.dns.extend(moved(part.dns))
    out.ech.update((first_hello + i, ext) for i, ext in part.ech.items())
    out.hrr_ech.update(i + shift for i in part.hrr_ech)
    if not shift and not out.client_hellos and not out.server_hellos:
        # The first capture's hellos are taken as they are (a store is not copied).
        out.client_hellos, out.server_hellos = part.client_hellos, part.server_hellos
    else:
        out.client_hellos.extend(moved(part.client_hellos))
        out.server_hellos.extend(moved(part.server_hellos))
    out.http.extend(moved(part.http))
    out.names.extend(moved(part.names))
    out.captures.append(_summary(part, out.flows, shift))


def _flow_times(flows: Sequence[Flow], start: int) -> tuple[float, float]:
    """The earliest first time and the latest last time of the flows from `start` on (one
    record at a time: a store's flows are made as they are read)."""
    earliest, latest = math.inf, -math.inf
    for i in range(start, len(flows)):
        flow = flows[i]
        earliest = min(earliest, flow.first_time)
        latest = max(latest, flow.last_time)
    return earliest, latest


def _summary(part: CapturePart, every: Sequence[Flow], start: int) -> CaptureSummary:
    """The capture's summary from what its reader, accounting and timeline saw."""
    reader = part.reader
    acc = part.accounting
    link_addresses, link_complete = acc.link_addresses()
    frames_not_understood = acc.frames_not_understood()
    first, last = reader.first_time, reader.last_time
    if start < len(every):  # the capture's flows: `every` from `start` on
        earliest, latest = _flow_times(every, start)
        first = earliest if first is None else min(first, earliest)
        last = latest if last is None else max(last, latest)
    timeline = part.timeline
    if timeline.backward_count and first is not None and last is not None:
        # time went backwards: the window runs from the earliest to the latest time seen
        first, last = min(first, timeline.earliest), max(last, timeline.latest)
    return CaptureSummary(
        path=reader.path,
        format=reader.format,
        sha256=part.sha256,
        link_types=reader.link_types,
        interfaces=reader.interfaces,
        packets=reader.packets,
        bytes=reader.bytes,
        first_time=first,
        last_time=last,
        malformed=acc.malformed,
        anomalies=acc.sorted_anomalies(),
        snap_truncated=reader.snap_truncated,
        truncated_file=reader.truncated_file,
        truncated_detail=reader.truncated_detail,
        drops=reader.drops,
        drop_detail=reader.drop_detail,
        direction_flags=reader.direction_flags,
        unsupported_link_packets=sum(
            n.count for n in frames_not_understood if n.reason.startswith(UNSUPPORTED_LINK)
        ),
        fragments=part.fragments,
        reassembled=part.reassembled,
        decoded=part.decoded,
        link_control=acc.link_controls(),
        not_understood=frames_not_understood,
        payload_not_understood=acc.payloads_not_understood(),
        link_addresses=link_addresses,
        link_addresses_complete=link_complete,
        silences=timeline.silences(),
        silence_count=timeline.silence_count,
        silence_seconds=timeline.silence_seconds,
        backward_steps=timeline.backward_steps(),
        backward_count=timeline.backward_count,
    )


def _packet_order(records: Sequence[_Hello]) -> array[int] | None:
    """The indices of `records` in packet order (a stable sort), None when they are in it
    already, as the observers record them unless a hello's segments interleave with
    another's: then no index is made at all (#17: 64k of them on the 2M web mix)."""
    if _packets_ascend(records):
        return None
    if isinstance(records, list | tuple):
        packets: Sequence[int] = [record.packet for record in records]
    else:  # a RecordStore reads its packet numbers without making the records
        packets = records.packets()  # type: ignore[attr-defined]
    return array("q", sorted(range(len(packets)), key=packets.__getitem__))


def _hellos_by_packet(records: MutableSequence[_Hello]) -> MutableSequence[_Hello]:
    """`_by_packet` for hellos, which may be a RecordStore: reordered into a new one."""
    if isinstance(records, list):
        return _by_packet(records)
    order = _packet_order(records)
    if order is None:
        return records
    taken: MutableSequence[_Hello] = records.taken(order)  # type: ignore[attr-defined]
    return taken


def _by_packet(records: list[_P]) -> list[_P]:
    """`records` in packet order (a stable sort), the list itself when it is in it already
    (no key per record)."""
    if _packets_ascend(records):
        return records
    return sorted(records, key=attrgetter("packet"))


def _packets_ascend(records: Sequence[_Hello | _P]) -> bool:
    if not isinstance(records, list | tuple):  # a RecordStore, which asks no record
        return records.packets_ascend()  # type: ignore[attr-defined,no-any-return]
    return all(a.packet <= b.packet for a, b in pairwise(records))


def _taken(items: MutableSequence[_T], order: Sequence[int]) -> Iterator[_T]:
    """The items of `items` in the order of their indices `order`, each let go by the list
    as it is taken: a renumbered copy and its original never both exist for every record
    (a RecordStore makes each only when it is taken)."""
    keep = not isinstance(items, list)
    for i in order:
        item = items[i]
        if not keep:
            items[i] = None  # type: ignore[assignment]
        yield item
    items.clear()


def _reindexed(by_index: dict[int, _T], order: Sequence[int] | None) -> dict[int, _T]:
    """`by_index` keyed by each index's place in `order` (only the few indices it holds;
    None: the indices are the places)."""
    if not by_index:
        return {}
    if order is None:
        return dict(by_index)
    position = {old: new for new, old in enumerate(order)}
    return {position[i]: value for i, value in by_index.items()}


def _drained(items: MutableSequence[_T]) -> Iterator[_T]:
    """The items of `items` in order, emptying the list as they are taken (a RecordStore,
    which makes each only when it is taken, once all are)."""
    if not isinstance(items, list):
        yield from items
        items.clear()
        return
    items.reverse()
    while items:
        yield items.pop()
