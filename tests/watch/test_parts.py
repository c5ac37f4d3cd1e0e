"""The watch's parts: spills give back the very observations, closure never takes a file still
being written, periods and gaps, and the state file survives a round trip."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from conformance.errors import ConformanceError
from conformance.observe.builder import observe_captures
from conformance.observe.records import PacketNumbers
from conformance.watch import spill
from conformance.watch.closure import ClosureDetector, list_captures, open_for_writing, ring_of
from conformance.watch.periods import duration, gaps, period_id, period_start
from conformance.watch.state import JudgedFile, WatchState, load_state, save_state, state_dir
from tests import defects
from tests.observe.test_parallel import rotated_files


@pytest.mark.parametrize(
    "builder", ["tcp_leak", "ipv6_leak", "fragmented_leak", "mdns_cloud_name", "sni_cloud_name"]
)
def test_a_spill_gives_back_the_same_observations(tmp_path: Path, builder: str) -> None:
    capture = defects.write_pcap(tmp_path / "c.pcap", getattr(defects, builder)())
    obs = observe_captures([capture])
    spill.dump(obs, tmp_path / "s.json.gz")
    loaded = spill.load(tmp_path / "s.json.gz")
    assert loaded == obs
    # equal to a tuple of the same numbers too: the type is checked on its own
    assert {type(f.sample_packets) for f in loaded.flows} == {PacketNumbers}


def test_a_damaged_or_foreign_spill_is_refused(tmp_path: Path) -> None:
    capture = rotated_files(tmp_path, 1)[0]
    path = tmp_path / "s.json.gz"
    spill.dump(observe_captures([capture]), path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(spill.SpillError, match="unreadable spill"):
        spill.load(path)
    path.write_bytes(gzip.compress(b'{"format": "ucx-conformance observations spill 1"}'))
    with pytest.raises(spill.SpillError, match="another harness version"):
        spill.load(path)


def test_a_spill_of_a_period_report_reads_the_capture_again(tmp_path: Path) -> None:
    from conformance.watch.period_report import PeriodFile, period_observations

    files = rotated_files(tmp_path, 2)
    spills = []
    for i, f in enumerate(files):
        spills.append(tmp_path / f"{i}.json.gz")
        spill.dump(observe_captures([f]), spills[-1])
    spills[1].write_bytes(b"damaged")
    items = tuple(
        PeriodFile(f, s, "", f.stat().st_size, "serial", "here")
        for f, s in zip(files, spills, strict=True)
    )
    merged, notes = period_observations(items)
    whole, _ = period_observations(
        tuple(PeriodFile(f, tmp_path / "none", "", 0, "", "") for f in files)
    )
    assert merged == whole
    assert len(notes) == 1 and "was read again" in notes[0]


def test_rings_are_named_by_their_names_without_digits() -> None:
    assert ring_of("ucx_00001_20240501120000.pcapng") == ring_of("ucx_00002_20240501120100.pcapng")
    assert ring_of("trace.pcap") == ring_of("trace.pcap1")
    assert ring_of("a-1.pcap") != ring_of("b-1.pcap")


def test_a_file_open_for_writing_is_never_closed(tmp_path: Path) -> None:
    path = tmp_path / "ring_00001.pcap"
    detector = ClosureDetector(tmp_path, settle=0.0, quiet=0.0)
    with path.open("wb") as handle:
        handle.write(b"\xd4\xc3\xb2\xa1")
        handle.flush()
        writers, _ = open_for_writing(tmp_path)
        assert str(path.resolve()) in writers
        assert detector.closed(list_captures(tmp_path), 1e10) == []
    assert [f.path for f in detector.closed(list_captures(tmp_path), 1e10)] == [path]


def test_a_file_whose_size_changes_is_not_closed_until_it_settles(tmp_path: Path) -> None:
    path = tmp_path / "copy.pcap"
    path.write_bytes(b"x")
    detector = ClosureDetector(tmp_path, settle=5.0, quiet=0.0)
    assert detector.closed(list_captures(tmp_path), 100.0) == []
    path.write_bytes(b"xy")
    assert detector.closed(list_captures(tmp_path), 104.0) == []  # changed: counting again
    assert detector.closed(list_captures(tmp_path), 108.0) == []
    assert len(detector.closed(list_captures(tmp_path), 109.0)) == 1


def test_hidden_files_and_other_names_are_not_captures(tmp_path: Path) -> None:
    for name in (".ring.pcap.part", "notes.txt", "a.pcapng", "t.pcap3", "b.cap"):
        (tmp_path / name).write_bytes(b"")
    os.symlink(tmp_path / "a.pcapng", tmp_path / "link.pcap")
    assert sorted(f.path.name for f in list_captures(tmp_path)) == ["a.pcapng", "b.cap", "t.pcap3"]


def test_durations_and_period_ids() -> None:
    assert duration("24h", "--period") == 86400
    assert duration("90s", "--period") == 90
    assert duration("1.5", "--poll") == 1.5
    with pytest.raises(ConformanceError, match="--period 'soon'"):
        duration("soon", "--period")
    with pytest.raises(ConformanceError, match="longer than zero"):
        duration("0h", "--period")
    assert period_start(1_800_000_123.4, 3600) == 1_800_000_000.0
    assert period_start(1_800_000_123.4, 86400) == 1_799_971_200.0
    assert period_id(1_800_000_000.0) == "20270115T080000Z"


def test_gaps_are_the_time_no_file_covered() -> None:
    assert gaps(0, 10, [(0, 4), (3, 6), (8, 10)], 0.5) == ((6, 8),)
    assert gaps(0, 10, [(1, 9.8)], 0.5) == ((0, 1),)
    assert gaps(0, 10, [], 0.5) == ((0, 10),)


def test_the_state_survives_a_round_trip(tmp_path: Path) -> None:
    state_dir(tmp_path).mkdir()
    state = WatchState(period_seconds=60.0)
    judged = JudgedFile(
        1,
        "a.pcap",
        "captures/000001-a.pcap",
        "spills/000001.json.gz",
        "ab",
        10,
        1.0,
        2.0,
        3,
        "serial",
        "here",
    )
    state.add("P", 0.0, judged, ("a.pcap", 10, 5))
    save_state(tmp_path, state)
    again = load_state(tmp_path, 60.0)
    assert again is not None
    assert again.periods == state.periods and again.seen == state.seen
    assert not list(state_dir(tmp_path).glob(".*tmp*"))
