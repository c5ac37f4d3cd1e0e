"""Offline verification of a report directory: signature first, then every file, then content.

The steps are numbered as in sigstore-python's verifier; nothing read from the report is
trusted before step 4 has verified the signature over the exact payload bytes.

Before step 4 (the envelope cannot be trusted at all) a failure raises `VerifyError`.
After it, every file-level problem is collected, so an auditor sees all of them at once,
and `VerifyResult.ok` is false when there is any.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from conformance.digest import ENVELOPE_NAME, PRIMARY_SUBJECT, open_regular_nofollow, sha256_file
from conformance.errors import SigningKeyError, VerifyError
from conformance.sign.dsse import MAX_ENVELOPE_BYTES, EnvelopeError, parse_envelope, signature_valid
from conformance.sign.keys import fingerprint, load_public_key, parse_public_key
from conformance.sign.statement import (
    Statement,
    StatementError,
    parse_statement,
)
from conformance.sign.strict_json import StrictJsonError, loads_object

# The envelope holds a statement of a few hundred subjects; far more is not ours.
# report.json is parsed after its hash matched; the bound keeps a signed-but-huge one sane.
MAX_REPORT_JSON_BYTES = 256 * 1024 * 1024
EVIDENCE_PREFIX = "evidence/"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a verified report: the file and what is wrong with it."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of `verify_report`.

    `ok`: signature and every file good. `pinned`: checked against a key the auditor gave;
    without it the key came from inside the report and proves integrity, not authorship.
    """

    pinned: bool
    fingerprint: str
    problems: tuple[Problem, ...]
    files_checked: int
    # The statement whose signature verified (step 5) and the SHA-256 of the envelope's
    # bytes as read in step 1: what conformance.sign.verified checks later reads against.
    statement: Statement | None = None
    envelope_sha256: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def trusted(self) -> bool:
        """Integrity good and the signer pinned: the only state `verify` exits 0 for."""
        return self.ok and self.pinned


