"""watch.watcher: captures judged as they close, one signed report per period chained to the
previous one; late and out-of-order files, gaps, empty periods, restarts, a crash between a
report and the state, a full disk and an unreadable file. Driven in-process with a given
clock (the CLI test in test_watch_cli.py runs it for real)."""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from conformance.watch import watcher as watcher_module
from conformance.watch.state import load_state
from conformance.watch.watcher import DiskFullError
from tests.after_run import controls, report_json
from tests.capture_files import Epb, Interface, write_pcapng
from tests.watch.feed import (
    BASE,
    Feed,
    clean,
    leak,
    make_feed,
    started,
    verify_chain,
    watch_options,
    watching,
)


@pytest.fixture
def feed(tmp_path: Path) -> Feed:
    return make_feed(tmp_path)


def periods(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


def period_of(report_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = report_json(report_dir)["period"]
    return document


def test_a_leak_fails_its_period_and_the_next_clean_one_passes(feed: Feed, tmp_path: Path) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.5)
    feed.put(leak, BASE + 10.5)
    feed.put(clean, BASE + 20.5)
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 31.5)
    names = periods(root)
    assert len(names) == 3
    verdicts = [report_json(root / n)["verdict"] for n in names]
    assert verdicts == ["pass", "fail", "pass"]
    assert controls(root / names[1])["AG-EGRESS"]["verdict"] == "fail"
    links = [period_of(root / n) for n in names]
    assert [link["index"] for link in links] == [0, 1, 2]
    assert links[0]["previous"] is None
    assert links[1]["previous"]["period"] == names[0]
    assert "the first period of its chain" in (root / names[0] / "report.html").read_text()
    assert f"follows period {names[0]}" in (root / names[1] / "report.html").read_text()
    assert verify_chain(root, feed.lab.key) == 0


def test_the_history_shows_the_failed_period_and_its_new_destination(
    feed: Feed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.5)
    feed.put(leak, BASE + 10.5)
    feed.put(clean, BASE + 20.5)
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 31.5)
    capsys.readouterr()
    assert verify_chain(root, feed.lab.key, "--format", "json") == 0
    history = json.loads(capsys.readouterr().out)
    rows = history["periods"]
    assert [r["verdict"] for r in rows] == ["pass", "fail", "pass"]
    assert rows[1]["new_destinations"] == ["198.51.100.7:80/tcp"]
    assert "AG-EGRESS fail" in rows[1]["not_passed"]
    assert rows[2]["new_destinations"] == []
    assert history["head"] == rows[2]["envelope_sha256"]


def test_a_file_closing_late_joins_its_period_when_that_is_still_open(
    feed: Feed, tmp_path: Path
) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 5.0)
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 6.0)  # judged; its period is still open
        feed.put(leak, BASE + 0.5)  # an earlier file of the same period, closing later
        watch.poll(BASE + 12.0)
    (name,) = periods(root)
    report = report_json(root / name)
    assert report["verdict"] == "fail"
    assert len(report["judged_by"]) == 2
    # In the order of their first packet: the late-closing file is capture 0.
    assert report["judged_by"][0]["capture"] == "evidence/capture-0.pcap"
    captures = json.loads((root / name / "evidence" / "captures.json").read_text())["captures"]
    assert [c["first_time"] for c in captures] == [BASE + 0.5, BASE + 5.0]


def test_a_file_of_a_reported_period_is_judged_in_the_next_report(
    feed: Feed, tmp_path: Path
) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.5)
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 11.5)  # period 0 reported (clean)
        feed.put(leak, BASE + 1.0)  # a file of period 0 copied in after its report
        feed.put(clean, BASE + 10.5)
        watch.poll(BASE + 21.5)
    first, second = periods(root)
    assert report_json(root / first)["verdict"] == "pass"
    late = report_json(root / second)
    assert late["verdict"] == "fail"  # the leak is never lost
    assert any(f"arrived after period {first} was reported" in n for n in late["notes"])
    assert verify_chain(root, feed.lab.key) == 0


def test_time_no_capture_covered_is_a_gap_of_its_period(feed: Feed, tmp_path: Path) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.0)
    feed.put(clean, BASE + 6.0)  # 0.2 s .. 6.0 s: not seen
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 11.5)
    (name,) = periods(root)
    report = report_json(root / name)
    gaps = report["period"]["gaps"]
    assert [round(g["seconds"], 1) for g in gaps] == [5.8, 3.8]
    assert any(n.startswith("not seen: ") for n in report["notes"])


