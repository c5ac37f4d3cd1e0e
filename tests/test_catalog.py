"""The control catalog against the requirements (controls.md) and the contract text (seeds)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conformance.catalog import (
    Catalog,
    Condition,
    EvidenceKind,
    UnknownControlError,
    load_catalog,
    parse_catalog,
    render_markdown,
)
from conformance.profile import load_profile
from conformance.profile_model import Mode
from tests.shared import shared_text

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = (
    'python -c "from conformance.catalog import render_markdown;'
    " print(render_markdown(), end='')\" > docs/controls.md"
)


def _shared(relative: str) -> str:
    return shared_text(relative)


def _requirement_rows() -> dict[str, tuple[str, str]]:
    """controls.md table rows: id -> (promise, how it is judged)."""
    rows: dict[str, tuple[str, str]] = {}
    for line in _shared("spec/controls.md").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and re.fullmatch(r"[A-Z]{2}-[A-Z-]+", cells[0]):
            rows[cells[0]] = (cells[1], cells[2])
    return rows


_PLAIN_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def _plain(text: str) -> str:
    """Text compared as a reader would: whitespace collapsed, typographic quotes made plain."""
    plain = text.translate(_PLAIN_QUOTES)
    return " ".join(plain.split())


_HEADING = re.compile(r"^(\d+(?:\.\d+)*)\.?\s+[A-Z]", re.MULTILINE)


def _section(seed: str, number: str) -> str:
    """The text of section `number` ("2.2") of a seed, up to the next heading outside it."""
    headings = list(_HEADING.finditer(seed))
    for index, heading in enumerate(headings):
        if heading[1] != number:
            continue
        end = len(seed)
        for later in headings[index + 1 :]:
            if not later[1].startswith(number + "."):
                end = later.start()
                break
        return seed[heading.start() : end]
    raise AssertionError(f"no section {number} in the seed")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def test_every_required_control_is_in_the_catalog_in_order(catalog: Catalog) -> None:
    required = list(_requirement_rows())
    assert len(required) == 19
    ids = list(catalog.ids())
    assert ids[: len(required)] == required
    # Controls the harness adds (host facts) come after the specification's, never between.
    assert all(extra.startswith("HOST-") for extra in ids[len(required) :])


def test_promise_and_judgement_follow_the_requirement(catalog: Catalog) -> None:
    for control_id, (promise, judged) in _requirement_rows().items():
        control = catalog.get(control_id)
        assert _plain(control.promise) == _plain(promise), control_id
        assert _plain(control.judged) == _plain(judged), control_id


def test_documents_match_the_seed_index(catalog: Catalog) -> None:
    index = {}
    for line in _shared("seeds/README.md").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].endswith(".txt"):
            index[cells[2]] = cells[0]
    assert {d.id: d.seed for d in catalog.documents} == index


def test_every_quote_is_in_the_section_it_cites(catalog: Catalog) -> None:
    for control in catalog:
        assert control.quotes, control.id
        for quote in control.quotes:
            document, number = quote.ref.split()
            seed = _shared(f"seeds/{catalog.document(document).seed}")
            where = f"{control.id} {quote.ref}: {quote.text[:50]}..."
            assert _plain(quote.text) in _plain(seed), f"not in the seed: {where}"
            assert _plain(quote.text) in _plain(_section(seed, number)), f"other section: {where}"


def test_modes_and_conditions(catalog: Catalog) -> None:
    for control in catalog:
        prefix = control.id.split("-")[0]
        expected = {
            "AG": (Mode.AIR_GAPPED,),
            "HY": (Mode.HYBRID,),
            "PX": (Mode.HYBRID,),
            "TM": (Mode.AIR_GAPPED,) if control.id == "TM-AIRGAP" else (Mode.HYBRID,),
            "RP": (Mode.AIR_GAPPED, Mode.HYBRID),
            "HOST": (Mode.AIR_GAPPED, Mode.HYBRID),
        }[prefix]
        assert control.modes == expected, control.id
        if prefix == "PX":
            assert control.when is Condition.PROXY
    assert [c.id for c in catalog if c.optional] == ["AG-PERIMETER"]
    assert catalog.get("HY-DEACTIVATED").when is Condition.NO_CLOUD_SERVICES
    assert catalog.get("TM-OPTOUT").when is Condition.TELEMETRY_DISABLED
    assert catalog.get("TM-MINIMAL").when is Condition.TELEMETRY_ENABLED


def test_evidence_kinds(catalog: Catalog) -> None:
    assert catalog.get("AG-EGRESS").requires == (EvidenceKind.CAPTURE,)
    assert catalog.get("AG-PERIMETER").requires == (EvidenceKind.PROBE,)
    assert EvidenceKind.LAB in catalog.get("HY-CERT").requires
    assert catalog.get("RP-SIGNED").requires == (EvidenceKind.REPORT,)
    for control in catalog:
        assert control.requires, control.id
        assert len(set(control.requires)) == len(control.requires), control.id


def test_ids_are_unique_and_titles_short(catalog: Catalog) -> None:
    assert len(set(catalog.ids())) == len(catalog) == 22
    for control in catalog:
        assert len(control.title) <= 60, control.id
        assert "|" not in control.title


def test_get(catalog: Catalog) -> None:
    control = catalog.get("AG-EGRESS")
    assert control.clauses == ("HA 2.2", "HA 1")
    assert control.clause == "HA 2.2, HA 1"
    assert control.clause_text.startswith("HA 2.2: No component of the Software initiates")
    assert control.clause_text.count("\n") == len(control.quotes) - 1


def test_get_unknown_id_says_which_is_close(catalog: Catalog) -> None:
    with pytest.raises(KeyError) as info:
        catalog.get("AG-EGRES")
    assert isinstance(info.value, UnknownControlError)
    assert str(info.value) == "unknown control id 'AG-EGRES'; did you mean AG-EGRESS?"
    with pytest.raises(KeyError, match=r"^unknown control id 'ZZ'$"):
        catalog.get("ZZ")


def test_for_mode(catalog: Catalog) -> None:
    air_gapped = [c.id for c in catalog.for_mode("air-gapped")]
    assert air_gapped == [
        "AG-EGRESS",
        "AG-INGRESS",
        "AG-CLOUD-NAMES",
        "AG-ONPREM",
        "AG-PERIMETER",
        "TM-AIRGAP",
        "RP-SIGNED",
        "HOST-HOSTS",
        "HOST-PROXY",
        "HOST-TELEMETRY",
    ]
    hybrid = catalog.for_mode(Mode.HYBRID)
    assert hybrid[0].id == "HY-DEST"
    assert hybrid[-4].id == "RP-SIGNED"
    assert len(hybrid) == 16
    with pytest.raises(ValueError, match="unknown mode 'airgapped'; known modes: air-gapped"):
        catalog.for_mode("airgapped")


def test_applies_to() -> None:
    catalog = load_catalog()
    air_gapped = load_profile(ROOT / "fixtures" / "profiles" / "sample-air-gapped.yaml")
    hybrid = load_profile(ROOT / "fixtures" / "profiles" / "sample-hybrid.yaml")
    assert [c.id for c in catalog if c.applies_to(air_gapped)] == [
        c.id for c in catalog.for_mode("air-gapped")
    ]
    applicable = {c.id for c in catalog if c.applies_to(hybrid)}
    assert {"HY-DEST", "TM-MINIMAL", "TM-CHANNEL", "RP-SIGNED"} <= applicable
    # No proxy, services activated, telemetry enabled:
    assert not {"PX-ONLY", "PX-CONNECT", "PX-DNS", "HY-DEACTIVATED", "TM-OPTOUT"} & applicable


def test_load_catalog_is_read_once() -> None:
    assert load_catalog() is load_catalog()


def test_iteration_is_catalog_order(catalog: Catalog) -> None:
    assert [c.id for c in catalog] == list(catalog.ids())
    assert next(iter(catalog)).id == "AG-EGRESS"


_MINIMAL = """\
documents: [{id: HA, seed: x.txt, title: T}]
controls:
  - {id: A-B, title: t, promise: p, judged: j, quotes: [{ref: HA 1, text: x}],
     modes: [hybrid], requires: [capture]}
