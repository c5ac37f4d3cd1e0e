"""The compiled step's flow-table entry (observe/_step.pyx `Entry`) is read and written by
slot as flows.py's list entry is: the Python code that shares the table (payload inspection,
the general path, FlowTable.syn and finish) cannot tell them apart, except that SAMPLES
reads as a tuple and a packet number is kept with flows.add_sample."""

from __future__ import annotations

import gc
import random
import sys
from array import array
from pathlib import Path
from typing import Any

import pytest

from conformance.decode import capture_reader
from conformance.decode.ip import IPPROTO_UDP
from conformance.observe import flows, ingest
from conformance.observe.builder import observe_captures
from conformance.observe.flows import (
    CARRIED,
    ERRORS,
    HEAD,
    ISN,
    KIND,
    SAMPLES,
    STREAM,
    IcmpErrors,
    add_sample,
)
from conformance.observe.records import SAMPLE_PACKETS_PER_FLOW, PayloadKind
from tests.capture_files import write_pcap
from tests.compiled_paths import COMPILED_STEP, pure_python
from tests.observe.conftest import facts
from tests.observe.frames import CLIENT, SERVER, client_hello, handshake, server_hello, tcp, timed

pytestmark = pytest.mark.skipif(not COMPILED_STEP, reason="the compiled step is not built")
_OBJECTS = {
    KIND: lambda rng: rng.choice(list(PayloadKind)),
    HEAD: lambda rng: rng.randbytes(rng.randrange(0, 65)),
    ERRORS: lambda rng: rng.choice((None, IcmpErrors(1, 60, True, False))),
    STREAM: lambda rng: rng.choice((None, object())),
    ISN: lambda rng: rng.choice((None, rng.randbytes(4))),
    CARRIED: lambda rng: rng.choice((None, ("ipv4>gre", 2))),
}


# Bits and bytes: C ints of their own widths in the compiled entry (what the walk puts there
# is far smaller: TCP flags, want bits, SYN/SYN-ACK seen, the two direction bits, a code).
_SMALL = {
    flows.TCP_FLAGS: (0, 1, 0x1FF, 0xFFFF),
    flows.WANT: (0, 1, 511, 0xFFFF),
    flows.TCP_OPEN: (0, 1, 3, 255),
    flows.DIRS: (0, 1, 3, 255),
    flows.ICMP_CODE: (0, 1, 255, -1, 32767),
}


def _compiled() -> Any:
    assert ingest._COMPILED is not None
    return ingest._COMPILED


def _value(rng: random.Random, slot: int) -> Any:
    if slot in _OBJECTS:
        return _OBJECTS[slot](rng)
    if slot in (flows.T_FIRST, flows.T_LAST):
        return rng.uniform(0, 2e9)
    if slot in _SMALL:
        return rng.choice(_SMALL[slot])
    return rng.choice((0, 1, 7, 255, 65_535, 2**40))


@pytest.mark.parametrize("seed", range(30))
def test_an_entry_reads_back_what_the_list_does(seed: int) -> None:
    rng = random.Random(seed)
    time, packet, want = rng.uniform(0, 2e9), rng.randrange(1, 2**40), rng.randrange(0, 512)
    listed, entry = flows.new_entry(time, packet, want), _compiled().new_entry(time, packet, want)
    assert len(entry) == len(listed)
    for _ in range(60):
        slot = rng.randrange(len(listed))
        if slot == SAMPLES:
            sample = rng.randrange(1, 2**40)
            add_sample(listed, sample)
            add_sample(entry, sample)
            continue
        value = _value(rng, slot)
        listed[slot] = entry[slot] = value
    expected = [tuple(v) if isinstance(v, array) else v for v in listed]
    assert list(entry) == expected
    assert [type(a) for a in entry] == [type(b) for b in expected]


def test_samples_stay_bounded_and_read_as_a_tuple() -> None:
    listed, entry = flows.new_entry(1.0, 1, 0), _compiled().new_entry(1.0, 1, 0)
    for packet in range(1, 3 * SAMPLE_PACKETS_PER_FLOW):
        add_sample(listed, packet)
        add_sample(entry, packet)
    assert entry[SAMPLES] == tuple(listed[SAMPLES]) == tuple(range(1, SAMPLE_PACKETS_PER_FLOW + 1))
    with pytest.raises(AttributeError):
        entry[SAMPLES].append(99)  # a copy: appending to it would lose the packet
    entry[SAMPLES] = array("q", [5, 3])
    assert entry[SAMPLES] == (5, 3)
    with pytest.raises(ValueError, match="at most"):
        entry[SAMPLES] = range(SAMPLE_PACKETS_PER_FLOW + 1)
    with pytest.raises(IndexError):
        entry[len(listed)]
    with pytest.raises(IndexError):
        entry[len(listed)] = 0


def test_the_compiled_steps_table_makes_entries_in_c() -> None:
    """Every direction, made by the compiled step or by flows.py (the general path, ICMP,
    a SYN that opens a new connection on a used 5-tuple), is an Entry."""
    table = ingest.CaptureIngest(0).table
    assert table.new_entry is _compiled().new_entry
    e = table.entry(IPPROTO_UDP, bytes(12), 1.0, 1)
    assert type(e).__name__ == "Entry"
    table.account(IPPROTO_UDP, bytes(12), 1.5, 2, 100, 0, 0)
    assert (e[flows.PKTS], e[flows.BYTES], e[SAMPLES]) == (1, 100, (2,))


