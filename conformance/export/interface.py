"""What every export format implements, and the report facts they all read.

An exporter gets a `VerifiedReport` (every byte it reads is covered by the report's
signature) and, when it signs its output, the signing key; it returns the output's bytes.
Exports are deterministic: the same report gives the same bytes (identifiers are derived
from the report's envelope digest, times are the report's own).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.errors import VerifyError
from conformance.sign.verified import VerifiedReport

_LINK = re.compile(r"(?P<path>[^#]+)(?:#L(?P<line>\d+))?")


def utf8(text: str) -> bytes:
    """An export's JSON text as UTF-8. A lone surrogate (undecodable network bytes a report
    kept, as report.json writes them) becomes its `\\uXXXX` escape: still valid JSON, and
    the export is written rather than failing."""
    return text.encode("utf-8", "backslashreplace")


class Exporter(ABC):
    """One output format of `ucx-conformance export`."""

    name: str  # the --format value
    media_type: str
    signed: bool = False  # whether `export` needs a signing key

    @abstractmethod
    def export(self, report: VerifiedReport, key: Ed25519PrivateKey | None) -> bytes:
        """The export of `report` (verified) as bytes; `key` is given when `signed`."""


@dataclass(frozen=True, slots=True)
class Link:
    """An evidence link of a finding: a file of the report and optionally a line."""

    path: str
    line: int | None

    @property
    def text(self) -> str:
        return self.path + (f"#L{self.line}" if self.line else "")


def parse_link(text: str) -> Link | None:
    """ "evidence/flows.csv#L12" -> Link("evidence/flows.csv", 12); None if not a link."""
    found = _LINK.fullmatch(text)
    if found is None:
        return None
    line = found["line"]
    return Link(found["path"], int(line) if line else None)


@dataclass(frozen=True, slots=True)
class FindingFacts:
    """A finding as report.json wrote it."""

    severity: str
    summary: str
    links: tuple[Link, ...]
    flow_id: int | None
    facts: Mapping[str, Any]
    waived: Mapping[str, Any] | None
    display_filter: str | None


@dataclass(frozen=True, slots=True)
class ControlFacts:
    """A control as report.json wrote it."""

    id: str
    title: str
    verdict: str
    clauses: tuple[str, ...]
    clause_text: str
    promise: str
    reason: str
    findings: tuple[FindingFacts, ...]


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _finding(raw: Mapping[str, Any]) -> FindingFacts:
    links = tuple(
        link
        for link in (parse_link(t) for t in raw.get("links") or () if isinstance(t, str))
        if link is not None
    )
    flow = raw.get("flow_id")
    waived = raw.get("waived")
    facts = raw.get("facts")
    shown_filter = raw.get("display_filter")
    return FindingFacts(
        severity=_text(raw.get("severity")),
        summary=_text(raw.get("summary")),
        links=links,
        flow_id=flow if isinstance(flow, int) else None,
        facts=facts if isinstance(facts, dict) else {},
        waived=waived if isinstance(waived, dict) else None,
        display_filter=shown_filter if isinstance(shown_filter, str) else None,
    )


def controls_of(report: VerifiedReport) -> tuple[ControlFacts, ...]:
    """The controls of report.json, in report order (VerifyError if it has none)."""
    raw = report.report().get("controls")
    if not isinstance(raw, list):
        raise VerifyError(report.path / "report.json", "has no controls list")
    out = []
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise VerifyError(report.path / "report.json", "a control without an id")
        clauses = entry.get("clauses")
        out.append(
            ControlFacts(
                id=entry["id"],
                title=_text(entry.get("title")),
                verdict=_text(entry.get("verdict")),
                clauses=tuple(c for c in clauses if isinstance(c, str))
                if isinstance(clauses, list)
                else (),
                clause_text=_text(entry.get("clause_text")),
                promise=_text(entry.get("promise")),
                reason=_text(entry.get("reason")),
                findings=tuple(
                    _finding(f) for f in entry.get("findings") or () if isinstance(f, dict)
                ),
            )
        )
    return tuple(out)


def section(report: VerifiedReport, key: str) -> Mapping[str, Any]:
    """A top-level object of report.json ({} when absent or not an object)."""
    value = report.report().get(key)
    return value if isinstance(value, dict) else {}


def flow_rows(report: VerifiedReport, wanted: Sequence[int]) -> dict[int, dict[str, str]]:
    """Rows of evidence/flows.csv for the given flow ids (streamed; only those kept)."""
    want = {str(i) for i in wanted}
    found: dict[int, dict[str, str]] = {}
    if not want or not report.has("evidence/flows.csv"):
        return found
    for row in report.rows("evidence/flows.csv", ("flow_id",)):
        if row.get("flow_id") in want:
            found[int(row["flow_id"])] = row
    return found


def iter_violations(
    controls: Sequence[ControlFacts],
) -> Iterator[tuple[ControlFacts, FindingFacts]]:
    """Every violation finding, with its control, in report order."""
    for control in controls:
        for finding in control.findings:
            if finding.severity == "violation":
                yield control, finding
