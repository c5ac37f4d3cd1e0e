"""Helpers shared by the observe tests: write frames to a capture and observe it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from conformance.observe.builder import observe_captures
from conformance.observe.model import Observations
from tests.capture_files import LINKTYPE_ETHERNET, write_pcap
from tests.observe.frames import timed

Observe = Callable[..., Observations]


@pytest.fixture
def observe(tmp_path: Path) -> Observe:
    """observe(frames, linktype=1) -> Observations of a pcap holding those frames."""
    counter = iter(range(1_000_000))

    def run(
        frames: Sequence[bytes | tuple[float, bytes]], linktype: int = LINKTYPE_ETHERNET
    ) -> Observations:
        items = [f for f in frames]
        if items and all(isinstance(f, bytes) for f in items):
            items = list(timed([f for f in items if isinstance(f, bytes)]))
        path = write_pcap(tmp_path / f"capture-{next(counter)}.pcap", items, linktype)
        return observe_captures([path])

    return run
