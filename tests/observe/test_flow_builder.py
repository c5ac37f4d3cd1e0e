"""The compiled flow builder (observe/_flows.pyx) is FlowTable.finish: the same flows, in the
same order, with the same ids, from tables of random directions of every kind it takes and
every kind it hands back to flows.py (ICMP, other protocols, ICMP errors, TCP without a SYN,
UDP that may begin with a response, one-way flows, retired connections, damaged samples)."""

from __future__ import annotations

import random
import tempfile
from array import array
from collections.abc import Callable
from typing import Any

import pytest

from conformance.decode.ip import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP
from conformance.observe import flows, ingest
from conformance.observe.flows import (
    CARRIED,
    DIRS,
    ERRORS,
    HEAD,
    ISN,
    KIND,
    N_FIRST,
    N_LAST,
    PAYLOAD_N,
    PKTS,
    PORTLESS,
    RSTS,
    SAMPLES,
    SYN_SEEN,
    SYNACK_SEEN,
    T_FIRST,
    T_LAST,
    TCP_FLAGS,
    TCP_OPEN,
    Addresses,
    Entry,
    FlowIds,
    FlowRefs,
    FlowTable,
    IcmpErrors,
    reverse_key,
)
from conformance.observe.records import (
    DATACLASS_RECORDS,
    Flow,
    PacketNumbers,
    PayloadKind,
    TlsServerHello,
    renumbering,
)
from tests.compiled_paths import COMPILED_FLOWS

# Flow is the compact record (observe/_records.pyx) where it is built: its numbers unboxed.
COMPACT = Flow not in DATACLASS_RECORDS

_PROTOCOLS = (IPPROTO_TCP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6, PORTLESS + 47)
_PORTS = (53, 123, 443, 1900, 5060, 8443, 40000, 50000, 0)
_HEADS = (b"", b"\x16\x03\x01\x00\x05", b"\x00\x01\x81\x80" + bytes(8), b"HTTP/1.1 200 OK\r\n")


def _entry(rng: random.Random, proto: int, packet: int) -> Entry:
    e = flows.new_entry(float(packet) / 10, packet, 0)
    e[PKTS] = rng.choice((0, 1, 2, 3, 9, 300))
    e[flows.BYTES] = e[PKTS] * rng.choice((40, 60, 1500))
    e[N_LAST] = packet + rng.randrange(0, 50)
    e[T_LAST] = e[N_LAST] / 10
    e[N_FIRST] = packet
    e[T_FIRST] = packet / 10
    size = rng.choice((0, 1, 3, 8, 8, 9, 40))  # more than a direction keeps: the fallback
    e[SAMPLES] = array("q", (rng.randrange(packet, packet + 20) for _ in range(size)))
    e[TCP_FLAGS] = rng.randrange(0, 64) if proto == IPPROTO_TCP else 0
    e[TCP_OPEN] = rng.choice((0, 0, SYN_SEEN, SYNACK_SEEN, SYN_SEEN | SYNACK_SEEN))
    e[RSTS] = rng.choice((0, 0, 1, 5))
    e[DIRS] = rng.randrange(0, 4)
    e[flows.ICMP_CODE] = rng.randrange(0, 4)
    if rng.random() < 0.6:
        e[KIND] = rng.choice(list(PayloadKind))
        e[PAYLOAD_N] = rng.choice((packet, packet + 1))
        e[HEAD] = rng.choice(_HEADS)
    if rng.random() < 0.1:
        e[ERRORS] = IcmpErrors(rng.randrange(1, 4), 100, rng.random() < 0.5, rng.random() < 0.5)
    if rng.random() < 0.1:
        e[CARRIED] = (rng.choice(("ipv4>gre", "ipv6>udp>vxlan>eth")), 2)
    e[ISN] = b"\x00\x00\x00\x01"
    return e


def _key(rng: random.Random, proto: int) -> bytes:
    half = rng.choice((4, 16))
    hosts = [bytes(half - 1) + bytes([n]) for n in (1, 2, 3)]
    hosts += [b"\xff" * half, b"\xe0" + bytes(half - 1)]  # a broadcast, a group
    src, dst = rng.choice(hosts), rng.choice(hosts)
    if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        ports = bytes((0, rng.choice((0, 8, 128, 129, 134)), 0, rng.choice((0, 129, 136))))
    elif proto >= PORTLESS:
        ports = bytes(4)
    else:
        ports = rng.choice(_PORTS).to_bytes(2, "big") + rng.choice(_PORTS).to_bytes(2, "big")
    return src + dst + ports


