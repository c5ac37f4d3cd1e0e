"""The records out of memory (observe/_records.pyx `RecordStore`, #17): where the compiled
records are built, an observation's flows and hellos are packed in a scratch file and each
record is made when asked. The store must be the tuple it stands in for in everything a reader does:
the same records in the same order, by index, slice and iteration, equal to that tuple and
hashing as it, pickled and back, replaced in place (the ECH classification), and kept whole
when no file can be had or the file takes no more."""

from __future__ import annotations

import dataclasses
import ipaddress
import pickle
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conformance.decode import compiled
from conformance.decode.ech import EchKind
from conformance.judge.common import FlowRows, target_view
from conformance.judge.hybrid import FirstOfFlow
from conformance.observe import records
from conformance.observe.records import (
    DATACLASS_RECORDS,
    Flow,
    FlowPart,
    InitiatorBasis,
    IPAddress,
    Observations,
    PacketNumbers,
    PayloadKind,
    TlsClientHello,
    TlsServerHello,
    record_store,
    sealed_records,
)
from conformance.profile_model import Environment, Mode, Profile, Target

COMPACT = TlsClientHello not in DATACLASS_RECORDS
pytestmark = pytest.mark.skipif(not COMPACT, reason="the compiled records are not built")
_MODULE: Any = compiled.load(compiled.MODULES[3])

# Past one block of the tail (128 KiB: 2,520 client and 4,096 server records), so the file
# and its read windows are used, and a partial block stays in memory.
COUNT = 10_007
KINDS = tuple(EchKind)


def _client(i: int) -> TlsClientHello:
    return TlsClientHello(
        i % 3,
        10 * i,
        1_700_000_000.0 + i / 7,
        (i * 7919) % 2**32,
        (f"host-{i % 50}.example", None, "")[i % 3],
        ((772, 771), (771,))[i % 2],
        tuple(range(i % 5)),
        ("h2", "http/1.1") if i % 4 else (),
        1 + i % 9,
        None if i % 5 else (1, 0x6B3343CF, 0xFFFFFFFF)[i % 3],
        KINDS[i % len(KINDS)],
    )


def _server(i: int) -> TlsServerHello:
    return TlsServerHello(
        i % 2,
        10 * i + 3,
        1_700_000_000.5 + i,
        i + 1,
        0x0303 + i % 2,
        (i * 31) % 0x10000,
        None if i % 3 else 1,
    )


ADDRESSES = [ipaddress.ip_address(f"192.0.2.{i}") for i in range(1, 40)] + [
    ipaddress.ip_address(f"2001:db8::{i:x}") for i in range(1, 40)
]
BASES = tuple(InitiatorBasis)
KINDS_OF_PAYLOAD = tuple(PayloadKind)


def _flow(i: int) -> Flow:
    wide = i % 11 == 0  # samples past 32 bits, or more than fit inline: the rare slot
    return Flow(
        i + 1,
        i % 4,
        ("tcp", "udp", "icmp")[i % 3],
        4 if i % 2 else 6,
        ADDRESSES[i % len(ADDRESSES)],
        i % 65536,
        ADDRESSES[(i * 7) % len(ADDRESSES)],
        (443, 53, 389)[i % 3],
        BASES[i % len(BASES)],
        bool(i & 1),
        bool(i & 2),
        bool(i & 4),
        bool(i & 8),
        i * 3,
        2**40 + i if i % 13 == 0 else i,
        i * 1000,
        2**62 if i % 17 == 0 else i * 900,
        1_700_000_000.0 + i / 3,
        1_700_000_100.0 + i / 3,
        i,
        i + 2**33 * (i % 2),
        PacketNumbers([i, i + 1, 2**33] if wide else [i, i + 1, i + 2][: i % 4]),
        i % 0x200,
        (i * 3) % 0x200,
        KINDS_OF_PAYLOAD[i % len(KINDS_OF_PAYLOAD)],
        KINDS_OF_PAYLOAD[(i + 1) % len(KINDS_OF_PAYLOAD)],
        None if i % 6 == 0 else i + 1,
        (b"", b"\x16\x03\x01", bytes([i % 256]) * (i % 9))[i % 3],
        ("", "ipv4>gre", "ipv6>vxlan")[i % 3],
        1 + i % 3,
        (FlowPart(0, i, i + 5),) if i % 19 == 0 else (),
    )


CLIENTS = [_client(i) for i in range(COUNT)]
SERVERS = [_server(i) for i in range(COUNT)]
FLOWS = [_flow(i) for i in range(COUNT)]


