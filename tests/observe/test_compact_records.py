"""The compact records (observe/_records.pyx): where the module is built, records.Flow,
TlsClientHello and TlsServerHello are its classes, and each must be its dataclass
(records.DATACLASS_RECORDS) in everything but memory: fields and defaults, values, equality,
hash, repr, pickling, dataclasses.fields/replace/asdict, immutability, numbering."""

from __future__ import annotations

import dataclasses
import gc
import ipaddress
import pickle
import sys
from typing import Any

import pytest

from conformance.decode import compiled
from conformance.decode.classify import PayloadKind
from conformance.decode.ech import EchKind
from conformance.observe import records
from conformance.observe.records import (
    DATACLASS_RECORDS,
    Flow,
    FlowPart,
    InitiatorBasis,
    PacketNumbers,
    TlsClientHello,
    TlsServerHello,
)

COMPACT = Flow not in DATACLASS_RECORDS
pytestmark = pytest.mark.skipif(not COMPACT, reason="the compiled records are not built")
_MODULE: Any = compiled.load(compiled.MODULES[3])

V4 = ipaddress.ip_address("192.0.2.10")
V6 = ipaddress.ip_address("2001:db8::5")


def _flow_values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "flow_id": 70_000,
        "capture": 2,
        "transport": "tcp",
        "ip_version": 6,
        "initiator": V6,
        "initiator_port": 50_123,
        "responder": V6,
        "responder_port": 389,
        "initiator_basis": InitiatorBasis.PORT_HEURISTIC,
        "handshake_seen": False,
        "answered": True,
        "accepted": True,
        "rejected": False,
        "packets_out": 2**40,
        "packets_in": 0,
        "bytes_out": 2**62,
        "bytes_in": 1500,
        "first_time": 1709542800.123456,
        "last_time": 1709542811.5,
        "first_packet": 3,
        "last_packet": 2**50,
        "sample_packets": PacketNumbers([3, 4, 9, 2**33]),
        "tcp_flags_out": 0x1FF,
        "tcp_flags_in": 0x12,
        "payload_out": PayloadKind.LDAP,
        "payload_in": PayloadKind.OTHER,
        "first_payload_packet": 4,
        "payload_head_out": bytes.fromhex(
            "301d02010177188016312e332e362e312e342e312e313436362e3230303337"
        ),
        "encapsulation": "ipv4>gre",
        "ip_layer": 2,
        "continued": (FlowPart(3, 10, 20),),
    }
    values.update(changes)
    return values


def _client_values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "capture": 1,
        "packet": 2**35,
        "time": 1709542800.5,
        "flow_id": 12,
        "sni": "api.imagicle.com",
        "versions": (0x0304, 0x0303),
        "cipher_suites": (0x1301, 0xC02F),
        "alpn": ("h2", "http/1.1"),
        "segments": 3,
        "quic_version": 1,
        "ech": EchKind.GREASE,
    }
    values.update(changes)
    return values


def _server_values(**changes: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "capture": 0,
        "packet": 77,
        "time": 1709542800.75,
        "flow_id": 12,
        "version": 0x0304,
        "cipher_suite": 0x1301,
        "quic_version": 0x6B3343CF,
    }
    values.update(changes)
    return values


_CASES = [
    (Flow, DATACLASS_RECORDS[0], _flow_values),
    (TlsClientHello, DATACLASS_RECORDS[1], _client_values),
    (TlsServerHello, DATACLASS_RECORDS[2], _server_values),
]
_VARIANTS = {
    "Flow": [
        {},
        {"first_payload_packet": None, "payload_head_out": b"", "continued": ()},
        {"first_payload_packet": 0, "sample_packets": PacketNumbers()},
        {"sample_packets": PacketNumbers(range(1, 9))},
        {"sample_packets": PacketNumbers(range(1, 12))},  # more than fit inline
        {"initiator": V4, "responder": V4, "ip_version": 4, "transport": "udp"},
    ],
    "TlsClientHello": [{}, {"quic_version": None, "sni": None}, {"quic_version": 0}],
    "TlsServerHello": [{}, {"quic_version": None}],  # 0: refused (below)
}
_PARAMS = [
    pytest.param(compact, python, make(**variant), id=f"{compact.__name__}-{i}")
    for compact, python, make in _CASES
    for i, variant in enumerate(_VARIANTS[compact.__name__])
]


def _astuple(record: Any) -> tuple[Any, ...]:
    return tuple(getattr(record, f.name) for f in dataclasses.fields(record))


