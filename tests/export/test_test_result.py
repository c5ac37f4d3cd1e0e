"""export --format test-result: a DSSE envelope around an in-toto test-result statement.

Verified here with `cryptography` alone (PAE rebuilt by hand), as cosign would:
`cosign verify-blob-attestation --key signer.pub --signature attestation.json
--type https://in-toto.io/attestation/test-result/v0.1 --insecure-ignore-tlog report.intoto.json`
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from conformance.export.interface import ControlFacts, FindingFacts
from conformance.export.test_result import PREDICATE_TYPE, TestResultExporter, classify
from tests.export.conftest import Reports


def verify_with_cryptography(envelope_bytes: bytes, pub: Path) -> dict[str, Any]:
    """DSSE v1 verification from the spec, independent of conformance.sign."""
    envelope = json.loads(envelope_bytes)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"], validate=True)
    kind = envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
    (signature,) = envelope["signatures"]
    key = load_pem_public_key(pub.read_bytes())
    key.verify(base64.b64decode(signature["sig"]), pae)  # type: ignore[call-arg,union-attr]
    statement: dict[str, Any] = json.loads(payload)
    return statement


def attest(reports: Reports, path: Path) -> dict[str, Any]:
    from conformance.sign.keys import load_private_key

    data = TestResultExporter().export(reports.open(path), load_private_key(reports.lab.key))
    return verify_with_cryptography(data, reports.lab.pub)


def test_attestation_verifies_and_names_the_report_envelope(reports: Reports) -> None:
    statement = attest(reports, reports.clean)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == PREDICATE_TYPE
    envelope = (reports.clean / "report.intoto.json").read_bytes()
    assert statement["subject"] == [
        {"name": "report.intoto.json", "digest": {"sha256": hashlib.sha256(envelope).hexdigest()}}
    ]
    predicate = statement["predicate"]
    assert predicate["result"] == "PASSED"
    assert predicate["failedTests"] == [] and predicate["warnedTests"] == []
    assert "AG-EGRESS" in predicate["passedTests"] and "HY-DEST" not in predicate["passedTests"]
    names = [c["name"] for c in predicate["configuration"]]
    assert names == ["evidence/profile.yaml", "report.json"]


def test_one_inconclusive_control_makes_it_failed(reports: Reports) -> None:
    predicate = attest(reports, reports.silent)["predicate"]
    assert predicate["result"] == "FAILED"
    assert "AG-EGRESS" in predicate["failedTests"]


def test_a_failed_report_with_waivers_lists_the_waiver_file(reports: Reports) -> None:
    predicate = attest(reports, reports.leak)["predicate"]
    assert predicate["result"] == "FAILED"
    assert "AG-EGRESS" in predicate["failedTests"]
    assert "evidence/waivers.yaml" in [c["name"] for c in predicate["configuration"]]


def test_a_tampered_attestation_does_not_verify(reports: Reports) -> None:
    from cryptography.exceptions import InvalidSignature

    from conformance.sign.keys import load_private_key

    key = load_private_key(reports.lab.key)
    data = TestResultExporter().export(reports.open(reports.silent), key)
    envelope = json.loads(data)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicate"]["result"] == "FAILED"
    statement["predicate"]["result"] = "PASSED"  # what a forger would want
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    with pytest.raises(InvalidSignature):
        verify_with_cryptography(json.dumps(envelope).encode(), reports.lab.pub)


def control(verdict: str, *severities: str, waived: bool = False) -> ControlFacts:
    findings = tuple(
        FindingFacts(s, "x", (), None, {}, {"waiver": 1} if waived else None, None)
        for s in severities
    )
    return ControlFacts("C", "t", verdict, (), "", "", "", findings)


@pytest.mark.parametrize(
    ("verdicts", "report_verdict", "result"),
    [
        ([control("pass")], "pass", "PASSED"),
        ([control("pass", "warning")], "pass", "WARNED"),
        ([control("pass", "violation", waived=True)], "pass", "WARNED"),
        ([control("pass"), control("inconclusive")], "inconclusive", "FAILED"),
        ([control("pass"), control("error")], "inconclusive", "FAILED"),
        ([control("fail")], "fail", "FAILED"),
        ([control("not-applicable")], "inconclusive", "FAILED"),  # nothing proven
    ],
)
def test_result_rules(verdicts: list[ControlFacts], report_verdict: str, result: str) -> None:
    assert classify(verdicts, report_verdict)[0] == result