@pytest.fixture(params=["flow", "client", "server"])
def kind_and_records(request: pytest.FixtureRequest) -> tuple[type, list[Any]]:
    if request.param == "flow":
        return Flow, FLOWS
    if request.param == "client":
        return TlsClientHello, CLIENTS
    return TlsServerHello, SERVERS


def test_records_come_back_as_given(kind_and_records: tuple[type, list[Any]]) -> None:
    kind, given = kind_and_records
    store = record_store(kind, given)
    assert type(store) is _MODULE.RecordStore
    assert store.on_file > 0, "the test must reach the scratch file"  # type: ignore[attr-defined]
    assert len(store) == COUNT
    assert list(store) == given
    assert [store[i] for i in range(COUNT)] == given
    assert [store[i] for i in range(COUNT - 1, -1, -1)] == given[::-1]  # windows reloaded
    assert list(reversed(store)) == given[::-1]
    assert store[-1] == given[-1] and store[5:9] == tuple(given[5:9])
    assert store[::1000] == tuple(given[::1000])
    assert store == given and store == tuple(given) and tuple(given) == store
    assert store != given[:-1] and store != [*given[:-1], given[0]]
    with pytest.raises(IndexError):
        store[COUNT]
    with pytest.raises(IndexError):
        store[-COUNT - 1]


def test_a_flow_comes_back_field_by_field() -> None:
    store = record_store(Flow, FLOWS)
    for i in (0, 11, 13, 17, 19, COUNT - 1):
        made = store[i]
        assert dataclasses.asdict(made) == dataclasses.asdict(FLOWS[i])
        assert made.sample_packets == FLOWS[i].sample_packets
        assert made.continued == FLOWS[i].continued
        assert made.community_id == FLOWS[i].community_id
        assert made.initiator is FLOWS[i].initiator  # the very address object
        assert made.initiator_basis is FLOWS[i].initiator_basis
    assert list(store.packets()) == [f.first_packet for f in FLOWS]  # type: ignore[attr-defined]


def test_a_flow_store_packs_each_address_once() -> None:
    store = record_store(Flow, FLOWS)
    _, (_, _, values, _) = store.__reduce__()  # type: ignore[attr-defined]
    addresses = [v for v in values if isinstance(v, ipaddress.IPv4Address | ipaddress.IPv6Address)]
    assert len(addresses) == len(ADDRESSES)  # each once, not once per flow and end


def test_object_fields_come_back_as_the_very_objects() -> None:
    sni = "".join(["shared", ".example"])  # not interned: identity is the store's doing
    suites = (4865, 4866)
    given = [TlsClientHello(0, i, 0.0, 1, sni, (772,), suites, ("h2",)) for i in range(3000)]
    store = record_store(TlsClientHello, given)
    for record in (store[0], store[2999]):
        assert record.sni is sni and record.cipher_suites is suites
        assert record.ech is EchKind.NONE


def test_a_record_replaced_in_place_on_file_and_in_memory() -> None:
    store = record_store(TlsClientHello, CLIENTS)
    expected = list(CLIENTS)
    for i in (0, 3, COUNT // 2, COUNT - 1):  # in the file (in a window or not) and the tail
        store[i] = expected[i] = CLIENTS[(i + 1) % COUNT]
        assert store[i] == expected[i]
    store[-2] = expected[-2] = CLIENTS[7]
    assert list(store) == expected
    with pytest.raises(TypeError):
        store[1] = SERVERS[1]  # type: ignore[call-overload]


def test_sealed_it_is_a_tuple_that_hashes_as_one() -> None:
    store = sealed_records(record_store(TlsServerHello, SERVERS))
    assert hash(store) == hash(tuple(SERVERS))
    with pytest.raises(TypeError):
        store.append(SERVERS[0])  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        store[0] = SERVERS[1]  # type: ignore[index]
    open_store = record_store(TlsServerHello, SERVERS)
    with pytest.raises(TypeError):
        hash(open_store)


def test_pickled_and_back(kind_and_records: tuple[type, list[Any]]) -> None:
    kind, given = kind_and_records
    store = sealed_records(record_store(kind, given))
    again = pickle.loads(pickle.dumps(store))
    assert type(again) is type(store) and again.sealed  # type: ignore[attr-defined]
    assert again == given and list(again) == given


def test_a_damaged_pickle_is_refused() -> None:
    store = record_store(TlsClientHello, CLIENTS[:10])
    restore, (kind, packed, values, sealed) = store.__reduce__()  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="end inside"):
        restore(kind, packed[:-1], values, sealed)
    with pytest.raises(ValueError, match="does not hold"):
        restore(kind, packed, values[:1], sealed)