def test_a_period_without_captures_gets_an_inconclusive_report(feed: Feed, tmp_path: Path) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.5)
    feed.put(clean, BASE + 20.5)  # nothing in period 1
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 31.5)
    names = periods(root)
    assert len(names) == 3
    empty = report_json(root / names[1])
    assert empty["verdict"] == "inconclusive"
    assert period_of(root / names[1])["gaps"][0]["seconds"] == 10.0
    assert verify_chain(root, feed.lab.key) == 0


def test_a_period_waits_for_a_file_that_may_still_hold_its_packets(
    feed: Feed, tmp_path: Path
) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.5)
    growing = feed.directory / "ring_99999.pcap"
    feed.put(leak, BASE + 9.0, name="ring_99999.pcap")
    watch = started(watch_options(feed, root))
    # It is being written: its size changes at every poll.
    watch._detector.settle = 5.0
    try:
        watch.poll(BASE + 12.0)
        assert periods(root) == []  # the growing file's first packet is in period 0
        growing.write_bytes(growing.read_bytes())  # unchanged now
        watch._detector.settle = 0.0
        watch.poll(BASE + 13.0)
    finally:
        watch.close()
    (name,) = periods(root)
    assert report_json(root / name)["verdict"] == "fail"


def test_a_restart_judges_nothing_twice_and_loses_nothing(feed: Feed, tmp_path: Path) -> None:
    root = tmp_path / "chain"
    feed.put(leak, BASE + 0.5)
    options = watch_options(feed, root)
    with watching(options) as first:
        first.poll(BASE + 5.0)  # judged, period still open
    state = load_state(root, options.period)
    assert state is not None and len(state.files()) == 1
    feed.put(clean, BASE + 5.5)
    lines: list[str] = []
    with watching(options, lines) as second:
        second.poll(BASE + 11.5)
    (name,) = periods(root)
    report = report_json(root / name)
    assert report["verdict"] == "fail"
    assert len(report["judged_by"]) == 2
    assert sum(line.startswith("judged ") for line in lines) == 1


def test_a_report_written_before_a_crash_is_taken_into_the_chain(
    feed: Feed, tmp_path: Path
) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.5)
    options = watch_options(feed, root)
    watch = started(options)
    saved = root / ".watch" / "state.json"
    try:
        watch.poll(BASE + 5.0)
        before = saved.read_bytes()
        watch.poll(BASE + 11.5)  # period 0 written...
    finally:
        watch.close()
    saved.write_bytes(before)  # ...but the state was never saved (a crash)
    shutil.rmtree(root / ".watch" / "captures")
    (root / ".watch" / "captures").mkdir()
    lines: list[str] = []
    feed.put(clean, BASE + 10.5)
    with watching(options, lines) as again:
        again.poll(BASE + 21.5)
    assert any("taken into the chain" in line for line in lines)
    assert len(periods(root)) == 2
    assert verify_chain(root, feed.lab.key) == 0


def test_a_full_disk_stops_the_watch_and_keeps_what_was_judged(
    feed: Feed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "chain"
    feed.put(leak, BASE + 0.5)
    options = watch_options(feed, root)
    with watching(options) as watch:
        watch.poll(BASE + 5.0)
        feed.put(clean, BASE + 5.5)
        real = shutil.disk_usage

        def full(path: Any) -> Any:
            return real(path)._replace(free=1024)

        monkeypatch.setattr(watcher_module.shutil, "disk_usage", full)
        with pytest.raises(DiskFullError, match=r"disk full.*everything judged so far is kept"):
            watch.poll(BASE + 11.5)
    state = load_state(root, options.period)
    assert state is not None and [f.source for f in state.files()] == [
        sorted(p.name for p in feed.directory.iterdir())[0]
    ]
    assert periods(root) == []
    monkeypatch.undo()
    with watching(options) as watch:
        watch.poll(BASE + 11.5)
    (name,) = periods(root)
    assert report_json(root / name)["verdict"] == "fail"
    assert len(report_json(root / name)["judged_by"]) == 2


def test_a_file_that_cannot_be_read_makes_its_period_inconclusive(
    feed: Feed, tmp_path: Path
) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.5)
    bad = feed.directory / "ring_00002_x.pcap"
    bad.write_bytes(b"not a capture at all")
    os.utime(bad, (BASE + 2, BASE + 2))
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 11.5)
    (name,) = periods(root)
    report = report_json(root / name)
    assert report["verdict"] == "inconclusive"
    assert controls(root / name)["AG-EGRESS"]["verdict"] == "inconclusive"
    assert (root / name / "evidence" / "capture-1.pcap").exists()


def test_a_state_of_another_period_length_is_refused(feed: Feed, tmp_path: Path) -> None:
    from dataclasses import replace

    from conformance.errors import ConformanceError

    root = tmp_path / "chain"
    watch = started(watch_options(feed, root))
    watch.poll(BASE)
    watch.close()
    with pytest.raises(ConformanceError, match="periods are 10 s long"):
        started(replace(watch_options(feed, root), period=20.0))


