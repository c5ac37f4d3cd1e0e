"""`run --baseline OLD`: the earlier report, verified and read up front, compared at write time.

The earlier report is verified and its snapshot taken before anything is judged (a report
that does not verify is bad usage, exit 3), so it may even be the directory this run
replaces. The new side is read from the tables this run has just written into its
unfinished report directory: the same files, read the same way, as `diff` reads later.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.compare.diff import diff
from conformance.compare.snapshot import Snapshot, identity, take_snapshot
from conformance.sign.verified import VerifiedReport, csv_rows, open_verified


def snapshot_of(report: VerifiedReport) -> Snapshot:
    """The comparable facts of a verified report (VerifyError for a report format this
    version does not read)."""
    document = report.report()
    who = identity(
        document,
        report=str(report.path),
        envelope_sha256=report.envelope_sha256,
        pinned=report.pinned,
    )
    return take_snapshot(report, document, who)


class LocalTables:
    """The files of the report this process is writing (its own unfinished directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def has(self, name: str) -> bool:
        return (self.root / name).is_file()

    def rows(self, name: str, required: Sequence[str] = ()) -> Iterator[dict[str, str]]:
        with (self.root / name).open("rb") as handle:
            yield from csv_rows(handle, self.root / name, required)

    def read_bytes(self, name: str) -> bytes:
        return (self.root / name).read_bytes()


@dataclass(frozen=True, slots=True)
class Baseline:
    """The earlier report's snapshot; `compare` is report.model.BaselineCompare."""

    old: Snapshot

    def compare(self, root: Path, report: Mapping[str, Any]) -> Mapping[str, Any]:
        new = take_snapshot(LocalTables(root), report, identity(report, report=None))
        return diff(self.old, new)


def load_baseline(path: Path, key_path: Path) -> Baseline:
    """Verify the report at `path` against `key_path` and take its snapshot (VerifyError)."""
    return Baseline(snapshot_of(open_verified(path, key_path)))
