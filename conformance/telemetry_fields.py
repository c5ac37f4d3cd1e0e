"""The documented telemetry fields (CT 10), loaded from telemetry_fields.yaml in the package.

A broken data file is the harness's own bug: ValueError, never a ConformanceError.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import yaml

ADDRESS_KINDS = ("own", "infrastructure")


def normalise_key(key: str) -> str:
    """A field name compared loosely: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", key.lower())


@dataclass(frozen=True, slots=True)
class Category:
    """One row of the CT 10 table."""

    beat: str
    category: str
    key: str  # normalised
    ref: str
    seed_line: int
    information: tuple[str, ...]
    fields: frozenset[str]  # normalised
    addresses: Mapping[str, str]  # normalised field -> own | infrastructure


@dataclass(frozen=True, slots=True)
class TelemetryFields:
    """Everything TM-MINIMAL and TM-CHANNEL need from CT 3 and CT 10."""

    section: str
    clause: str
    note_star: str
    telemetry_markers: tuple[str, ...]
    licensing_markers: tuple[str, ...]
    licensing_endpoints: tuple[str, ...]
    envelope: Mapping[str, str]  # normalised key -> ref
    beats: Mapping[str, str]  # normalised beat key -> beat title
    categories: Mapping[tuple[str, str], Category]  # (beat key, category key) -> category

    def category(self, beat_key: str, category_key: str) -> Category | None:
        return self.categories.get((normalise_key(beat_key), normalise_key(category_key)))

    def is_beat(self, key: str) -> bool:
        return normalise_key(key) in self.beats


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"telemetry_fields.yaml: {where}: expected a list of strings")
    return tuple(value)


def parse(data: object) -> TelemetryFields:
    """Build the model from the YAML document (ValueError naming the key on a bad file)."""
    if not isinstance(data, dict):
        raise ValueError("telemetry_fields.yaml: expected a mapping")
    beats: dict[str, str] = {}
    categories: dict[tuple[str, str], Category] = {}
    for b, beat in enumerate(data["beats"]):
        beat_key = normalise_key(beat["key"])
        beats[beat_key] = beat["beat"]
        for c, row in enumerate(beat["categories"]):
            where = f"beats[{b}].categories[{c}]"
            addresses = {normalise_key(k): v for k, v in (row.get("addresses") or {}).items()}
            fields = frozenset(normalise_key(f) for f in _strings(row["fields"], where + ".fields"))
            for name, kind in addresses.items():
                if kind not in ADDRESS_KINDS or name not in fields:
                    raise ValueError(f"telemetry_fields.yaml: {where}.addresses.{name}: {kind!r}")
            key = (beat_key, normalise_key(row["key"]))
            if key in categories:
                raise ValueError(f"telemetry_fields.yaml: {where}: duplicate key {row['key']}")
            categories[key] = Category(
                beat=beat["beat"],
                category=row["category"],
                key=key[1],
                ref=row["ref"],
                seed_line=int(row["seed_line"]),
                information=_strings(row["information"], where + ".information"),
                fields=fields,
                addresses=addresses,
            )
    return TelemetryFields(
        section=data["section"],
        clause=data["clause"],
        note_star=data["note_star"],
        telemetry_markers=_strings(data["telemetry_markers"], "telemetry_markers"),
        licensing_markers=_strings(data["licensing_markers"], "licensing_markers"),
        licensing_endpoints=_strings(data["licensing_endpoints"], "licensing_endpoints"),
        envelope={normalise_key(e["key"]): e["ref"] for e in data["envelope"]},
        beats=beats,
        categories=categories,
    )


@functools.cache
def load_telemetry_fields() -> TelemetryFields:
    """The package's transcription of CT 10."""
    text = resources.files("conformance").joinpath("telemetry_fields.yaml").read_text("utf-8")
    return parse(yaml.safe_load(text))