@pytest.mark.parametrize(("slot", "value"), [(slot, max(v) + 1) for slot, v in _SMALL.items()])
def test_a_number_past_its_c_width_is_refused(slot: int, value: int) -> None:
    """Not kept cut short: the list would keep it, so the entry says it cannot."""
    entry = _compiled().new_entry(1.0, 1, 0)
    with pytest.raises(OverflowError):
        entry[slot] = value


def test_rare_slots_and_wide_samples_read_back() -> None:
    """What few directions hold (ICMP errors, the tunnel, an ISN of another length, sample
    packet numbers past 32 bits) is kept aside and reads back as the list's."""
    listed, entry = flows.new_entry(1.0, 1, 0), _compiled().new_entry(1.0, 1, 0)
    for sample in (3, 2**32 - 1, 2**32, 2**40, 5):
        add_sample(listed, sample)
        add_sample(entry, sample)
    for slot, value in ((ISN, b"\x01\x02"), (CARRIED, ("ipv6>udp>vxlan>eth", 3))):
        listed[slot] = entry[slot] = value
    listed[ERRORS] = entry[ERRORS] = IcmpErrors(1, 60, True, False)
    assert list(entry) == [tuple(v) if isinstance(v, array) else v for v in listed]
    entry[ISN] = listed[ISN] = b"\x00\x00\x00\x07"
    entry[CARRIED] = listed[CARRIED] = entry[ERRORS] = listed[ERRORS] = None
    entry[SAMPLES] = listed[SAMPLES] = array("q", [9])
    assert list(entry) == [tuple(v) if isinstance(v, array) else v for v in listed]


def test_an_entry_is_small_and_untracked() -> None:
    """#17: 128 bytes, and the collector does not visit it (nothing it holds can hold it)."""
    entry = _compiled().new_entry(1.0, 1, 0)
    assert sys.getsizeof(entry) <= 128
    assert not gc.is_tracked(entry)


_WIDE_SLOTS = (flows.N_FIRST, flows.N_LAST, flows.PAYLOAD_N, flows.RSTS)


@pytest.mark.parametrize("slot", _WIDE_SLOTS)
@pytest.mark.parametrize("value", [2**32 - 1, 2**32, 2**40, -1, 2**63 - 1])
def test_packet_numbers_past_32_bits_are_kept_whole(slot: int, value: int) -> None:
    """Packet numbers and the RST count sit in 32 bits; one past that moves all four aside
    (64 bits) and each reads back as the list's, before and after."""
    listed, entry = flows.new_entry(1.0, 7, 0), _compiled().new_entry(1.0, 7, 0)
    for other in _WIDE_SLOTS:
        listed[other] = entry[other] = 3
    listed[slot] = entry[slot] = value
    assert list(entry) == [tuple(v) if isinstance(v, array) else v for v in listed]
    for other in _WIDE_SLOTS:
        listed[other] = entry[other] = 2**32 + other
        assert list(entry) == [tuple(v) if isinstance(v, array) else v for v in listed]
    listed[STREAM] = entry[STREAM] = object()
    listed[STREAM] = entry[STREAM] = None  # the Rare part stays: it holds the numbers
    assert list(entry) == [tuple(v) if isinstance(v, array) else v for v in listed]


def test_a_kind_is_a_payload_kind() -> None:
    """KIND is kept as a byte: any PayloadKind reads back as itself; anything else is
    refused rather than kept as something else."""
    entry = _compiled().new_entry(1.0, 1, 0)
    assert entry[KIND] is PayloadKind.NONE
    for kind in PayloadKind:
        entry[KIND] = kind
        assert entry[KIND] is kind
    with pytest.raises(ValueError, match="PayloadKind"):
        entry[KIND] = "tls"
    assert entry[KIND] is list(PayloadKind)[-1]


def test_a_capture_numbered_past_32_bits_is_read_as_by_the_python_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A capture's packets numbered across 2**32 (a file of four billion packets, which no
    test can write): the compiled step's flows, hellos and requests name the same packet
    numbers as the Python step's, whole."""
    original = capture_reader.CaptureReader.__init__

    def numbered_late(self: capture_reader.CaptureReader, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.packets_read = 2**32 - 6

    monkeypatch.setattr(capture_reader.CaptureReader, "__init__", numbered_late)
    frames = []
    for i in range(3):
        frames += handshake(CLIENT, SERVER, 42000 + i, 443, client_hello(), server_hello())
        frames.append(tcp(CLIENT, SERVER, 42000 + i, 443, "R", seq=9000))
    path = write_pcap(tmp_path / "late.pcap", timed(frames))
    compiled = observe_captures([path])
    with pure_python():
        pure = observe_captures([path])
    assert facts(compiled) == facts(pure)
    assert max(f.last_packet for f in compiled.flows) > 2**32
    assert min(f.first_packet for f in compiled.flows) < 2**32
    assert [h.packet for h in compiled.client_hellos] == [h.packet for h in pure.client_hellos]
