"""The flow table: per-direction counters while reading, oriented `Flow`s at the end.

While a capture is read, each direction of a conversation is one entry, keyed by
the bytes of its addresses and ports exactly as they sit in the packet:

    IPv4: src(4) dst(4) sport(2) dport(2)     IPv6: src(16) dst(16) sport(2) dport(2)

so the hot loop can use one slice of the IPv4 header (bytes 12..24 with the ports
right behind it) as the key. ICMP uses Community ID port equivalents (type and the
counterpart type or code) in the port positions; other protocols use zeros.
Directions are merged, and the initiator decided, only in `finish`.

An entry is a list indexed by the constants below (lists are the fastest mutable
record CPython has); nothing per packet is retained beyond SAMPLE_PACKETS_PER_FLOW.
"""

from __future__ import annotations

import ipaddress
import os
import struct
import tempfile
from array import array
from collections.abc import Callable, Iterator, MutableSequence, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from conformance.decode.icmp import ICMP_COUNTERPART, ICMPV6_COUNTERPART, is_request
from conformance.decode.ip import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP
from conformance.observe.direction import (
    responder_by_number,
    responder_by_rank,
    udp_response_first,
)
from conformance.observe.heap import release_free_heap
from conformance.observe.records import (
    SAMPLE_PACKETS_PER_FLOW,
    Flow,
    InitiatorBasis,
    IPAddress,
    PacketNumbers,
    PayloadKind,
    maker,
)

# Entry slots: of `new_entry`'s list, and of the compiled step's `Entry` (observe/_step.pyx,
# its layout in _step.pxd, checked against these when it is imported).
PKTS = 0  # packets sent in this direction
BYTES = 1  # IP bytes on the wire
T_FIRST = 2
T_LAST = 3
N_FIRST = 4  # packet numbers
N_LAST = 5
TCP_FLAGS = 6  # OR of TCP flags
SAMPLES = 7  # first packet numbers (array of int64, bounded: 8 bytes each, no int objects)
WANT = 8  # payload inspection still wanted (payloads.W_* bits); 0 when done
TCP_OPEN = 9  # bit SYN_SEEN: SYN without ACK sent; bit SYNACK_SEEN: SYN-ACK sent
RSTS = 10  # RST segments sent
DIRS = 11  # OR of capture direction flags (1 inbound, 2 outbound)
ICMP_CODE = 12  # code of the first ICMP message
KIND = 13  # PayloadKind of the first payload
PAYLOAD_N = 14  # packet number of the first payload, 0 if none
HEAD = 15  # first bytes of that payload
ERRORS = 16  # ICMP errors quoting this direction's packets: IcmpErrors or None
STREAM = 17  # payload reassembly state (owned by payloads.PayloadInspector) or None
ISN = 18  # TCP: sequence number (4 bytes) of the last SYN without ACK sent, or None
CARRIED = 19  # (encapsulation, IP layer) of the first packet when inside a tunnel, else None

SYN_SEEN = 1
SYNACK_SEEN = 2

# FlowRefs.flush: the walk's hellos name their flows in this many bytes at most before the
# references go to a file (about 17k IPv4 references).
REFS_FLUSH_BYTES = 1 << 18

TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10

PAYLOAD_HEAD_BYTES = 64  # Flow.payload_head_out bound
# ... of a TLS payload: its record header. Findings read a TLS flow's first byte (an
# application-data record before any handshake); only other payloads are shown (#17: 64
# bytes kept for every TLS flow of a web capture, 3 MiB of 52k).
TLS_HEAD_BYTES = 5
# Flows seen only by their IP header (a fragment set without its first fragment, a
# transport header that does not parse) are filed under PORTLESS + protocol with zero
# ports, so they never merge with the protocol's real 5-tuples; their transport is
# "ip-<protocol>" (controls.md decision 10: the IP header still counts).
PORTLESS = 256
# A SYN on a TCP 5-tuple silent this long opens a new connection, whatever came before (a
# SYN is retransmitted for about two minutes at most: RFC 6298 backoff, tcp_syn_retries).
TCP_REUSE_IDLE_S = 120.0
# The compiled step moves TCP connections that ended (FIN both ways, or a RST) out of the
# table into a spill file (observe/_spill.pyx), looking for them every SPILL_SWEEP_PACKETS
# packets among those silent for SPILL_QUIET_PACKETS, once the table holds
# SPILL_FROM_DIRECTIONS TCP directions; a later packet brings one back (#17: the table then
# holds the connections open at once, not every connection of the capture). It costs the
# walk about as much as it saves in allocations (the 2M web mix: within noise; the 2M scan
# mix, 500k connections: 3%; docs/scaling.md), so it starts at the first sweep.
# SPILL_SWEEP_PACKETS 0: never.
SPILL_SWEEP_PACKETS = 1 << 16
SPILL_FROM_DIRECTIONS = 0
SPILL_QUIET_PACKETS = 1 << 16

