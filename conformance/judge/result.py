"""What a judge returns: one result per control, with findings that point at evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from conformance.verdict import Verdict


class Severity(StrEnum):
    VIOLATION = "violation"  # makes the control fail
    WARNING = "warning"  # shown, does not change the verdict
    INFO = "info"


@dataclass(frozen=True, slots=True)
class PacketRef:
    """Packets of one capture (index into Observations.captures), 1-based numbers."""

    capture: int
    packets: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a judge found. The report turns the references into evidence links."""

    severity: Severity
    summary: str  # e.g. "192.0.2.10:51234 -> 198.51.100.7:443 tcp, SYN, 3 packets"
    flow_id: int | None = None  # row in evidence/flows.csv
    packets: PacketRef | None = None
    evidence_file: str | None = None  # a path relative to evidence/, e.g. "probes.log"
    evidence_line: int | None = None
    facts: dict[str, str] = field(default_factory=dict)  # extra detail: "looks like": "NTP"


@dataclass(frozen=True, slots=True)
class ControlResult:
    """The judgement of one control."""

    control_id: str
    verdict: Verdict
    reason: str  # one line: why this verdict (always set for inconclusive/error/not-applicable)
    findings: tuple[Finding, ...] = ()
    facts: dict[str, object] = field(default_factory=dict)  # per-control detail for the report

    @property
    def violations(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.VIOLATION)
