"""`ucx-conformance watch`: judge rotated capture files as they close, one signed report per
period, each naming the previous period's envelope digest (a chain `verify-chain` walks).

Each poll:
1. lists the capture directory and judges every file that closed (watch.closure) and was not
   judged before: copied into the state directory (a ring may delete or overwrite it), read
   by the executor (observe.parallel: worker processes by default), its observations written
   to disk (watch.spill) and recorded in the state (watch.state), atomically, in that order;
2. writes the report of every period that ended (by the wall clock, plus `grace`) and that no
   capture file still open could belong to (a file belongs to the period of its first packet):
   the period's spills merged (observe.merge), judged and signed in a child process
   (watch.period_report); every period gets a report, an empty one too (nothing was seen:
   inconclusive, and its gap says so).

Memory stays that of one poll: flows live in spills and in the child that writes the report.
A file that arrives after its period was reported is judged in the next report written, with
a note naming the period its packets belong to (a leak in it still fails). Stretches of a
period no capture covered are gaps (decision 11: that time was not seen), in report.json's
`period.gaps` and the report's notes.

Stopping: SIGTERM or SIGINT finish the file or report in hand, save the state and exit 0. A
full disk stops the watch with one line (exit 2): everything judged so far stays recorded,
and nothing is recorded half.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from conformance.decode.capture_file import open_capture
from conformance.digest import CHUNK_BYTES
from conformance.errors import CaptureError, ConformanceError, ProfileError
from conformance.observe.parallel import CaptureExecutor, check_executor, executor_for
from conformance.observe.records import CaptureSummary, Observations
from conformance.observe.worker import ObservedFile
from conformance.profile import load_profile
from conformance.report.interface import PeriodLink
from conformance.report.lock import ReportLock, acquire
from conformance.report.text import in_calendar, outside_calendar
from conformance.report_dirs import enclosing_report
from conformance.watch import spill
from conformance.watch.closure import CaptureFile, ClosureDetector, list_captures
from conformance.watch.period_report import (
    PeriodFile,
    PeriodRequest,
    PeriodWritten,
    write_in_child,
)
from conformance.watch.periods import gaps, period_id, period_start
from conformance.watch.state import (
    CAPTURES_DIR,
    SPILLS_DIR,
    ChainHead,
    JudgedFile,
    WatchState,
    load_state,
    save_state,
    state_dir,
)

# Room a capture's copy, spill and report need beyond the file itself (metadata, tables).
MIN_FREE_BYTES: Final = 64 * 1024 * 1024
# A report holds the period's captures (hard links where it can) and tables about this big.
REPORT_FACTOR: Final = 2
# Files read and held in memory at once (each batch's observations go to disk before the next).
FILES_PER_BATCH: Final = 8
# JudgedFile.late of a file whose packets are stamped more than a period after the watch's clock.
AHEAD: Final = "ahead"
# JudgedFile.late of a file whose first packet is stamped at a time no calendar shows.
OUTSIDE_CALENDAR: Final = "outside-calendar"
# Files judged in the period they arrived in, not the one their packets name.
_ARRIVAL_PERIOD: Final = (AHEAD, OUTSIDE_CALENDAR)
# Verdicts the period's log line leaves out (report.json has every control).
_QUIET_VERDICTS: Final = ("pass", "not-applicable")


class DiskFullError(Exception):
    """The disk cannot take what the watch must write next (nothing was recorded half)."""


@dataclass(frozen=True, slots=True)
class WatchOptions:
    """Everything `watch` was given (cli.py builds it; times in seconds)."""

    profile: Path
    capture_dir: Path
    report_root: Path
    period: float
    sign_key: Path | None = None
    waivers: Path | None = None
    executor: str | None = None
    poll: float = 2.0  # seconds between listings of the capture directory
    settle: float = 2.0  # size and mtime unchanged this long before a file may be closed
    quiet: float = 120.0  # a file nobody can be seen writing is closed after this long
    grace: float = 10.0  # a period's report waits this long after its end for its last file
    gap_tolerance: float = 60.0  # silence between files shorter than this is no gap
    in_child: bool = True  # write each period's report in a child process (bounded memory)


@dataclass
class WatchLog:
    """Where the watch says what it did: one line per event (cli.py prints them)."""

    say: Callable[[str], None] = print


@dataclass
class Watch:
    """One watch over a capture directory; `start` checks everything, `run` loops."""

    options: WatchOptions
    log: WatchLog = field(default_factory=WatchLog)
    state: WatchState = field(init=False)
    stopping: bool = False
    _lock: ReportLock | None = None
    _detector: ClosureDetector = field(init=False)
    _executor: CaptureExecutor | None = None
    _first_packets: dict[tuple[str, int, int], float | None] = field(default_factory=dict)

    # -- start ------------------------------------------------------------------------------

    def start(self) -> None:
        """Check the profile, key, executor and directories; take the report root's lock;
        load the state and remove what a crash left half. ConformanceError on what a user
        can fix (exit 3)."""
        from conformance.sign.keys import ensure_key

        o = self.options
        profile = load_profile(o.profile)
        if profile.draft:
            raise ProfileError(profile.source, "draft", "a draft profile cannot be watched")
        ensure_key(o.sign_key)
        check_executor(o.executor)
        if not o.capture_dir.is_dir():
            raise ConformanceError(f"--capture-dir {o.capture_dir}: not a directory")
        root = o.report_root.absolute()
        if root == o.capture_dir.absolute() or root.is_relative_to(o.capture_dir.absolute()):
            raise ConformanceError(
                f"--report-root {o.report_root}: must not be inside --capture-dir"
            )
        inside = enclosing_report(root)
        if inside is not None:
            # Its .watch/ and period directories would be files the report's signature does
            # not name: that report would never verify again.
            raise ConformanceError(
                f"--report-root {o.report_root}: is or lies inside the signed report {inside};"
                " choose a directory of its own"
            )
        directory = state_dir(root)
        try:
            (directory / CAPTURES_DIR).mkdir(parents=True, exist_ok=True)
            (directory / SPILLS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConformanceError(f"{directory}: cannot create: {exc.strerror or exc}") from exc
        self._lock = acquire(directory)
        try:
            state = load_state(root, o.period)
            if state is None:
                state = WatchState(period_seconds=o.period)
                save_state(root, state)  # the report root is this period length's from now
            self.state = state
            self._remove_leftovers()
        except BaseException:
            self._lock.release()
            raise
        self._detector = ClosureDetector(o.capture_dir, settle=o.settle, quiet=o.quiet)

    def close(self) -> None:
        """Release the executor and the lock."""
        if self._executor is not None:
            self._executor.close()
            self._executor = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _remove_leftovers(self) -> None:
        """Copies and spills no state names (a crash between writing them and the state)."""
        directory = state_dir(self.options.report_root.absolute())
        named = {f.stored for f in self.state.files()} | {f.spill for f in self.state.files()}
        for sub in (CAPTURES_DIR, SPILLS_DIR):
            for path in (directory / sub).iterdir():
                if f"{sub}/{path.name}" not in named:
                    path.unlink(missing_ok=True)

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        """Poll until SIGTERM or SIGINT (the file or report in hand is finished first)."""
        with self._signals():
            while not self.stopping:
                self.poll(time.time())
                deadline = time.monotonic() + self.options.poll
                while not self.stopping and time.monotonic() < deadline:
                    time.sleep(min(0.2, self.options.poll))

    @contextmanager
    def _signals(self) -> Iterator[None]:
        def stop(signum: int, frame: object) -> None:
            if not self.stopping:
                self.log.say(f"signal {signum}: finishing the file in hand, then stopping")
            self.stopping = True

        saved = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for number, handler in saved.items():
                signal.signal(number, handler)

    def poll(self, now: float) -> None:
        """One listing: judge the files that closed, write the periods that ended."""
        if self.state.origin is None:
            # The chain begins with the period the watch first ran in (or an earlier file's):
            # a capture that never delivers a file still gets its "nothing seen" reports.
            self.state.origin = period_start(now, self.options.period)
            self._save()
        files = list_captures(self.options.capture_dir)
        self.state.forget_missing({f.key for f in files})
        listed = {f.key for f in files}
        self._first_packets = {k: v for k, v in self._first_packets.items() if k in listed}
        closed = self._detector.closed(files, now, done=self.state.seen.keys())
        # In batches: a batch's observations wait in memory until each is on disk, so a backlog
        # (a restart after a day) is judged in as many batches as it needs, never all at once.
        for first in range(0, len(closed), FILES_PER_BATCH):
            if self.stopping:
                break
            self._judge(closed[first : first + FILES_PER_BATCH], now)
        if not self.stopping:
            open_files = [f for f in files if f.key not in self.state.seen]
            self._write_due(now, open_files)

    # -- 1. judging files -------------------------------------------------------------------

    def _judge(self, closed: list[CaptureFile], now: float) -> None:
        root = self.options.report_root.absolute()
        directory = state_dir(root)
        copies: list[tuple[CaptureFile, int, Path, str]] = []
        for item in closed:
            if self.stopping and copies:
                break
            seq = self.state.next_seq + len(copies)
            stored = directory / CAPTURES_DIR / f"{seq:06d}-{item.path.name}"
            self._need(item.size + MIN_FREE_BYTES, f"a copy of {item.path.name}")
            try:
                digest = _copy(item.path, stored)
            except FileNotFoundError:
                stored.unlink(missing_ok=True)
                self.log.say(f"{item.path.name}: deleted before it was judged: its time is a gap")
                continue
            except OSError as exc:
                stored.unlink(missing_ok=True)
                raise _disk_full_or(exc, stored) from exc
            copies.append((item, seq, stored, digest))
        if not copies:
            return
        executor = self._executor_for(len(copies))
        pending = [(c, executor.submit(c[2])) for c in copies]
        for (item, seq, stored, digest), future in pending:
            try:
                observed = future.result()
            except Exception:
                if not self.stopping:
                    raise
                # Ctrl-C reached the workers too: this file is judged on the next start.
                for _, _, left, _ in copies:
                    if not any(
                        left.name == f.stored.rsplit("/", 1)[-1] for f in self.state.files()
                    ):
                        left.unlink(missing_ok=True)
                return
            self._record(item, seq, stored, digest, observed, executor.label, now)

    def _executor_for(self, files: int) -> CaptureExecutor:
        if self._executor is None:
            # A long-lived pool (worker processes are replaced after FILES_PER_WORKER files).
            self._executor = executor_for(self.options.executor, max(files, 2))
        return self._executor

    def _record(
        self,
        item: CaptureFile,
        seq: int,
        stored: Path,
        digest: str,
        observed: ObservedFile,
        label: str,
        now: float,
    ) -> None:
        directory = state_dir(self.options.report_root.absolute())
        obs = observed.observations
        if obs is None:
            obs = _unreadable(stored, digest, item.size, observed.problem)
            self.log.say(f"{item.path.name}: cannot be read ({observed.problem}): kept as evidence")
        summary = obs.captures[0] if obs.captures else None
        first = summary.first_time if summary is not None else None
        last = summary.last_time if summary is not None else None
        spill_path = directory / SPILLS_DIR / f"{seq:06d}.json.gz"
        try:
            spill.dump(obs, spill_path)
        except OSError as exc:
            stored.unlink(missing_ok=True)
            raise _disk_full_or(exc, spill_path) from exc
        length = self.options.period
        start = period_start(first if first is not None else item.mtime_ns / 1e9, length)
        late = None
        head = self.state.head
        if not in_calendar(start):
            # No period is named by such a time: judged in the one it arrived in.
            late = OUTSIDE_CALENDAR
            start = max(period_start(now, length), head.end if head is not None else 0.0)
        elif head is not None and start < head.end:
            late = period_id(start)  # reported already: judged in the next report written
            start = head.end
        elif start > now + length:
            # A capture clock far ahead would hold its packets back until that time comes.
            late = AHEAD
            start = max(period_start(now, length), head.end if head is not None else 0.0)
        judged = JudgedFile(
            seq=seq,
            source=item.path.name,
            stored=f"{CAPTURES_DIR}/{stored.name}",
            spill=f"{SPILLS_DIR}/{spill_path.name}",
            sha256=digest,
            size=item.size,
            first_time=first,
            last_time=last,
            packets=summary.packets if summary is not None else 0,
            executor=label,
            worker=observed.worker,
            late=late,
        )
        self.state.add(period_id(start), start, judged, item.key)
        self._save()
        where = ""
        if late == AHEAD:
            where = " (its packets are stamped ahead of this clock)"
        elif late == OUTSIDE_CALENDAR:
            where = " (its packets are stamped at a time no calendar shows)"
        elif late is not None:
            where = f" (late: its packets belong to {late})"
        self.log.say(
            f"judged {item.path.name}: {judged.packets} packets, period {period_id(start)}{where}"
        )

    # -- 2. writing periods -----------------------------------------------------------------

    def _write_due(self, now: float, open_files: list[CaptureFile]) -> None:
        length = self.options.period
        head = self.state.head
        if head is not None:
            start = head.end
        else:
            firsts = [*self.state.starts.values()]
            if self.state.origin is not None:
                firsts.append(self.state.origin)
            if not firsts:
                return
            start = min(firsts)
        due = now - self.options.grace
        while not self.stopping and start + length <= due:
            end = start + length
            if self._still_open(open_files, end):
                return  # a file not closed yet may hold this period's packets
            if period_id(start) not in self.state.periods:
                # Periods in a row without any capture (the capture was down, or a file's
                # clock was far behind) share one report: nothing was seen from start to end.
                end = self._empty_until(start, due, open_files)
            self._write_period(start, end)
            if self.state.head is None or self.state.head.end != end:
                return  # interrupted while writing it
            start = end

    def _still_open(self, open_files: list[CaptureFile], end: float) -> bool:
        """Whether an unjudged file may hold packets from before `end` (its first packet is
        before it, or it has none yet but was written before it)."""
        return any(first < end for first in self._earliest(open_files))

    def _earliest(self, open_files: list[CaptureFile]) -> list[float]:
        """Per unjudged file, the earliest time it may hold: its first packet, else (none yet)
        its modification time."""
        out = []
        for item in open_files:
            if item.key not in self._first_packets:
                self._first_packets[item.key] = _first_packet(item.path)
            first = self._first_packets[item.key]
            out.append(first if first is not None else item.mtime_ns / 1e9)
        return out

    def _empty_until(self, start: float, due: float, open_files: list[CaptureFile]) -> float:
        """The end of the stretch of empty periods from `start`: up to the last period that is
        due, the next period holding files, or the period of an unjudged file's first packet."""
        length = self.options.period
        end = start + math.floor((due - start) / length) * length
        for later in self.state.starts.values():
            if later > start:
                end = min(end, later)
        for first in self._earliest(open_files):
            if first > start:
                end = min(end, max(period_start(first, length), start + length))
        return max(end, start + length)

    def _write_period(self, start: float, end: float) -> None:
        o = self.options
        root = o.report_root.absolute()
        directory = state_dir(root)
        pid = period_id(start)
        files = sorted(
            self.state.periods.get(pid, []),
            key=lambda f: (f.first_time is None, f.first_time or 0.0, f.seq),
        )
        head = self.state.head
        index = head.index + 1 if head is not None else 0
        covered = [
            (f.first_time, f.last_time)
            for f in files
            if f.late is None and f.first_time is not None and f.last_time is not None
        ]
        until = self.state.covered_until
        if until is not None and until > start:
            covered.append((start, until))  # a file of the period before ran into this one
        holes = gaps(start, end, covered, o.gap_tolerance)
        link = PeriodLink(
            period=pid,
            index=index,
            start=datetime.fromtimestamp(start, UTC),
            end=datetime.fromtimestamp(end, UTC),
            previous_period=head.period if head is not None else None,
            previous_envelope_sha256=head.envelope_sha256 if head is not None else None,
            gaps=holes,
        )
        report_dir = root / pid
        adopted = self._adopt(report_dir, link)
        if adopted is None:
            self._need(
                REPORT_FACTOR * sum(f.size for f in files) + MIN_FREE_BYTES,
                f"the report of period {pid}",
            )
            request = PeriodRequest(
                profile=o.profile,
                report_dir=report_dir,
                sign_key=o.sign_key,
                waivers=o.waivers,
                files=tuple(
                    PeriodFile(
                        directory / f.stored,
                        directory / f.spill,
                        f.sha256,
                        f.size,
                        f.executor,
                        f.worker,
                    )
                    for f in files
                ),
                link=link,
                notes=_period_notes(files, holes),
            )
            try:
                written = write_in_child(request) if o.in_child else _write_here(request)
            except OSError as exc:
                raise _disk_full_or(exc, report_dir) from exc
            except Exception:
                if not self.stopping:
                    raise
                # Ctrl-C reached the child too: the period is written (or taken) next start.
                return
            adopted = written.envelope_sha256
            shown = [f"{c} {v}" for c, v in written.controls if v not in _QUIET_VERDICTS]
            verdicts = ", ".join(shown)
            self.log.say(
                f"period {pid}: {written.verdict.value}"
                + (f" ({verdicts})" if verdicts else "")
                + f", {len(files)} captures, {len(holes)} gaps -> {report_dir}"
            )
        self.state.head = ChainHead(index, pid, adopted, end)
        self.state.periods.pop(pid, None)
        self.state.starts.pop(pid, None)
        self.state.covered_until = max((c[1] for c in covered), default=None)
        self._save()
        for f in files:  # the report holds them now
            (directory / f.stored).unlink(missing_ok=True)
            (directory / f.spill).unlink(missing_ok=True)

    def _adopt(self, report_dir: Path, link: PeriodLink) -> str | None:
        """The envelope digest of a report already written for this period by a watch that
        stopped before recording it; None if there is none. ConformanceError for another
        directory in its place (the chain must not skip it)."""
        from conformance.sign.verified import open_verified

        if not report_dir.exists():
            return None
        try:
            report = open_verified(report_dir, None, allow_unpinned=True)
            period = report.predicate.get("period") or {}
            previous = period.get("previous") or {}
        except Exception as exc:
            raise ConformanceError(
                f"{report_dir}: exists and is not this period's report ({exc}); move it away"
            ) from exc
        if (
            period.get("id") == link.period
            and period.get("index") == link.index
            and previous.get("envelopeSha256") == link.previous_envelope_sha256
        ):
            self.log.say(f"period {link.period}: report already written, taken into the chain")
            return report.envelope_sha256
        raise ConformanceError(
            f"{report_dir}: exists and is not the next link of this chain; move it away"
        )

    # -- helpers ----------------------------------------------------------------------------

    def _need(self, size: int, what: str) -> None:
        root = self.options.report_root.absolute()
        free = shutil.disk_usage(root).free
        if free < size:
            raise DiskFullError(
                f"{root}: disk full ({free // 2**20} MiB free, {what} needs {size // 2**20} MiB);"
                " everything judged so far is kept: free space and start the watch again"
            )

    def _save(self) -> None:
        try:
            save_state(self.options.report_root.absolute(), self.state)
        except OSError as exc:
            raise _disk_full_or(exc, state_dir(self.options.report_root)) from exc