Entry = list[Any]  # or the compiled step's Entry, read and written by the same slots
FlowRef = tuple[int, bytes]  # (protocol, the smaller of the two direction keys)


_TRANSPORTS = {
    IPPROTO_TCP: "tcp",
    IPPROTO_UDP: "udp",
    IPPROTO_ICMP: "icmp",
    IPPROTO_ICMPV6: "icmpv6",
}
_V4_KEY = 12
_V6_KEY = 36
_V4_KEY_PARTS = struct.Struct("!4s4sHH")  # one call instead of four slices
_FLOW = maker(Flow)  # every field given, in order (records.maker)
_REUSED = -1  # FlowIds: the reference names several flows (flow ids are positive)


@dataclass(slots=True)
class IcmpErrors:
    """ICMP errors that quote packets of one direction."""

    count: int = 0
    bytes: int = 0
    rejected: bool = False  # a destination-unreachable among them
    from_peer: bool = False  # sent by the quoted packet's destination itself


def reverse_key(key: bytes) -> bytes:
    """The key of the opposite direction."""
    if len(key) == _V4_KEY:
        src, dst, sport, dport = _V4_KEY_PARTS.unpack(key)
        return _V4_KEY_PARTS.pack(dst, src, dport, sport)
    return key[16:32] + key[0:16] + key[34:36] + key[32:34]


def flow_ref(proto: int, key: bytes) -> FlowRef:
    """A direction-independent name for the flow a direction key belongs to."""
    rkey = reverse_key(key)
    return (proto, key if key <= rkey else rkey)


