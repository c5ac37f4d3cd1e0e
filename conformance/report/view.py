"""One view of a run that every writer renders: controls with clauses and evidence links.

Built once, so report.json, report.html and junit.xml cannot disagree about a verdict, a
link or a count. Findings' flow ids and packet references become paths inside the report
directory here (`evidence/flows.csv#L12`: flow N is line N+1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from conformance.judge.model import ControlResult, Finding, Severity
from conformance.observe.model import CaptureSummary
from conformance.report.model import ControlInfo, ReportRun
from conformance.sign.digest import FileDigest
from conformance.verdict import Verdict, overall

EVIDENCE_DIR = "evidence"
FLOWS_CSV = f"{EVIDENCE_DIR}/flows.csv"


@dataclass(frozen=True, slots=True)
class PacketsView:
    """Packets a finding cites: the capture's path in the report (when copied) and numbers."""

    capture: str | None
    capture_index: int
    numbers: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FindingView:
    severity: Severity
    summary: str
    evidence: str | None  # the primary link, e.g. "evidence/flows.csv#L12"
    links: tuple[str, ...]  # every link (flow row, then evidence file line)
    flow_id: int | None
    packets: PacketsView | None
    facts: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ControlView:
    id: str
    title: str
    promise: str
    verdict: Verdict
    clauses: tuple[str, ...]  # ("HA 2.2", "HA 1")
    clause_text: str  # quoted contract text, one "REF: text" per line
    reason: str
    findings: tuple[FindingView, ...]
    facts: Mapping[str, object]

    @property
    def clause(self) -> str:
        """The clause references joined: "HA 2.2, HA 1"."""
        return ", ".join(self.clauses)


@dataclass(frozen=True, slots=True)
class CaptureView:
    """One capture as the decoder summarised it, and where its copy sits in the report."""

    index: int
    evidence: str | None  # "evidence/capture-0.pcapng"; None when it was not copied
    summary: CaptureSummary


@dataclass(frozen=True, slots=True)
class ReportView:
    """Everything a writer shows, in display order."""

    verdict: Verdict
    profile_name: str
    profile_mode: str
    profile_source: str
    controls: tuple[ControlView, ...]
    counts: Mapping[Verdict, int]  # every verdict, zero included, in Verdict order
    captures: tuple[CaptureView, ...]
    complete: bool  # at least one capture and none with known loss
    notes: tuple[str, ...]
    evidence: tuple[FileDigest, ...]  # every file under evidence/, sorted
    started: datetime
    finished: datetime
    harness_version: str
    tool_versions: Mapping[str, str]
    fingerprint: str

    @property
    def window(self) -> tuple[float, float] | None:
        """First and last packet time over all captures, if any packet had one."""
        firsts = [c.summary.first_time for c in self.captures if c.summary.first_time is not None]
        lasts = [c.summary.last_time for c in self.captures if c.summary.last_time is not None]
        if not firsts or not lasts:
            return None
        return min(firsts), max(lasts)


def flow_link(flow_id: int) -> str:
    """Where flow N is: line N+1 of flows.csv (the header is line 1)."""
    return f"{FLOWS_CSV}#L{flow_id + 1}"


def _finding(
    finding: Finding, capture_paths: Sequence[str | None], evidence_names: frozenset[str]
) -> FindingView:
    links: list[str] = []
    if finding.flow_id is not None:
        links.append(flow_link(finding.flow_id))
    if finding.evidence_file is not None:
        path = f"{EVIDENCE_DIR}/{finding.evidence_file}"
        # Link only to a file the report holds; otherwise the name stays in the facts.
        if path in evidence_names:
            line = f"#L{finding.evidence_line}" if finding.evidence_line else ""
            links.append(path + line)
    facts = dict(finding.facts)
    if finding.evidence_file is not None and not any(
        link.split("#")[0] == f"{EVIDENCE_DIR}/{finding.evidence_file}" for link in links
    ):
        facts.setdefault("evidence file (not in report)", finding.evidence_file)
    packets = None
    if finding.packets is not None:
        index = finding.packets.capture
        capture = capture_paths[index] if 0 <= index < len(capture_paths) else None
        packets = PacketsView(capture, index, finding.packets.packets)
    return FindingView(
        severity=finding.severity,
        summary=finding.summary,
        evidence=links[0] if links else None,
        links=tuple(links),
        flow_id=finding.flow_id,
        packets=packets,
        facts=facts,
    )


def _control(
    result: ControlResult,
    info: ControlInfo,
    capture_paths: Sequence[str | None],
    evidence_names: frozenset[str],
) -> ControlView:
    return ControlView(
        id=result.control_id,
        title=info.title,
        promise=info.promise,
        verdict=result.verdict,
        clauses=tuple(info.clauses),
        clause_text=info.clause_text,
        reason=result.reason,
        findings=tuple(_finding(f, capture_paths, evidence_names) for f in result.findings),
        facts=result.facts,
    )


def build_view(
    run: ReportRun,
    lookup: Callable[[str], ControlInfo],
    evidence: tuple[FileDigest, ...],
    capture_paths: Sequence[str | None],
    fingerprint: str,
) -> ReportView:
    """Combine results, catalog entries and the written evidence into the report's view.

    `capture_paths[i]` is where capture i of the observations sits in the report (or None).
    """
    evidence_names = frozenset(f.path for f in evidence)
    controls = tuple(
        _control(r, lookup(r.control_id), capture_paths, evidence_names) for r in run.results
    )
    counts = {v: sum(1 for c in controls if c.verdict is v) for v in Verdict}
    observations = run.observations
    captures: tuple[CaptureView, ...] = ()
    notes = list(run.notes)
    if observations is None:
        notes.append("no observations: the captures were not decoded, nothing can be complete")
    else:
        captures = tuple(
            CaptureView(i, capture_paths[i] if i < len(capture_paths) else None, s)
            for i, s in enumerate(observations.captures)
        )
        notes.extend(observations.notes)
    return ReportView(
        verdict=overall(c.verdict for c in controls),
        profile_name=run.profile_name,
        profile_mode=run.profile_mode,
        profile_source=str(run.profile_source),
        controls=controls,
        counts=counts,
        captures=captures,
        complete=observations is not None and observations.complete,
        notes=tuple(dict.fromkeys(notes)),
        evidence=evidence,
        started=run.started,
        finished=run.finished,
        harness_version=run.harness_version,
        tool_versions=dict(sorted(run.tool_versions.items())),
        fingerprint=fingerprint,
    )
