"""in-toto test-result attestation: a DSSE envelope (Ed25519) for policy engines and cosign.

Predicate: https://github.com/in-toto/attestation/blob/main/spec/predicates/test-result.md
- subject: the report's envelope, `report.intoto.json`, with the SHA-256 of its bytes (the
  envelope signs every other file, so this one digest pins the whole report), and the
  container image's digest when the report records one (`target.image.digest`);
- `result`: PASSED only when the report passed (every applicable control passed) and no
  passed control carries a warning or a waived finding; WARNED when they all passed but
  some do; FAILED otherwise. Inconclusive and error controls are listed in `failedTests`:
  not proven is not passed (fail closed). Not-applicable controls are in no list;
- `configuration`: what the run was configured with, as ResourceDescriptors: the profile
  copy, the waiver file when one was applied, and report.json, each with its SHA-256.

Verify offline: `cosign verify-blob-attestation --key signer.pub --signature
attestation.json --type https://in-toto.io/attestation/test-result/v0.1
--insecure-ignore-tlog report.intoto.json` (docs/policy-engines.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.digest import ENVELOPE_NAME, PRIMARY_SUBJECT
from conformance.export.interface import ControlFacts, Exporter, controls_of, section, utf8
from conformance.sign.dsse import sign_envelope
from conformance.sign.keys import fingerprint
from conformance.sign.statement import STATEMENT_TYPE
from conformance.sign.verified import VerifiedReport

PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
PROFILE_COPY = "evidence/profile.yaml"
WAIVERS_COPY = "evidence/waivers.yaml"
_IMAGE_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_CONFIGURATION = (
    (PROFILE_COPY, "application/yaml"),
    (WAIVERS_COPY, "application/yaml"),
    (PRIMARY_SUBJECT, "application/json"),
)


def _warned(control: ControlFacts) -> bool:
    return any(f.severity == "warning" or f.waived is not None for f in control.findings)


def classify(
    controls: Sequence[ControlFacts], report_verdict: str
) -> tuple[str, list[str], list[str], list[str]]:
    """(result, passed, warned, failed) of the test-result predicate (module docstring)."""
    passed: list[str] = []
    warned: list[str] = []
    failed: list[str] = []
    for control in controls:
        if control.verdict == "not-applicable":
            continue
        if control.verdict == "pass":
            (warned if _warned(control) else passed).append(control.id)
        else:  # fail, inconclusive, error, or anything unknown: not passed
            failed.append(control.id)
    if failed or report_verdict != "pass":
        result = "FAILED"
    elif warned:
        result = "WARNED"
    else:
        result = "PASSED"
    return result, passed, warned, failed


def _image_subject(report: VerifiedReport) -> dict[str, Any] | None:
    image = section(report, "target").get("image")
    if not isinstance(image, Mapping):
        return None
    found = _IMAGE_DIGEST.fullmatch(str(image.get("digest", "")))
    if found is None:
        return None
    return {"name": str(image.get("name") or "image"), "digest": {"sha256": found[1]}}


def statement(report: VerifiedReport) -> dict[str, Any]:
    """The in-toto Statement v1 of the test-result attestation for `report`."""
    controls = controls_of(report)
    result, passed, warned, failed = classify(controls, str(report.report().get("verdict")))
    subjects = [{"name": ENVELOPE_NAME, "digest": {"sha256": report.envelope_sha256}}]
    image = _image_subject(report)
    if image is not None:
        subjects.append(image)
    configuration = [
        {"name": name, "digest": {"sha256": report.subjects[name]}, "mediaType": media}
        for name, media in _CONFIGURATION
        if report.has(name)
    ]
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "result": result,
            "configuration": configuration,
            "passedTests": passed,
            "warnedTests": warned,
            "failedTests": failed,
        },
    }


class TestResultExporter(Exporter):
    """The DSSE envelope around the test-result statement, signed with the given key."""

    __test__ = False  # a pytest collector must not take this for a test class
    name = "test-result"
    media_type = "application/vnd.dsse.envelope.v1+json"
    signed = True

    def export(self, report: VerifiedReport, key: Ed25519PrivateKey | None) -> bytes:
        if key is None:
            raise ValueError("test-result attestations are signed: a key is required")
        payload = utf8(
            json.dumps(statement(report), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        )
        return sign_envelope(payload, key, fingerprint(key.public_key()))
