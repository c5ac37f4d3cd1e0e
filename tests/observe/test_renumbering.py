"""records.renumbering: the copy that gives a record its flow id once the flows are numbered."""

from __future__ import annotations

import dataclasses

import pytest

from conformance.observe.records import (
    DnsQuery,
    Flow,
    HttpRequest,
    NameMention,
    TlsClientHello,
    TlsServerHello,
    renumbering,
)


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