def _table(seed: int) -> tuple[dict[int, dict[bytes, Entry]], list[Any]]:
    rng = random.Random(seed)
    tables: dict[int, dict[bytes, Entry]] = {}
    packet = 1
    for _ in range(rng.randrange(1, 80)):
        proto = rng.choice(_PROTOCOLS)
        key = _key(rng, proto)
        table = tables.setdefault(proto, {})
        table[key] = _entry(rng, proto, packet)
        packet += rng.randrange(0, 3)  # directions may share a first packet
        if rng.random() < 0.6 and reverse_key(key) != key:
            table[reverse_key(key)] = _entry(rng, proto, packet)
            packet += 1
    retired: list[Any] = []
    for _ in range(rng.randrange(0, 4)):
        live = list(tables.get(IPPROTO_TCP, {}))
        # a 5-tuple used again: its flow reference names two flows, told apart by packet
        key = rng.choice(live) if live and rng.random() < 0.5 else _key(rng, IPPROTO_TCP)
        other = _entry(rng, IPPROTO_TCP, packet + 1) if rng.random() < 0.7 else None
        retired.append((key, _entry(rng, IPPROTO_TCP, packet), other))
        packet += 2
    return tables, retired


def _finish(
    seed: int, compiled_finish: Callable[..., tuple[list[Flow], FlowIds]] | None
) -> tuple[list[Flow], FlowIds, FlowTable]:
    table = FlowTable(3, lambda _proto, _key: 0)
    table.tables, table._retired = _table(seed)
    table.compiled_finish = compiled_finish
    built, ids = table.finish(7, Addresses())
    return built, ids, table


def _answers(ids: Any, named: FlowIds) -> list[int]:
    """What `ids` answers for every reference `named` knows, and a few it does not, at
    packets before, among and after its flows' (the compiled finish's FlowIdTable must
    answer as FlowIds does: a reused 5-tuple's generations told apart by packet)."""
    refs = [*named._ids, (IPPROTO_TCP, b"no such flow"), (IPPROTO_UDP, bytes(12))]
    refs += [(proto, key[:5]) for proto, key in named._ids][:3]
    packets = (0, 1, 2, 3, 50, 99, 100, 101, 150, 10**6)
    return [ids.get(ref, packet) for ref in refs for packet in packets]


@pytest.mark.skipif(not COMPILED_FLOWS, reason="the compiled flow builder is not built")
@pytest.mark.parametrize("seed", range(400))
def test_compiled_finish_is_the_python_one(seed: int) -> None:
    expected, expected_ids, _ = _finish(seed, None)
    assert ingest._COMPILED_FLOWS is not None
    got, ids, table = _finish(seed, ingest._COMPILED_FLOWS.finish)
    assert got == expected
    assert [f.sample_packets for f in got] == [f.sample_packets for f in expected]
    assert _answers(ids, expected_ids) == _answers(expected_ids, expected_ids)
    # Every entry left the table (they live on only in their flows).
    assert not any(table.tables.values()) and not table._retired


