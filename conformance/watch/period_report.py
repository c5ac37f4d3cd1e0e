"""One period's signed report: its captures' observations merged, judged, written and sealed by
the run's own steps (conformance.run.Run: prepare, judge, finish), without pytest.

It runs in a child process of its own (`write_in_child`), so the watcher's memory never holds
a period's flows: however long the watch runs, its own footprint stays that of one poll.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from conformance.digest import ENVELOPE_NAME, sha256_file
from conformance.errors import ConformanceError
from conformance.evidence.interface import Collected
from conformance.evidence.pcap import capture_evidence_name
from conformance.observe.builder import observe_captures
from conformance.observe.merge import merge_all
from conformance.observe.parallel import Judged
from conformance.observe.records import Observations
from conformance.options import RunOptions
from conformance.profile_model import Profile
from conformance.progress import Progress
from conformance.report.interface import PeriodLink
from conformance.report.prestage import Prestage
from conformance.run import Run
from conformance.verdict import Verdict
from conformance.watch.spill import SpillError, load


@dataclass(frozen=True, slots=True)
class PeriodFile:
    """One judged capture of the period: its copy, its observations, who read it."""

    stored: Path
    spill: Path
    sha256: str
    size: int
    executor: str
    worker: str


@dataclass(frozen=True, slots=True)
class PeriodRequest:
    """Everything the period's report needs (plain data: it crosses to a child process)."""

    profile: Path
    report_dir: Path
    sign_key: Path | None
    waivers: Path | None
    files: tuple[PeriodFile, ...]  # in order of their first packet
    link: PeriodLink
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PeriodWritten:
    """The period's report: where, its verdict, its envelope's SHA-256 (the next link)."""

    report_dir: Path
    verdict: Verdict
    envelope_sha256: str
    controls: tuple[tuple[str, str], ...]  # (control id, verdict) for the log line


class _PeriodSource:
    """The period's captures as an evidence source (already collected by the watch)."""

    name = "watch"

    def __init__(self, collected: Collected) -> None:
        self.collected = collected

    def collect(self, profile: Profile, progress: Progress) -> Collected:
        return self.collected

    def close(self) -> None:
        pass


class _StoredCopies(Prestage):
    """The watch's copies of its captures, handed to the report as hard links: the report
    takes a link with a rename, and the copy stays until the report is in place."""

    def __init__(self, report_dir: Path, files: tuple[PeriodFile, ...]) -> None:
        super().__init__(report_dir)
        self._files = {f.stored.resolve(): f for f in files}
        self._links: list[Path] = []

    def take(self, source: Path) -> tuple[Path, str, int] | None:
        found = self._files.get(source.resolve())
        if found is None:
            return None
        link = found.stored.with_name(f".{found.stored.name}.report-{os.getpid()}")
        try:
            link.unlink(missing_ok=True)
            os.link(found.stored, link)
        except OSError:
            return None  # another filesystem: the report copies the file itself
        self._links.append(link)
        return link, found.sha256, found.size

    def close(self) -> None:
        for link in self._links:
            link.unlink(missing_ok=True)
        self._links.clear()
        super().close()


def period_observations(files: tuple[PeriodFile, ...]) -> tuple[Observations, tuple[str, ...]]:
    """The period's captures' observations merged in order, and notes on what was read again.

    A spill that cannot be read (damaged, another harness version) is replaced by reading the
    capture's copy again: nothing judged is lost.
    """
    notes: list[str] = []

    def parts() -> list[Observations]:
        out = []
        for item in files:
            try:
                out.append(load(item.spill))
            except SpillError as exc:
                notes.append(f"{exc}; {item.stored.name} was read again")
                out.append(observe_captures([item.stored]))
        return out

    return merge_all(parts()), tuple(notes)


def write_period(request: PeriodRequest) -> PeriodWritten:
    """Judge the period's merged observations and write its signed report (run.Run's steps).

    Raises ConformanceError for what a user can fix (a bad profile, key or report directory)
    and OSError for a full disk; either leaves no report behind.
    """
    stored = tuple(f.stored for f in request.files)
    collected = Collected(
        source="watch",
        captures=stored,
        files=tuple((p, capture_evidence_name(i, p)) for i, p in enumerate(stored)),
    )
    options = RunOptions(
        profile=request.profile,
        report_dir=str(request.report_dir),
        sign_key=request.sign_key,
        waivers=request.waivers,
    )
    run = Run.prepare(options, request.report_dir.parent, _PeriodSource(collected))
    try:
        obs, reread = period_observations(request.files)
        run.collected = collected
        run.observations = dataclasses.replace(
            obs, source="watch", notes=(*request.notes, *reread, *obs.notes)
        )
        run.judged = tuple(Judged(i, f.executor, f.worker) for i, f in enumerate(request.files))
        run.period = request.link
        run.prestage = _StoredCopies(run.report_dir, request.files)
        run.judge_all()
        summary = run.finish()
    finally:
        run.close()
    if summary.report_dir is None:
        raise OSError(summary.problem or "the period's report was not written")
    return PeriodWritten(
        report_dir=summary.report_dir,
        verdict=summary.verdict,
        envelope_sha256=sha256_file(summary.report_dir / ENVELOPE_NAME)[0],
        controls=tuple((r.control_id, r.verdict.value) for r in summary.results),
    )


def _write_period_plainly(request: PeriodRequest) -> PeriodWritten:
    """`write_period`, its errors made plain ConformanceError/OSError: errors with arguments of
    their own (ProfileError, CaptureError) do not survive the way back from a child."""
    try:
        return write_period(request)
    except ConformanceError as exc:
        raise ConformanceError(str(exc)) from None
    except OSError as exc:
        raise OSError(exc.errno, str(exc)) from None


def write_in_child(request: PeriodRequest) -> PeriodWritten:
    """`write_period` in a child process of its own (its memory is returned when it ends)."""
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_write_period_plainly, request).result()
