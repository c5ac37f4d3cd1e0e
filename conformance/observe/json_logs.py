"""The harness's own JSON logs as read: JSON-lines logs (probes, impostors, stimuli) and JSON
documents (endpoint scan results, the lab directory's people).

One reader for every such log, so a judge never opens a file: each record keeps its 1-based
line, so a finding points at `evidence/<file>#L<line>`, and a line that is not a JSON object
(or lacks the key its log requires) is counted as unreadable, never skipped silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class JsonLines:
    """A JSON-lines log: its objects by line, the lines that were not records, its name."""

    evidence_file: str  # its name under the report's evidence/
    records: tuple[tuple[int, Mapping[str, Any]], ...] = ()
    unreadable: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class JsonDocument:
    """A JSON document, or why it could not be read."""

    evidence_file: str
    value: Any = None
    error: str | None = None


def read_json_lines(path: Path, evidence_file: str, *, require: str | None = None) -> JsonLines:
    """Every JSON object of `path` with its line; objects without `require` are unreadable."""
    records: list[tuple[int, Mapping[str, Any]]] = []
    bad: list[int] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError:
                bad.append(number)
                continue
            if isinstance(item, dict) and (require is None or require in item):
                records.append((number, item))
            else:
                bad.append(number)
    return JsonLines(evidence_file, tuple(records), tuple(bad))


def read_json_document(path: Path, evidence_file: str) -> JsonDocument:
    """The document at `path`, or the reason it is not one."""
    try:
        return JsonDocument(evidence_file, json.loads(path.read_text(errors="replace")))
    except (OSError, ValueError) as exc:
        return JsonDocument(evidence_file, None, f"{type(exc).__name__}: {exc}")
