"""OSCAL 1.1 assessment-results (JSON): one observation per control, findings with evidence.

Model: https://pages.nist.gov/OSCAL/reference/1.1.3/assessment-results/json-outline/
- `results[0].observations`: one per control: how it was judged (method TEST), its verdict
  and reason, each finding's evidence link as `relevant-evidence` (href into the report);
- `results[0].findings`: one per applicable control, `target` = the control's objective,
  status `satisfied` (pass) or `not-satisfied` (fail: reason `fail`; inconclusive and error:
  reason `other`, never satisfied); not-applicable controls are listed as excluded;
- `back-matter`: the signed envelope (report.intoto.json) with its SHA-256 first, then
  every file it signs with its SHA-256, so a GRC tool can hold the export to the report;
- `import-ap`: there is no OSCAL assessment plan; the deployment profile the run followed
  (evidence/profile.yaml, a back-matter resource) stands in for it, and says so.

UUIDs are version-5 UUIDs of the envelope digest and the object's role (and control id), so
exporting one report twice gives identical bytes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.digest import ENVELOPE_NAME, PRIMARY_SUBJECT
from conformance.export.interface import ControlFacts, Exporter, controls_of, section, utf8
from conformance.sign.verified import VerifiedReport

OSCAL_VERSION = "1.1.3"
# Namespace of this project's OSCAL props (OSCAL: props outside NIST's set carry an `ns`).
PROP_NS = "https://ucx-conformance.dev/ns/oscal"
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://ucx-conformance.dev/oscal")
PROFILE_COPY = "evidence/profile.yaml"
_MEDIA_TYPES = {
    ".json": "application/json",
    ".csv": "text/csv",
    ".yaml": "application/yaml",
    ".xml": "application/xml",
    ".html": "text/html",
    ".pcap": "application/vnd.tcpdump.pcap",
    ".pcapng": "application/octet-stream",
    ".log": "text/plain",
}


def _uuid(digest: str, *parts: str) -> str:
    # uuid5 encodes its name as UTF-8: a lone surrogate in a control id is hashed escaped.
    return str(uuid.uuid5(_UUID_NAMESPACE, utf8("/".join((digest, *parts))).decode("utf-8")))


def _prop(name: str, value: str) -> dict[str, str]:
    return {"name": name, "ns": PROP_NS, "value": value or "-"}


def _media_type(name: str) -> str:
    suffix = name[name.rfind(".") :] if "." in name else ""
    return _MEDIA_TYPES.get(suffix, "application/octet-stream")


def _resource(digest: str, name: str, sha256: str, title: str) -> dict[str, Any]:
    return {
        "uuid": _uuid(digest, "resource", name),
        "title": title,
        "rlinks": [
            {
                "href": name,
                "media-type": _media_type(name),
                "hashes": [{"algorithm": "SHA-256", "value": sha256}],
            }
        ],
    }


def _status(verdict: str) -> dict[str, str]:
    if verdict == "pass":
        return {"state": "satisfied", "reason": "pass"}
    if verdict == "fail":
        return {"state": "not-satisfied", "reason": "fail"}
    # inconclusive and error: not proven, so never satisfied (fail closed).
    return {"state": "not-satisfied", "reason": "other", "remarks": f"verdict: {verdict}"}


def _evidence(control: ControlFacts, report: VerifiedReport) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for finding in control.findings:
        props = [_prop("severity", finding.severity)]
        if finding.waived is not None:
            props.append(_prop("waived", f"waiver #{finding.waived.get('waiver')}"))
        entry: dict[str, Any] = {"description": finding.summary or "(no summary)", "props": props}
        if finding.links and report.has(finding.links[0].path):
            entry["href"] = finding.links[0].text
        if finding.waived is not None:
            entry["remarks"] = (
                f"Waived: {finding.waived.get('justification')} (approved by"
                f" {finding.waived.get('approved_by')}, expires {finding.waived.get('expires')})"
            )
        items.append(entry)
    return items


def _observation(
    control: ControlFacts, report: VerifiedReport, digest: str, collected: str
) -> dict[str, Any]:
    observation: dict[str, Any] = {
        "uuid": _uuid(digest, "observation", control.id),
        "title": f"{control.id}: {control.title}",
        "description": control.reason or control.verdict,
        "props": [_prop("verdict", control.verdict), _prop("control", control.id)],
        "methods": ["TEST"],
        "types": ["finding" if control.verdict == "fail" else "control-objective"],
        "collected": collected,
    }
    evidence = _evidence(control, report)
    if evidence:
        observation["relevant-evidence"] = evidence
    if control.clause_text:
        observation["remarks"] = control.clause_text
    return observation


def _finding(control: ControlFacts, digest: str) -> dict[str, Any]:
    violations = sum(1 for f in control.findings if f.severity == "violation")
    waived = sum(1 for f in control.findings if f.waived is not None)
    description = control.promise or control.title
    if control.clauses:
        description += f" (contract: {', '.join(control.clauses)})"
    target = {
        "type": "objective-id",
        "target-id": f"{control.id}_obj",
        "title": control.title,
        "description": control.reason or control.verdict,
        "props": [_prop("verdict", control.verdict)],
        "status": _status(control.verdict),
    }
    finding: dict[str, Any] = {
        "uuid": _uuid(digest, "finding", control.id),
        "title": f"{control.id} {control.verdict}",
        "description": description,
        "props": [
            _prop("verdict", control.verdict),
            _prop("violations", str(violations)),
            _prop("waived-findings", str(waived)),
        ],
        "target": target,
        "related-observations": [{"observation-uuid": _uuid(digest, "observation", control.id)}],
    }
    return finding


def _selection(controls: Sequence[ControlFacts]) -> dict[str, Any]:
    included = [{"control-id": c.id} for c in controls if c.verdict != "not-applicable"]
    excluded = [{"control-id": c.id} for c in controls if c.verdict == "not-applicable"]
    selection: dict[str, Any] = {
        "description": "Controls of the ucx-conformance catalog judged in this run; "
        "not-applicable ones are excluded."
    }
    selection["include-controls"] = included or [{"control-id": "none"}]
    if excluded:
        selection["exclude-controls"] = excluded
    return selection


def assessment_results(report: VerifiedReport) -> dict[str, Any]:
    """The OSCAL assessment-results document of a verified report."""
    digest = report.envelope_sha256
    controls = controls_of(report)
    profile = section(report, "profile")
    harness = section(report, "harness")
    started = str(harness.get("started") or "")
    finished = str(harness.get("finished") or started)
    verdict = str(report.report().get("verdict", ""))
    name = str(profile.get("name", ""))
    resources = [
        _resource(
            digest,
            ENVELOPE_NAME,
            digest,
            "Signed report statement (DSSE envelope, Ed25519, in-toto Statement v1)",
        )
    ]
    titles = {PRIMARY_SUBJECT: "report.json (results)", PROFILE_COPY: "Deployment profile"}
    resources += [
        _resource(digest, n, report.subjects[n], titles.get(n, n)) for n in sorted(report.subjects)
    ]
    result = {
        "uuid": _uuid(digest, "result"),
        "title": f"UCX conformance of {name} ({profile.get('mode', '')}): {verdict}",
        "description": (
            f"Network-evidence conformance run of ucx-conformance {harness.get('version', '')}"
            f" against the deployment profile {name}. Report verdict: {verdict}."
        ),
        "start": started,
        "end": finished,
        "props": [_prop("verdict", verdict), _prop("signer", report.fingerprint)],
        "reviewed-controls": {"control-selections": [_selection(controls)]},
        "observations": [_observation(c, report, digest, finished) for c in controls],
    }
    findings = [_finding(c, digest) for c in controls if c.verdict != "not-applicable"]
    if findings:
        result["findings"] = findings
    metadata: dict[str, Any] = {
        "title": f"UCX conformance assessment results: {name}",
        "last-modified": finished,
        "version": f"report {digest}",
        "oscal-version": OSCAL_VERSION,
        "props": [
            _prop("report-envelope-sha256", digest),
            _prop("signer", report.fingerprint),
            _prop("signer-pinned", "true" if report.pinned else "false"),
        ],
    }
    return {
        "assessment-results": {
            "uuid": _uuid(digest, "assessment-results"),
            "metadata": metadata,
            "import-ap": {
                "href": f"#{_uuid(digest, 'resource', PROFILE_COPY)}",
                "remarks": "No OSCAL assessment plan: the deployment profile this run judged "
                "against (evidence/profile.yaml, in back-matter) is the plan it followed.",
            },
            "results": [result],
            "back-matter": {"resources": resources},
        }
    }


def _dumps(document: Mapping[str, Any]) -> bytes:
    return utf8(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


class OscalExporter(Exporter):
    """OSCAL 1.1 assessment-results JSON."""

    name = "oscal"
    media_type = "application/oscal+json"

    def export(self, report: VerifiedReport, key: Ed25519PrivateKey | None) -> bytes:
        return _dumps(assessment_results(report))
