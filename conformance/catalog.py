"""The control catalog: ids, titles, contract clauses and evidence, loaded from catalog.yaml.

`catalog.yaml` ships inside the package. A broken catalog is the harness's own bug, so it
raises ValueError (never a ConformanceError): the run ends as `error`, not as a user mistake.
docs/controls.md is `render_markdown()`'s output.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from typing import TypeVar, assert_never

import yaml

from conformance.profile_model import Mode, Profile, Telemetry

_E = TypeVar("_E", bound=StrEnum)


class EvidenceKind(StrEnum):
    """What a control is judged from; a control needs every kind it lists."""

    CAPTURE = "capture"  # packet capture of the target's traffic
    LAB = "lab"  # the lab drives the target: restarts, impostor servers, stand-in cloud
    PROBE = "probe"  # an active probe or scan run by the harness
    CONTENT = "content"  # application messages recorded by the lab's cloud side or a proxy
    REPORT = "report"  # the report directory itself
    HOST = "host"  # facts read on the live host (sockets, settings, hosts file, firewall)


class Condition(StrEnum):
    """When, within its modes, a control applies; otherwise it is not-applicable."""

    ALWAYS = "always"
    PROXY = "proxy"  # the profile declares a proxy
    NO_CLOUD_SERVICES = "no-cloud-services"  # the profile activates no cloud service
    TELEMETRY_ENABLED = "telemetry-enabled"
    TELEMETRY_DISABLED = "telemetry-disabled"


@dataclass(frozen=True, slots=True)
class Document:
    """A contract document the clauses come from (shared `seeds/`)."""

    id: str  # "HA", as cited in clause refs
    title: str
    seed: str  # file name in the shared seeds directory


@dataclass(frozen=True, slots=True)
class Clause:
    """One contract clause a control rests on, quoted word for word."""

    ref: str  # document id and section: "HA 2.2"
    text: str  # the exact sentence(s) of that section, shown to auditors

    @property
    def document(self) -> str:
        """The cited document's id ("HA")."""
        return self.ref.split()[0]


@dataclass(frozen=True, slots=True)
class Control:
    """One promise of the contract, turned into something evidence can prove or disprove."""

    id: str
    title: str
    promise: str
    judged: str
    quotes: tuple[Clause, ...]  # each cited clause with its text, in catalog order
    modes: tuple[Mode, ...]
    requires: tuple[EvidenceKind, ...]
    when: Condition = Condition.ALWAYS
    optional: bool = False  # judged only where the profile enables it (AG-PERIMETER: probing)

    @property
    def clauses(self) -> tuple[str, ...]:
        """The clause references, each once, in catalog order: ("HA 2.2", "HA 1")."""
        return tuple(dict.fromkeys(quote.ref for quote in self.quotes))

    @property
    def clause(self) -> str:
        """The clause references as one string, for report.json: "HA 2.2, HA 1"."""
        return ", ".join(self.clauses)

    @property
    def clause_text(self) -> str:
        """The quoted contract text, one line per quote: `HA 2.2: No component ...`."""
        return "\n".join(f"{quote.ref}: {quote.text}" for quote in self.quotes)

    def applies_to(self, profile: Profile) -> bool:
        """Whether the profile's mode and settings make this control applicable."""
        if profile.mode not in self.modes:
            return False
        match self.when:
            case Condition.ALWAYS:
                return True
            case Condition.PROXY:
                return profile.proxy is not None
            case Condition.NO_CLOUD_SERVICES:
                return profile.cloud is None or not profile.cloud.services
            case Condition.TELEMETRY_ENABLED:
                return profile.telemetry is Telemetry.ENABLED
            case Condition.TELEMETRY_DISABLED:
                return profile.telemetry is Telemetry.DISABLED
            case _:
                assert_never(self.when)


