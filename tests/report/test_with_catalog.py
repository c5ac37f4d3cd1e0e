"""The real catalog's controls fit ControlInfo and render (type-checked by mypy, run here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from conformance.catalog import load_catalog
from conformance.report.assemble import write_report
from conformance.report.interface import ControlInfo
from conformance.sign.keys import generate_key, load_private_key
from conformance.sign.seal import Ed25519Sealer
from conformance.sign.verify import verify_report
from tests.report.builders import make_run


def test_every_catalog_control_renders_with_its_clauses(tmp_path: Path) -> None:
    catalog = load_catalog()
    lookup: Callable[[str], ControlInfo] = catalog.get
    run = make_run(tmp_path)
    template = run.results[0]
    results = tuple(replace(template, control_id=c.id) for c in catalog)
    key_path = generate_key(tmp_path / "keys" / "signer.pem")
    sealer = Ed25519Sealer(load_private_key(key_path))
    write_report(tmp_path / "report", replace(run, results=results), sealer, lookup)
    document = json.loads((tmp_path / "report" / "report.json").read_bytes())
    for control, entry in zip(catalog, document["controls"], strict=True):
        assert entry["id"] == control.id and entry["title"] == control.title
        assert entry["clause"] == ", ".join(control.clauses)
        assert entry["clause_text"] == control.clause_text
    assert verify_report(tmp_path / "report", Path(f"{key_path}.pub")).trusted
