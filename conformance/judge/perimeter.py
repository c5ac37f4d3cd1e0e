"""AG-PERIMETER (HA 5, 13): probes from the target's position to outside canaries get no answer.

Reads the probe log (JSON lines, one per probe, as conformance.lab.probe writes it): what
was sent, and the answer or none. Fail closed: no probe log or no probe line is
`inconclusive`; a probe that could not be sent leaves the control `inconclusive` unless
another probe already proves a breach.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.judge.result import ControlResult, Finding, Severity
from conformance.observe.records import Observations
from conformance.profile_model import Profile
from conformance.verdict import Verdict

CONTROL = "AG-PERIMETER"


def _target(item: Mapping[str, Any]) -> str:
    port = item.get("port")
    where = item.get("destination", "?")
    where = f"[{where}]" if ":" in str(where) else str(where)
    return f"{where}:{port}/{item.get('proto')}" if port else f"{where} {item.get('proto')}"


def probing_enabled(profile: Profile) -> bool:
    """Whether the profile asks for perimeter probes (`probes: {perimeter: true}`)."""
    return profile.probes.perimeter


def perimeter(obs: Observations, profile: Profile) -> ControlResult:
    """AG-PERIMETER from the probe results the run's source recorded."""
    if not probing_enabled(profile):
        return ControlResult(
            CONTROL,
            Verdict.NOT_APPLICABLE,
            "perimeter probing is not enabled in the profile (probes: {perimeter: true})",
        )
    if obs.probes is None:
        return ControlResult(
            CONTROL,
            Verdict.INCONCLUSIVE,
            f"probing is enabled but the {obs.source or 'run'}'s evidence source ran no probes",
        )
    evidence = obs.probes.evidence_file
    probes, bad = obs.probes.records, obs.probes.unreadable
    if not probes:
        return ControlResult(CONTROL, Verdict.INCONCLUSIVE, "no probes were run (empty probe log)")
    findings: list[Finding] = []
    answered = errored = rejected = 0
    for number, item in probes:
        answer = item.get("answer")
        about = {"probe": str(item.get("probe")), "sent": str(item.get("sent", ""))}
        if item.get("error"):
            errored += 1
            findings.append(
                Finding(
                    Severity.WARNING,
                    f"probe {item.get('probe')} to {_target(item)} could not run: {item['error']}",
                    evidence_file=evidence,
                    evidence_line=number,
                    facts=about,
                )
            )
        elif isinstance(answer, dict) and answer.get("from_destination", True):
            answered += 1
            findings.append(
                Finding(
                    Severity.VIOLATION,
                    f"probe {item.get('probe')} to {_target(item)} was answered:"
                    f" {answer.get('kind')} from {answer.get('from')}",
                    evidence_file=evidence,
                    evidence_line=number,
                    facts={**about, "answer": str(answer.get("summary", ""))},
                )
            )
        elif isinstance(answer, dict):
            # An ICMP error from another address: something on the way rejected the probe.
            rejected += 1
            findings.append(
                Finding(
                    Severity.INFO,
                    f"probe {item.get('probe')} to {_target(item)} rejected by"
                    f" {answer.get('from')} ({answer.get('kind')}); if that host is beyond"
                    " the perimeter, the probe left it",
                    evidence_file=evidence,
                    evidence_line=number,
                    facts={**about, "answer": str(answer.get("summary", ""))},
                )
            )
    for number in bad:
        findings.append(
            Finding(
                Severity.WARNING,
                f"probe log line {number} is not a probe record",
                evidence_file=evidence,
                evidence_line=number,
            )
        )
    facts: dict[str, object] = {
        "probes": len(probes),
        "answered": answered,
        "rejected_on_the_way": rejected,
        "could_not_run": errored,
    }
    silent = len(probes) - answered - errored - rejected
    if answered:
        verdict = Verdict.FAIL
        reason = f"{answered} of {len(probes)} probes to outside canaries were answered"
    elif errored or bad:
        verdict = Verdict.INCONCLUSIVE
        reason = f"{errored} of {len(probes)} probes could not run" + (
            f"; {len(bad)} unreadable probe log lines" if bad else ""
        )
    else:
        verdict = Verdict.PASS
        reason = (
            f"{len(probes)} probes (TCP, UDP, ICMP; IPv4 and IPv6) to outside canaries:"
            f" {silent} unanswered, {rejected} rejected on the way"
        )
    order = {Severity.VIOLATION: 0, Severity.WARNING: 1, Severity.INFO: 2}
    findings.sort(key=lambda f: (order[f.severity], f.evidence_line or 0))
    return ControlResult(CONTROL, verdict, reason, tuple(findings), facts)
