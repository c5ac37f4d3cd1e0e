"""What the observers saw: flows, names, handshakes, requests, and how complete the capture was,
plus every other kind of evidence a run can hold (proxy log, content messages, host facts,
probe, scan and impostor results), each parsed once by its own reader in observe/.

These records are the only thing judges read. They never hold packets; they hold
packet numbers (1-based, per capture file, as Wireshark numbers them) so every
finding can point back at the bytes.
"""

from __future__ import annotations

import ipaddress
from array import array
from collections.abc import Callable, Iterable, Iterator, MutableSequence, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from operator import attrgetter
from typing import TYPE_CHECKING, Any, SupportsIndex, TypeVar, overload

from conformance.content.messages import ContentEvidence
from conformance.decode import compiled
from conformance.decode.classify import PayloadKind
from conformance.decode.community_id import of_flow as community_id_of_flow
from conformance.decode.dns import DnsAnswer
from conformance.decode.ech import EchKind
from conformance.decode.ldap import LDAP_PORT, is_starttls_request
from conformance.host.facts import HostFacts
from conformance.observe.json_logs import JsonDocument, JsonLines
from conformance.observe.proxy_log import ProxyLog, ProxyLogEntry

# The records judges read; decode's own record types are part of them (re-exported).
__all__ = [
    "ANOMALY_SAMPLES",
    "CAPTURE_PARTS",
    "MAX_ADDRESSES_PER_MAC",
    "MAX_LINK_ADDRESSES",
    "MAX_PARTY_GROUPS",
    "MAX_REASONS",
    "NOT_UNDERSTOOD_FRAMES",
    "OTHER_REASONS",
    "SAMPLE_PACKETS_PER_FLOW",
    "Anomaly",
    "CaptureSummary",
    "DnsAnswer",
    "DnsQuery",
    "EchKind",
    "Flow",
    "FlowPart",
    "HttpRequest",
    "IPAddress",
    "ImpostorPhase",
    "InitiatorBasis",
    "LinkAddress",
    "LinkControl",
    "NameMention",
    "NotUnderstood",
    "Observations",
    "PacketNumbers",
    "Parties",
    "PayloadKind",
    "ProxyLog",
    "ProxyLogEntry",
    "TlsClientHello",
    "TlsServerHello",
]


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Bounded so memory stays flat however long a flow is.
SAMPLE_PACKETS_PER_FLOW = 8


