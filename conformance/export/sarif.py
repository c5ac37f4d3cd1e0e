"""SARIF 2.1.0: one result per violation finding, rule id = control id (GitHub code scanning).

Spec: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html
- rules: every control of the report, with its title, promise and contract clauses;
- results: one per violation finding, `level: error`; a waived one carries a SARIF
  `suppressions` entry (kind external, status accepted) with the waiver's justification, so
  code scanning shows it as dismissed rather than dropping it;
- location: the evidence file the finding cites, with `region.startLine` when it cites a
  row (flow N is line N+1 of evidence/flows.csv); a finding without evidence points at its
  control in report.json. URIs are relative to the report directory (`uriBaseId`
  REPORTROOT);
- `partialFingerprints.ucxFinding/v1`: SHA-256 of the control, the destination (address,
  port, transport from flows.csv) and the names the finding is about, never the ephemeral
  source port or packet numbers, so the same leak in tomorrow's report is the same alert.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.digest import PRIMARY_SUBJECT
from conformance.export.interface import (
    ControlFacts,
    Exporter,
    FindingFacts,
    controls_of,
    flow_rows,
    iter_violations,
    section,
    utf8,
)
from conformance.sign.verified import VerifiedReport

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
URI_BASE = "REPORTROOT"
FINGERPRINT_KEY = "ucxFinding/v1"
_DIGITS = re.compile(r"\d+")
# Facts naming what a finding is about (judge.common.flow_finding, air_gapped.cloud_names).
_IDENTITY_FACTS = ("name", "names", "looks_like", "endpoint")


def _rule_name(title: str) -> str:
    """SARIF rule `name`: PascalCase of the title ("NoConnectionLeavesTheEnvironment")."""
    return "".join(w[:1].upper() + w[1:] for w in re.findall(r"[A-Za-z0-9]+", title)) or "Rule"


def _rule(control: ControlFacts, mode: str) -> dict[str, Any]:
    clauses = "\n".join(f"> {line}" for line in control.clause_text.splitlines() if line.strip())
    return {
        "id": control.id,
        "name": _rule_name(control.title),
        "shortDescription": {"text": control.title or control.id},
        "fullDescription": {"text": control.promise or control.title or control.id},
        "help": {
            "text": control.clause_text or control.promise,
            "markdown": f"**{control.promise}**\n\nContract clauses ({', '.join(control.clauses)}):"
            f"\n\n{clauses}",
        },
        "defaultConfiguration": {"level": "error"},
        "properties": {"tags": ["ucx-conformance", mode, *control.clauses], "precision": "high"},
    }


def _control_line(report_bytes: bytes, control_id: str) -> int | None:
    needle = json.dumps({"id": control_id})[1:-1].encode("utf-8")  # '"id": "AG-EGRESS"'
    position = report_bytes.find(needle)
    return report_bytes.count(b"\n", 0, position) + 1 if position >= 0 else None


def _location(
    control: ControlFacts, finding: FindingFacts, report: VerifiedReport, report_bytes: bytes
) -> dict[str, Any]:
    link = next((link for link in finding.links if report.has(link.path)), None)
    if link is not None:
        uri, line = link.path, link.line
    else:
        uri, line = PRIMARY_SUBJECT, _control_line(report_bytes, control.id)
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri, "uriBaseId": URI_BASE}}
    if line:
        physical["region"] = {"startLine": line}
    return {"physicalLocation": physical}


def _identity(
    control: ControlFacts, finding: FindingFacts, flows: Mapping[int, Mapping[str, str]]
) -> str:
    parts = [control.id]
    row = flows.get(finding.flow_id) if finding.flow_id is not None else None
    if row is not None:
        parts.append(f"{row.get('responder')}|{row.get('responder_port')}|{row.get('transport')}")
    facts = [f"{k}={finding.facts[k]}" for k in _IDENTITY_FACTS if finding.facts.get(k)]
    parts += facts
    if row is None and not facts:
        # No destination, no name: the summary without its numbers (ports, counts).
        parts.append(_DIGITS.sub("#", finding.summary))
    return hashlib.sha256(utf8("\n".join(parts))).hexdigest()


def _result(
    control: ControlFacts,
    finding: FindingFacts,
    index: int,
    fingerprint: str,
    location: dict[str, Any],
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "controlVerdict": control.verdict,
        "evidence": [link.text for link in finding.links],
    }
    if finding.facts:
        properties["facts"] = dict(finding.facts)
    if finding.display_filter:
        properties["displayFilter"] = finding.display_filter
    result: dict[str, Any] = {
        "ruleId": control.id,
        "ruleIndex": index,
        "level": "error",
        "message": {"text": finding.summary or control.reason},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
        "properties": properties,
    }
    if finding.waived is not None:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": f"{finding.waived.get('justification')} (approved by "
                f"{finding.waived.get('approved_by')}, expires {finding.waived.get('expires')}; "
                f"{finding.waived.get('evidence')})",
            }
        ]
    return result


def _artifacts(report: VerifiedReport, uris: Sequence[str]) -> list[dict[str, Any]]:
    return [
        {
            "location": {"uri": uri, "uriBaseId": URI_BASE},
            "hashes": {"sha-256": report.subjects[uri]},
        }
        for uri in uris
    ]


def sarif_log(report: VerifiedReport) -> dict[str, Any]:
    """The SARIF log of a verified report."""
    controls = controls_of(report)
    document = report.report()
    profile = section(report, "profile")
    harness = section(report, "harness")
    mode = str(profile.get("mode", ""))
    index = {c.id: i for i, c in enumerate(controls)}
    violations = list(iter_violations(controls))
    flows = flow_rows(report, [f.flow_id for _c, f in violations if f.flow_id is not None])
    report_bytes = report.read_bytes(PRIMARY_SUBJECT)
    seen: dict[str, int] = {}
    results = []
    for control, finding in violations:
        identity = _identity(control, finding, flows)
        seen[identity] = seen.get(identity, 0) + 1
        # The same leak twice in one report (two captures) stays two results.
        fingerprint = identity if seen[identity] == 1 else f"{identity}:{seen[identity]}"
        location = _location(control, finding, report, report_bytes)
        results.append(_result(control, finding, index[control.id], fingerprint, location))
    cited = sorted(
        {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    )
    not_proven = [c.id for c in controls if c.verdict in ("inconclusive", "error")]
    run = {
        "tool": {
            "driver": {
                "name": "ucx-conformance",
                "version": str(harness.get("version", "")),
                "rules": [_rule(c, mode) for c in controls],
            }
        },
        "automationDetails": {"id": f"ucx-conformance/{profile.get('name', '')}/"},
        "originalUriBaseIds": {URI_BASE: {"description": {"text": "The signed report directory."}}},
        "invocations": [
            {
                "executionSuccessful": True,
                "startTimeUtc": str(harness.get("started", "")),
                "endTimeUtc": str(harness.get("finished", "")),
            }
        ],
        "artifacts": _artifacts(report, cited),
        "results": results,
        "properties": {
            "reportVerdict": document.get("verdict"),
            "profile": profile.get("name"),
            "mode": mode,
            "reportEnvelopeSha256": report.envelope_sha256,
            "signer": report.fingerprint,
            "signerPinned": report.pinned,
            "notProven": not_proven,
        },
    }
    if not run["artifacts"]:
        del run["artifacts"]
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


class SarifExporter(Exporter):
    """SARIF 2.1.0 JSON."""

    name = "sarif"
    media_type = "application/sarif+json"

    def export(self, report: VerifiedReport, key: Ed25519PrivateKey | None) -> bytes:
        return utf8(json.dumps(sarif_log(report), indent=2, ensure_ascii=False) + "\n")
