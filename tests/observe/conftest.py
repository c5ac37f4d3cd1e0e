"""Helpers shared by the observe tests: write frames to a capture and observe it.

Every capture is observed twice, written as pcap and as pcapng: both readers call the one
per-packet step (observe.ingest), which must conclude the same from either, and every
observe test checks that on its own frames. Where the compiled walks and step are built
(conformance.decode.compiled), each file is observed once more on the pure-Python code,
which must conclude the same again. And the pcap is observed in 2 and 3 parts
(observe/capture_parts.py), whose joined records must be the one pass's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from conformance.observe.builder import observe_captures
from conformance.observe.records import CAPTURE_PARTS, Observations
from tests.capture_files import LINKTYPE_ETHERNET, Epb, Interface, write_pcap, write_pcapng
from tests.compiled_paths import (
    COMPILED_FLOWS,
    COMPILED_STEP,
    COMPILED_WALK,
    parts_in_process,
    pure_python,
)
from tests.observe.frames import timed

Observe = Callable[..., Observations]

COMPILED = COMPILED_WALK or COMPILED_STEP or COMPILED_FLOWS


def _comparable(value: object) -> object:
    """Records with times rounded to the microsecond (both formats store microseconds)."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):  # a RecordStore too
        return tuple(_comparable(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(_comparable(getattr(value, f.name)) for f in dataclasses.fields(value))
    return value


def facts(obs: Observations) -> object:
    """What the observers concluded, without what differs between file formats."""
    captures = [
        (
            c.packets,
            c.first_time,
            c.last_time,
            c.malformed,
            c.anomalies,
            c.snap_truncated,
            c.truncated_file,
            c.unsupported_link_packets,
            c.fragments,
            c.reassembled,
            c.decoded,
            c.link_control,
            c.not_understood,
            c.payload_not_understood,
            c.link_addresses,
            c.silences,
            c.silence_count,
            c.silence_seconds,
            c.backward_steps,
            c.backward_count,
        )
        for c in obs.captures
    ]
    rest = (getattr(obs, part) for part in CAPTURE_PARTS if part != "captures")
    return _comparable((captures, *rest))


def assert_every_frame_accounted(obs: Observations) -> None:
    """Decision 10: decoded + link-layer control + not understood == packets, per capture."""
    for c in obs.captures:
        assert c.decoded + c.link_control_frames + c.not_understood_frames == c.packets, c


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
        index = next(counter)
        path = write_pcap(tmp_path / f"capture-{index}.pcap", items, linktype)
        obs = observe_captures([path])
        records = [
            Epb(item) if isinstance(item, bytes) else Epb(item[1], time=item[0]) for item in items
        ]
        ng = write_pcapng(tmp_path / f"capture-{index}.pcapng", records, [Interface(linktype)])
        assert facts(observe_captures([ng])) == facts(obs), "pcapng and pcap disagree"
        if COMPILED:
            with pure_python():
                for pure in (observe_captures([path]), observe_captures([ng])):
                    assert facts(pure) == facts(obs), "compiled and pure-Python code disagree"
        with parts_in_process():
            for parts in (2, 3):
                split = observe_captures([path], parts=parts)
                assert facts(split) == facts(obs), f"{parts} parts and one pass disagree"
        assert_every_frame_accounted(obs)
        return obs

    return run