@pytest.mark.skipif(not COMPILED_FLOWS, reason="the compiled flow builder is not built")
def test_compiled_finish_takes_the_common_flows_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TCP flow opened by a SYN is oriented and built in C: flows.py is not asked."""
    assert ingest._COMPILED_FLOWS is not None
    asked: list[str] = []
    compiled_module = ingest._COMPILED_FLOWS
    for name in ("_orient", "_build"):
        original = getattr(compiled_module, name)

        def spy(*args: Any, _name: str = name, _original: Any = original) -> Any:
            asked.append(_name)
            return _original(*args)

        monkeypatch.setattr(compiled_module, name, spy)
    table = FlowTable(0, lambda _proto, _key: 0)
    key = bytes((192, 0, 2, 1, 192, 0, 2, 2, 0x9C, 0x40, 0x01, 0xBB))
    out, back = flows.new_entry(1.0, 1, 0), flows.new_entry(1.1, 2, 0)
    out[PKTS], out[TCP_OPEN], out[SAMPLES] = 1, SYN_SEEN, array("q", [1])
    back[PKTS], back[TCP_OPEN], back[SAMPLES] = 1, SYNACK_SEEN, array("q", [2])
    table.tables[IPPROTO_TCP] = {key: out, reverse_key(key): back}
    (flow,), _ = compiled_module.finish(table, 1, Addresses())
    assert asked == []
    assert (flow.accepted, flow.sample_packets, str(flow.initiator)) == (True, (1, 2), "192.0.2.1")


@pytest.mark.skipif(not COMPILED_FLOWS, reason="the compiled flow builder is not built")
def test_compiled_flows_share_their_numbers() -> None:
    """#17 (memory): a flow's samples are packed (records.PacketNumbers), its first payload is
    the int object its first or last packet is when they are equal, a flow of one packet
    holds one int for both, and flows to one port share that port's int (the 2M web
    capture's 65k flows: 7 MiB)."""
    assert ingest._COMPILED_FLOWS is not None
    table = FlowTable(0, lambda _proto, _key: 0)
    directions: dict[bytes, Entry] = {}
    for n, sport in enumerate((40000, 40001)):
        key = bytes((192, 0, 2, 1, 192, 0, 2, 2)) + sport.to_bytes(2, "big") + b"\x20\xfb"
        first = 1000 + 10 * n
        out, back = flows.new_entry(1.0, first, 0), flows.new_entry(1.1, first + 1, 0)
        out[PKTS], out[TCP_OPEN], out[SAMPLES] = 2, SYN_SEEN, array("q", [first, first + 2])
        out[N_LAST], out[PAYLOAD_N] = first + 2, first + 2
        back[PKTS], back[TCP_OPEN], back[SAMPLES] = 1, SYNACK_SEEN, array("q", [first + 1])
        directions |= {key: out, reverse_key(key): back}
    key = bytes((192, 0, 2, 1, 192, 0, 2, 2)) + (40002).to_bytes(2, "big") + b"\x20\xfb"
    alone = flows.new_entry(1.0, 2000, 0)  # one SYN, never answered
    alone[PKTS], alone[TCP_OPEN], alone[SAMPLES] = 1, SYN_SEEN, array("q", [2000])
    directions[key] = alone
    table.tables[IPPROTO_TCP] = directions
    built, _ = ingest._COMPILED_FLOWS.finish(table, 1, Addresses())
    for flow in built[:2]:
        assert type(flow.sample_packets) is PacketNumbers
        assert flow.sample_packets == (flow.first_packet, flow.first_packet + 1, flow.last_packet)
        assert flow.first_payload_packet == flow.last_packet
    assert built[2].first_packet == built[2].last_packet and built[2].sample_packets == (2000,)
    assert built[0].responder_port == built[1].responder_port == 8443
    if COMPACT:
        return  # the compact record keeps its numbers unboxed: nothing to share
    for flow in built[:2]:
        assert flow.first_payload_packet is flow.last_packet
    assert built[2].first_packet is built[2].last_packet
    assert built[0].responder_port is built[1].responder_port


@pytest.mark.skipif(not COMPILED_FLOWS, reason="the compiled flow builder is not built")
def test_compiled_flows_of_one_instant_share_its_time() -> None:
    """#17 (memory): a flow whose first and last packet have the same time holds one float
    object for both (a port scan's flows are one SYN each: 32 MiB of 1M flows); a flow that
    lasted holds two, and a zero time is never shared (0.0 and -0.0 are equal)."""
    assert ingest._COMPILED_FLOWS is not None
    table = FlowTable(0, lambda _proto, _key: 0)
    directions: dict[bytes, Entry] = {}
    for n, (start, end) in enumerate(((5.25, 5.25), (5.25, 6.5), (0.0, 0.0))):
        key = bytes((192, 0, 2, 1, 192, 0, 2, 2)) + (40000 + n).to_bytes(2, "big") + b"\x00\x50"
        out = flows.new_entry(start, 10 * n + 1, 0)
        # two float objects, as the compiled step's entries give (a list entry may share one)
        out[T_LAST], out[TCP_OPEN] = end * 1.0, SYN_SEEN
        directions[key] = out
    table.tables[IPPROTO_TCP] = directions
    one, lasted, zero = ingest._COMPILED_FLOWS.finish(table, 1, Addresses())[0]
    assert one.first_time == one.last_time == 5.25
    assert (lasted.first_time, lasted.last_time) == (5.25, 6.5)
    assert zero.first_time == zero.last_time == 0.0
    if not COMPACT:  # the compact record keeps its times unboxed: nothing to share
        assert one.first_time is one.last_time and zero.first_time is not zero.last_time


