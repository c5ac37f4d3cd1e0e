"""verify_report: any changed byte, missing, extra or symlinked file, or wrong key fails."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.digest import FileDigest, sha256_file
from conformance.errors import VerifyError
from conformance.sign.dsse import sign_envelope
from conformance.sign.keys import fingerprint, generate_key, public_key_pem
from conformance.sign.statement import build_statement
from conformance.sign.verify import VerifyResult, verify_report
from tests.report.builders import REPORT_FILES, SignedReport

ENVELOPE = "report.intoto.json"


def problems_of(result: VerifyResult) -> str:
    return "\n".join(map(str, result.problems))


def test_round_trip_verifies_with_the_pinned_key(report: SignedReport) -> None:
    result = verify_report(report.report_dir, report.pub_path)
    assert result.ok and result.pinned and result.trusted, problems_of(result)
    assert result.files_checked == len(REPORT_FILES)
    assert result.fingerprint == report.summary.fingerprint


def test_without_key_integrity_is_checked_but_signer_not_pinned(report: SignedReport) -> None:
    result = verify_report(report.report_dir)
    assert result.ok and not result.pinned and not result.trusted
    assert result.fingerprint == report.summary.fingerprint


def test_every_file_of_the_directory_is_a_subject(report: SignedReport) -> None:
    present = sorted(
        p.relative_to(report.report_dir).as_posix()
        for p in report.report_dir.rglob("*")
        if p.is_file() and p.name != ENVELOPE
    )
    assert present == sorted(REPORT_FILES)
    assert report.summary.files[0].path == "report.json"


@pytest.mark.parametrize("name", REPORT_FILES)
@pytest.mark.parametrize("where", ["first", "second", "middle", "last"])
def test_one_flipped_byte_anywhere_fails(report: SignedReport, name: str, where: str) -> None:
    path = report.report_dir / name
    data = bytearray(path.read_bytes())
    offset = {"first": 0, "second": 1, "middle": len(data) // 2, "last": len(data) - 1}[where]
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    result = verify_report(report.report_dir, report.pub_path)
    assert not result.ok and not result.trusted
    assert any(p.path == str(path) and "SHA-256" in p.problem for p in result.problems)


@pytest.mark.parametrize("name", REPORT_FILES)
def test_missing_file_fails_naming_it(report: SignedReport, name: str) -> None:
    (report.report_dir / name).unlink()
    result = verify_report(report.report_dir, report.pub_path)
    assert not result.ok
    assert any(
        p.path == str(report.report_dir / name) and "missing" in p.problem for p in result.problems
    )


@pytest.mark.parametrize("name", ["notes.txt", "evidence/extra.pcap", "evidence/new/deep.log"])
def test_extra_file_fails_naming_it(report: SignedReport, name: str) -> None:
    path = report.report_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("added later")
    result = verify_report(report.report_dir, report.pub_path)
    assert not result.ok
    assert [(p.path, "extra file" in p.problem) for p in result.problems] == [(str(path), True)]


def test_symlink_in_place_of_a_file_fails_even_with_identical_content(
    report: SignedReport, tmp_path: Path
) -> None:
    path = report.report_dir / "evidence" / "flows.csv"
    outside = tmp_path / "flows-copy.csv"
    outside.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(outside)
    result = verify_report(report.report_dir, report.pub_path)
    assert not result.ok
    assert [p.path for p in result.problems] == [str(path)]
    assert "symlink" in result.problems[0].problem


def test_symlinked_evidence_directory_fails(report: SignedReport, tmp_path: Path) -> None:
    evidence = report.report_dir / "evidence"
    evidence.rename(tmp_path / "moved")
    evidence.symlink_to(tmp_path / "moved")
    result = verify_report(report.report_dir, report.pub_path)
    assert not result.ok
    assert any(p.path == str(evidence) and "symlink" in p.problem for p in result.problems)


def test_envelope_replaced_by_a_symlink_fails(report: SignedReport, tmp_path: Path) -> None:
    envelope = report.report_dir / ENVELOPE
    envelope.rename(tmp_path / "env.json")
    envelope.symlink_to(tmp_path / "env.json")
    with pytest.raises(VerifyError, match="symlink") as caught:
        verify_report(report.report_dir, report.pub_path)
    assert caught.value.path == str(envelope)


def test_missing_envelope_fails(report: SignedReport) -> None:
    (report.report_dir / ENVELOPE).unlink()
    with pytest.raises(VerifyError, match="not a signed report"):
        verify_report(report.report_dir, report.pub_path)


def test_wrong_key_fails_naming_envelope_and_key(report: SignedReport, tmp_path: Path) -> None:
    other = generate_key(tmp_path / "other.pem")
    with pytest.raises(VerifyError) as caught:
        verify_report(report.report_dir, Path(f"{other}.pub"))
    assert caught.value.path == str(report.report_dir / ENVELOPE)
    assert "signature does not match key sha256:" in caught.value.problem


def _envelope(report: SignedReport) -> dict[str, object]:
    document: dict[str, object] = json.loads((report.report_dir / ENVELOPE).read_bytes())
    return document


def _write_envelope(report: SignedReport, document: dict[str, object]) -> None:
    (report.report_dir / ENVELOPE).write_text(json.dumps(document))


def test_tampered_payload_fails(report: SignedReport) -> None:
    document = _envelope(report)
    statement = json.loads(base64.b64decode(str(document["payload"])))
    statement["predicate"]["verdict"] = "pass"  # the report said fail
    document["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    _write_envelope(report, document)
    with pytest.raises(VerifyError, match="signature does not match"):
        verify_report(report.report_dir, report.pub_path)


def test_tampered_signature_fails(report: SignedReport) -> None:
    document = _envelope(report)
    signatures = document["signatures"]
    assert isinstance(signatures, list)
    sig = bytearray(base64.b64decode(signatures[0]["sig"]))
    sig[0] ^= 0x80
    signatures[0]["sig"] = base64.b64encode(bytes(sig)).decode()
    _write_envelope(report, document)
    with pytest.raises(VerifyError, match="signature does not match"):
        verify_report(report.report_dir, report.pub_path)
    with pytest.raises(VerifyError, match="signature does not match"):
        verify_report(report.report_dir)


def test_second_signature_is_refused(report: SignedReport) -> None:
    document = _envelope(report)
    signatures = document["signatures"]
    assert isinstance(signatures, list)
    document["signatures"] = signatures * 2
    _write_envelope(report, document)
    with pytest.raises(VerifyError, match="exactly one signature"):
        verify_report(report.report_dir, report.pub_path)


def _resign(
    report: SignedReport, key: Ed25519PrivateKey, edit: dict[str, object] | None = None
) -> None:
    """Rebuild the statement over the files as they now are, signed by `key`."""
    payload = json.loads(base64.b64decode(str(_envelope(report)["payload"])))
    files = []
    for name in REPORT_FILES:
        sha, size = sha256_file(report.report_dir / name)
        files.append(FileDigest(name, sha, size))
    predicate = payload["predicate"] | {"publicKey": public_key_pem(key.public_key())}
    predicate |= edit or {}
    data = sign_envelope(build_statement(files, predicate), key, fingerprint(key.public_key()))
    (report.report_dir / ENVELOPE).write_bytes(data)


def test_forger_who_resigns_with_own_key_is_caught_only_by_pinning(
    report: SignedReport,
) -> None:
    forger = Ed25519PrivateKey.generate()
    path = report.report_dir / "report.json"
    document = json.loads(path.read_bytes())
    document["verdict"] = "pass"  # the report said fail
    document["signer"]["fingerprint"] = fingerprint(forger.public_key())
    path.write_text(json.dumps(document))
    _resign(report, forger, {"verdict": "pass"})
    unpinned = verify_report(report.report_dir)
    # Integrity holds against the key inside the report, which is exactly why that key is
    # never the trust anchor: the result is not pinned and names the forger's fingerprint.
    assert unpinned.ok and not unpinned.trusted
    assert unpinned.fingerprint == fingerprint(forger.public_key())
    assert unpinned.fingerprint != report.summary.fingerprint
    with pytest.raises(VerifyError, match="signature does not match"):
        verify_report(report.report_dir, report.pub_path)


def test_report_json_must_agree_with_the_signed_statement(report: SignedReport) -> None:
    path = report.report_dir / "report.json"
    document = json.loads(path.read_bytes())
    document["evidence"] = document["evidence"][1:]  # drop one evidence entry
    document["signer"]["fingerprint"] = "sha256:" + "0" * 64
    path.write_text(json.dumps(document))
    _resign(report, report.key())  # signed by the right key, yet inconsistent
    result = verify_report(report.report_dir, report.pub_path)
    text = problems_of(result)
    assert not result.ok
    assert "evidence list omits signed file evidence/capture-0.pcapng" in text
    assert "names signer sha256:000" in text


def test_statement_naming_a_path_outside_is_refused(report: SignedReport) -> None:
    key = report.key()
    files = [FileDigest("report.json", "a" * 64, 1)]
    payload = build_statement(files, {"publicKey": public_key_pem(key.public_key())})
    payload = payload.replace(b'"report.json"', b'"report.json"},{"digest":{"sha256":"'
                              + b"a" * 64 + b'"},"name":"../outside"', 1)  # fmt: skip
    data = sign_envelope(payload, key, fingerprint(key.public_key()))
    (report.report_dir / ENVELOPE).write_bytes(data)
    with pytest.raises(VerifyError, match=r"'\.\.'"):
        verify_report(report.report_dir, report.pub_path)


def test_duplicate_keys_in_the_signed_payload_are_refused(report: SignedReport) -> None:
    key = report.key()
    payload = b'{"_type":"x","_type":"https://in-toto.io/Statement/v1"}'
    (report.report_dir / ENVELOPE).write_bytes(
        sign_envelope(payload, key, fingerprint(key.public_key()))
    )
    with pytest.raises(VerifyError, match="duplicate"):
        verify_report(report.report_dir, report.pub_path)


def test_not_a_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(VerifyError, match="not a directory"):
        verify_report(tmp_path / "absent")


def test_unreadable_file_is_a_problem_not_a_crash(
    report: SignedReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance import digest as digest_module
    from conformance.sign import verify as verify_module

    real = digest_module.sha256_file
    denied = report.report_dir / "junit.xml"

    def denying(path: Path, *, follow_symlinks: bool = True) -> tuple[str, int]:
        if path == denied:  # as a file root cannot read would (root reads anything)
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, follow_symlinks=follow_symlinks)

    monkeypatch.setattr(verify_module, "sha256_file", denying)
    result = verify_report(report.report_dir, report.pub_path)
    assert [(p.path, p.problem) for p in result.problems] == [
        (str(denied), "cannot read: Permission denied")
    ]


def test_fifo_in_place_of_a_file_fails_without_hanging(report: SignedReport) -> None:
    path = report.report_dir / "evidence" / "dns.csv"
    path.unlink()
    os.mkfifo(path)
    result = verify_report(report.report_dir, report.pub_path)
    assert [(p.path, p.problem) for p in result.problems] == [(str(path), "is not a regular file")]
