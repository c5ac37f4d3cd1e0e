"""A lab run in a child process, for the signal tests: `python lab_child.py WORKDIR`.

Prints WINDOW (flushed) when the observation window starts, then observes for a long
window so the parent can signal it mid-run.
"""

from __future__ import annotations

import sys
from pathlib import Path

from conformance.lab import run_lab
from tests.lab.conftest import lab_profile

LONG_WINDOW = 60.0


class SayWindow:
    def start(self, step: str, total: float | None) -> None:
        print("WINDOW", flush=True)

    def advance(self, done: float, detail: str = "") -> None:
        pass

    def finish(self) -> None:
        pass


if __name__ == "__main__":
    run_lab(lab_profile("lab-air-gapped", LONG_WINDOW), [], Path(sys.argv[1]), SayWindow())