class UnknownControlError(KeyError):
    """A control id that is not in the catalog."""

    def __str__(self) -> str:
        # KeyError's own str() shows the repr of its argument; this is a sentence.
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every control, in catalog (report) order, and the documents their clauses cite."""

    controls: tuple[Control, ...]
    documents: tuple[Document, ...]

    def __iter__(self) -> Iterator[Control]:
        return iter(self.controls)

    def __len__(self) -> int:
        return len(self.controls)

    def ids(self) -> tuple[str, ...]:
        """Every control id in catalog order."""
        return tuple(control.id for control in self.controls)

    def get(self, control_id: str) -> Control:
        """The control with this id; UnknownControlError (a KeyError) names close ids."""
        for control in self.controls:
            if control.id == control_id:
                return control
        close = difflib.get_close_matches(control_id, self.ids(), n=1)
        guess = f"; did you mean {close[0]}?" if close else ""
        raise UnknownControlError(f"unknown control id {control_id!r}{guess}")

    def for_mode(self, mode: str) -> tuple[Control, ...]:
        """The controls of a mode ("air-gapped" or "hybrid"), in catalog order."""
        try:
            wanted = Mode(mode)
        except ValueError:
            known = ", ".join(Mode)
            raise ValueError(f"unknown mode {mode!r}; known modes: {known}") from None
        return tuple(control for control in self.controls if wanted in control.modes)

    def document(self, document_id: str) -> Document:
        """The document cited as `document_id` ("HA")."""
        for document in self.documents:
            if document.id == document_id:
                return document
        raise KeyError(document_id)


# libyaml's safe loader where PyYAML was built with it: the same documents, a tenth of the
# time (the pure-Python scanner spent ~0.35 s of every run's start-up on the catalog).
_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with the package (read once)."""
    text = resources.files("conformance").joinpath("catalog.yaml").read_text(encoding="utf-8")
    return parse_catalog(text)


def parse_catalog(text: str) -> Catalog:
    """Build a Catalog from catalog.yaml text; ValueError names the entry and the problem."""
    data = yaml.load(text, Loader=_SAFE_LOADER)
    top = _mapping(data, "catalog.yaml", {"documents", "controls"}, set())
    documents = tuple(
        _document(item, f"documents[{index}]")
        for index, item in enumerate(_sequence(top["documents"], "documents"))
    )
    controls = tuple(
        _control(item, f"controls[{index}]", {d.id for d in documents})
        for index, item in enumerate(_sequence(top["controls"], "controls"))
    )
    for ids in ([d.id for d in documents], [c.id for c in controls]):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"catalog.yaml: ids listed twice: {', '.join(repeated)}")
    return Catalog(controls=controls, documents=documents)


def _mapping(
    value: object, where: str, required: set[str], optional: set[str]
) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a mapping")
    keys = set(value)
    if unknown := keys - required - optional:
        raise ValueError(f"{where}: unknown keys {sorted(map(str, unknown))}")
    if missing := required - keys:
        raise ValueError(f"{where}: missing keys {sorted(missing)}")
    return value


def _sequence(value: object, where: str) -> list[object]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected non-empty text")
    return " ".join(value.split())


def _document(value: object, where: str) -> Document:
    fields = _mapping(value, where, {"id", "title", "seed"}, set())
    return Document(
        id=_text(fields["id"], f"{where}.id"),
        title=_text(fields["title"], f"{where}.title"),
        seed=_text(fields["seed"], f"{where}.seed"),
    )


def _control(value: object, where: str, document_ids: set[str]) -> Control:
    required = {"id", "title", "promise", "judged", "quotes", "modes", "requires"}
    fields = _mapping(value, where, required, {"when", "optional"})
    optional = fields.get("optional", False)
    if not isinstance(optional, bool):
        raise ValueError(f"{where}.optional: expected true or false")
    return Control(
        id=_text(fields["id"], f"{where}.id"),
        title=_text(fields["title"], f"{where}.title"),
        promise=_text(fields["promise"], f"{where}.promise"),
        judged=_text(fields["judged"], f"{where}.judged"),
        quotes=tuple(
            _clause(item, f"{where}.quotes[{index}]", document_ids)
            for index, item in enumerate(_sequence(fields["quotes"], f"{where}.quotes"))
        ),
        modes=tuple(
            _enum(Mode, mode, f"{where}.modes")
            for mode in _sequence(fields["modes"], f"{where}.modes")
        ),
        requires=tuple(
            _enum(EvidenceKind, kind, f"{where}.requires")
            for kind in _sequence(fields["requires"], f"{where}.requires")
        ),
        when=_enum(Condition, fields.get("when", "always"), f"{where}.when"),
        optional=optional,
    )


