"""The in-toto Statement v1: subjects named safely, report.json first, parsed strictly."""

from __future__ import annotations

import json

import pytest

from conformance.digest import FileDigest, unsafe_name_reason
from conformance.sign.statement import (
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    StatementError,
    build_statement,
    parse_statement,
)

SHA = "a" * 64


def test_report_json_comes_first_then_names_sorted() -> None:
    files = [
        FileDigest(n, SHA, 1) for n in ("junit.xml", "evidence/b", "report.json", "evidence/a")
    ]
    document = json.loads(build_statement(files, {"verdict": "pass"}))
    assert document["_type"] == STATEMENT_TYPE
    assert document["predicateType"] == PREDICATE_TYPE
    names = [s["name"] for s in document["subject"]]
    assert names == ["report.json", "evidence/a", "evidence/b", "junit.xml"]
    parsed = parse_statement(build_statement(files, {"verdict": "pass"}))
    assert parsed.subjects["junit.xml"] == SHA and parsed.predicate == {"verdict": "pass"}


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/etc/passwd",
        "../x",
        "evidence/../../x",
        "a//b",
        "./a",
        "a/",
        "a\\b",
        "report.intoto.json",
    ],
)
def test_unsafe_subject_names_are_refused(name: str) -> None:
    assert unsafe_name_reason(name) is not None
    with pytest.raises(StatementError):
        build_statement([FileDigest("report.json", SHA, 1), FileDigest(name, SHA, 1)], {})


def _statement(subjects: object, **changes: object) -> bytes:
    document: dict[str, object] = {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": {},
    }
    document.update(changes)
    return json.dumps(document).encode()


REPORT = {"name": "report.json", "digest": {"sha256": SHA}}


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (_statement([]), "non-empty"),  # an empty subject list proves nothing
        (_statement([REPORT, REPORT]), "twice"),
        (_statement([{"name": "x", "digest": {"sha256": SHA}}]), "report.json is not a subject"),
        (_statement([{"name": "report.json", "digest": {"sha256": "ABC"}}]), "hex"),
        (_statement([{"name": "report.json", "digest": {"md5": SHA}}]), "digest"),
        (_statement([REPORT], _type="https://in-toto.io/Statement/v0.1"), "_type"),
        (_statement([REPORT], predicateType="x"), "predicateType"),
        (_statement([REPORT], extra=1), "unexpected"),
        (_statement([REPORT, {"name": "../x", "digest": {"sha256": SHA}}]), "'..'"),
    ],
)
def test_malformed_statements_are_refused(payload: bytes, problem: str) -> None:
    with pytest.raises(StatementError, match=problem):
        parse_statement(payload)
