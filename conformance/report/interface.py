"""What the report layer is given (ReportRun, ControlInfo) and what it returns (ReportSummary)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from conformance.digest import FileDigest, unsafe_name_reason
from conformance.evidence.interface import REPORT_GENERATED
from conformance.judge.result import ControlResult
from conformance.observe.coverage import Coverage
from conformance.observe.parallel import Judged
from conformance.observe.records import Observations
from conformance.verdict import Verdict

if TYPE_CHECKING:
    from conformance.waivers import WaiverOutcome


# Evidence names appear in hrefs, CSV cells and the auditor's shell recipe (sha256sum lines):
# letters, digits, ".", "_", "-", with "/" between parts, need no quoting anywhere.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*")


class ControlInfo(Protocol):
    """What the report needs of a catalog control (conformance.catalog.Control fits)."""

    @property
    def id(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def promise(self) -> str: ...

    @property
    def clauses(self) -> tuple[str, ...]: ...  # ("HA 2.2", "HA 1")

    @property
    def clause_text(self) -> str: ...  # the quoted contract text, one "REF: text" per line


class BaselineCompare(Protocol):
    """Compares the report being written with a verified earlier one (`run --baseline`)."""

    def compare(self, root: Path, report: Mapping[str, Any]) -> Mapping[str, Any]:
        """The `baseline` section: `root` holds this report's evidence tables, `report` its
        report.json document so far."""
        ...


SealedFiles = Callable[[Path], "set[str] | None"]
"""The files a previous report of ours at a path holds, or None if it is not one."""


class Sealer(Protocol):
    """Signs a report directory (conformance.sign.seal.Ed25519Sealer fits): the report layer
    writes the files and asks for the envelope; it never holds a key."""

    @property
    def fingerprint(self) -> str: ...

    @property
    def public_key_pem(self) -> str: ...

    def envelope(self, files: Iterable[FileDigest], predicate: Mapping[str, Any]) -> bytes: ...

    def sealed_files(self, directory: Path) -> set[str] | None: ...


@dataclass(frozen=True, slots=True)
class SourceReport:
    """The signed report a `rejudge` judged again: where it was and its envelope's SHA-256."""

    path: str
    envelope_sha256: str


@dataclass(frozen=True, slots=True)
class PeriodLink:
    """One period of `watch`: its window, its place in the chain of period reports, and the
    stretches of the window no capture covered.

    The signed predicate names the previous period's id and envelope SHA-256, so
    `verify-chain` walks the history and finds a missing, reordered or altered period.
    """

    period: str  # the period's id: its start, "20240501T000000Z" (its directory's name)
    index: int  # 0 for the first period of the chain
    start: datetime  # timezone-aware
    end: datetime
    previous_period: str | None = None  # None only for the first period
    previous_envelope_sha256: str | None = None
    gaps: tuple[tuple[float, float], ...] = ()  # (from, to) epoch seconds: not seen


@dataclass(frozen=True, slots=True)
class ReportRun:
    """Everything one run produced that goes into its report directory.

    `evidence_files` maps a source file to its name under `evidence/` (captures as
    `capture-<i>.<ext>`, probe logs, ...). A capture is linked to its
    `observations.captures[i]` by path, and its copied bytes must hash to the SHA-256 the
    decoder computed, so the report never signs a file other than the one judged.
    """

    profile_name: str
    profile_mode: str
    profile_source: Path  # copied byte for byte to evidence/profile.yaml (see profile_bytes)
    results: tuple[ControlResult, ...]
    observations: Observations | None
    started: datetime  # timezone-aware
    finished: datetime
    harness_version: str
    evidence_files: tuple[tuple[Path, str], ...] = ()
    tool_versions: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # Each kind of log the run's observe step read (evidence.interface names) and its name
    # under evidence/: what `rejudge` reads again, so the report says it once, signed.
    evidence_logs: Mapping[str, str] = field(default_factory=dict)
    source_report: SourceReport | None = None  # `rejudge`: the report whose evidence this is
    judged_by: tuple[Judged, ...] = ()  # which executor and worker read each capture
    period: PeriodLink | None = None  # `watch`: the period this report covers and its link
    # Waivers applied to `results` (which are already the results after waivers): which
    # findings they cover, and the waiver file's bytes, copied to evidence/waivers.yaml.
    waivers: WaiverOutcome | None = None
    baseline: BaselineCompare | None = None
    # decision 11: what the window could not see, for the profile's target and minimum window
    # (judge.common.coverage_for); None: the report computes it from `observations` alone
    coverage: Coverage | None = None
    # The profile's bytes as loaded and judged (Profile.loaded): evidence/profile.yaml is
    # these, not the file read again, which may have changed or been a pipe. None: a copy of
    # `profile_source`.
    profile_bytes: bytes | None = None

    def __post_init__(self) -> None:
        for label, moment in (("started", self.started), ("finished", self.finished)):
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise ValueError(f"ReportRun.{label} must be timezone-aware")
        names = [name for _source, name in self.evidence_files]
        if len(set(names)) != len(names):
            raise ValueError("ReportRun.evidence_files: duplicate names")
        for name in names:
            reason = unsafe_name_reason(name)
            if reason or not _SAFE_NAME.fullmatch(name):
                raise ValueError(
                    f"ReportRun.evidence_files: {name!r}: {reason or 'use only [A-Za-z0-9._-/]'}"
                )
            if name in REPORT_GENERATED:
                raise ValueError(f"ReportRun.evidence_files: {name!r} is written by the report")


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """What `write_report` produced: where, the overall verdict, and every signed file."""

    report_dir: Path
    verdict: Verdict
    fingerprint: str
    files: tuple[FileDigest, ...]  # every file the statement names, report.json first
    counts: Mapping[Verdict, int]
    baseline: Mapping[str, Any] | None = None  # the diff against --baseline, as written