def _clause(value: object, where: str, document_ids: set[str]) -> Clause:
    fields = _mapping(value, where, {"ref", "text"}, set())
    clause = Clause(ref=_text(fields["ref"], f"{where}.ref"), text=_text(fields["text"], where))
    if clause.document not in document_ids or len(clause.ref.split()) != 2:
        raise ValueError(f"{where}.ref: {clause.ref!r} is not '<document> <section>'")
    return clause


def _enum(kind: type[_E], value: object, where: str) -> _E:
    if not isinstance(value, str):
        raise ValueError(f"{where}: expected text, got {value!r}")
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not one of {', '.join(kind)}") from None


# --- docs/controls.md ----------------------------------------------------------------------

_GROUPS = {
    "AG": "Air-gapped mode",
    "HY": "Hybrid mode",
    "PX": "Proxy (hybrid mode with a proxy)",
    "TM": "Telemetry",
    "RP": "Report",
    "HOST": "Host facts (live hosts, `--host`; harness additions)",
}
_WHEN = {
    Condition.ALWAYS: "always",
    Condition.PROXY: "a proxy is declared",
    Condition.NO_CLOUD_SERVICES: "no cloud service is activated",
    Condition.TELEMETRY_ENABLED: "`telemetry: enabled`",
    Condition.TELEMETRY_DISABLED: "`telemetry: disabled`",
}
_PREAMBLE = """\
# Controls

<!-- Generated from conformance/catalog.yaml by conformance.catalog.render_markdown().
     Do not edit by hand: tests/test_catalog.py fails when this file is out of date. -->

Each control is one promise of the UCX contract documents, turned into something a packet
capture, an active probe or the lab can prove or disprove. Ids are stable: reports, waivers and
CI gates refer to them. Verdicts: `pass`, `fail`, `inconclusive` (the evidence needed was not
there or not enough), `not-applicable` (the profile's mode or settings make it moot), `error`
(the harness broke). A control never passes on missing evidence.

Evidence kinds: **capture** a packet capture of the target's traffic; **lab** the lab drives
the target (restarts, impostor servers, a stand-in cloud); **probe** an active probe or scan
run by the harness; **content** application messages recorded by the lab's cloud side or an
intercepting proxy; **report** the report directory itself; **host** facts read on the live
host through testinfra (`--host`; without it these controls are not-applicable).
"""


def render_markdown() -> str:
    """docs/controls.md: a summary table, then each control with its quoted contract text."""
    catalog = load_catalog()
    lines = [_PREAMBLE, "| id | title | modes | applies when | clauses | evidence |"]
    lines.append("|---|---|---|---|---|---|")
    for control in catalog:
        lines.append(
            f"| [{control.id}](#{control.id.lower()}) | {_cell(control.title)}"
            f" | {', '.join(control.modes)} | {_applies(control)} | {control.clause}"
            f" | {', '.join(control.requires)} |"
        )
    group = ""
    for control in catalog:
        prefix = control.id.split("-")[0]
        if prefix != group:
            group = prefix
            lines += ["", f"## {_GROUPS.get(prefix, prefix)}"]
        lines += [
            "",
            f"### {control.id}",
            "",
            f"**{control.title}**",
            "",
            f"*Promise.* {control.promise}",
            "",
            f"*How it is judged.* {control.judged}",
            "",
            f"*Modes:* {', '.join(control.modes)}. *Applies when:* {_applies(control)}."
            f" *Evidence:* {', '.join(control.requires)}.",
        ]
        for quote in control.quotes:
            title = catalog.document(quote.document).title
            lines += ["", f"> **{quote.ref}** ({title}): {quote.text}"]
    return "\n".join(lines) + "\n"


def _applies(control: Control) -> str:
    if control.optional and control.when is Condition.ALWAYS:
        return "probing is enabled (optional)"
    return _WHEN[control.when]


def applies_when(control: Control) -> str:
    """The condition, beyond its modes, under which `control` applies, in words."""
    return _WHEN[control.when]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
