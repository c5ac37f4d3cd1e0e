"""One view of a run that every writer renders: controls with clauses and evidence links.

Built once, so report.json, report.html and junit.xml cannot disagree about a verdict, a
link or a count. Findings' flow ids and packet references become paths inside the report
directory here (`evidence/flows.csv#L12`: flow N is line N+1), each finding with packets gets
its Wireshark display filter (display_filter.py), and the coverage statement (decision 11)
its JSON section and sentences (coverage_statement.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conformance.decode.tls import suite_name, version_name
from conformance.digest import FileDigest
from conformance.judge.result import ControlResult, Finding, Severity
from conformance.observe.coverage import coverage_of
from conformance.observe.records import CaptureSummary, Flow, Observations
from conformance.report.coverage_statement import Statement, coverage_section, coverage_statements
from conformance.report.display_filter import FilterContext, display_filter, filter_context
from conformance.report.interface import ControlInfo, ReportRun, SourceReport
from conformance.report.links import EVIDENCE_DIR, flow_link
from conformance.report.tables import FLOW_COLUMNS, flow_row
from conformance.report.text import iso_utc
from conformance.verdict import Verdict, overall
from conformance.waivers import EVIDENCE_NAME as WAIVERS_NAME
from conformance.waivers import Waiver, WaiverOutcome

WAIVERS_PATH = f"{EVIDENCE_DIR}/{WAIVERS_NAME}"
# Flows the findings cite are rendered in report.html (one row each, with what names them);
# findings are capped per control, so this bound is reached only by many controls at once.
MAX_CITED_FLOWS = 1000
# Related records shown under a cited flow (DNS, TLS, HTTP): enough to recognise it.
MAX_RELATED = 12


@dataclass(frozen=True, slots=True)
class CitedFlow:
    """A flow some finding cites, as report.html renders it (flows.csv row and context)."""

    flow_id: int
    link: str  # evidence/flows.csv#L<n>: the raw row
    row: Mapping[str, str]  # FLOW_COLUMNS -> cell, exactly as in flows.csv
    capture: str | None  # the capture holding its packets, in the report
    related: tuple[str, ...]  # DNS answers naming its address, TLS hellos, HTTP requests


@dataclass(frozen=True, slots=True)
class WaiverMark:
    """The waiver covering a finding, as shown beside it."""

    number: int
    justification: str
    approved_by: str
    expires: str  # as written in the waiver file
    link: str  # evidence/waivers.yaml#L<line>


@dataclass(frozen=True, slots=True)
class WaiverUseView:
    """One entry of the waiver file and what it did in this run."""

    mark: WaiverMark
    control: str
    match: str
    state: str  # applied | expired | unmatched | no-control
    findings: int


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
    waiver: WaiverMark | None = None
    display_filter: str | None = None  # tshark/Wireshark filter showing the finding's packets


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
    verdict_before_waivers: Verdict | None = None  # the judge's verdict, when waivers changed it

    @property
    def waived(self) -> int:
        """How many of the findings a waiver covers."""
        return sum(1 for f in self.findings if f.waiver is not None)

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
    waivers: tuple[WaiverUseView, ...] | None = None  # None: no waiver file was given
    baseline: Mapping[str, Any] | None = None  # compare.diff document (run --baseline)
    cited_flows: tuple[CitedFlow, ...] = ()  # every flow a finding cites, by flow id
    evidence_logs: Mapping[str, str] = field(default_factory=dict)  # log kind -> evidence/ path
    source_report: SourceReport | None = None  # `rejudge`: the report judged again
    # decision 11: report.json's `coverage` object and its sentences (None: no observations)
    coverage: Mapping[str, Any] | None = None
    coverage_statements: tuple[Statement, ...] = ()

    @property
    def window(self) -> tuple[float, float] | None:
        """First and last packet time over all captures, if any packet had one."""
        firsts = [c.summary.first_time for c in self.captures if c.summary.first_time is not None]
        lasts = [c.summary.last_time for c in self.captures if c.summary.last_time is not None]
        if not firsts or not lasts:
            return None
        return min(firsts), max(lasts)


def waiver_mark(waiver: Waiver) -> WaiverMark:
    """How a finding shows the waiver covering it."""
    line = f"#L{waiver.line}" if waiver.line else ""
    return WaiverMark(
        number=waiver.number,
        justification=waiver.justification,
        approved_by=waiver.approved_by,
        expires=waiver.expires_text,
        link=WAIVERS_PATH + line,
    )


def _finding(
    finding: Finding,
    capture_paths: Sequence[str | None],
    evidence_names: frozenset[str],
    waiver: Waiver | None = None,
    filters: FilterContext | None = None,
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
        waiver=waiver_mark(waiver) if waiver is not None else None,
        display_filter=display_filter(finding, filters) if filters is not None else None,
    )


def _control(
    result: ControlResult,
    info: ControlInfo,
    capture_paths: Sequence[str | None],
    evidence_names: frozenset[str],
    waivers: WaiverOutcome | None,
    filters: FilterContext | None = None,
) -> ControlView:
    marks = waivers.marks if waivers is not None else {}
    findings = tuple(
        _finding(f, capture_paths, evidence_names, marks.get((result.control_id, i)), filters)
        for i, f in enumerate(result.findings)
    )
    return ControlView(
        id=result.control_id,
        title=info.title,
        promise=info.promise,
        verdict=result.verdict,
        clauses=tuple(info.clauses),
        clause_text=info.clause_text,
        reason=result.reason,
        findings=findings,
        facts=result.facts,
        verdict_before_waivers=waivers.before.get(result.control_id) if waivers else None,
    )


def _related(obs: Observations, wanted: frozenset[int]) -> dict[int, list[str]]:
    """Per cited flow: the DNS, TLS and HTTP records that name it (observations order)."""
    by_flow: dict[int, list[str]] = {i: [] for i in wanted}
    responders = {str(obs.flows[i - 1].responder): i for i in wanted if 0 < i <= len(obs.flows)}
    for query in obs.dns:
        for answer in query.answers:
            flow_id = responders.get(answer.value)
            if flow_id is not None:
                by_flow[flow_id].append(
                    f"DNS answer: {query.qname} -> {answer.value} (packet "
                    f"{query.response_packet or query.packet}, {iso_utc(query.time)})"
                )
        if query.flow_id in by_flow:
            by_flow[query.flow_id].append(f"DNS query: {query.qname} (packet {query.packet})")
    for hello in obs.client_hellos:
        if hello.flow_id in by_flow:
            sni = hello.sni or "no SNI"
            by_flow[hello.flow_id].append(f"TLS ClientHello: SNI {sni} (packet {hello.packet})")
    for server in obs.server_hellos:
        if server.flow_id in by_flow:
            by_flow[server.flow_id].append(
                f"TLS ServerHello: {version_name(server.version)},"
                f" {suite_name(server.cipher_suite)} (packet {server.packet})"
            )
    for request in obs.http_requests:
        if request.flow_id in by_flow:
            host = f", Host {request.host}" if request.host else ""
            by_flow[request.flow_id].append(
                f"HTTP: {request.method} {request.target}{host} (packet {request.packet})"
            )
    return {k: v[:MAX_RELATED] for k, v in by_flow.items()}


def _cited_flows(
    obs: Observations | None,
    controls: Sequence[ControlView],
    capture_paths: Sequence[str | None],
) -> tuple[CitedFlow, ...]:
    if obs is None:
        return ()
    cited = sorted({f.flow_id for c in controls for f in c.findings if f.flow_id is not None})
    wanted = frozenset(i for i in cited[:MAX_CITED_FLOWS] if 0 < i <= len(obs.flows))
    names = [
        p.removeprefix(f"{EVIDENCE_DIR}/") if p else f"#{i}" for i, p in enumerate(capture_paths)
    ]
    related = _related(obs, wanted)
    out = []
    for flow_id in sorted(wanted):
        flow: Flow = obs.flows[flow_id - 1]
        if flow.flow_id != flow_id:
            continue
        cells = flow_row(flow, names)
        capture = capture_paths[flow.capture] if flow.capture < len(capture_paths) else None
        out.append(
            CitedFlow(
                flow_id=flow_id,
                link=flow_link(flow_id),
                row={c: str(v) for c, v in zip(FLOW_COLUMNS, cells, strict=True)},
                capture=capture,
                related=tuple(related.get(flow_id, ())),
            )
        )
    return tuple(out)


def _waiver_uses(outcome: WaiverOutcome | None) -> tuple[WaiverUseView, ...] | None:
    if outcome is None:
        return None
    return tuple(
        WaiverUseView(
            mark=waiver_mark(use.waiver),
            control=use.waiver.control,
            match=use.waiver.match_text,
            state=use.state,
            findings=use.findings,
        )
        for use in outcome.uses
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
    cited = (f.flow_id for r in run.results for f in r.findings if f.flow_id is not None)
    filters = filter_context(run.observations, cited)
    controls = tuple(
        _control(r, lookup(r.control_id), capture_paths, evidence_names, run.waivers, filters)
        for r in run.results
    )
    counts = {v: sum(1 for c in controls if c.verdict is v) for v in Verdict}
    observations = run.observations
    coverage = run.coverage
    if coverage is None and observations is not None:
        coverage = coverage_of(observations)  # no profile: no target share, no minimum
    captures: tuple[CaptureView, ...] = ()
    notes = list(run.notes)
    if run.waivers is not None:
        notes.extend(run.waivers.notes)
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
        waivers=_waiver_uses(run.waivers),
        cited_flows=_cited_flows(observations, controls, capture_paths),
        evidence_logs={
            kind: f"{EVIDENCE_DIR}/{name}" for kind, name in sorted(run.evidence_logs.items())
        },
        source_report=run.source_report,
        coverage=coverage_section(coverage, capture_paths) if coverage is not None else None,
        coverage_statements=(
            coverage_statements(coverage, capture_paths) if coverage is not None else ()
        ),
    )