def _printable(name: str) -> str:
    """A file name from disk, safe to print (undecodable bytes shown escaped)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _read_envelope(path: Path) -> bytes:
    """Step 1: the envelope's bytes, from a regular file (a symlink could point anywhere)."""
    try:
        with open_regular_nofollow(path) as handle:
            data = handle.read(MAX_ENVELOPE_BYTES + 1)
    except FileNotFoundError as exc:
        raise VerifyError(path, "missing: not a signed report directory") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise VerifyError(path, "is a symlink, not the signed envelope") from exc
        raise VerifyError(path, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_ENVELOPE_BYTES:
        raise VerifyError(path, f"larger than {MAX_ENVELOPE_BYTES} bytes")
    return data


def _embedded_key(payload: bytes, path: Path) -> Ed25519PublicKey:
    """Step 3 without --key: the public key named inside the (not yet verified) payload.

    Only this one field is read before the signature is checked, and only to learn which
    key to check against; the result is never reported as pinned.
    """
    try:
        document = loads_object(payload)
        predicate = document.get("predicate")
        pem = predicate.get("publicKey") if isinstance(predicate, dict) else None
        if not isinstance(pem, str):
            raise VerifyError(path, "the report names no public key; verify with --key")
        return parse_public_key(pem.encode("ascii", "replace"), f"{path} (predicate.publicKey)")
    except StrictJsonError as exc:
        raise VerifyError(path, f"payload is not JSON: {exc}") from exc
    except SigningKeyError as exc:
        raise VerifyError(path, f"public key inside the report unusable: {exc.problem}") from exc


def _walk(report_dir: Path, subjects: set[str]) -> tuple[set[str], list[Problem]]:
    """Step 6a: the regular files present (relative POSIX names), and what else was found."""
    present: set[str] = set()
    problems: list[Problem] = []

    def unreadable(exc: OSError) -> None:
        problems.append(Problem(str(exc.filename), f"cannot read directory: {exc.strerror}"))

    for root, dirs, files in os.walk(report_dir, onerror=unreadable, followlinks=False):
        base = Path(root)
        rel_base = base.relative_to(report_dir).as_posix()
        prefix = "" if rel_base == "." else rel_base + "/"
        for name in dirs:
            if (base / name).is_symlink():  # os.walk lists it but does not descend
                problems.append(Problem(str(base / name), "is a symlink to a directory"))
        for name in files:
            rel = prefix + name
            if rel == ENVELOPE_NAME:
                continue
            mode = os.lstat(base / name).st_mode
            shown = str(base / _printable(name))
            if stat.S_ISLNK(mode):
                what = "signed file" if rel in subjects else "no file the statement names"
                problems.append(Problem(shown, f"is a symlink, not a regular file ({what})"))
            elif not stat.S_ISREG(mode):
                problems.append(Problem(shown, "is not a regular file"))
            elif rel in subjects:
                present.add(rel)
            else:
                problems.append(Problem(shown, "extra file, not named in the signed statement"))
    return present, problems


def _read_report_json(path: Path) -> tuple[str, bytes]:
    """report.json's SHA-256 and bytes, read once: the bytes hashed are the bytes parsed."""
    with open_regular_nofollow(path) as handle:
        data = handle.read(MAX_REPORT_JSON_BYTES + 1)
    if len(data) > MAX_REPORT_JSON_BYTES:
        raise OSError(errno.EFBIG, f"larger than {MAX_REPORT_JSON_BYTES} bytes")
    return hashlib.sha256(data).hexdigest(), data


def _check_files(report_dir: Path, statement: Statement) -> tuple[int, list[Problem], bytes | None]:
    """Step 6: every subject is a regular file with its hash; nothing else is there.

    Also returns report.json's bytes when their hash matched (None otherwise).
    """
    subjects = set(statement.subjects)
    present, problems = _walk(report_dir, subjects)
    flagged = {p.path for p in problems}
    checked = 0
    report_json: bytes | None = None
    for name in sorted(subjects):
        path = report_dir / name
        if name not in present:
            if str(path) not in flagged:
                problems.append(Problem(str(path), "missing (named in the signed statement)"))
            continue
        data = None
        try:
            if name == PRIMARY_SUBJECT:
                actual, data = _read_report_json(path)
            else:
                actual, _size = sha256_file(path, follow_symlinks=False)
        except OSError as exc:
            problems.append(Problem(str(path), f"cannot read: {exc.strerror or exc}"))
            continue
        expected = statement.subjects[name]
        if actual != expected:
            problems.append(
                Problem(str(path), f"SHA-256 {actual} does not match the signed {expected}")
            )
            continue
        checked += 1
        report_json = data if data is not None else report_json
    return checked, problems, report_json


def _check_report_json(
    path: Path, data: bytes, statement: Statement, key_fingerprint: str
) -> list[Problem]:
    """Step 7: report.json (these bytes matched their hash) agrees with the statement."""
    try:
        document = loads_object(data)
    except StrictJsonError as exc:
        return [Problem(str(path), f"not a JSON report: {exc}")]
    problems: list[Problem] = []
    listed: dict[str, str] = {}
    entries = document.get("evidence")
    if not isinstance(entries, list):
        return [Problem(str(path), "has no evidence list")]
    for entry in entries:
        if not isinstance(entry, dict):
            problems.append(Problem(str(path), "evidence entry is not an object"))
            continue
        name, digest = entry.get("path"), entry.get("sha256")
        if not isinstance(name, str) or not isinstance(digest, str):
            problems.append(Problem(str(path), "evidence entry without path and sha256"))
            continue
        listed[name] = digest
    signed = {n: d for n, d in statement.subjects.items() if n.startswith(EVIDENCE_PREFIX)}
    for name in sorted(set(signed) | set(listed)):
        if name not in listed:
            problems.append(Problem(str(path), f"evidence list omits signed file {name}"))
        elif name not in signed:
            problems.append(Problem(str(path), f"evidence list names unsigned file {name}"))
        elif listed[name] != signed[name]:
            problems.append(Problem(str(path), f"evidence list SHA-256 of {name} differs"))
    signer = document.get("signer")
    named = signer.get("fingerprint") if isinstance(signer, dict) else None
    if named != key_fingerprint:
        problems.append(Problem(str(path), f"names signer {named}, signed by {key_fingerprint}"))
    if document.get("verdict") != statement.predicate.get("verdict"):
        problems.append(Problem(str(path), "verdict differs from the signed statement's"))
    return problems


def _check_predicate_key(
    envelope_path: Path, predicate: Mapping[str, Any], key_fingerprint: str
) -> list[Problem]:
    """Step 5b: the key the statement names is the key that verified it."""
    pem = predicate.get("publicKey")
    try:
        named = fingerprint(parse_public_key(str(pem).encode("ascii", "replace"), envelope_path))
    except SigningKeyError:
        return [Problem(str(envelope_path), "statement names no usable public key")]
    if named != key_fingerprint:
        return [
            Problem(str(envelope_path), f"statement names key {named}, signed by {key_fingerprint}")
        ]
    return []


def verify_report(report_dir: Path, public_key_path: Path | None = None) -> VerifyResult:
    """Verify a report directory offline; with `public_key_path`, against a pinned key.

    Raises VerifyError when the envelope is unusable or its signature does not verify,
    SigningKeyError when the given key file is unusable.
    """
    if not report_dir.is_dir():
        raise VerifyError(report_dir, "not a directory")
    envelope_path = report_dir / ENVELOPE_NAME

    # (1) The envelope's bytes, from a regular file.
    data = _read_envelope(envelope_path)

    # (2) Its structure: exact fields, one signature, the in-toto payload type.
    try:
        envelope = parse_envelope(data)
    except EnvelopeError as exc:
        raise VerifyError(envelope_path, f"malformed DSSE envelope: {exc}") from exc

    # (3) The key: pinned by the auditor, or (integrity only) the one the report names.
    if public_key_path is not None:
        key = load_public_key(public_key_path)
    else:
        key = _embedded_key(envelope.payload, envelope_path)
    key_fingerprint = fingerprint(key)

    # (4) The signature over PAE(payloadType, payload): before any field is believed.
    if not signature_valid(envelope, key):
        raise VerifyError(envelope_path, f"signature does not match key {key_fingerprint}")

    # (5) Only now parse the statement.
    try:
        statement = parse_statement(envelope.payload)
    except StatementError as exc:
        raise VerifyError(envelope_path, f"signed payload is not our statement: {exc}") from exc
    problems = _check_predicate_key(envelope_path, statement.predicate, key_fingerprint)

    # (6) The directory: each subject a regular file with its hash, nothing else present.
    checked, file_problems, report_json = _check_files(report_dir, statement)
    problems.extend(file_problems)

    # (7) report.json agrees with the statement: parsed only from bytes whose hash matched.
    if report_json is not None:
        path = report_dir / PRIMARY_SUBJECT
        problems.extend(_check_report_json(path, report_json, statement, key_fingerprint))

    return VerifyResult(
        pinned=public_key_path is not None,
        fingerprint=key_fingerprint,
        problems=tuple(problems),
        files_checked=checked,
        statement=statement,
        envelope_sha256=hashlib.sha256(data).hexdigest(),
    )