def test_wrong_records_are_refused() -> None:
    with pytest.raises(TypeError):
        record_store(TlsClientHello, SERVERS[:1])
    with pytest.raises(TypeError):
        _MODULE.RecordStore(dict)


def test_taken_in_another_order_and_packets() -> None:
    store = record_store(TlsServerHello, SERVERS)
    assert store.packets_ascend()  # type: ignore[attr-defined]
    assert list(store.packets()) == [r.packet for r in SERVERS]  # type: ignore[attr-defined]
    order = list(range(COUNT - 1, -1, -1))
    reordered = store.taken(order)  # type: ignore[attr-defined]
    assert list(reordered) == SERVERS[::-1]
    assert not reordered.packets_ascend()
    assert len(store) == 0  # the original is let go


def test_no_scratch_file_keeps_every_record_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object, **kwargs: object) -> object:
        raise OSError(28, "no scratch file here")

    monkeypatch.setattr(tempfile, "TemporaryFile", refused)
    store = record_store(TlsClientHello, CLIENTS)
    assert store.on_file == 0  # type: ignore[attr-defined]
    assert list(store) == CLIENTS


def test_a_file_that_takes_no_more_keeps_the_rest_in_memory() -> None:
    """RLIMIT_FSIZE stands in for a full disk: a write past it fails (EFBIG), in a child
    process so the limit binds nothing else."""
    code = textwrap.dedent(
        """
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        from tests.observe.test_record_store import CLIENTS, COUNT
        from conformance.observe.records import TlsClientHello, record_store
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
        store = record_store(TlsClientHello, CLIENTS)
        assert 0 < store.on_file < COUNT, store.on_file
        assert list(store) == CLIENTS
        store[1] = store[COUNT - 1] = CLIENTS[5]
        assert store[1] == store[COUNT - 1] == CLIENTS[5]
        print("ok", store.on_file)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_first_of_flow_reads_the_store_by_index() -> None:
    given = [
        TlsServerHello(0, i, 0.0, flow_id, 771, 4865)
        for i, flow_id in enumerate([3, 1, 3, 99, 2, 1, 99, 0])
    ]
    index = FirstOfFlow(record_store(TlsServerHello, given), 5)
    assert index.get(3) == given[0] and index.get(1) == given[1] and index.get(2) == given[4]
    assert index.get(4) is None and index.get(5) is None
    assert index.get(99) == given[3] and index.get(0) == given[7]


def test_without_the_compiled_records_a_list() -> None:
    assert records.record_store(records.DATACLASS_RECORDS[1], ()) == []
    assert sealed_records(iter(CLIENTS[:2])) == tuple(CLIENTS[:2])


def test_a_damaged_flow_pickle_is_refused() -> None:
    store = record_store(Flow, FLOWS[:10])
    restore, (kind, packed, values, sealed) = store.__reduce__()  # type: ignore[attr-defined]
    swapped = list(values)
    first_text = next(i for i, v in enumerate(swapped) if isinstance(v, str))
    first_member = next(i for i, v in enumerate(swapped) if isinstance(v, InitiatorBasis))
    swapped[first_text], swapped[first_member] = swapped[first_member], swapped[first_text]
    with pytest.raises(ValueError, match="RecordStore's flow"):
        restore(kind, packed, swapped, sealed)


def _profile(*targets: IPAddress) -> Profile:
    return Profile(
        source=Path("test.yaml"),
        name="site",
        mode=Mode.AIR_GAPPED,
        target=Target(targets),
        environment=Environment(
            (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32"))
        ),
    )


def test_the_target_view_of_a_store_reads_rows_of_it() -> None:
    """All flows the target's: the view shares the store; some: it keeps their rows."""
    store = sealed_records(record_store(Flow, FLOWS))
    everyone = target_view(Observations(captures=(), flows=store), _profile(*ADDRESSES))
    assert everyone.flows is store and everyone.outgoing is store
    target = FLOWS[0].initiator
    view = target_view(Observations(captures=(), flows=store), _profile(target))
    assert isinstance(view.flows, FlowRows)
    expected = [f for f in FLOWS if target in (f.initiator, f.responder)]
    assert list(view.flows) == expected and len(view.flows) == len(expected)
    assert view.flows[-1] == expected[-1] and view.flows[1:3] == tuple(expected[1:3])
    assert list(view.outgoing) == [f for f in expected if f.initiator == target]
    assert list(view.incoming) == [f for f in expected if f.initiator != target]
