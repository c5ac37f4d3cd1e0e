"""Silences and backward time steps between consecutive packets of one capture (decision 11).

The hot loops keep the bounds `[low, high]` for the next packet's time (the previous
packet's time, and that plus SILENCE_SECONDS) in locals, store them in `low` and `high`
when they stop, and call `Timeline.step` only for a packet outside them: a capture whose
clock runs forward without long silences costs one chained comparison per packet.
Counts are exact; only the largest MAX_TIME_STEPS of each kind are kept, with packet
numbers to open in Wireshark.
"""

from __future__ import annotations

import heapq
import math

from conformance.observe.records import MAX_TIME_STEPS, TimeStep

# Sizes are ranked at microsecond resolution, the finest pcap and most pcapng files keep:
# the same capture read as pcap or pcapng then keeps the same steps.
_DIGITS = 6


class Timeline:
    """What the packet times of one capture did between consecutive packets."""

    def __init__(self) -> None:
        # the previous packet's time and that plus SILENCE_SECONDS (any first packet fits)
        self.low = -math.inf
        self.high = math.inf
        self.silence_count = 0
        self.silence_seconds = 0.0
        self.backward_count = 0
        # Times that bound the window although they are not the first or last packet's:
        # the earliest time stepped back to and the latest time stepped back from.
        self.earliest = math.inf
        self.latest = -math.inf
        # min-heaps of (size, -packet, time): the smallest kept is replaced first, and of
        # equal sizes the latest in the file
        self._silences: list[tuple[float, int, float]] = []
        self._backward: list[tuple[float, int, float]] = []

    def step(self, before: float, time: float, packet: int) -> None:
        """Packet `packet` at `time` fell outside [before, before + SILENCE_SECONDS].

        `before` is the previous packet's time. The caller moves the bounds on.
        """
        gap = time - before
        if gap > 0:
            size = round(gap, _DIGITS)
            self.silence_count += 1
            self.silence_seconds += size
            _keep(self._silences, (size, 1 - packet, before))
        elif gap < 0:  # NaN never reaches here: a pcap time is finite
            self.backward_count += 1
            self.earliest = min(self.earliest, time)
            self.latest = max(self.latest, before)
            _keep(self._backward, (round(-gap, _DIGITS), 1 - packet, before))

    def silences(self) -> tuple[TimeStep, ...]:
        """The longest silences, longest first."""
        return tuple(
            TimeStep(before=-n, after=1 - n, time=t, seconds=size)
            for size, n, t in sorted(self._silences, reverse=True)
        )

    def backward_steps(self) -> tuple[TimeStep, ...]:
        """The largest backward steps, largest first (their `seconds` are negative)."""
        return tuple(
            TimeStep(before=-n, after=1 - n, time=t, seconds=-size)
            for size, n, t in sorted(self._backward, reverse=True)
        )


def _keep(heap: list[tuple[float, int, float]], item: tuple[float, int, float]) -> None:
    """Keep `item` among the MAX_TIME_STEPS largest in `heap`."""
    if len(heap) < MAX_TIME_STEPS:
        heapq.heappush(heap, item)
    elif item > heap[0]:
        heapq.heapreplace(heap, item)
