"""Copy evidence files for the report while the run is still judging them.

Copying and hashing a large capture is the report's biggest cost (about 1 s for 600 MB
here). The bytes cannot change meaning between judging and signing, so the copy can start
as soon as the file is known: a worker thread copies each file into a hidden sibling of the
report directory (same filesystem, so the report takes it with a rename), while the main
thread decodes. File I/O and SHA-256 release the GIL, so on two cores the copy is nearly
free. The report still compares each copy's hash with the one the decoder computed, so a
file that changed meanwhile is refused exactly as before.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from conformance.sign.digest import copy_hashed


class Prestage:
    """Background copies of evidence files, taken by the report or removed by `close`."""

    def __init__(self, report_dir: Path) -> None:
        self._report_dir = report_dir.absolute()
        self._dir: Path | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: dict[Path, Future[tuple[Path, str, int]]] = {}

    def start(self, sources: Sequence[Path]) -> None:
        """Begin copying `sources` (in order, one at a time) into the staging directory."""
        if not sources:
            return
        from conformance.report.assemble import hidden_sibling

        self._report_dir.parent.mkdir(parents=True, exist_ok=True)
        self._dir = hidden_sibling(self._report_dir, "prestage", create=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ucx-prestage")
        for index, source in enumerate(sources):
            destination = self._dir / f"{index}.copy"
            self._jobs[source.resolve()] = self._pool.submit(_copy, source, destination)

    def take(self, source: Path) -> tuple[Path, str, int] | None:
        """The staged copy of `source` (path, SHA-256, size), or None: copy it again then."""
        job = self._jobs.pop(source.resolve(), None)
        if job is None:
            return None
        try:
            return job.result()
        except OSError:
            return None  # e.g. the file vanished or is unreadable: the report copies it itself

    def close(self) -> None:
        """Stop (waiting for a copy under way) and remove whatever was not taken."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._jobs.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _copy(source: Path, destination: Path) -> tuple[Path, str, int]:
    sha256, size = copy_hashed(source, destination)
    return destination, sha256, size
