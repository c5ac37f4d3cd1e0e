"""Seeded byte mutations shared by the fuzz tests (test_fuzz_captures, the observe
differential): the same draws, so a seed names the same mutant in each."""

from __future__ import annotations

from collections.abc import Sequence
from random import Random


def change_bytes(
    data: bytearray, start: int, end: int, rng: Random, interesting: Sequence[int]
) -> None:
    """One to three bytes of data[start:end]: a bit flipped, a value from `interesting`
    (values that break length fields and flags more often than random bytes do), or a
    random byte."""
    for _ in range(rng.randint(1, 3)):
        pos = rng.randrange(start, end)
        roll = rng.random()
        if roll < 0.4:
            data[pos] ^= 1 << rng.randrange(8)
        elif roll < 0.6:
            data[pos] = rng.choice(interesting)
        else:
            data[pos] = rng.randrange(256)
