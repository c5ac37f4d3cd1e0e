"""Periods of a watch: their length, their ids, which period a capture belongs to, and the
stretches of a period no capture covered.

Periods are aligned to the epoch (UTC): with `--period 24h` each runs from midnight UTC to
midnight UTC, with `1h` from the full hour. A capture file belongs to the period of its first
packet.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from conformance.errors import ConformanceError

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd]?)")
# A period shorter than this is a typo (and would write a report every few packets); tests
# use seconds.
MIN_PERIOD_S: Final = 1.0
ID_FORMAT: Final = "%Y%m%dT%H%M%SZ"


def duration(text: str, option: str) -> float:
    """Seconds in "24h", "30m", "90s", "2d" or "3600" (ConformanceError naming `option`)."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ConformanceError(f"{option} {text!r}: give a duration such as 24h, 30m, 90s or 2d")
    seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConformanceError(f"{option} {text!r}: must be longer than zero")
    return seconds


def period_start(moment: float, length: float) -> float:
    """The start of the period holding `moment` (epoch seconds)."""
    return math.floor(moment / length) * length


def period_id(start: float) -> str:
    """A period's id and directory name: its start in UTC, "20240501T000000Z"."""
    stamp = datetime.fromtimestamp(start, UTC)
    if stamp.microsecond:
        return stamp.strftime("%Y%m%dT%H%M%S") + f".{stamp.microsecond:06d}Z"
    return stamp.strftime(ID_FORMAT)


def gaps(
    start: float, end: float, covered: Iterable[tuple[float, float]], tolerance: float
) -> tuple[tuple[float, float], ...]:
    """The stretches of [start, end) that no (first, last) packet span covers, longer than
    `tolerance` (a quiet link between two packets is no gap at that scale)."""
    out: list[tuple[float, float]] = []
    reached = start
    for first, last in sorted(covered):
        if first >= end:
            break
        if first - reached > tolerance:
            out.append((reached, min(first, end)))
        reached = max(reached, last)
        if reached >= end:
            break
    if end - reached > tolerance:
        out.append((reached, end))
    return tuple((a, b) for a, b in out if b > a)
