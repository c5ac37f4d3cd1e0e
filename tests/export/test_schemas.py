"""The vendored schemas are the published ones (pinned SHA-256) and usable as validators."""

from __future__ import annotations

import hashlib

import pytest

from tests.export.conftest import (
    OSCAL_SCHEMA,
    SARIF_SCHEMA,
    oscal_definition_validator,
    oscal_validator,
    sarif_validator,
    schema_errors,
)

PINNED = {
    OSCAL_SCHEMA.name: "078848cb4000024a65679110f6ee2d99b300b06471a33fc536b19b670b65aa51",
    SARIF_SCHEMA.name: "c3b4bb2d6093897483348925aaa73af03b3e3f4bd4ca38cef26dcb4212a2682e",
}


@pytest.mark.parametrize("path", [OSCAL_SCHEMA, SARIF_SCHEMA], ids=lambda p: p.name)
def test_vendored_schema_is_unchanged(path: object) -> None:
    from pathlib import Path

    assert isinstance(path, Path)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == PINNED[path.name]
    assert path.name in (path.parent / "PROVENANCE.md").read_text()
    assert PINNED[path.name] in (path.parent / "PROVENANCE.md").read_text()


def test_validators_reject_what_the_schemas_forbid() -> None:
    # An observation without `methods` and with a non-UUID: the OSCAL validator must notice,
    # including the \\p{L} token patterns rewritten for Python.
    bad_oscal = {
        "assessment-results": {
            "uuid": "not-a-uuid",
            "metadata": {
                "title": "t",
                "last-modified": "yesterday",
                "version": "1",
                "oscal-version": "1.1.3",
            },
            "import-ap": {"href": "#x"},
            "results": [
                {
                    "uuid": "3a2d9f0e-1c4b-5d6e-8f70-1a2b3c4d5e6f",
                    "title": "t",
                    "description": "d",
                    "start": "2026-01-01T00:00:00Z",
                    "reviewed-controls": {
                        "control-selections": [
                            {"include-controls": [{"control-id": "9-starts-with-digit"}]}
                        ]
                    },
                }
            ],
        }
    }
    assert schema_errors(oscal_validator(), bad_oscal)  # the whole document: oneOf fails
    part = oscal_definition_validator("oscal-complete-oscal-ar:assessment-results")
    errors = schema_errors(part, bad_oscal["assessment-results"])
    assert any(e.startswith("uuid:") for e in errors), errors
    assert any("'9-starts-with-digit' does not match" in e for e in errors), errors
    assert any(e.startswith("metadata/last-modified") for e in errors), errors
    bad_sarif = {"version": "2.1.0", "runs": [{"tool": {"driver": {}}}]}
    assert any("name" in e for e in schema_errors(sarif_validator(), bad_sarif))