class FlowRefs:
    """The flow each of a list of records names, in the records' order: (protocol, a
    direction key) packed in one buffer, read back as `FlowRef`s.

    A hello names its flow this way, not by its direction's entry, so the entry can leave
    the walk's table (a closed connection's spill, #17) while its hellos stay; and not by a
    `FlowRef` of its own, a tuple and a key per hello (13 MiB for the web mix's 129k). The
    compiled step appends to `packed` itself, and the compiled numbering reads it
    (observe/_step.pyx `_add_ref`, observe/_flows.pyx `in_flows`).

    While the walk goes on, each REFS_FLUSH_BYTES of references go to an unlinked scratch
    file (`flush`; #17: 2.2 MiB of the 2M web mix's walk), and `whole` brings them back into
    `packed`, in place, once the walk is over and its read-ahead is gone. Without a file, or
    once it takes no more, they stay in `packed`.
    """

    __slots__ = ("_file", "_on_file", "_writable", "packed")

    def __init__(self) -> None:
        # Per reference: protocol (2 bytes, little end), the key's size (1 byte), the key.
        self.packed = bytearray()
        self._file: BinaryIO | None = None
        self._on_file = 0  # bytes the file holds, in front of `packed`
        self._writable = True  # False once no file could be made or one took no more

    def add(self, proto: int, key: bytes) -> None:
        """Name the flow of direction `key` (either direction names the same flow)."""
        self.packed += proto.to_bytes(2, "little") + len(key).to_bytes(1, "little") + key
        if len(self.packed) >= REFS_FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """The references so far to the scratch file, `packed` emptied in place (the
        compiled step holds it)."""
        if not self._writable or not self.packed:
            return
        try:
            if self._file is None:
                # Unlinked: nothing left behind. Kept open across calls, closed by `whole`,
                # `clear` or the references' end.
                self._file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115
            written = self._file.write(self.packed)
        except OSError:
            written = None
        if written != len(self.packed):  # none, or a full disk: what follows stays here
            self._writable = False
            return
        self._on_file += len(self.packed)
        del self.packed[:]

    def whole(self) -> bytearray:
        """`packed` with every reference the file holds back in front, in place; the file
        is let go. OSError when the file cannot be read back whole."""
        if self._file is not None:
            file, self._file = self._file, None
            written = bytearray()
            with file:
                while len(written) < self._on_file:  # a read returns 2 GiB at most
                    got = os.pread(file.fileno(), self._on_file - len(written), len(written))
                    if not got:
                        raise OSError(
                            f"flow references: {len(written)} of {self._on_file} bytes read back"
                        )
                    written += got
            self.packed[0:0] = written
            self._on_file = 0
        return self.packed

    def __del__(self) -> None:
        if self._file is not None:
            self._file.close()

    def _starts(self) -> list[int]:
        starts = []
        packed = self.whole()
        at = 0
        while at < len(packed):
            starts.append(at)
            at += 3 + packed[at + 2]
        return starts

    def _at(self, start: int) -> FlowRef:
        packed = self.packed
        end = start + 3 + packed[start + 2]
        return flow_ref(packed[start] | packed[start + 1] << 8, bytes(packed[start + 3 : end]))

    def taken(self, order: Sequence[int] | None = None) -> Iterator[FlowRef]:
        """The references at the indices `order` (None: all), in that order; then none is
        kept."""
        starts = self._starts()
        for index in range(len(starts)) if order is None else order:
            yield self._at(starts[index])
        self.clear()

    def clear(self) -> None:
        """Forget every reference."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._on_file = 0
        self.packed = bytearray()


def key_parts(key: bytes) -> tuple[bytes, bytes, int, int]:
    """(src, dst, sport, dport) of a direction key."""
    if len(key) == _V4_KEY:
        src, dst, sport, dport = _V4_KEY_PARTS.unpack(key)
        return src, dst, sport, dport
    return key[:16], key[16:32], (key[-4] << 8) | key[-3], (key[-2] << 8) | key[-1]


def new_entry(time: float, packet: int, want: int) -> Entry:
    """A direction with no packets counted yet, first seen at `packet`."""
    return [
        0,
        0,
        time,
        time,
        packet,
        packet,
        0,
        array("q"),
        want,
        0,
        0,
        0,
        0,
        PayloadKind.NONE,
        0,
        b"",
        None,
        None,
        None,
        None,
    ]


def add_sample(e: Entry, packet: int) -> None:
    """Keep `packet` among the direction's first SAMPLE_PACKETS_PER_FLOW packet numbers."""
    if type(e) is list:
        samples = e[SAMPLES]
        if len(samples) < SAMPLE_PACKETS_PER_FLOW:
            samples.append(packet)
    else:  # the compiled step's Entry (observe/_step.pyx): its SAMPLES reads as a tuple
        e.add_sample(packet)  # type: ignore[attr-defined]


class FlowIds:
    """Flow ids by flow reference; a reused TCP 5-tuple has several, told apart by packet."""

    def __init__(self) -> None:
        self._ids: dict[FlowRef, int] = {}  # the flow's id, or _REUSED: see _reused
        self._reused: dict[FlowRef, list[tuple[int, int]]] = {}  # (first packet, flow id)

    def add(self, ref: FlowRef, first_packet: int, flow_id: int) -> None:
        """Flows are added in packet order: a reused reference's generations stay in order."""
        known = self._ids.get(ref)
        if known is None:
            self._ids[ref] = flow_id
            return
        if known != _REUSED:
            self._ids[ref] = _REUSED
            self._reused[ref] = [(0, known)]
        self._reused[ref].append((first_packet, flow_id))

    def release(self) -> None:
        """Forget every id (what named flows by reference is numbered): the references go."""
        self._ids.clear()
        self._reused.clear()

    def get(self, ref: FlowRef, packet: int) -> int:
        """The id of the flow `ref` names at `packet` (0 if none)."""
        found = self._ids.get(ref, 0)
        if found != _REUSED:
            return found
        generations = self._reused[ref]
        found = generations[0][1]
        for first, flow_id in generations:  # few, in packet order
            if first > packet:
                break
            found = flow_id
        return found


