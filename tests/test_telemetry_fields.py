"""conformance/telemetry_fields.yaml transcribes CT 10: every category is in the seed, on the
line it names, and the reference target's beat uses only what it lists."""

from __future__ import annotations

from conformance.telemetry_fields import load_telemetry_fields, normalise_key
from tests.shared import shared_text

CT = "seeds/003_40834228303555ec.txt"


def test_every_category_is_on_its_seed_line() -> None:
    lines = shared_text(CT).splitlines()
    fields = load_telemetry_fields()
    assert len(fields.categories) == 25  # rows of the CT 10 table
    for category in fields.categories.values():
        title = category.category.split(" (")[0]
        line = lines[category.seed_line - 1]
        assert title in line, (category.category, category.seed_line, line)
        near = lines[category.seed_line - 3 : category.seed_line + 2]  # the PDF splits rows
        assert any(category.beat.split()[0] in other for other in near), category


def test_clause_and_note_are_quoted_word_for_word() -> None:
    text = " ".join(shared_text(CT).split())
    fields = load_telemetry_fields()
    assert fields.clause in text
    assert fields.note_star in text
    assert fields.section == "CT 10"


def test_keys_are_normalised() -> None:
    fields = load_telemetry_fields()
    assert normalise_key("Running-Processes") == "runningprocesses"
    assert fields.category("processes", "RunningProcesses") is not None
    assert fields.category("hardware_info", "network").addresses["ipaddresses"] == "own"  # type: ignore[union-attr]