class PacketNumbers(bytes):
    """Packet numbers (a flow's samples) packed as native 64-bit integers in the bytes
    themselves; reads like a tuple of ints (len, iteration, indexing, `in`) and equals, and
    hashes as, the tuple of the same numbers.

    A tuple of eight numbers above 256 is some 340 bytes (an int object each); this is 128,
    one object (#17: 8 MiB of a 2M-packet web capture's 65k flows). `bytes(numbers)` is the
    packing, as `from_packed` takes it back.
    """

    __slots__ = ()

    def __new__(cls, numbers: Iterable[int] = ()) -> PacketNumbers:
        return super().__new__(cls, array("q", numbers).tobytes())

    @classmethod
    def from_packed(cls, packed: bytes) -> PacketNumbers:
        """The numbers in `packed` (native 64-bit integers, as `bytes(numbers)` gives them)."""
        if len(packed) % 8:
            raise ValueError(f"packed packet numbers: {len(packed)} bytes, not a multiple of 8")
        return bytes.__new__(cls, packed)

    def _numbers(self) -> list[int]:
        return memoryview(self).cast("q").tolist()

    @overload
    def __getitem__(self, index: SupportsIndex) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> PacketNumbers: ...
    def __getitem__(self, index: SupportsIndex | slice) -> int | PacketNumbers:
        if isinstance(index, slice):
            return PacketNumbers(self._numbers()[index])
        value: int = memoryview(self).cast("q")[index]
        return value

    def __len__(self) -> int:
        return bytes.__len__(self) >> 3

    def __iter__(self) -> Iterator[int]:
        return iter(self._numbers())

    def __contains__(self, value: object) -> bool:
        return value in self._numbers()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PacketNumbers):
            return bytes.__eq__(self, other)
        if isinstance(other, tuple):
            return tuple(self._numbers()) == other
        if isinstance(other, bytes | bytearray | memoryview):
            return False  # its packing is not what it holds
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash(tuple(self._numbers()))  # equal to its tuple, so hashed as that tuple

    # Order, concatenation and repetition as the tuple's: bytes' own would work on the
    # packing (little-endian bytes order, a plain bytes result) without a word.
    def _tuple_of(self, other: object) -> tuple[int, ...] | None:
        if isinstance(other, PacketNumbers):
            return tuple(other._numbers())
        if isinstance(other, bytes | bytearray | memoryview):  # bytes' reflected one would run
            raise TypeError("packet numbers and bytes are not ordered or joined")
        return other if isinstance(other, tuple) else None

    def __lt__(self, other: object) -> bool:
        theirs = self._tuple_of(other)
        return NotImplemented if theirs is None else tuple(self._numbers()) < theirs

    def __le__(self, other: object) -> bool:
        theirs = self._tuple_of(other)
        return NotImplemented if theirs is None else tuple(self._numbers()) <= theirs

    def __gt__(self, other: object) -> bool:
        theirs = self._tuple_of(other)
        return NotImplemented if theirs is None else tuple(self._numbers()) > theirs

    def __ge__(self, other: object) -> bool:
        theirs = self._tuple_of(other)
        return NotImplemented if theirs is None else tuple(self._numbers()) >= theirs

    def __add__(self, other: object) -> PacketNumbers:
        theirs = self._tuple_of(other)
        if theirs is None:
            return NotImplemented
        return PacketNumbers((*self._numbers(), *theirs))

    def __radd__(self, other: object) -> PacketNumbers:
        theirs = self._tuple_of(other)
        if theirs is None:
            return NotImplemented
        return PacketNumbers((*theirs, *self._numbers()))

    def __mul__(self, times: SupportsIndex) -> PacketNumbers:
        return PacketNumbers(self._numbers() * times)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"PacketNumbers({tuple(self._numbers())!r})"

    def __str__(self) -> str:  # bytes' own would show the packing
        return repr(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (PacketNumbers.from_packed, (bytes(self),))


class InitiatorBasis(StrEnum):
    """How the flow's initiating side was decided (Zeek marks flipped flows with `^`)."""

    SYN = "syn"  # a SYN without ACK was seen
    SYN_ACK = "syn-ack"  # only the SYN-ACK was seen: its receiver initiated
    FIRST_PACKET = "first-packet"  # UDP/ICMP/other: the sender of the first packet
    DIRECTION_FLAG = "direction-flag"  # pcapng epb_flags inbound/outbound on the target's link
    # mid-connection TCP: the side on the well-known port responds
    PORT_HEURISTIC = "port-heuristic"
    ICMP_TYPE = "icmp-type"  # request/reply types (echo, timestamp, ...) say who asked
    # UDP whose first packet is a response (DNS QR=1, NTP server mode, ...): the other side asked
    RESPONSE_FIRST = "response-first"


@dataclass(frozen=True, slots=True)
class FlowPart:
    """The packets of a flow in one more capture file: it went on across a file boundary."""

    capture: int  # index into Observations.captures
    first_packet: int
    last_packet: int


@dataclass(frozen=True, slots=True)
class Flow:
    """A bidirectional conversation, oriented initiator -> responder.

    Packet numbers (first, last, samples) are those of `capture`; a flow that went on in
    later capture files (observe.merge) lists its packets there in `continued`.
    """

    flow_id: int  # 1-based, row order of evidence/flows.csv
    capture: int  # index into Observations.captures
    transport: str  # "tcp", "udp", "icmp", "icmpv6", or "ip-<proto>"
    ip_version: int
    initiator: IPAddress
    initiator_port: int  # ICMP: type; other protocols: 0
    responder: IPAddress
    responder_port: int  # ICMP: code; other protocols: 0
    initiator_basis: InitiatorBasis
    handshake_seen: bool  # TCP: the opening SYN is in the capture
    answered: bool  # the responder sent at least one packet back
    accepted: bool  # TCP: SYN-ACK or responder payload; UDP: reply; ICMP: reply type
    rejected: bool  # TCP RST from responder with no accept, or ICMP unreachable for it
    packets_out: int  # initiator -> responder
    packets_in: int
    bytes_out: int  # IP bytes, as on the wire (original length)
    bytes_in: int
    first_time: float  # epoch seconds
    last_time: float
    first_packet: int
    last_packet: int
    sample_packets: PacketNumbers  # first SAMPLE_PACKETS_PER_FLOW packet numbers, both directions
    tcp_flags_out: int = 0  # OR of TCP flags initiator -> responder
    tcp_flags_in: int = 0
    payload_out: PayloadKind = PayloadKind.NONE  # first payload initiator -> responder
    payload_in: PayloadKind = PayloadKind.NONE
    first_payload_packet: int | None = None  # packet number of the initiator's first payload
    payload_head_out: bytes = b""  # first bytes of that payload (<= 64; TLS: 5), for findings
    # Decision 9: the headers around this flow's IP header in its first packet, outermost
    # first ("" when none: plain Ethernet, VLAN tags, raw IP), e.g. "ipv4>gre",
    # "ipv6>udp>vxlan>eth", "pppoe"; and which IP header of its version it is, counted as
    # Wireshark counts layers (2 for `ip.dst#2` inside an IPv4 tunnel).
    encapsulation: str = ""
    ip_layer: int = 1
    continued: tuple[FlowPart, ...] = ()  # its packets in later capture files, in time order

    @property
    def community_id(self) -> str:
        """Community ID v1 (seed 0), computed from the flow's ends when asked: it is derived
        from them, and flows.csv is its one reader (kept in the record it was 80 bytes a
        flow: #17, 40 MiB of a 500k-flow port scan)."""
        return community_id_of_flow(
            self.transport, self.initiator, self.responder, self.initiator_port, self.responder_port
        )

    def opens_with_starttls(self) -> bool:
        """LDAP on 389 whose first message is the StartTLS request (RFC 4511 §4.14): the
        upgrade comes before any bind."""
        return self.responder_port == LDAP_PORT and is_starttls_request(self.payload_head_out)


@dataclass(frozen=True, slots=True)
class DnsQuery:
    """One DNS-format query (and its answer, when seen), on any port.

    `protocol` tells DNS from the scope-limited name protocols of decision 6.
    """

    capture: int
    packet: int  # the query's packet number (or the response's, when the query is not seen)
    time: float
    flow_id: int
    client: IPAddress
    client_port: int
    server: IPAddress
    server_port: int
    transport: str  # "udp" | "tcp"
    protocol: str  # "dns" | "mdns" | "llmnr" | "nbns"
    qname: str  # lower-case, no trailing dot
    qtype: int
    response_packet: int | None = None
    rcode: int | None = None
    answers: tuple[DnsAnswer, ...] = ()
    # identical repeats (same flow, qname, qtype, answers) merged to keep memory flat
    count: int = 1
    last_packet: int | None = None  # the last repeat's packet number
    last_time: float | None = None  # the last repeat's time (answers stay valid from it)
    # (first, last) query time of each run of repeats: a run ends where a repeat came after
    # the earlier answers had expired (TTL), so the answers were valid from `first` until
    # `last` + TTL. Empty when not known: then `time` and `last_time` are the only times.
    answer_runs: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class TlsClientHello:
    capture: int
    packet: int  # the packet that completed the ClientHello
    time: float
    flow_id: int
    sni: str | None
    versions: tuple[int, ...]  # supported_versions if present, else (legacy_version,)
    cipher_suites: tuple[int, ...]
    alpn: tuple[str, ...]
    segments: int = 1  # TCP segments (or QUIC Initial packets) the ClientHello spanned
    quic_version: int | None = None  # QUIC version of the Initial that carried it; None: TCP
    ech: EchKind = EchKind.NONE  # decision 9: with REAL/UNKNOWN, `sni` is only the public name


@dataclass(frozen=True, slots=True)
class TlsServerHello:
    capture: int
    packet: int
    time: float
    flow_id: int
    version: int  # negotiated: supported_versions extension if present (TLS 1.3), else legacy
    cipher_suite: int
    quic_version: int | None = None  # QUIC version of the Initial that carried it; None: TCP


# The compiled records module (observe/_records.pyx: the record maker and the compact
# records) where it is built.
_MAKER = compiled.load(compiled.MODULES[3])
# The dataclasses above, whatever their names are bound to below: the records' definition.
DATACLASS_RECORDS: tuple[type, ...] = (Flow, TlsClientHello, TlsServerHello)
if _MAKER is not None and not TYPE_CHECKING:
    # The compact classes (numbers unboxed: a third of the memory, #17) take these names:
    # the same fields in the same order, values, equality, hash, repr and pickling, and
    # `dataclasses.fields`, `replace` and `asdict` work on them (tests/observe/
    # test_compact_records.py compares each with its dataclass).
    Flow, TlsClientHello, TlsServerHello = _MAKER.bind(PacketNumbers, *DATACLASS_RECORDS)


# A capture's flows and hellos as they are recorded (the hellos from the walk on, the flows
# as they are built) to the report: packed in a scratch file where the compiled records are
# built (observe/_records.pyx `RecordStore`, #17), else a list of the records.
Stored = TypeVar("Stored", Flow, TlsClientHello, TlsServerHello)


def record_store(kind: type[Stored], records: Iterable[Stored] = ()) -> MutableSequence[Stored]:
    """An empty (or filled from `records`) sequence for `kind` records to be appended to."""
    if _MAKER is not None and kind not in DATACLASS_RECORDS:
        store: MutableSequence[Stored] = _MAKER.RecordStore(kind, records)
        return store
    return list(records)


def sealed_records(records: Iterable[Stored]) -> Sequence[Stored]:
    """`records` as an Observations holds them: a store sealed (no record added from now
    on), anything else as a tuple."""
    if _MAKER is not None and type(records) is _MAKER.RecordStore:
        sealed: Sequence[Stored] = records.seal()  # type: ignore[attr-defined]
        return sealed
    return tuple(records)


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """An HTTP/1.x request line (plus Host), on any port."""

    capture: int
    packet: int
    time: float
    flow_id: int
    method: str
    target: str  # as written: "/path", "http://host/path", or "host:port" for CONNECT
    version: str  # "HTTP/1.1"
    host: str | None  # Host header, if in the same segment
    count: int = 1  # identical repeats on the same flow merged


@dataclass(frozen=True, slots=True)
class NameMention:
    """A name carried by scope-limited traffic other than DNS format (SSDP, NBNS, ...)."""

    capture: int
    packet: int
    flow_id: int
    protocol: str
    name: str


_R = TypeVar("_R")


def maker(kind: type[_R]) -> Callable[..., _R]:
    """A constructor of `kind` records taking every field's value, in field order: the
    compiled maker where it is built (the same record, made without the frozen dataclass's
    field-by-field `__init__`; for a compact class, the class with a `numbered` and a
    `renumbered` of its own), else the class itself, which is also what a class the maker
    does not take (one whose `__init__` does more than set its fields) gets."""
    if _MAKER is None:
        return kind
    if kind in (Flow, TlsClientHello, TlsServerHello) and kind not in DATACLASS_RECORDS:
        compact: Callable[..., _R] = _MAKER.CompactMaker(kind)
        return compact
    try:
        made: Callable[..., _R] = _MAKER.Maker(kind)
    except TypeError:
        return kind
    return made


# The records that name their flow by id, numbered once all of a capture's flows are known.
FlowRecord = TypeVar(
    "FlowRecord", Flow, DnsQuery, TlsClientHello, TlsServerHello, HttpRequest, NameMention
)


def numbering(kind: type[FlowRecord]) -> Callable[[FlowRecord, int], FlowRecord]:
    """Like `renumbering`, for records nothing else holds yet: the compiled maker sets the
    flow_id of the record itself (no copy made only for the original to be dropped); without
    it, `renumbering`'s copy."""
    in_place: Callable[[FlowRecord, int], FlowRecord] | None = getattr(
        maker(kind), "numbered", None
    )
    return in_place if in_place is not None else renumbering(kind)


def renumbering(kind: type[FlowRecord]) -> Callable[[FlowRecord, int], FlowRecord]:
    """A function copying a `kind` record with another flow_id: the record that
    dataclasses.replace(record, flow_id=...) makes, at half its cost (replace walks the
    fields on every call; here they are looked up once)."""
    names = [f.name for f in fields(kind)]
    values_of = attrgetter(*names)
    at = names.index("flow_id")
    make = maker(kind)
    compiled_copy: Callable[[FlowRecord, int], FlowRecord] | None = getattr(
        make, "renumbered", None
    )
    if compiled_copy is not None:  # the compiled maker copies slot by slot (_records.pyx)
        return compiled_copy

    def renumbered(record: FlowRecord, flow_id: int) -> FlowRecord:
        values: list[Any] = list(values_of(record))
        values[at] = flow_id
        return make(*values)

    return renumbered


@dataclass(frozen=True, slots=True)
class Anomaly:
    """A packet that could not be decoded: counted, skipped, and reported."""

    capture: int
    packet: int
    reason: str


# Bounded: the count is exact, the list of examples is not.
ANOMALY_SAMPLES = 100

# Not-understood accounting (controls.md decision 10): counts are exact, lists are bounded.
NOT_UNDERSTOOD_FRAMES = 20  # frame numbers kept per reason: examples to open in Wireshark
MAX_REASONS = 64  # distinct reasons kept per capture; later ones are counted under OTHER_REASONS
OTHER_REASONS = "other reasons (more distinct reasons than the harness lists)"
# Distinct address sets kept per reason; frames past it count as `untold` (anyone's).
MAX_PARTY_GROUPS = 64
# MAC addresses learned per capture (and IP addresses per MAC): a segment's hosts; past
# it the table is marked incomplete and judges stop trusting a MAC to exclude the target.
MAX_LINK_ADDRESSES = 1024
MAX_ADDRESSES_PER_MAC = 16


@dataclass(frozen=True, slots=True)
class Parties:
    """How many counted frames carried exactly these addresses, in any header at any layer."""

    count: int
    addresses: tuple[IPAddress, ...]
    macs: tuple[str, ...]  # "02:00:00:00:00:0a"


@dataclass(frozen=True, slots=True)
class NotUnderstood:
    """Frames (or payloads) counted under one reason, and whose they could be.

    Frame level (`CaptureSummary.not_understood`): the frame reached no transport. Payload
    level (`CaptureSummary.payload_not_understood`): the transport decoded and the packet
    counts in its flow, but a payload parser gave up or a length field lied, so a name in
    it may be unseen.
    """

    reason: str  # a stable short string (docs/judging.md lists them)
    count: int
    frames: tuple[int, ...]  # the lowest NOT_UNDERSTOOD_FRAMES packet numbers
    parties: tuple[Parties, ...]  # address sets seen in those frames
    untold: int = 0  # frames with no address to tell whose they are (or past the bound)


@dataclass(frozen=True, slots=True)
class LinkControl:
    """Link-layer control frames of one kind (ARP, LLDP, STP, ...): they stay on the segment."""

    kind: str
    count: int


@dataclass(frozen=True, slots=True)
class LinkAddress:
    """A MAC address and the IP addresses frames from it carried as their source."""

    mac: str
    addresses: tuple[IPAddress, ...]


# Decision 11: silences and backward time steps between consecutive packets of a capture.
# Counts are exact; only the largest MAX_TIME_STEPS of each kind are kept.
MAX_TIME_STEPS = 10
# A minute with no packet at all is worth a look: a UC server's link carries keepalives,
# registrations and time sync more often than that, so a longer silence is either a quiet
# segment or a capture that paused (the report tells them apart by the capture's rate).
SILENCE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class TimeStep:
    """Two consecutive packets of a capture (file order) whose times are far apart.

    `seconds` > 0: a silence of at least SILENCE_SECONDS; < 0: time went backwards.
    """

    before: int  # packet number of the earlier packet in the file
    after: int  # before + 1
    time: float  # the earlier packet's time
    seconds: float  # the later packet's time minus the earlier one's


@dataclass(frozen=True, slots=True)
class CaptureSummary:
    """One capture file and everything that limits what it can prove."""

    path: str
    format: str  # "pcap" | "pcapng"
    # Of the bytes read (computed while streaming). Empty when the decoder read them back
    # from the report's copy: the copy is hashed after the walk, and the report's
    # captures.json gives that digest (report/prestage.py).
    sha256: str
    link_types: tuple[int, ...]  # DLT/LINKTYPE values seen
    interfaces: int
    packets: int
    bytes: int  # file bytes read
    first_time: float | None
    last_time: float | None
    # frames not understood plus packets whose payload was not understood (see below)
    malformed: int
    anomalies: tuple[Anomaly, ...]  # the ANOMALY_SAMPLES of the lowest frames counted
    snap_truncated: int  # packets whose captured length < original length
    truncated_file: bool  # the file ends inside a record (read to the last whole one)
    truncated_detail: str | None  # e.g. "file ends inside record 4813 at byte 1048570"
    drops: int | None  # kernel/interface drops from pcapng ISB (ifdrop + osdrop); None = unknown
    drop_detail: str | None = None
    unsupported_link_packets: int = 0
    fragments: int = 0  # IP fragments seen
    reassembled: int = 0  # datagrams reassembled from them
    direction_flags: bool = False  # pcapng EPB direction flags were present
    # Decision 10: every frame is decoded, link-layer control, or not understood.
    decoded: int = 0  # frames decoded to their transport (flow, ICMP)
    link_control: tuple[LinkControl, ...] = ()
    not_understood: tuple[NotUnderstood, ...] = ()
    payload_not_understood: tuple[NotUnderstood, ...] = ()
    link_addresses: tuple[LinkAddress, ...] = ()  # MACs learned from frames that carried IP
    link_addresses_complete: bool = True  # False: MAX_LINK_ADDRESSES was reached
    # Decision 11: silences >= SILENCE_SECONDS and backward steps between consecutive
    # packets, the largest MAX_TIME_STEPS of each (largest first), with exact counts.
    silences: tuple[TimeStep, ...] = ()
    silence_count: int = 0
    silence_seconds: float = 0.0  # their total
    backward_steps: tuple[TimeStep, ...] = ()
    backward_count: int = 0

    @property
    def complete(self) -> bool:
        """No known loss: the file is whole and no drops were recorded."""
        return not self.truncated_file and not self.drops

    @property
    def not_understood_frames(self) -> int:
        """Frames that reached no transport and are no link-layer control."""
        return sum(n.count for n in self.not_understood)

    @property
    def link_control_frames(self) -> int:
        return sum(k.count for k in self.link_control)


@dataclass(frozen=True, slots=True, repr=False)
class Observations:
    """Everything the observers produced from every capture of a run.

    Its repr gives counts only: pytest shows a failing test's arguments in the traceback,
    and the full repr of millions of packets' records costs seconds and tens of MiB.
    """

    captures: tuple[CaptureSummary, ...]
    # flows and hellos: tuples, or RecordStores (records.record_store, sealed), each equal to
    # the tuple of its records
    flows: Sequence[Flow]
    dns: tuple[DnsQuery, ...] = ()
    client_hellos: Sequence[TlsClientHello] = ()
    server_hellos: Sequence[TlsServerHello] = ()
    http_requests: tuple[HttpRequest, ...] = ()
    names: tuple[NameMention, ...] = ()
    notes: tuple[str, ...] = field(default=())  # e.g. "12 flows began before the capture"
    # Evidence beyond the captures; None when the run's source produced none of that kind.
    source: str = ""  # the evidence source: "pcap", "lab", "docker", "host", "lab+host", ...
    probes: JsonLines | None = None  # AG-PERIMETER probe results (conformance.lab.probe)
    proxy_log: ProxyLog | None = None  # the site proxy's access.log
    content: ContentEvidence | None = None  # application messages the target sent (TM-*)
    impostors: ImpostorPhase | None = None  # HY-CERT impostor phase (lab)
    endpoint_scan: JsonDocument | None = None  # HY-ENDPOINT server-side scan results (lab)
    host: HostFacts | None = None  # facts collected on a live host
    stimuli: JsonLines | None = None  # what the lab did to the target during the window
    known_people: tuple[str, ...] = ()  # the site's people's names: personal data (TM-MINIMAL)

    def __repr__(self) -> str:
        return (
            f"Observations(captures={len(self.captures)}, packets={self.packets}, "
            f"flows={len(self.flows)}, dns={len(self.dns)}, "
            f"client_hellos={len(self.client_hellos)}, server_hellos={len(self.server_hellos)}, "
            f"http_requests={len(self.http_requests)}, names={len(self.names)})"
        )

    @property
    def complete(self) -> bool:
        return bool(self.captures) and all(c.complete for c in self.captures)

    @property
    def packets(self) -> int:
        return sum(c.packets for c in self.captures)

    def flow(self, flow_id: int) -> Flow:
        """The flow with that id (ids are 1-based and dense)."""
        return self.flows[flow_id - 1]


_OBSERVATION_FIELDS = [f.name for f in fields(Observations)]
# The fields of Observations the captures themselves give, in order: those before `source`
# (what follows is evidence beyond the captures).
CAPTURE_PARTS: tuple[str, ...] = tuple(_OBSERVATION_FIELDS[: _OBSERVATION_FIELDS.index("source")])


@dataclass(frozen=True, slots=True)
class ImpostorPhase:
    """HY-CERT's phase after the window: the impostors' per-connection log and the phase's own
    capture, observed like any other (None, with the reason, when it could not be read)."""

    log: JsonLines
    capture: Observations | None
    capture_file: str  # the capture's name under the report's evidence/ ("" when none)
    capture_error: str | None = None
