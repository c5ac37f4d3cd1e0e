"""open_verified: verify first, then hand out only bytes whose hash is the signed one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conformance.errors import VerifyError
from conformance.sign.keys import generate_key
from conformance.sign.verified import open_verified
from tests.report.builders import SignedReport


def test_pinned_report_opens_and_hands_out_signed_bytes(report: SignedReport) -> None:
    verified = open_verified(report.report_dir, report.pub_path)
    assert verified.pinned and verified.fingerprint == report.summary.fingerprint
    envelope = (report.report_dir / "report.intoto.json").read_bytes()
    assert verified.envelope_sha256 == hashlib.sha256(envelope).hexdigest()
    data = verified.read_bytes("report.json")
    assert hashlib.sha256(data).hexdigest() == verified.subjects["report.json"]
    assert verified.report()["verdict"] == report.summary.verdict.value
    rows = list(verified.rows("evidence/flows.csv"))
    assert rows and rows[0]["flow_id"] == "1"
    assert verified.line("evidence/flows.csv", 1) is not None
    assert verified.line("evidence/flows.csv", 1_000_000) is None


def test_without_key_it_refuses_unless_unpinned_is_allowed(report: SignedReport) -> None:
    with pytest.raises(VerifyError, match=r"signer not pinned.*--allow-unpinned"):
        open_verified(report.report_dir, None)
    verified = open_verified(report.report_dir, None, allow_unpinned=True)
    assert not verified.pinned


def test_wrong_key_is_refused(report: SignedReport, tmp_path: Path) -> None:
    other = generate_key(tmp_path / "other.pem")
    with pytest.raises(VerifyError, match="signature does not match"):
        open_verified(report.report_dir, Path(f"{other}.pub"))


def test_a_tampered_file_is_refused_naming_it(report: SignedReport) -> None:
    flows = report.report_dir / "evidence" / "flows.csv"
    flows.write_bytes(flows.read_bytes() + b"9,extra\n")
    with pytest.raises(VerifyError) as caught:
        open_verified(report.report_dir, report.pub_path)
    assert str(flows) in str(caught.value) and "SHA-256" in str(caught.value)


def test_a_file_changed_after_verification_is_never_handed_out(report: SignedReport) -> None:
    verified = open_verified(report.report_dir, report.pub_path)
    dns = report.report_dir / "evidence" / "dns.csv"
    dns.write_bytes(b"capture,packet\nswapped,1\n")
    with pytest.raises(VerifyError, match="changed since it was verified"):
        list(verified.rows("evidence/dns.csv"))


def test_a_file_the_signature_does_not_cover_is_never_read(report: SignedReport) -> None:
    verified = open_verified(report.report_dir, report.pub_path)
    assert not verified.has("evidence/notes.txt")
    with pytest.raises(VerifyError, match="not covered"):
        verified.read_bytes("evidence/notes.txt")
