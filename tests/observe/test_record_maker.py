"""records.maker: where the compiled maker (observe/_records.pyx) is built, the record it
makes is the one the dataclass's own `__init__` makes (same type, values, equality, hash,
repr, still frozen), it keeps no reference it should not, and it refuses what it cannot
make the same way (the class itself is then the maker)."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import pytest

from conformance.decode import compiled
from conformance.observe import records
from conformance.observe.records import (
    DATACLASS_RECORDS,
    DnsQuery,
    HttpRequest,
    NameMention,
    maker,
)

COMPILED = compiled.load(compiled.MODULES[3]) is not None
# The dataclasses themselves: where the module is built, Flow and the hellos are compact
# classes of it (tests/observe/test_compact_records.py), the maker still takes the dataclasses.
Flow, TlsClientHello, TlsServerHello = DATACLASS_RECORDS
_KINDS = [Flow, DnsQuery, TlsClientHello, TlsServerHello, HttpRequest, NameMention]
needs_compiled = pytest.mark.skipif(not COMPILED, reason="the compiled maker is not built")


def _values(kind: type) -> list[Any]:
    # A value of its own in every field: a field made wrong or dropped shows.
    return [(f.name, i) for i, f in enumerate(dataclasses.fields(kind))]


@pytest.mark.parametrize("kind", _KINDS)
def test_the_maker_makes_the_record_init_makes(kind: type) -> None:
    values = _values(kind)
    made: Any = maker(kind)(*values)
    built: Any = kind(*values)
    assert made.__class__ is kind
    assert made == built
    assert hash(made) == hash(built)
    assert repr(made) == repr(built)
    for f, value in zip(dataclasses.fields(kind), values, strict=True):
        assert getattr(made, f.name) is value
    field = dataclasses.fields(kind)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, field, 0)


@needs_compiled
@pytest.mark.parametrize("kind", _KINDS)
def test_the_compiled_maker_is_used_for_the_records(kind: type) -> None:
    assert maker(kind) is not kind


@needs_compiled
def test_the_maker_holds_what_the_record_holds_and_no_more() -> None:
    values = _values(TlsServerHello)
    before = [sys.getrefcount(v) for v in values]
    made = maker(TlsServerHello)(*values)
    assert [sys.getrefcount(v) for v in values] == [n + 1 for n in before]
    del made
    assert [sys.getrefcount(v) for v in values] == before


@needs_compiled
def test_a_wrong_number_of_values_is_refused() -> None:
    make = maker(TlsServerHello)
    with pytest.raises(TypeError):
        make(*_values(TlsServerHello)[:-1])
    with pytest.raises(TypeError):
        make(*_values(TlsServerHello), "one more")


@dataclasses.dataclass(frozen=True, slots=True)
class _Checked:
    value: int

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ValueError("negative")


@dataclasses.dataclass(slots=True)
class _Mutable:
    value: int


@dataclasses.dataclass(frozen=True)
class _Unslotted:
    value: int


@dataclasses.dataclass(frozen=True, slots=True)
class _KeywordOnly:
    value: int
    later: int = dataclasses.field(default=0, kw_only=True)


@dataclasses.dataclass(frozen=True, slots=True)
class _Computed:
    value: int
    twice: int = dataclasses.field(init=False, default=0)


@pytest.mark.parametrize("kind", [_Checked, _Mutable, _Unslotted, _KeywordOnly, _Computed])
def test_a_class_whose_init_does_more_is_made_by_itself(kind: type) -> None:
    assert maker(kind) is kind
    if COMPILED:
        with pytest.raises(TypeError):
            records._MAKER.Maker(kind)  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", [k for k in _KINDS if k is not Flow])
def test_numbering_gives_the_record_renumbering_copies(kind: type) -> None:
    """records.numbering: where the maker is compiled the record itself gets the id (a
    part's own hellos, held by nothing else); the result equals renumbering's copy either
    way, and every other field is the same object."""
    values = _values(kind)
    original: Any = maker(kind)(*values)
    copied: Any = records.renumbering(kind)(maker(kind)(*values), 41)
    numbered: Any = records.numbering(kind)(original, 41)
    assert numbered == copied and numbered.flow_id == 41
    assert (numbered is original) == COMPILED
    for f, value in zip(dataclasses.fields(kind), values, strict=True):
        if f.name != "flow_id":
            assert getattr(numbered, f.name) is value
    assert hash(numbered) == hash(copied)


@needs_compiled
def test_numbering_in_place_refuses_another_kind() -> None:
    number = records.numbering(TlsServerHello)
    with pytest.raises(TypeError):
        number(maker(TlsClientHello)(*_values(TlsClientHello)), 1)