class FlowTable:
    """Per-direction entries of one capture, keyed by protocol and direction key."""

    def __init__(self, capture: int, want: Callable[[int, bytes], int]) -> None:
        self.capture = capture
        self.tables: dict[int, dict[bytes, Entry]] = {IPPROTO_TCP: {}, IPPROTO_UDP: {}}
        self.flows = 0
        self._want = want
        # TCP connections that ended before their 5-tuple was used again: (key, e, other)
        self._retired: list[tuple[bytes, Entry, Entry | None]] = []
        # How many times a TCP 5-tuple was reused, by its reference key (flow_ref's key: only
        # TCP connections are retired, and a tuple per 5-tuple was 0.6 MiB of the 2M web mix)
        self._generations: dict[bytes, int] = {}
        # Set by the general path while it files packets found inside an encapsulation:
        # new directions record it (CARRIED). The hot loops never set it.
        self.carried: tuple[str, int] | None = None
        # MAC + source address of each new direction's first frame (Accounting.senders)
        self.senders: set[bytes] = set()
        self.max_senders = 0
        # The compiled twin of `finish` (observe/_flows.pyx), when the ingest has it.
        self.compiled_finish: Callable[..., tuple[list[Flow], FlowIds]] | None = None
        # What makes a direction's entry: the compiled step sets its own (observe/_step.pyx
        # `Entry`, read and written by slot as this list is).
        self.new_entry: Callable[[float, int, int], Entry] = new_entry
        # Where the compiled step's closed connections wait (observe/_spill.pyx `Spill`).
        self.spill: Any = None

    def generation(self, ref: FlowRef) -> int:
        """How many times the 5-tuple of `ref` was reused so far (0: never)."""
        if not self._generations or ref[0] != IPPROTO_TCP:
            return 0
        return self._generations.get(ref[1], 0)

    def syn(self, key: bytes, e: Entry, time: float, packet: int, isn: bytes) -> Entry:
        """A TCP SYN without ACK on direction `key`, before it is counted: maybe a new connection.

        The SYN opens a new connection when the 5-tuple's connection ended (FIN or RST
        either way), was silent for TCP_REUSE_IDLE_S, or had its handshake answered
        (SYN-ACK) under another ISN. A SYN sent again with the same ISN before any SYN-ACK
        (a retransmission, or a retry after a refusal) stays in its attempt. A new
        connection's predecessor is kept aside as a flow of its own and fresh entries
        start, so it gets its own initiator, payload inspection and ClientHello. The compiled
        step takes the same steps (observe/_step.pyx `_syn`): a change here is made there too.
        """
        if not e[PKTS]:
            e[ISN] = isn
            return e
        table = self.tables[IPPROTO_TCP]
        rkey = reverse_key(key)
        other = table.get(rkey) if rkey != key else None
        answered = other is not None and bool(other[TCP_OPEN] & SYNACK_SEEN)
        last = max(e[T_LAST], other[T_LAST]) if other is not None else e[T_LAST]
        idle = time - last > TCP_REUSE_IDLE_S
        same = e[ISN] == isn
        if same and not answered and not idle:
            return e
        flags = e[TCP_FLAGS] | (other[TCP_FLAGS] if other is not None else 0)
        if not (flags & (TCP_FIN | TCP_RST) or idle or (answered and not same)):
            e[ISN] = isn  # e.g. another SYN before any answer: still the same attempt
            return e
        del table[key]
        if other is not None:
            del table[rkey]
        self._retired.append((key, e, other))
        ref_key = flow_ref(IPPROTO_TCP, key)[1]
        self._generations[ref_key] = self._generations.get(ref_key, 0) + 1
        fresh = self.new_direction(table, IPPROTO_TCP, key, time, packet)
        fresh[ISN] = isn
        return fresh

    def __len__(self) -> int:
        """Flows seen so far (a direction whose reverse is already known adds none)."""
        return self.flows

    def entries(self) -> Iterator[tuple[int, bytes, Entry]]:
        """Every direction entry, (protocol, key, entry), connections already retired too."""
        for proto, table in self.tables.items():
            for key, e in table.items():
                yield proto, key, e
        for key, e, other in self._retired:
            yield IPPROTO_TCP, key, e
            if other is not None:
                yield IPPROTO_TCP, reverse_key(key), other

    def entry(self, proto: int, key: bytes, time: float, packet: int) -> Entry:
        """The entry of a direction, created (with no packets) if new."""
        table = self.tables.get(proto)
        if table is None:
            table = self.tables[proto] = {}
        e = table.get(key)
        if e is None and self.reloaded(proto, key):
            e = table.get(key)
        if e is None:
            e = self.new_direction(table, proto, key, time, packet)
        return e

    def reloaded(self, proto: int, key: bytes) -> bool:
        """Whether the connection of direction `key` was in the spill and is now back in
        the table (what looks a direction up there asks this before making one)."""
        spill = self.spill
        return (
            spill is not None
            and proto == IPPROTO_TCP
            and bool(spill.reload(self.tables[IPPROTO_TCP], key))
        )

    def new_direction(
        self,
        table: dict[bytes, Entry],
        proto: int,
        key: bytes,
        time: float,
        packet: int,
        mac: bytes = b"",
    ) -> Entry:
        """Create the entry of a direction not seen before, first seen at `packet`.

        `mac` is the source MAC of its first frame (b"" when the link has none): the
        MAC a source address sends from is learned here, once per direction. The compiled
        step makes its directions with the same steps (observe/_step.pyx `_new_direction`).
        """
        if reverse_key(key) not in table:
            self.flows += 1
        e = table[key] = self.new_entry(time, packet, self._want(proto, key))
        if self.carried is not None:
            e[CARRIED] = self.carried
        if mac and len(self.senders) < self.max_senders:
            self.senders.add(mac + key[: (len(key) - 4) // 2])
        return e

    def account(
        self,
        proto: int,
        key: bytes,
        time: float,
        packet: int,
        nbytes: int,
        tcp_flags: int,
        direction: int,
        isn: bytes = b"",
    ) -> Entry:
        """Count one packet (the general path; the hot loop inlines the same steps)."""
        e = self.entry(proto, key, time, packet)
        if tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN and proto == IPPROTO_TCP:
            e = self.syn(key, e, time, packet, isn)
        e[PKTS] += 1
        e[BYTES] += nbytes
        if packet >= e[N_LAST]:
            e[T_LAST] = time
            e[N_LAST] = packet
        if packet < e[N_FIRST]:  # fragments are counted when their datagram completes
            e[N_FIRST] = packet
            e[T_FIRST] = time
        add_sample(e, packet)
        if tcp_flags:
            e[TCP_FLAGS] |= tcp_flags
            if tcp_flags & (TCP_SYN | TCP_RST):
                tcp_control(e, tcp_flags)
        if direction:
            e[DIRS] |= direction
        return e

    def icmp_error(
        self,
        proto: int,
        key: bytes,
        time: float,
        packet: int,
        nbytes: int,
        rejected: bool,
        from_peer: bool,
    ) -> None:
        """File an ICMP error under the direction whose packet it quotes."""
        e = self.entry(proto, key, time, packet)
        errors = e[ERRORS]
        if errors is None:
            errors = e[ERRORS] = IcmpErrors()
        errors.count += 1
        errors.bytes += nbytes
        errors.rejected = errors.rejected or rejected
        errors.from_peer = errors.from_peer or from_peer
        if packet >= e[N_LAST]:
            e[T_LAST] = time
            e[N_LAST] = packet
        add_sample(e, packet)

    def finish(
        self,
        first_id: int,
        address: Callable[[bytes], IPAddress],
        numbered: Callable[[FlowIds], None] | None = None,
        into: MutableSequence[Flow] | None = None,
    ) -> tuple[MutableSequence[Flow], FlowIds]:
        """Merge directions into oriented flows, numbered from `first_id` in packet order,
        appended to `into` as they are built (None: a new list).

        Every flow's id is known before any flow is built: `numbered(ids)` is called then,
        so what waits for those ids (a part's hellos, DNS exchanges, requests) can be
        numbered and let go before the flows exist. Entries are released as their flows
        are built, so the entries and the flows never both exist in full. The compiled
        twin (observe/_flows.pyx) takes the same steps.
        """
        # Only the walk asks which use of a 5-tuple a packet belongs to: let go of the
        # answers before the flows are built, as the entries are (#17: the allocator's pools).
        self._generations.clear()
        release_free_heap()  # the walk's free heap, before the flows are built on top of it
        if self.compiled_finish is not None:
            return self.compiled_finish(self, first_id, address, numbered, into)
        # (first packet, protocol, a direction key, retired index or -1, then what building
        # needs: the key's reverse, the flow reference, the key's entry and the reverse's).
        # Sorting never compares past the index: (protocol, key) names one live entry, the
        # index one retired connection.
        order: list[tuple[int, int, bytes, int, bytes, FlowRef, Entry, Entry | None]] = []
        for proto, table in self.tables.items():
            for key, e in table.items():
                rkey = reverse_key(key)
                other = table.get(rkey) if rkey != key else None
                if other is None:
                    ref = (proto, key if key <= rkey else rkey)
                    order.append((e[N_FIRST], proto, key, -1, rkey, ref, e, None))
                elif key < rkey:  # the pair is listed once, under its smaller key
                    first = min(e[N_FIRST], other[N_FIRST])
                    order.append((first, proto, key, -1, rkey, (proto, key), e, other))
            table.clear()  # the entries now live in `order`
        index = len(self._retired)  # a spilled retired connection's place, after these
        spill, self.spill = self.spill, None
        if spill is not None:  # connections that ended during the walk (observe/_spill.pyx)
            for key, first, offset, final in spill.live():
                e, other = spill.load(offset)
                rkey = reverse_key(key)
                ref = (IPPROTO_TCP, key if key <= rkey else rkey)
                order.append((first, IPPROTO_TCP, key, index if final else -1, rkey, ref, e, other))
                index += final
            spill.close()
        for index, (key, e, other) in enumerate(self._retired):
            rkey = reverse_key(key)
            first = e[N_FIRST] if other is None else min(e[N_FIRST], other[N_FIRST])
            ref = (IPPROTO_TCP, key if key <= rkey else rkey)
            order.append((first, IPPROTO_TCP, key, index, rkey, ref, e, other))
        # Emptied in place: the compiled step holds this list too (observe/_step.pyx), and a
        # new list would keep every retired entry alive until the step goes (#17: 24k entries
        # of the web mix pinned 43 MiB of the allocator's pools while the flows were built).
        self._retired.clear()
        order.sort(reverse=True)  # popped from the end: each flow's entries go once it is built
        ids = FlowIds()
        for offset, (first, *_, ref, _e, _other) in enumerate(reversed(order)):
            ids.add(ref, first, first_id + offset)
        if numbered is not None:
            numbered(ids)
        capture = self.capture
        flows: MutableSequence[Flow] = [] if into is None else into
        flow_id = first_id
        while order:
            first, proto, key, _, rkey, ref, e, other = order.pop()
            forward, basis = _orient(proto, key, e, other)
            if forward:
                flows.append(_build(capture, flow_id, proto, key, e, other, basis, address))
            else:
                flows.append(_build(capture, flow_id, proto, rkey, other, e, basis, address))
            flow_id += 1
        return flows, ids


def tcp_control(e: Entry, flags: int) -> None:
    """Note a SYN, SYN-ACK or RST sent in this direction."""
    if flags & TCP_SYN:
        e[TCP_OPEN] |= SYNACK_SEEN if flags & TCP_ACK else SYN_SEEN
    if flags & TCP_RST:
        e[RSTS] += 1


def _orient(proto: int, key: bytes, e: Entry, other: Entry | None) -> tuple[bool, InitiatorBasis]:
    """(whether `key` is the initiator's direction, how that was decided)."""
    first = other is None or e[N_FIRST] <= other[N_FIRST]
    if proto == IPPROTO_TCP:
        a_open = e[TCP_OPEN]
        b_open = other[TCP_OPEN] if other is not None else 0
        if (a_open | b_open) & SYN_SEEN:
            if not b_open & SYN_SEEN:
                return True, InitiatorBasis.SYN
            if not a_open & SYN_SEEN:
                return False, InitiatorBasis.SYN
            return first, InitiatorBasis.SYN  # simultaneous open
        if a_open & SYNACK_SEEN and not b_open & SYNACK_SEEN:
            return False, InitiatorBasis.SYN_ACK
        if b_open & SYNACK_SEEN and not a_open & SYNACK_SEEN:
            return True, InitiatorBasis.SYN_ACK
        return _by_port(key, e, other, first)
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        v6 = proto == IPPROTO_ICMPV6
        icmp_type = key[-3]
        counterpart = (ICMPV6_COUNTERPART if v6 else ICMP_COUNTERPART).get(icmp_type)
        if counterpart is not None and key[-1] == counterpart:
            if is_request(icmp_type, v6):
                return True, InitiatorBasis.ICMP_TYPE
            if other is not None or not _is_group(key_parts(key)[1]):
                return False, InitiatorBasis.ICMP_TYPE
            # An unsolicited reply type to a group (router or neighbour advertisement
            # to all-nodes): nobody in the group asked, the sender initiated.
    if proto == IPPROTO_UDP:
        lead, lead_key = (e, key) if first or other is None else (other, reverse_key(key))
        if _response_first(lead, lead_key):
            return not first, InitiatorBasis.RESPONSE_FIRST
    return first, InitiatorBasis.FIRST_PACKET


def _response_first(e: Entry, key: bytes) -> bool:
    """Whether direction `key`'s first packet is a known response (direction.py) to a
    single host: a flow seen mid-conversation, whose asker is the other side. A response
    to a group (an mDNS announcement) was asked for by nobody: its sender initiated."""
    _, dst, sport, dport = key_parts(key)
    return (
        e[PAYLOAD_N] == e[N_FIRST]
        and not _is_group(dst)
        and udp_response_first(sport, dport, e[KIND], e[HEAD])
    )


def _by_port(key: bytes, e: Entry, other: Entry | None, first: bool) -> tuple[bool, InitiatorBasis]:
    """TCP without SYN or SYN-ACK in the capture (see direction.py for the order)."""
    sport = (key[-4] << 8) | key[-3]
    dport = (key[-2] << 8) | key[-1]
    side = responder_by_rank(sport, dport)
    if side is not None:
        return side == 1, InitiatorBasis.PORT_HEURISTIC
    local_a = bool(e[DIRS] & 2) or bool(other is not None and other[DIRS] & 1)
    local_b = bool(e[DIRS] & 1) or bool(other is not None and other[DIRS] & 2)
    if local_a != local_b:
        return local_a, InitiatorBasis.DIRECTION_FLAG
    side = responder_by_number(sport, dport)
    if side is not None:
        return side == 1, InitiatorBasis.PORT_HEURISTIC
    return first, InitiatorBasis.PORT_HEURISTIC


def _merged_samples(a: array[int], b: array[int]) -> PacketNumbers:
    """The lowest SAMPLE_PACKETS_PER_FLOW packet numbers of two directions, each once."""
    lowest = sorted(a + b)[:SAMPLE_PACKETS_PER_FLOW]
    if len(set(lowest)) == len(lowest):  # no number twice (the usual case): no set of all
        return PacketNumbers(lowest)
    return PacketNumbers(sorted({*a, *b})[:SAMPLE_PACKETS_PER_FLOW])


def _is_group(address: bytes) -> bool:
    """Multicast or IPv4 limited broadcast."""
    if len(address) == 4:
        return 224 <= address[0] <= 239 or address == b"\xff\xff\xff\xff"
    return address[0] == 0xFF


class Addresses:
    """Packed bytes to address objects, each address built once per run and shared."""

    def __init__(self) -> None:
        self._known: dict[bytes, IPAddress] = {}

    def __call__(self, raw: bytes) -> IPAddress:
        found = self._known.get(raw)
        if found is None:
            found = self._known[raw] = ipaddress.ip_address(raw)
        return found


def _build(
    capture: int,
    flow_id: int,
    proto: int,
    key: bytes,
    out: Entry | None,
    back: Entry | None,
    basis: InitiatorBasis,
    address: Callable[[bytes], IPAddress],
) -> Flow:
    """One `Flow` from its two directions; `key` and `out` are the initiator's."""
    src, dst, sport, dport = key_parts(key)
    packets_out = bytes_out = packets_in = bytes_in = 0
    flags_out = flags_in = 0
    rejected = False
    answered = False
    if out is not None:
        packets_out, bytes_out, flags_out = out[PKTS], out[BYTES], out[TCP_FLAGS]
        errors: IcmpErrors | None = out[ERRORS]
        if errors is not None:  # ICMP errors travel against the packets they quote
            packets_in += errors.count
            bytes_in += errors.bytes
            rejected = errors.rejected
            answered = errors.from_peer
    if back is not None:
        packets_in += back[PKTS]
        bytes_in += back[BYTES]
        flags_in = back[TCP_FLAGS]
        answered = answered or back[PKTS] > 0
        if back[ERRORS] is not None:
            packets_out += back[ERRORS].count
            bytes_out += back[ERRORS].bytes
    first = back if out is None or (back is not None and back[N_FIRST] < out[N_FIRST]) else out
    last = back if out is None or (back is not None and back[N_LAST] > out[N_LAST]) else out
    assert first is not None and last is not None
    if back is None:
        samples = PacketNumbers(first[SAMPLES])  # one direction (`out`): as it kept them
    elif out is None:
        samples = PacketNumbers(sorted(set(back[SAMPLES]))[:SAMPLE_PACKETS_PER_FLOW])
    else:
        samples = _merged_samples(out[SAMPLES], back[SAMPLES])
    if proto == IPPROTO_TCP:
        accepted = back is not None and (
            bool(back[TCP_OPEN] & SYNACK_SEEN)
            or back[PAYLOAD_N] > 0
            or (back[PKTS] > back[RSTS] and bool(back[TCP_FLAGS] & TCP_ACK))
        )
        rejected = rejected or (back is not None and back[RSTS] > 0 and not accepted)
    elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        accepted = basis is InitiatorBasis.ICMP_TYPE and back is not None and back[PKTS] > 0
        # Flow ports for ICMP: the initiator's message type and its code.
        dport = first[ICMP_CODE] if out is None else out[ICMP_CODE]
    else:
        accepted = back is not None and back[PKTS] > 0
        if proto != IPPROTO_UDP:
            sport = dport = 0
    carried = (out[CARRIED] if out is not None else None) or (
        back[CARRIED] if back is not None else None
    )
    number = proto - PORTLESS if proto >= PORTLESS else proto
    return _FLOW(
        flow_id,
        capture,
        (_TRANSPORTS.get(proto) if proto < PORTLESS else None) or f"ip-{number}",
        4 if len(src) == 4 else 6,
        address(src),
        sport,
        address(dst),
        dport,
        basis,
        basis is InitiatorBasis.SYN,
        answered,
        accepted,
        rejected,
        packets_out,
        packets_in,
        bytes_out,
        bytes_in,
        first[T_FIRST],
        last[T_LAST],
        first[N_FIRST],
        last[N_LAST],
        samples,
        flags_out,
        flags_in,
        out[KIND] if out is not None else PayloadKind.NONE,
        back[KIND] if back is not None else PayloadKind.NONE,
        (out[PAYLOAD_N] or None) if out is not None else None,
        out[HEAD] if out is not None else b"",
        carried[0] if carried else "",
        carried[1] if carried else 1,
        (),  # continued: only observe.merge adds the later files' packets
    )