def test_a_file_running_into_the_next_period_covers_its_start(feed: Feed, tmp_path: Path) -> None:
    root = tmp_path / "chain"
    long = feed.put(clean, BASE + 9.0)  # 20 packets, 9.0 .. 9.19 s
    data = bytearray(long.read_bytes())
    # Move its last packet to 11.5 s: the file covers 9.0 .. 11.5 s, into period 1.
    offset = 24
    last = 0
    while offset < len(data):
        last = offset
        offset += 16 + struct.unpack_from("<I", data, offset + 8)[0]
    struct.pack_into("<II", data, last, int(BASE) + 11, 500_000)
    long.write_bytes(bytes(data))
    os.utime(long, (BASE + 12, BASE + 12))
    feed.put(clean, BASE + 11.6)
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 21.5)
    first, second = periods(root)
    assert [round(g["seconds"], 1) for g in period_of(root / first)["gaps"]] == [9.0]
    # 10.0 .. 11.5 s was seen by the first period's file: only the end is a gap.
    assert [round(g["seconds"], 1) for g in period_of(root / second)["gaps"]] == [8.2]


def test_periods_in_a_row_without_captures_share_one_report(feed: Feed, tmp_path: Path) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.5)
    feed.put(clean, BASE + 1000.5)  # 99 periods of nothing between them
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 1011.5)
    names = periods(root)
    assert len(names) == 3
    stretch = period_of(root / names[1])
    assert stretch["gaps"][0]["seconds"] == 990.0
    assert report_json(root / names[1])["verdict"] == "inconclusive"
    assert verify_chain(root, feed.lab.key) == 0


def test_a_file_stamped_ahead_of_the_clock_is_judged_when_it_arrives(
    feed: Feed, tmp_path: Path
) -> None:
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.5)
    feed.put(leak, BASE + 86_400.5)  # a capture host's clock a day ahead
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 11.5)
        watch.poll(BASE + 21.5)
    first, arrived = periods(root)
    assert report_json(root / first)["verdict"] == "pass"
    report = report_json(root / arrived)
    assert report["verdict"] == "fail"  # its leak is not held back for a day
    assert any("ahead of the watch's clock" in n for n in report["notes"])


@pytest.mark.parametrize("stamp", [1e13, 2.5e14])  # years ~318,857 and ~7.9 million
def test_a_file_stamped_outside_the_calendar_is_judged_when_it_arrives(
    feed: Feed, tmp_path: Path, stamp: float
) -> None:
    """A capture clock no calendar shows names no period (it crashed the watch): the file
    is judged in the period it arrived in, says so, and covers none of it."""
    root = tmp_path / "chain"
    feed.put(clean, BASE + 0.5)
    frames = [bytes(p) for p in leak()]
    odd = feed.directory / "ring_odd.pcapng"
    records = [Epb(frame, time=stamp + i * 0.01) for i, frame in enumerate(frames)]
    write_pcapng(odd, records, [Interface(tsresol=0x80 | 10)])  # 2^-10 s: room for both
    os.utime(odd, (BASE + 5, BASE + 5))
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 11.5)
        watch.poll(BASE + 21.5)
    first, arrived = periods(root)
    assert report_json(root / first)["verdict"] == "pass"
    report = report_json(root / arrived)
    assert report["verdict"] == "fail"  # its leak is judged now
    assert any("a time no calendar shows" in n for n in report["notes"])
    assert verify_chain(root, feed.lab.key) == 0


def test_a_backlog_is_judged_in_batches_and_all_of_it(
    feed: Feed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watcher_module, "FILES_PER_BATCH", 3)
    root = tmp_path / "chain"
    for i in range(7):
        feed.put(leak if i == 5 else clean, BASE + i + 0.5)
    lines: list[str] = []
    with watching(watch_options(feed, root), lines) as watch:
        watch.poll(BASE + 11.5)
    (name,) = periods(root)
    report = report_json(root / name)
    assert len(report["judged_by"]) == 7
    assert report["verdict"] == "fail"
    assert sum(line.startswith("judged ") for line in lines) == 7


def test_a_capture_that_never_delivers_a_file_still_gets_its_reports(
    feed: Feed, tmp_path: Path
) -> None:
    root = tmp_path / "chain"
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 3.0)  # the watch starts in period 0; nothing ever arrives
        watch.poll(BASE + 31.5)
    (name,) = periods(root)  # periods 0 to 2 in one "nothing seen" report
    report = report_json(root / name)
    assert report["verdict"] == "inconclusive"
    assert period_of(root / name)["gaps"][0]["seconds"] == 30.0
    assert verify_chain(root, feed.lab.key) == 0