"""


def test_parse_catalog_minimal() -> None:
    catalog = parse_catalog(_MINIMAL)
    assert catalog.ids() == ("A-B",)
    assert catalog.get("A-B").when is Condition.ALWAYS


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("modes: [hybrid]", "modes: [cloud]", "controls\\[0\\].modes: 'cloud' is not one of"),
        ("requires: [capture]", "requires: [pcap]", "'pcap' is not one of capture, lab"),
        ("ref: HA 1", "ref: XX 1", "'XX 1' is not '<document> <section>'"),
        ("ref: HA 1", "ref: HA", "'HA' is not '<document> <section>'"),
        ("judged: j,", "judge: j,", "unknown keys \\['judge'\\]"),
        ("title: t,", "", "missing keys \\['title'\\]"),
        ("quotes: [{ref: HA 1, text: x}]", "quotes: []", "expected a non-empty list"),
        ("title: t,", "title: t, optional: yes please,", "optional: expected true or false"),
    ],
)
def test_broken_catalog(old: str, new: str, message: str) -> None:
    assert old in _MINIMAL
    with pytest.raises(ValueError, match=message):
        parse_catalog(_MINIMAL.replace(old, new))


def test_repeated_id_is_refused() -> None:
    repeated = _MINIMAL + _MINIMAL.split("controls:\n")[1]
    with pytest.raises(ValueError, match="ids listed twice: A-B"):
        parse_catalog(repeated)


def test_docs_controls_md_is_up_to_date() -> None:
    written = (ROOT / "docs" / "controls.md").read_text(encoding="utf-8")
    assert written == render_markdown(), f"docs/controls.md is stale; regenerate: {REGENERATE}"


def test_rendered_markdown_names_every_control_and_quote(catalog: Catalog) -> None:
    text = render_markdown()
    for control in catalog:
        assert f"\n### {control.id}\n" in text
        for quote in control.quotes:
            assert quote.text in text
