"""report.json: the machine-readable results (interface.md "Report directory").

Rendered to bytes once; those bytes are written, hashed and signed, never re-serialised.
Keys come in a fixed, readable order (verdict first); free-form `facts` are sorted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from conformance.observe.records import NotUnderstood
from conformance.report.text import iso_utc
from conformance.report.view import (
    WAIVERS_PATH,
    CaptureView,
    ControlView,
    FindingView,
    ReportView,
    WaiverMark,
    WaiverUseView,
)

FORMAT_VERSION = 1


def jsonable(value: object) -> Any:
    """A JSON-ready copy of `value`: mappings with sorted keys, sets sorted, others as text.

    Deterministic whatever a judge put in its facts (sets, addresses, enums, NaN).
    """
    match value:
        case bool() | int() | str() | None:
            return value
        case float():
            return value if math.isfinite(value) else str(value)
        case Enum():
            return jsonable(value.value)
        case datetime():
            return iso_utc(value)
        case Mapping():
            return {str(k): jsonable(v) for k, v in sorted(value.items(), key=lambda i: str(i[0]))}
        case list() | tuple():
            return [jsonable(v) for v in value]
        case set() | frozenset():
            return sorted((jsonable(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
        case _:
            return str(value)


def json_bytes(document: object) -> bytes:
    """UTF-8 JSON, two-space indent, newline at the end.

    A lone surrogate (undecodable network bytes) is written as its `\\uXXXX` escape, which
    is still valid JSON, instead of failing the report.
    """
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8", "backslashreplace")


def _mark(mark: WaiverMark) -> dict[str, Any]:
    return {
        "waiver": mark.number,
        "justification": mark.justification,
        "approved_by": mark.approved_by,
        "expires": mark.expires,
        "evidence": mark.link,
    }


def _waiver_use(use: WaiverUseView) -> dict[str, Any]:
    return {
        **_mark(use.mark),
        "control": use.control,
        "match": use.match,
        "state": use.state,
        "findings": use.findings,
    }


def _finding(finding: FindingView) -> dict[str, Any]:
    packets = None
    if finding.packets is not None:
        packets = {
            "capture": finding.packets.capture,
            "capture_index": finding.packets.capture_index,
            "numbers": list(finding.packets.numbers),
        }
    document: dict[str, Any] = {
        "severity": finding.severity.value,
        "summary": finding.summary,
        "evidence": finding.evidence,
        "links": list(finding.links),
        "flow_id": finding.flow_id,
        "packets": packets,
        "facts": jsonable(finding.facts),
        # A waived finding keeps its severity and data; this says who accepted it, until when.
        "waived": _mark(finding.waiver) if finding.waiver is not None else None,
    }
    if finding.display_filter is not None:
        document["display_filter"] = finding.display_filter
    return document


def _control(control: ControlView) -> dict[str, Any]:
    return {
        "id": control.id,
        "title": control.title,
        "verdict": control.verdict.value,
        "clause": control.clause,
        "clause_text": control.clause_text,
        "clauses": list(control.clauses),
        "promise": control.promise,
        "reason": control.reason,
        "findings": [_finding(f) for f in control.findings],
        "facts": jsonable(control.facts),
        "verdict_before_waivers": (
            control.verdict_before_waivers.value if control.verdict_before_waivers else None
        ),
    }


def _capture(capture: CaptureView) -> dict[str, Any]:
    summary = capture.summary
    return {
        "capture": capture.evidence,
        "index": capture.index,
        "source": summary.path,
        "format": summary.format,
        "packets": summary.packets,
        "first_time": iso_utc(summary.first_time) or None,
        "last_time": iso_utc(summary.last_time) or None,
        "drops": summary.drops,
        "drop_detail": summary.drop_detail,
        "truncated": summary.truncated_file,
        "truncated_detail": summary.truncated_detail,
        "snap_truncated": summary.snap_truncated,
        "malformed": summary.malformed,
        "unsupported_link_packets": summary.unsupported_link_packets,
        "complete": summary.complete,
        # decision 10: every frame decoded, link-layer control, or not understood
        "decoded": summary.decoded,
        "link_control": {k.kind: k.count for k in summary.link_control},
        "not_understood": [_counted(n) for n in summary.not_understood],
        "payload_not_understood": [_counted(n) for n in summary.payload_not_understood],
    }


def _counted(record: NotUnderstood) -> dict[str, Any]:
    """A not-understood count without its address groups (evidence/captures.json has them)."""
    return {"reason": record.reason, "count": record.count, "packets": list(record.frames)}


def report_document(view: ReportView) -> dict[str, Any]:
    """The report.json object."""
    return {
        "format": FORMAT_VERSION,
        "verdict": view.verdict.value,
        "profile": {
            "name": view.profile_name,
            "mode": view.profile_mode,
            "source": view.profile_source,
        },
        "summary": {verdict.value: count for verdict, count in view.counts.items()},
        "controls": [_control(c) for c in view.controls],
        "completeness": {
            "complete": view.complete,
            "captures": [_capture(c) for c in view.captures],
        },
        # decision 11: what the window could not see (docs/report.md); None: nothing decoded
        "coverage": jsonable(view.coverage) if view.coverage is not None else None,
        "notes": list(view.notes),
        "waivers": (
            None
            if view.waivers is None
            else {"file": WAIVERS_PATH, "entries": [_waiver_use(u) for u in view.waivers]}
        ),
        "baseline": jsonable(view.baseline) if view.baseline is not None else None,
        "evidence": [{"path": f.path, "sha256": f.sha256, "bytes": f.size} for f in view.evidence],
        "evidence_logs": dict(view.evidence_logs),
        "source_report": (
            None
            if view.source_report is None
            else {
                "path": view.source_report.path,
                "envelope_sha256": view.source_report.envelope_sha256,
            }
        ),
        "harness": {
            "version": view.harness_version,
            "started": iso_utc(view.started),
            "finished": iso_utc(view.finished),
            "tools": dict(view.tool_versions),
        },
        "signer": {"fingerprint": view.fingerprint},
    }


def render_json(view: ReportView) -> bytes:
    """report.json's bytes."""
    return json_bytes(report_document(view))
