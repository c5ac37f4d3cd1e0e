"""What a worker does with one capture file, wherever it runs (observe.parallel's executors)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from conformance.errors import CaptureError
from conformance.observe.builder import observe_captures
from conformance.observe.records import Observations


@dataclass(frozen=True, slots=True)
class ObservedFile:
    """One file's observations and who read it; or why it could not be read (`problem`, a
    CaptureError's words: errors with their own arguments do not survive pickling)."""

    observations: Observations | None
    worker: str
    problem: str = ""


class Pending(Protocol):
    """A file being read (concurrent.futures.Future and dask's Future both fit)."""

    def done(self) -> bool: ...

    def result(self, timeout: float | None = None) -> ObservedFile: ...


def observe_file(path: str, parts: int | None = 1) -> ObservedFile:
    """Read one capture (in whichever process runs this, in `parts` processes: see
    observe_captures) and say where it was read."""
    where = f"{socket.gethostname()} pid {os.getpid()}"
    try:
        return ObservedFile(observe_captures([Path(path)], parts=parts), where)
    except CaptureError as exc:
        return ObservedFile(None, where, exc.problem)