def _write_here(request: PeriodRequest) -> PeriodWritten:
    from conformance.watch.period_report import write_period

    return write_period(request)


def _copy(source: Path, target: Path) -> str:
    """Copy `source` to `target` (fsynced), returning the SHA-256 of the bytes copied."""
    digest = hashlib.sha256()
    with source.open("rb") as reader, target.open("xb") as writer:
        while chunk := reader.read(CHUNK_BYTES):
            digest.update(chunk)
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
    return digest.hexdigest()


def _disk_full_or(exc: OSError, path: Path) -> Exception:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(exc):
        return DiskFullError(
            f"{path}: disk full; everything judged so far is kept: free space and start the"
            " watch again"
        )
    return exc


def _first_packet(path: Path) -> float | None:
    """The time of a capture file's first packet (None: none yet, or not readable yet)."""
    try:
        with open_capture(path) as reader:
            for record in reader.packets():
                return record[0]
    except (CaptureError, OSError):
        return None
    return None


def _unreadable(path: Path, sha256: str, size: int, problem: str) -> Observations:
    """A capture that cannot be read at all, as observations that say so: a truncated file of
    no packets, so every absence claim of its period is inconclusive (fail closed)."""
    summary = CaptureSummary(
        path=str(path),
        format="unknown",
        sha256=sha256,
        link_types=(),
        interfaces=0,
        packets=0,
        bytes=size,
        first_time=None,
        last_time=None,
        malformed=0,
        anomalies=(),
        snap_truncated=0,
        truncated_file=True,
        truncated_detail=f"cannot be read: {problem}",
        drops=None,
    )
    return Observations(captures=(summary,), flows=(), notes=(f"{path.name}: {problem}",))


def _period_notes(
    files: list[JudgedFile], holes: tuple[tuple[float, float], ...]
) -> tuple[str, ...]:
    notes = [
        f"not seen: {_clock(a)} to {_clock(b)} ({b - a:.1f} s): no capture covered this time"
        for a, b in holes
    ]
    notes += [
        f"{f.source} arrived after period {f.late} was reported: judged in this period"
        for f in files
        if f.late is not None and f.late not in _ARRIVAL_PERIOD
    ]
    notes += [
        f"{f.source}: its packets are stamped {_clock(f.first_time or 0.0)}, ahead of the"
        " watch's clock: judged in the period it arrived in"
        for f in files
        if f.late == AHEAD
    ]
    notes += [
        f"{f.source}: its packets are stamped {_clock(f.first_time or 0.0)}, a time no"
        " calendar shows: judged in the period it arrived in, covering none of it"
        for f in files
        if f.late == OUTSIDE_CALENDAR
    ]
    if not files:
        notes.append("no capture file closed in this period: nothing was seen")
    return tuple(notes)


def _clock(moment: float) -> str:
    if not in_calendar(moment):
        return outside_calendar(moment)
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
