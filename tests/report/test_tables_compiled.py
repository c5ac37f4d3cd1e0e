"""The compiled lines of flows.csv and tls.csv (report/_tables.pyx) are tables.py's, byte for
byte, whatever the records hold: the awkward cells of test_tables_bytes.py, and what only
the compiled code could get wrong (times outside the calendar, not a number, or not floats;
numbers past 64 bits or not ints; text UTF-8 cannot hold; samples that are not a tuple; more
lines than one chunk; a gap in the flow ids). What only a dataclass record can hold (numbers
past 64 bits, bools and ints where numbers and times go) is written from the dataclasses;
the compact records (observe/_records.pyx) are written with every odd value they hold."""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any, TypeVar

import pytest

from conformance.decode.community_id import community_id
from conformance.decode.ip import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP
from conformance.observe.records import DATACLASS_RECORDS, Flow, TlsClientHello, TlsServerHello
from conformance.report import tables
from tests.compiled_paths import COMPILED_TABLES, pure_python
from tests.report.test_tables_bytes import CAPTURE_NAMES, Values, _flows, _hellos

pytestmark = pytest.mark.skipif(not COMPILED_TABLES, reason="the compiled tables are not built")
_ODD_TIMES = (
    math.nan, math.inf, -math.inf, 1e300, -1e300, -0.5, -1.0, 0.0, -0.0, 253402300799.9999996,
    1_700_000_000.0000005, 1_700_000_000.9999995, 1_700_000_000.0000015,
)  # fmt: skip
_ODD_NUMBERS = (2**63, -(2**63), 2**63 - 1, 2**70, -1, True, False)
# What a compact record holds of them (64-bit numbers; the dataclass holds any object).
_ODD_COMPACT_NUMBERS = (-(2**63), 2**63 - 1, -1, 0)
_R = TypeVar("_R")


def _records(compact: bool, records: list[_R]) -> list[_R]:
    """`records` as they are (compact where the module is built), or as dataclass records."""
    if compact:
        return records
    kinds = dict(zip((Flow, TlsClientHello, TlsServerHello), DATACLASS_RECORDS, strict=True))
    out: list[Any] = []
    for record in records:
        kind = kinds.get(type(record), type(record))
        out.append(kind(**{f.name: getattr(record, f.name) for f in fields(kind)}))
    return out


def _both(write: Callable[[io.StringIO], int]) -> tuple[tuple[str, int], tuple[str, int]]:
    compiled = io.StringIO()
    compiled_rows = write(compiled)
    python = io.StringIO()
    with pure_python():
        python_rows = write(python)
    return (compiled.getvalue(), compiled_rows), (python.getvalue(), python_rows)


def _odd(rng: random.Random, value: Any, odd: tuple[Any, ...]) -> Any:
    return rng.choice(odd) if rng.random() < 0.15 else value


def _odd_flows(seed: int, compact: bool) -> list[Flow]:
    rng = random.Random(seed)
    numbers = _ODD_COMPACT_NUMBERS if compact else _ODD_NUMBERS
    flows = []
    for flow in _records(compact, _flows(Values(seed))):
        first = _odd(rng, flow.first_time, _ODD_TIMES)
        if math.isfinite(first) and not compact:
            first = rng.choice((first, int(first)))
        flows.append(
            replace(
                flow,
                first_time=first,
                last_time=_odd(rng, flow.last_time, _ODD_TIMES),
                packets_out=_odd(rng, flow.packets_out, numbers),
                bytes_in=_odd(rng, flow.bytes_in, numbers),
                handshake_seen=_odd(rng, flow.handshake_seen, (0, 1)),
                sample_packets=_odd(
                    rng,
                    flow.sample_packets,
                    ((2**63 - 1, 1), (1,), ()) if compact else ((2**64, 1), (True,), ()),
                ),
            )
        )
    return flows


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "dataclass"])
@pytest.mark.parametrize("seed", range(12))
def test_flow_lines_are_the_python_ones(seed: int, compact: bool) -> None:
    flows = _odd_flows(seed, compact)
    names = [*CAPTURE_NAMES, rng_name(seed)]
    compiled, python = _both(lambda out: tables.write_flows(out, flows, names))
    assert compiled == python


