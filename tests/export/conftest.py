"""Signed reports of real runs for the export tests, and the vendored schemas' validators."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator, Draft7Validator

from conformance.sign.verified import VerifiedReport, open_verified
from tests import defects
from tests.after_run import UDP_LEAK, Lab, make_lab, tcp_and_udp_leak

SCHEMAS = Path(__file__).parent / "schemas"
OSCAL_SCHEMA = SCHEMAS / "oscal_complete_schema-1.1.3.json"
SARIF_SCHEMA = SCHEMAS / "sarif-schema-2.1.0.json"

WAIVER = f"""\
- control: AG-EGRESS
  match: {{destination: "{UDP_LEAK}"}}
  justification: NTP to the ISP until the on-prem server is commissioned (CHG-1234)
  approved_by: Jane Roe, CISO
  expires: 2099-12-31
"""


def _python_pattern(value: Any) -> Any:
    """The schema with OSCAL's \\p{L} and \\p{N} written as Python `re` classes."""
    if isinstance(value, dict):
        return {
            k: v.replace(r"\p{L}", r"[^\W\d_]").replace(r"\p{N}", r"\d")
            if k == "pattern" and isinstance(v, str)
            else _python_pattern(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_python_pattern(v) for v in value]
    return value


@cache
def oscal_validator() -> Draft7Validator:
    schema = _python_pattern(json.loads(OSCAL_SCHEMA.read_text()))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


@cache
def oscal_definition_validator(name: str) -> Draft7Validator:
    """A validator for one definition of the OSCAL schema (errors not hidden by `oneOf`)."""
    schema = oscal_validator().schema
    return Draft7Validator({"definitions": schema["definitions"], "$ref": f"#/definitions/{name}"})


@cache
def sarif_validator() -> Draft4Validator:
    schema = json.loads(SARIF_SCHEMA.read_text())
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema)


def schema_errors(validator: Draft4Validator | Draft7Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}"
        for e in validator.iter_errors(document)
    ]


@dataclass(frozen=True, slots=True)
class Reports:
    lab: Lab
    clean: Path
    leak: Path  # two leaks, one waived
    silent: Path  # nothing from the target: inconclusive

    def open(self, path: Path) -> VerifiedReport:
        return open_verified(path, self.lab.pub)


@pytest.fixture(scope="package")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    lab = make_lab(tmp_path_factory.mktemp("export"))
    waivers = lab.root / "waivers.yaml"
    waivers.write_text(WAIVER)
    clean_code, clean = lab.run("clean", defects.clean_onprem_traffic())
    leak_code, leak = lab.run("leak", tcp_and_udp_leak(), "--waivers", waivers)
    silent_code, silent = lab.run("silent", defects.silent_target())
    assert (clean_code, leak_code, silent_code) == (0, 1, 2)
    return Reports(lab, clean, leak, silent)


@pytest.fixture(autouse=True)
def _isolated_default_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never let a test create or reuse a key in the real home directory."""
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "default-key" / "signing-key.pem"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    yield
