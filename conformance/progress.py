"""How the core reports progress without touching the terminal (only the CLI does that)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Observer for long steps. `total` is in the step's own unit (bytes, seconds, ...)."""

    def start(self, step: str, total: float | None) -> None: ...

    def advance(self, done: float, detail: str = "") -> None:
        """Absolute position within the current step, plus a short status text."""
        ...

    def finish(self) -> None: ...


class NullProgress:
    """The default: reports nothing."""

    def start(self, step: str, total: float | None) -> None:
        pass

    def advance(self, done: float, detail: str = "") -> None:
        pass

    def finish(self) -> None:
        pass


NULL_PROGRESS: Progress = NullProgress()
