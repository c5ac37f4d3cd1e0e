"""HY-CERT: the target sends no application data to a server that cannot prove its name.

Active and lab-only: the lab meets the target's cloud connections with impostor servers that
present, in turn, a self-signed certificate, one from an untrusted CA, one for the wrong
name, an expired one and a weak-key one (docs/hybrid.md). Each impostor logs, per connection,
whether the handshake completed and how many bytes of application data arrived after it
(decision 3: a completed handshake followed by a silent close passes; the criterion is that no
application data was sent, measured at the impostor).
"""

from __future__ import annotations

import json
from pathlib import Path

from conformance.evidence.interface import IMPOSTOR_LOG, Evidence
from conformance.judge.model import ControlResult, Finding, Severity
from conformance.profile_model import Profile
from conformance.verdict import Verdict

CONTROL = "HY-CERT"
IMPOSTOR_KINDS = ("self-signed", "untrusted-ca", "wrong-name", "expired", "weak-key")
EVIDENCE_NAME = "lab/impostors.jsonl"


def _read(path: Path) -> tuple[list[tuple[int, dict[str, object]]], int]:
    entries: list[tuple[int, dict[str, object]]] = []
    bad = 0
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(item, dict):
            entries.append((number, item))
        else:
            bad += 1
    return entries, bad


def judge_impostor(evidence: Evidence, profile: Profile) -> ControlResult:
    """HY-CERT from the impostors' per-connection log (IMPOSTOR_LOG)."""
    path = evidence.log(IMPOSTOR_LOG)
    if path is None:
        return ControlResult(
            CONTROL,
            Verdict.INCONCLUSIVE,
            "active control: no impostor ran in this run (it needs the lab: run --lab with a "
            "hybrid profile, where impostors answer the target's cloud connections)",
        )
    entries, bad = _read(path)
    findings: list[Finding] = []
    reached: dict[str, int] = {}
    for number, entry in entries:
        kind = str(entry.get("kind", "?"))
        reached[kind] = reached.get(kind, 0) + 1
        data = entry.get("app_data_bytes", 0)
        if isinstance(data, int) and data > 0:
            findings.append(
                Finding(
                    Severity.VIOLATION,
                    f"sent {data} bytes of application data to the {kind} impostor "
                    f"({entry.get('client', '?')} -> {entry.get('server', '?')}, "
                    f"handshake {'completed' if entry.get('handshake') else 'not completed'})",
                    evidence_file=EVIDENCE_NAME,
                    evidence_line=number,
                    facts={"kind": kind, "first_bytes": str(entry.get("first_bytes", ""))},
                )
            )
    facts: dict[str, object] = {"connections": len(entries), "by_kind": reached}
    if findings:
        return ControlResult(
            CONTROL,
            Verdict.FAIL,
            f"the target sent application data to {len(findings)} impostor connection(s): "
            f"{findings[0].summary}",
            tuple(findings),
            facts,
        )
    missing = [k for k in IMPOSTOR_KINDS if k not in reached]
    if bad:
        return ControlResult(
            CONTROL, Verdict.INCONCLUSIVE, f"{bad} unreadable lines in the impostor log", (), facts
        )
    if missing:
        return ControlResult(
            CONTROL,
            Verdict.INCONCLUSIVE,
            "the target never reached the impostor(s) " + ", ".join(missing),
            (),
            facts,
        )
    return ControlResult(
        CONTROL,
        Verdict.PASS,
        f"{len(entries)} connections to impostors ({', '.join(IMPOSTOR_KINDS)}): no application "
        "data sent to any",
        (),
        facts,
    )
