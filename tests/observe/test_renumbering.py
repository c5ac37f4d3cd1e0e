"""records.renumbering: the copy that gives a record its flow id once the flows are numbered."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from conformance.observe.records import (
    DATACLASS_RECORDS,
    DnsQuery,
    HttpRequest,
    NameMention,
    maker,
    renumbering,
)

# The dataclasses: any value goes in their fields. Where the compact records are built,
# records.Flow and the hellos are those (tests/observe/test_compact_records.py numbers them).
Flow, TlsClientHello, TlsServerHello = DATACLASS_RECORDS


@pytest.mark.parametrize(
    "kind", [Flow, DnsQuery, TlsClientHello, TlsServerHello, HttpRequest, NameMention]
)
def test_the_copy_is_what_replace_makes(kind: type) -> None:
    # A value of its own in every field, none a default: a field the copy dropped shows.
    record = kind(*(f"{f.name} value" for f in dataclasses.fields(kind)))
    copy = renumbering(kind)(record, 7)
    assert copy == dataclasses.replace(record, flow_id=7)
    assert type(copy) is kind
    assert record.flow_id == "flow_id value"  # the original is left as it was
    for f in dataclasses.fields(kind):  # every other value by identity, the copy still frozen
        if f.name != "flow_id":
            assert getattr(copy, f.name) is getattr(record, f.name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(copy, "flow_id", 8)  # noqa: B010 (a frozen field: mypy refuses the plain form)


@pytest.mark.skipif(
    not hasattr(maker(Flow), "renumbered"), reason="the compiled record maker is not built"
)
def test_the_compiled_copy_refuses_another_kind_of_record() -> None:
    server_hello: Any = TlsServerHello
    hello = server_hello(*(f"{f.name} value" for f in dataclasses.fields(TlsServerHello)))
    with pytest.raises(TypeError, match="not a record of it"):
        renumbering(TlsClientHello)(hello, 7)
