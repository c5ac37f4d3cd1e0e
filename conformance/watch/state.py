"""What a watch remembers across restarts, in REPORT_ROOT/.watch/ (written atomically).

    .watch/state.json        this record: the chain's head, the open periods and their files,
                             the capture files already judged
    .watch/captures/N-NAME   each judged capture, copied (a ring may delete or overwrite it)
    .watch/spills/N.json.gz  each judged capture's observations (watch.spill)

A capture is recorded here only after its copy and its spill are on disk, and the state file
is replaced in one rename: a crash or a full disk at any point leaves either the old state or
the new one, and a capture not yet recorded is judged again on the next start (its leftovers
removed). A period is dropped from here only after its signed report is in place.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from conformance.errors import ConformanceError

STATE_DIR: Final = ".watch"
STATE_FILE: Final = "state.json"
CAPTURES_DIR: Final = "captures"
SPILLS_DIR: Final = "spills"
FORMAT: Final = "ucx-conformance watch state 1"

SourceKey = tuple[str, int, int]  # file name, size, modification time (ns)


@dataclass(frozen=True, slots=True)
class JudgedFile:
    """A capture file judged and waiting in its period."""

    seq: int  # order of arrival, never reused
    source: str  # the file's name in the capture directory
    stored: str  # its copy, relative to the state directory
    spill: str  # its observations, relative to the state directory
    sha256: str
    size: int
    first_time: float | None  # first and last packet time (None: no packets)
    last_time: float | None
    packets: int
    executor: str  # who read it (observe.parallel.Judged)
    worker: str
    # the reported period its packets belong to, if it came too late; "ahead": its packets are
    # stamped more than a period after the watch's clock; "outside-calendar": its first packet
    # is stamped at a time no calendar shows (both are judged in the period they arrived in)
    late: str | None = None


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest period report written: what the next one names."""

    index: int
    period: str
    envelope_sha256: str
    end: float  # the period's end (epoch seconds)


@dataclass(slots=True)
class WatchState:
    """The watch's memory (see the module docstring)."""

    period_seconds: float
    head: ChainHead | None = None
    covered_until: float | None = None  # the last packet time of the reported periods
    origin: float | None = None  # the start of the period the watch first ran in
    next_seq: int = 1
    seen: dict[SourceKey, int] = field(default_factory=dict)  # judged source -> seq
    periods: dict[str, list[JudgedFile]] = field(default_factory=dict)  # period id -> files
    starts: dict[str, float] = field(default_factory=dict)  # period id -> start

    def add(self, period: str, start: float, judged: JudgedFile, key: SourceKey) -> None:
        """Record a judged capture in its period."""
        self.periods.setdefault(period, []).append(judged)
        self.starts[period] = start
        self.seen[key] = judged.seq
        self.next_seq = max(self.next_seq, judged.seq + 1)

    def files(self) -> list[JudgedFile]:
        return [f for files in self.periods.values() for f in files]

    def forget_missing(self, present: set[SourceKey]) -> None:
        """Keep the judged-source list only for files still in the capture directory (a ring
        deletes old ones): the list stays as long as the directory's listing."""
        self.seen = {k: v for k, v in self.seen.items() if k in present}


def state_dir(report_root: Path) -> Path:
    return report_root / STATE_DIR


def load_state(report_root: Path, period_seconds: float) -> WatchState | None:
    """The saved state, or None when there is none. ConformanceError for a state of another
    period length (the chain's periods would not line up) or one that does not parse."""
    path = state_dir(report_root) / STATE_FILE
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConformanceError(f"{path}: unreadable watch state: {exc}") from exc
    try:
        if document["format"] != FORMAT:
            raise ValueError(f"format is not {FORMAT!r}")
        saved = float(document["period_seconds"])
        head = document["head"]
        state = WatchState(
            period_seconds=saved,
            head=ChainHead(**head) if head is not None else None,
            covered_until=document["covered_until"],
            origin=document.get("origin"),
            next_seq=int(document["next_seq"]),
            seen={(k[0], int(k[1]), int(k[2])): int(k[3]) for k in document["seen"]},
            periods={
                period: [JudgedFile(**f) for f in files]
                for period, files in document["periods"].items()
            },
            starts={k: float(v) for k, v in document["starts"].items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConformanceError(f"{path}: damaged watch state: {exc}") from exc
    if saved != period_seconds:
        raise ConformanceError(
            f"{path}: this report root's periods are {saved:g} s long, not {period_seconds:g} s;"
            " give the same --period or another --report-root"
        )
    return state


def save_state(report_root: Path, state: WatchState) -> None:
    """Replace the state file atomically (temporary file, fsync, rename, fsync the directory)."""
    directory = state_dir(report_root)
    document: dict[str, Any] = {
        "format": FORMAT,
        "period_seconds": state.period_seconds,
        "head": asdict(state.head) if state.head is not None else None,
        "covered_until": state.covered_until,
        "origin": state.origin,
        "next_seq": state.next_seq,
        "seen": [[*key, seq] for key, seq in sorted(state.seen.items())],
        "periods": {p: [asdict(f) for f in files] for p, files in sorted(state.periods.items())},
        "starts": dict(sorted(state.starts.items())),
    }
    data = json.dumps(document, indent=1).encode()
    temporary = directory / f".{STATE_FILE}.tmp-{os.getpid()}"
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, directory / STATE_FILE)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