@pytest.mark.parametrize(("compact", "python", "values"), _PARAMS)
def test_a_compact_record_is_its_dataclass_record(
    compact: type, python: type, values: dict[str, Any]
) -> None:
    made = compact(**values)
    positional = compact(*values.values())
    reference = python(**values)
    assert made == positional and made.__ne__(positional) is False
    assert _astuple(made) == _astuple(reference)
    for name, value in values.items():
        got = getattr(made, name)
        assert got == value and type(got) is type(value), name
    assert repr(made) == repr(reference).replace(python.__qualname__, compact.__qualname__, 1)
    assert hash(made) == hash(reference)
    assert dataclasses.asdict(made) == dataclasses.asdict(reference)
    assert dataclasses.is_dataclass(made)
    assert [f.name for f in dataclasses.fields(compact)] == list(values)
    again = pickle.loads(pickle.dumps(made))
    assert type(again) is compact and again == made
    assert made != reference  # another class, as two dataclasses would be


@pytest.mark.parametrize(("compact", "python", "values"), _PARAMS)
def test_defaults_are_the_dataclass_defaults(
    compact: type, python: type, values: dict[str, Any]
) -> None:
    required = {
        name: value
        for name, value in values.items()
        if python.__dataclass_fields__[name].default is dataclasses.MISSING
    }
    assert _astuple(compact(**required)) == _astuple(python(**required))


@pytest.mark.parametrize(("compact", "python", "values"), _PARAMS)
def test_replace_changes_one_field(compact: type, python: type, values: dict[str, Any]) -> None:
    made = compact(**values)
    moved = dataclasses.replace(made, flow_id=5, capture=7)
    assert type(moved) is compact and (moved.flow_id, moved.capture) == (5, 7)
    assert _astuple(dataclasses.replace(moved, flow_id=made.flow_id, capture=made.capture)) == (
        _astuple(made)
    )


@pytest.mark.parametrize(("compact", "python", "values"), _PARAMS)
def test_a_compact_record_is_frozen_and_untracked(
    compact: type, python: type, values: dict[str, Any]
) -> None:
    made = compact(**values)
    for name in values:
        with pytest.raises(AttributeError):
            setattr(made, name, getattr(made, name))
    with pytest.raises(AttributeError):
        made.other = 1  # type: ignore[attr-defined]
    # No cycle can run through it (numbers, strings, addresses, enum members, tuples):
    # the collector need not visit it.
    assert not gc.is_tracked(made)


@pytest.mark.parametrize(("compact", "python", "values"), _PARAMS)
def test_numbering_sets_the_id_and_renumbering_copies(
    compact: type, python: type, values: dict[str, Any]
) -> None:
    made = compact(**values)
    copy = records.renumbering(compact)(made, 99)
    assert copy is not made and copy.flow_id == 99 and made.flow_id == values["flow_id"]
    assert _astuple(copy) == _astuple(dataclasses.replace(made, flow_id=99))
    numbered = records.numbering(compact)(made, 99)
    assert numbered is made and made == copy
    with pytest.raises(TypeError):
        records.numbering(compact)(python(**values), 1)


def test_the_flow_methods_are_the_dataclass_methods() -> None:
    for variant in _VARIANTS["Flow"]:
        values = _flow_values(**variant)
        made, reference = Flow(**values), DATACLASS_RECORDS[0](**values)
        assert made.community_id == reference.community_id
        assert made.opens_with_starttls() == reference.opens_with_starttls()
    assert Flow(**_flow_values()).opens_with_starttls()


def test_a_compact_record_takes_what_the_dataclass_would_not_keep_exactly() -> None:
    """Numbers beyond their C field, and sample packets that are not packet numbers, are
    refused rather than kept wrong; a tuple of packet numbers is taken as the numbers."""
    with pytest.raises(OverflowError):
        Flow(**_flow_values(packets_out=2**63))
    with pytest.raises(OverflowError):
        TlsServerHello(**_server_values(version=2**40))
    for field in ("version", "cipher_suite"):  # 16 bits on the wire
        with pytest.raises(OverflowError):
            TlsServerHello(**_server_values(**{field: 2**16}))
        assert getattr(TlsServerHello(**_server_values(**{field: 2**16 - 1})), field) == 2**16 - 1
    with pytest.raises(OverflowError):  # a flow's row
        TlsServerHello(**_server_values(flow_id=2**32))
    with pytest.raises(ValueError, match="Version Negotiation"):  # 0 stands for TCP
        TlsServerHello(**_server_values(quic_version=0))
    for record, values in ((TlsClientHello, _client_values), (TlsServerHello, _server_values)):
        with pytest.raises(OverflowError):  # a QUIC version is 32 bits on the wire
            record(**values(quic_version=2**32))
        assert record(**values(quic_version=2**32 - 1)).quic_version == 2**32 - 1
    with pytest.raises(TypeError):
        Flow(**_flow_values(sample_packets=("1", 2)))
    given = Flow(**_flow_values(sample_packets=(1, 2)))
    assert given.sample_packets == (1, 2) and type(given.sample_packets) is PacketNumbers
    with pytest.raises(TypeError):
        Flow(**_flow_values(flow_id="1"))