@pytest.mark.skipif(not COMPILED_FLOWS, reason="the compiled flow builder is not built")
@pytest.mark.parametrize("seed", range(40))
def test_compiled_in_flows_is_the_python_one(seed: int) -> None:
    """Hellos numbered with their flows' ids, a reused 5-tuple's told apart by packet; the
    references read in place (flows.FlowRefs), in the hellos' order or in another."""
    _, ids, _ = _finish(seed, None)
    refs = [*ids._ids, (IPPROTO_TCP, b"no such flow")]
    rng = random.Random(seed)
    hellos = [
        (rng.choice(refs), TlsServerHello(3, rng.randrange(1, 200), 1.0, 0, 0x0304, 0x1301, None))
        for _ in range(rng.randrange(0, 60))
    ]
    renumbered = renumbering(TlsServerHello)
    order = list(range(len(hellos)))
    rng.shuffle(order)
    assert ingest._COMPILED_FLOWS is not None
    for taken in (None, order):
        packed = FlowRefs()
        for (proto, key), _ in hellos:
            packed.add(proto, key if rng.random() < 0.5 else flows.reverse_key(key))
        chosen = [hellos[i] for i in (range(len(hellos)) if taken is None else taken)]
        expected = [renumbered(hello, ids.get(ref, hello.packet)) for ref, hello in chosen]
        got = ingest._COMPILED_FLOWS.in_flows(
            renumbered, packed, taken, [hello for _, hello in chosen], ids
        )
        assert got == expected
        assert not packed.packed  # let go once read
    with pytest.raises(ValueError):  # a reference short: never a hello left unnumbered
        ingest._COMPILED_FLOWS.in_flows(
            renumbered, FlowRefs(), None, [hellos[0][1]] if hellos else [None], ids
        )


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("seed", range(20))
def test_every_id_is_known_before_any_flow_is_built(seed: int, compiled: bool) -> None:
    """`numbered` sees the ids the flows will have, before the first flow exists (a part's
    hellos are numbered and let go then: the two never both exist in full)."""
    if compiled and not COMPILED_FLOWS:
        pytest.skip("the compiled flow builder is not built")
    expected, expected_ids, _ = _finish(seed, None)
    table = FlowTable(3, lambda _proto, _key: 0)
    table.tables, table._retired = _table(seed)
    table.compiled_finish = ingest._COMPILED_FLOWS.finish if compiled else None
    seen: list[list[int]] = []
    made: list[bytes] = []
    addresses = Addresses()

    def address(raw: bytes) -> Any:  # building a flow asks for its addresses
        made.append(raw)
        return addresses(raw)

    def numbered(ids: FlowIds) -> None:
        assert not made
        seen.append(_answers(ids, expected_ids))

    built, _ = table.finish(7, address, numbered)
    assert built == expected
    assert seen == [_answers(expected_ids, expected_ids)]


@pytest.mark.parametrize("compiled", [False, True])
def test_finish_lets_go_of_the_retired_entries_everywhere(compiled: bool) -> None:
    """The compiled step keeps the table's list of retired connections as its own reference:
    finish empties that very list, so no retired entry outlives its flow's building (#17: a
    new list left the web mix's 24k retired entries alive, pinning 21 MiB of the peak)."""
    if compiled and not COMPILED_FLOWS:
        pytest.skip("the compiled flow builder is not built")
    seed = next(s for s in range(100) if _table(s)[1])  # one with retired connections
    table = FlowTable(3, lambda _proto, _key: 0)
    table.tables, table._retired = _table(seed)
    held = table._retired  # as observe/_step.pyx holds it
    table.compiled_finish = ingest._COMPILED_FLOWS.finish if compiled else None
    built, _ = table.finish(7, Addresses())
    assert len(built) > len(_table(seed)[1])
    assert held == [] and table._retired is held


_TEMPORARY_FILE = tempfile.TemporaryFile


class _ShortFile:
    """A scratch file on a full disk: takes `room` bytes, then writes short."""

    def __init__(self, room: int) -> None:
        self._file = _TEMPORARY_FILE(buffering=0)
        self._room = room

    def write(self, data: bytes) -> int:
        taken = min(len(data), self._room)
        self._room -= taken
        return self._file.write(bytes(data[:taken])) or 0

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _ShortFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.mark.parametrize("room", [None, 0, 40, 10**6])
def test_flow_references_through_their_file_come_back_in_order(
    room: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FlowRefs.flush sends the walk's references to a file; `whole` brings them back in
    front, in order. No file (None), or one that takes no more (a full disk: 0, 40 bytes):
    the rest stay in memory, nothing is lost."""
    if room is None:

        def refused(*args: object, **kwargs: object) -> object:
            raise OSError(28, "no scratch file here")

        monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    else:
        monkeypatch.setattr(tempfile, "TemporaryFile", lambda **kwargs: _ShortFile(room))
    monkeypatch.setattr(flows, "REFS_FLUSH_BYTES", 20)
    refs = FlowRefs()
    given = [
        (IPPROTO_TCP if i % 3 else IPPROTO_UDP, bytes([i]) * (12 if i % 2 else 36))
        for i in range(50)
    ]
    for proto, key in given:
        refs.add(proto, key)
    assert list(refs.taken()) == [(proto, key) for proto, key in given]
    assert not refs.packed  # let go once read
