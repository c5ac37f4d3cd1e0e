"""The in-toto Statement v1 that names every file of a report directory with its SHA-256.

Spec: https://github.com/in-toto/attestation/blob/v1.0/spec/v1/statement.md
The statement's bytes are produced once here and signed as they are (DSSE signs bytes, not
a re-serialisation), so `build_statement` returns bytes and `parse_statement` takes bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from conformance.digest import PRIMARY_SUBJECT, FileDigest, unsafe_name_reason
from conformance.sign.strict_json import StrictJsonError, loads_object

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://ucx-conformance.dev/report/v1"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class StatementError(ValueError):
    """The payload is not a statement this project writes."""


@dataclass(frozen=True, slots=True)
class Statement:
    """A parsed statement: its subjects (name -> sha256 hex) and its predicate."""

    subjects: Mapping[str, str]
    predicate: Mapping[str, Any]


def build_statement(subjects: Iterable[FileDigest], predicate: Mapping[str, Any]) -> bytes:
    """Serialise the statement: `report.json` first, then every other subject by name.

    Compact, sorted-key JSON: the exact bytes matter only because they are signed.
    """
    items = sorted(subjects, key=lambda s: (s.path != PRIMARY_SUBJECT, s.path))
    names = [s.path for s in items]
    if len(set(names)) != len(names):
        raise StatementError("duplicate subject names")
    for name in names:
        reason = unsafe_name_reason(name)
        if reason:
            raise StatementError(f"subject {name!r}: {reason}")
    document = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": s.path, "digest": {"sha256": s.sha256}} for s in items],
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(predicate),
    }
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _subjects(raw: object) -> dict[str, str]:
    if not isinstance(raw, list) or not raw:
        # An empty subject list would prove nothing (sigstore-python refuses it too).
        raise StatementError("subject must be a non-empty list")
    subjects: dict[str, str] = {}
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) != {"name", "digest"}:
            raise StatementError("each subject must have exactly 'name' and 'digest'")
        name, digest = entry["name"], entry["digest"]
        if not isinstance(name, str):
            raise StatementError("subject name must be a string")
        reason = unsafe_name_reason(name)
        if reason:
            raise StatementError(f"subject {name!r}: {reason}")
        if name in subjects:
            raise StatementError(f"subject {name!r} listed twice")
        if not isinstance(digest, dict) or set(digest) != {"sha256"}:
            raise StatementError(f"subject {name!r}: digest must be exactly {{'sha256': ...}}")
        value = digest["sha256"]
        if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
            raise StatementError(f"subject {name!r}: sha256 must be 64 lower-case hex digits")
        subjects[name] = value
    return subjects


def parse_statement(payload: bytes) -> Statement:
    """Parse and check a statement's bytes (call only after the signature over them verified)."""
    try:
        document = loads_object(payload)
    except StrictJsonError as exc:
        raise StatementError(f"payload is not JSON: {exc}") from exc
    if document.get("_type") != STATEMENT_TYPE:
        raise StatementError(f"_type is not {STATEMENT_TYPE}")
    if document.get("predicateType") != PREDICATE_TYPE:
        raise StatementError(f"predicateType is not {PREDICATE_TYPE}")
    predicate = document.get("predicate")
    if not isinstance(predicate, dict):
        raise StatementError("predicate must be an object")
    if set(document) != {"_type", "subject", "predicateType", "predicate"}:
        raise StatementError("unexpected top-level fields")
    subjects = _subjects(document.get("subject"))
    if PRIMARY_SUBJECT not in subjects:
        raise StatementError(f"{PRIMARY_SUBJECT} is not a subject")
    return Statement(subjects=subjects, predicate=predicate)