@pytest.mark.parametrize("seed", range(12))
def test_tls_lines_are_the_python_ones(seed: int) -> None:
    # The writer tells a client hello by records.TlsClientHello: the class the run makes.
    rng = random.Random(seed)
    numbers = _ODD_COMPACT_NUMBERS if Flow not in DATACLASS_RECORDS else _ODD_NUMBERS
    clients, servers = _hellos(Values(seed))
    clients = [
        replace(
            h,
            time=_odd(rng, h.time, _ODD_TIMES),
            packet=_odd(rng, h.packet, numbers),
            sni=_odd(rng, h.sni, ("\ud800x", 'é,"')),
        )
        for h in clients
    ]
    # A compact hello keeps its flow id (a flow's row) in 32 bits.
    ids = (0, 2**32 - 1) if Flow not in DATACLASS_RECORDS else numbers
    servers = [replace(h, flow_id=_odd(rng, h.flow_id, ids)) for h in servers]
    names = [*CAPTURE_NAMES, rng_name(seed)]
    compiled, python = _both(lambda out: tables.write_tls(out, clients, servers, names))
    assert compiled == python


def rng_name(seed: int) -> str:
    """A capture name of its own per seed: plain, quoted, or not UTF-8 (surrogate-escaped)."""
    return ("plain.pcap", "new\nline.pcap", "b\udcffd.pcap")[seed % 3]


def test_more_lines_than_one_chunk() -> None:
    flows = _flows(Values(1)) * 3
    flows = [replace(f, flow_id=i) for i, f in enumerate(flows, start=1)]
    assert len(flows) > 2 * tables.ROWS_PER_WRITE // 2
    compiled, python = _both(lambda out: tables.write_flows(out, flows, CAPTURE_NAMES))
    assert compiled == python and compiled[1] == len(flows)
    clients, servers = _hellos(Values(2))
    hellos: list[TlsClientHello | TlsServerHello] = [*clients, *servers] * 2
    compiled, python = _both(lambda out: tables.write_tls(out, [], hellos, CAPTURE_NAMES))
    assert compiled == python and compiled[1] == len(hellos) > tables.ROWS_PER_WRITE


def test_a_gap_in_the_flow_ids_is_refused_as_in_python() -> None:
    flows = _flows(Values(3))[:5]
    flows[3] = replace(flows[3], flow_id=9)
    with pytest.raises(ValueError, match="row 4 is flow 9"):
        tables.write_flows(io.StringIO(), flows, CAPTURE_NAMES)
    with pure_python(), pytest.raises(ValueError, match="row 4 is flow 9"):
        tables.write_flows(io.StringIO(), flows, CAPTURE_NAMES)


def test_no_records_make_only_the_header() -> None:
    compiled, python = _both(lambda out: tables.write_flows(out, [], CAPTURE_NAMES))
    assert compiled == python == (",".join(tables.FLOW_COLUMNS) + "\n", 0)


def test_compiled_community_id_is_the_python_one() -> None:
    """flows.csv's community ids, SHA-1 and base64 in C (one block): the spec's example, then
    random TCP and UDP flows of both families, equal addresses told apart by port, and the
    edges of the ports."""
    compiled_id = tables._COMPILED.community_id_c  # type: ignore[union-attr]
    example = (bytes((128, 232, 110, 120)), bytes((66, 35, 250, 204)), 34855, 80)
    assert compiled_id(6, *example) == community_id(6, *example) == "1:LQU9qZlK+B5F3KDmev6m5PMibrg="
    rng = random.Random(7)
    for _ in range(3000):
        half = rng.choice((4, 16))
        a = rng.randbytes(half)
        b = a if rng.random() < 0.1 else rng.randbytes(half)
        ports = rng.choice((0, 1, 443, 65535, rng.randrange(65536))), rng.randrange(65536)
        proto = rng.choice((IPPROTO_TCP, IPPROTO_UDP))
        assert compiled_id(proto, a, b, *ports) == community_id(proto, a, b, *ports)
    with pytest.raises(ValueError):
        compiled_id(IPPROTO_ICMP, *example)  # ICMP maps type and code first: Python's
