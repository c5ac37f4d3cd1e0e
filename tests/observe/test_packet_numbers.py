"""records.PacketNumbers: a flow's sample packet numbers, packed, read as the tuple they were."""

from __future__ import annotations

import dataclasses
import pickle
import sys

import pytest

from conformance.observe.records import Flow, PacketNumbers
from tests.judge.factory import Scenario

NUMBERS = (1, 2, 300, 70_000, 2**40, 2**63 - 1)


def make_flow(sample_packets: tuple[int, ...]) -> Flow:
    made = Scenario().flow("192.0.2.10", "192.0.2.20")
    return dataclasses.replace(made, sample_packets=sample_packets)  # type: ignore[arg-type]


def test_it_reads_as_the_tuple_of_its_numbers() -> None:
    numbers = PacketNumbers(NUMBERS)
    assert len(numbers) == len(NUMBERS) and list(numbers) == list(NUMBERS)
    assert numbers[0] == 1 and numbers[-1] == 2**63 - 1 and numbers[2] == 300
    assert numbers[:2] == (1, 2) and type(numbers[:2]) is PacketNumbers
    assert 70_000 in numbers and 4 not in numbers and "x" not in numbers
    assert {*numbers} == set(NUMBERS) and sorted(numbers) == list(NUMBERS)
    assert bool(numbers) and not PacketNumbers() and len(PacketNumbers()) == 0
    assert repr(numbers) == str(numbers) == f"PacketNumbers({NUMBERS!r})"
    with pytest.raises(IndexError):
        numbers[len(NUMBERS)]


def test_it_equals_and_hashes_as_its_tuple() -> None:
    """Records built with a tuple (tests, older code) and with packed numbers compare equal
    and land in the same set or dict slot."""
    numbers = PacketNumbers(NUMBERS)
    assert numbers == NUMBERS and NUMBERS == numbers  # noqa: SIM300 (both sides' __eq__)
    assert not numbers != NUMBERS  # noqa: SIM202 (its own __ne__)
    assert hash(numbers) == hash(NUMBERS) and {NUMBERS: "x"}[numbers] == "x"
    assert numbers == PacketNumbers(list(NUMBERS)) and numbers != PacketNumbers(NUMBERS[:-1])
    assert numbers != NUMBERS[:-1] and numbers != list(NUMBERS)
    assert numbers != bytes(numbers) and bytes(numbers) != numbers  # the packing is not them
    a, b = make_flow(sample_packets=PacketNumbers((5, 6))), make_flow(sample_packets=(5, 6))
    assert a == b and hash(a) == hash(b)


def test_it_packs_into_less_than_a_tuple() -> None:
    """#17: eight numbers above 256 are nine objects as a tuple, one packed."""
    big = tuple(range(10_000, 10_008))
    as_tuple = sys.getsizeof(big) + sum(sys.getsizeof(n) for n in big)
    assert sys.getsizeof(PacketNumbers(big)) * 2 < as_tuple
    assert sys.getsizeof(PacketNumbers((7,))) <= sys.getsizeof((7,)) + sys.getsizeof(10_000)


def test_it_pickles_and_copies_as_itself() -> None:
    numbers = PacketNumbers(NUMBERS)
    again = pickle.loads(pickle.dumps(numbers, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(again) is PacketNumbers and again == numbers
    flow = make_flow(sample_packets=numbers)
    assert dataclasses.replace(flow, flow_id=9).sample_packets == numbers
    assert PacketNumbers.from_packed(bytes(numbers)) == numbers


def test_a_packing_of_another_length_is_refused() -> None:
    with pytest.raises(ValueError, match="not a multiple of 8"):
        PacketNumbers.from_packed(b"\x01" * 9)


def test_a_number_beyond_64_bits_is_refused() -> None:
    """Packet numbers come from a capture's records; one that does not fit is a bug, said."""
    with pytest.raises(OverflowError):
        PacketNumbers((2**64,))


def test_it_orders_adds_and_repeats_as_its_tuple() -> None:
    """bytes' own operators would work on the packing: little-endian byte order (256 before
    1) and a plain bytes result that equals no tuple."""
    low, high = PacketNumbers((256,)), PacketNumbers((1, 2))
    assert high < low and low > high and high <= (1, 2) and (1, 2) >= high  # noqa: SIM300
    assert sorted([low, high]) == [high, low]
    joined = high + low
    assert type(joined) is PacketNumbers and joined == (1, 2, 256)
    assert (0,) + high == (0, 1, 2) and type((0,) + high) is PacketNumbers  # noqa: RUF005
    assert high + (3,) == (1, 2, 3)  # noqa: RUF005
    assert high * 2 == (1, 2, 1, 2) and 2 * high == (1, 2, 1, 2)
    with pytest.raises(TypeError):
        high + b"\x00" * 8  # type: ignore[operator]
    with pytest.raises(TypeError):
        high < b"\x00"  # type: ignore[operator]  # noqa: B015
