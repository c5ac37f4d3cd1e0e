"""Observe capture files independently, on several cores or hosts, and merge the results.

Each file is read by the same observers as ever (observe.builder) into an `Observations` of
its own; observe.merge joins them in the order the files were given. So the record judges
read is the same whichever executor read the files, and the same as reading them one after
another (tests/observe/test_parallel.py):

- `serial`: in this process, one file after another, each in one pass;
- `local` (the default for several files): a pool of worker processes on this host, one per
  core (`local:N` for N); one file is read in this process, a large one (or any, with
  `local:N`) in parts on several cores (observe/capture_parts.py), which is also the
  default for one file;
- `dask://HOST:PORT`: the workers of an existing Dask distributed scheduler (the optional
  extra `ucx-conformance[scale]`); every worker must read the files at the paths given
  (shared storage), and runs the same harness version.

Every file's record says which executor and which worker read it (`Judged`), for the report.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from conformance.decode.capture_file import open_capture
from conformance.errors import CaptureError, ConformanceError
from conformance.observe.builder import EvidenceCopies, observe_captures
from conformance.observe.merge import merge
from conformance.observe.records import Observations
from conformance.observe.worker import ObservedFile, Pending, observe_file
from conformance.progress import NULL_PROGRESS, Progress

SERIAL: Final = "serial"
LOCAL: Final = "local"
DASK_SCHEME: Final = "dask://"
# A worker process is replaced after this many files: a watch runs for weeks, and a long-lived
# process keeps the high-water mark of its heap however little it still holds.
FILES_PER_WORKER: Final = 64


@dataclass(frozen=True, slots=True)
class Judged:
    """Which executor, and which of its workers, read one capture file."""

    capture: int  # index into the merged Observations.captures
    executor: str  # "serial", "local (2 processes)", "dask tcp://10.0.0.5:8786"
    worker: str  # "host pid 4242", "tcp://10.0.0.7:40123"


class CaptureExecutor(Protocol):
    """Reads capture files into observations, somewhere."""

    @property
    def label(self) -> str: ...

    @property
    def in_process(self) -> bool:
        """Whether files are read in this process (so the reader can copy them as it reads)."""
        ...

    def submit(self, path: Path) -> Pending: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Reads each file in this process when it is submitted.

    `parts` reads each file in that many processes at once (observe/capture_parts.py; None:
    a large file on every core, up to capture_parts.MAX_PARTS); 1 reads it in one pass.
    """

    in_process = True

    def __init__(self, parts: int | None = 1, label: str = SERIAL) -> None:
        self.parts = parts
        self.label = label

    def submit(self, path: Path) -> Pending:
        future: Future[ObservedFile] = Future()
        try:
            future.set_result(observe_file(str(path), self.parts))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        pass


class LocalExecutor:
    """A pool of worker processes on this host."""

    in_process = False

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.label = f"local ({self.workers} process{'es' if self.workers > 1 else ''})"
        # Loaded here: a run of one file never starts a pool (2 MiB of its peak, #17).
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # forkserver: workers do not inherit this process's threads (a report copy, a
        # capture tool's reader) or its heap.
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            max_tasks_per_child=FILES_PER_WORKER,
        )

    def submit(self, path: Path) -> Pending:
        return self._pool.submit(observe_file, str(path))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def executor_for(spec: str | None, files: int) -> CaptureExecutor:
    """The executor `spec` names (`--executor`); by default, all local cores for several files
    and this process for one. ConformanceError for a spec that names none."""
    if spec is None or spec == "":
        # One file: this process reads it, on every core when it is large (in parts).
        return SerialExecutor(parts=None) if files <= 1 else LocalExecutor()
    if spec == SERIAL:
        return SerialExecutor()
    check_executor(spec)
    if spec.startswith(DASK_SCHEME):
        from conformance.observe.dask_executor import DaskExecutor

        return DaskExecutor(spec.removeprefix(DASK_SCHEME))
    count = spec.removeprefix(LOCAL).removeprefix(":")
    if files <= 1:  # one file: read here, in parts on those cores (a large one by default)
        return SerialExecutor(parts=int(count) if count else None, label=spec)
    return LocalExecutor(int(count) if count else None)


def observe_files(
    paths: Sequence[Path],
    executor: CaptureExecutor,
    progress: Progress = NULL_PROGRESS,
    copies: EvidenceCopies | None = None,
) -> tuple[Observations, tuple[Judged, ...]]:
    """Every file read by `executor`, merged in the order given, and who read which.

    An executor that reads in this process writes the evidence copies (`copies`) as it reads,
    as observe.builder does; the others leave them to the report. Raises CaptureError for a
    file that cannot be read at all (every header is checked here first, so a bad file is
    found before any worker starts).
    """
    for path in paths:
        open_capture(path).close()
    if executor.in_process:
        where = f"{socket.gethostname()} pid {os.getpid()}"
        split = executor.parts if isinstance(executor, SerialExecutor) else 1
        parts: Iterator[tuple[Observations, str]] = (
            (observe_captures([path], progress, copies, split), where) for path in paths
        )
        return _merged(parts, executor.label, NULL_PROGRESS)
    progress.start(f"reading {len(paths)} captures ({executor.label})", len(paths))
    try:
        pending = [executor.submit(path) for path in paths]
        return _merged(_results(paths, pending), executor.label, progress)
    finally:
        progress.finish()


def _results(
    paths: Sequence[Path], pending: Sequence[Pending]
) -> Iterator[tuple[Observations, str]]:
    for path, item in zip(paths, pending, strict=True):
        part = item.result()
        if part.observations is None:
            raise CaptureError(path, part.problem)
        yield part.observations, part.worker


def _merged(
    parts: Iterator[tuple[Observations, str]], label: str, progress: Progress
) -> tuple[Observations, tuple[Judged, ...]]:
    """The parts merged in order (the first taken as it is), and who read each."""
    merged: Observations | None = None
    judged: list[Judged] = []
    for index, (part, worker) in enumerate(parts):
        merged = part if merged is None else merge(merged, part)
        judged.append(Judged(index, label, worker))
        progress.advance(index + 1, f"{len(merged.flows)} flows")
    return merged or Observations(captures=(), flows=()), tuple(judged)


def check_executor(spec: str | None) -> None:
    """Refuse an `--executor` that names no executor (before anything is read)."""
    if spec is None or spec in ("", SERIAL) or spec.startswith(DASK_SCHEME):
        return
    if spec == LOCAL or spec.startswith(LOCAL + ":"):
        count = spec.removeprefix(LOCAL).removeprefix(":")
        if not count or (count.isdigit() and int(count) > 0):
            return
        raise ConformanceError(f"--executor {spec}: local:N needs a positive number N")
    raise ConformanceError(
        f"--executor {spec}: not an executor (serial, local, local:N or dask://HOST:PORT)"
    )