def test_a_compact_record_is_smaller() -> None:
    """No vtable pointer (no cdef method), a QUIC version in 32 bits, a flow's small values
    coded: the web mix's 130k hellos and 65k flows are allocator size classes smaller (#17)."""
    values = _flow_values(sample_packets=PacketNumbers(range(1, 9)))
    assert sys.getsizeof(Flow(**values)) <= 192
    assert sys.getsizeof(TlsClientHello(**_client_values())) <= 80
    assert sys.getsizeof(TlsServerHello(**_server_values())) <= 48


def test_binding_refuses_a_dataclass_with_other_fields() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Other:
        capture: int

    with pytest.raises(ImportError, match="fields differ"):
        _MODULE.bind(PacketNumbers, Other, *DATACLASS_RECORDS[1:])
    _MODULE.bind(PacketNumbers, *DATACLASS_RECORDS)  # the fields stay the dataclasses'
    assert dataclasses.fields(Flow) == dataclasses.fields(DATACLASS_RECORDS[0])


def test_a_coded_flow_field_gives_back_the_very_value_it_was_given() -> None:
    """Transport, encapsulation, initiator basis and payload kinds are kept as codes: each
    comes back as the object given, an enum member as the member and an equal plain string as
    a string, whichever the process coded first."""
    plain = Flow(**_flow_values(initiator_basis="syn", payload_out="ldap", transport="ip-132"))
    member = Flow(**_flow_values(initiator_basis=InitiatorBasis.SYN))
    assert type(plain.initiator_basis) is str and plain.initiator_basis == "syn"
    assert member.initiator_basis is InitiatorBasis.SYN
    assert type(plain.payload_out) is str and plain.payload_out == "ldap"
    assert plain.transport == "ip-132"
    many = [Flow(**_flow_values(encapsulation=f"ipv4>gre>{n}")) for n in range(300)]
    assert [f.encapsulation for f in many] == [f"ipv4>gre>{n}" for n in range(300)]
    reference = DATACLASS_RECORDS[0](**_flow_values(encapsulation="ipv4>gre>299"))
    names = [f.name for f in dataclasses.fields(reference)]
    for made in (many[-1], pickle.loads(pickle.dumps(many[-1]))):
        assert [getattr(made, n) for n in names] == [getattr(reference, n) for n in names]


def test_sample_packets_past_32_bits_or_past_eight_are_kept_whole() -> None:
    for samples in ((3, 2**32), tuple(range(1, 10)), (0, 2**32 - 1), ()):
        flow = Flow(**_flow_values(sample_packets=samples, continued=()))
        assert flow.sample_packets == samples and type(flow.sample_packets) is PacketNumbers
        assert flow.continued == ()
    parts = [FlowPart(1, 2, 3)]
    assert Flow(**_flow_values(continued=parts)).continued == (FlowPart(1, 2, 3),)


def test_a_flow_refuses_a_small_field_out_of_its_range() -> None:
    for field, value in (("initiator_port", 65536), ("tcp_flags_in", -1), ("ip_layer", 256)):
        with pytest.raises(OverflowError):
            Flow(**_flow_values(**{field: value}))


def test_a_client_hello_keeps_its_flow_id_and_segments_in_their_widths() -> None:
    """A hello's flow id in 32 bits (a flow's row: 2**32 flows would not fit in memory) and
    its segments in 16 (payloads.MAX_HELLO_SEGMENTS): past that it refuses, never wraps."""
    for field, value in (("flow_id", 2**32), ("flow_id", -1), ("segments", 2**16)):
        with pytest.raises(OverflowError):
            TlsClientHello(**_client_values(**{field: value}))
    hello = TlsClientHello(**_client_values(flow_id=2**32 - 1, ech=EchKind.GREASE))
    assert hello.flow_id == 2**32 - 1 and hello.ech is EchKind.GREASE
    for kind, values in ((TlsClientHello, _client_values), (TlsServerHello, _server_values)):
        maker = _MODULE.CompactMaker(kind)
        with pytest.raises(OverflowError):
            maker.numbered(kind(**values()), 2**32)
        assert maker.numbered(kind(**values()), 7).flow_id == 7
