"""report.text: the fast epoch formatting writes what datetime writes, for every float.

A float datetime cannot hold is written `outside_calendar` (test_out_of_range_times.py).
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from conformance.report.text import iso_utc, outside_calendar

# 0001-01-01T00:00:00 and the first second after 9999-12-31T23:59:59: datetime's range.
FIRST_SECOND = -62135596800
PAST_LAST_SECOND = 253402300800


def _by_datetime(seconds: float) -> str:
    """The formatting iso_utc had before the fast path, as the reference."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _outcome(write: Callable[[float], str], seconds: float) -> str:
    """The text written, or the epoch form where datetime cannot hold `seconds`."""
    try:
        return write(seconds)
    except (ValueError, OverflowError, OSError):
        return outside_calendar(seconds)


def _edge_values() -> list[float]:
    values: list[float] = [0.0, -0.0, 1.0, 0.5, 1e-7, 4e-7, 5e-7, 6e-7, 0.9999995, 0.9999994]
    for whole in (0, 1, 1_700_000_000, 1_709_542_800, 4_102_444_799, PAST_LAST_SECOND - 1):
        for fraction in (0.0, 0.5, 0.9999995, 0.99999949, 0.99999951, 0.999999, 0.0000005):
            values.append(whole + fraction)
        # fraction * 10**6 exactly k + 1/2 (odd multiples of 1/128): round half to even
        values.extend(whole + odd / 128 for odd in range(1, 128, 2))
    # the neighbours of values that sit at a rounding edge
    values.extend(math.nextafter(v, direction) for v in list(values) for direction in (0, 1e300))
    # before 1970: the fraction is negative and borrows from the whole second
    values.extend(-v for v in list(values) if v < -FIRST_SECOND)
    return values


def _random_values(count: int) -> list[float]:
    rng = random.Random(20261203)
    values: list[float] = []
    for _ in range(count):
        whole = rng.randrange(FIRST_SECOND, PAST_LAST_SECOND)
        micros = rng.randrange(1_000_000)
        values.append(whole + micros / 1e6)  # what a pcap timestamp becomes
        values.append(whole + (micros + 0.5) / 1e6)  # half a microsecond: the rounding edge
        values.append(rng.uniform(0, 4e9))
        # any double in range, every mantissa bit pattern
        bits = struct.unpack("<d", rng.randbytes(8))[0]
        if math.isfinite(bits) and FIRST_SECOND < bits < PAST_LAST_SECOND:
            values.append(bits)
    return values


@pytest.mark.parametrize(
    "values",
    [_edge_values(), _random_values(50_000)],
    ids=["edges", "random"],
)
def test_epoch_seconds_are_written_as_datetime_writes_them(values: list[float]) -> None:
    wrong = [
        (v, _outcome(iso_utc, v), _outcome(_by_datetime, v))
        for v in values
        if _outcome(iso_utc, v) != _outcome(_by_datetime, v)
    ]
    assert not wrong, f"{len(wrong)} of {len(values)} differ, e.g. {wrong[:3]}"


@pytest.mark.parametrize(
    "seconds",
    [
        PAST_LAST_SECOND - 0.0000001,  # rounds up into year 10000
        PAST_LAST_SECOND + 0.5,
        FIRST_SECOND - 0.5,
        1e20,
        -1e20,
        math.inf,
        -math.inf,
        math.nan,
    ],
)
def test_out_of_range_is_written_in_the_epoch_form(seconds: float) -> None:
    with pytest.raises((ValueError, OverflowError, OSError)):
        _by_datetime(seconds)
    assert iso_utc(seconds) == outside_calendar(seconds)


def test_whole_seconds_given_as_int_and_datetimes_in_other_zones() -> None:
    assert iso_utc(1_709_542_800) == "2024-03-04T09:00:00.000000Z"
    plus_two = datetime(2024, 3, 4, 11, 0, 0, 250, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(plus_two) == "2024-03-04T09:00:00.000250Z"
    assert iso_utc(None) == ""
