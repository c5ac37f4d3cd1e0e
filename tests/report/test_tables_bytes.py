"""evidence/*.csv are the bytes `csv.writer` writes for the cells, whatever the values.

The tables join rows themselves and format repeating cells once (report.tables); this
checks them against `csv.writer` fed the plain cells, over seeded random records whose
strings carry commas, quotes, line breaks, controls and non-ASCII text.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import random
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from conformance.observe.records import (
    DnsAnswer,
    DnsQuery,
    EchKind,
    Flow,
    HttpRequest,
    InitiatorBasis,
    IPAddress,
    NameMention,
    PayloadKind,
    TlsClientHello,
    TlsServerHello,
)
from conformance.report.tables import (
    DNS_COLUMNS,
    FLOW_COLUMNS,
    HTTP_COLUMNS,
    NAME_COLUMNS,
    ROWS_PER_WRITE,
    TLS_COLUMNS,
    flow_row,
    write_dns,
    write_flows,
    write_http,
    write_names,
    write_tls,
)
from conformance.report.text import one_line

# what makes csv.writer quote a cell (3.13 also quotes a lone "\r"), and what does not
PIECES = ("a", "b.example", ",", '"', "\r", "\n", " ", "\t", "é", "\x00", "=", "/", "")
CAPTURE_NAMES = ["capture-0.pcapng", 'odd, "name".pcapng']
ROWS = 400

Cells = Sequence[object]


def _csv(columns_and_rows: list[Cells]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(columns_and_rows)
    return out.getvalue()


def _time(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _label(index: int) -> str:
    return CAPTURE_NAMES[index] if 0 <= index < len(CAPTURE_NAMES) else f"#{index}"


class Values:
    """Seeded random field values, awkward ones often."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def text(self) -> str:
        return "".join(self.rng.choice(PIECES) for _ in range(self.rng.randrange(4)))

    def number(self) -> int:
        return self.rng.choice((0, 1, 7, 443, 65535, self.rng.randrange(10**12)))

    def port(self) -> int:
        # A 16-bit field (or an ICMP type or code): the compact Flow keeps it in 16 bits.
        return self.rng.choice((0, 1, 7, 443, 65535, self.rng.randrange(65536)))

    def capture(self) -> int:
        return self.rng.choice((0, 1, 1, 5))  # 5: a capture not copied

    def time(self) -> float:
        return self.rng.uniform(0, 4e9)

    def address(self) -> IPAddress:
        return self.rng.choice(
            (
                ipaddress.ip_address("192.0.2.10"),
                ipaddress.ip_address("2001:db8::1"),
                ipaddress.ip_address("fe80::1%eth,0"),  # a scope id may hold a comma
                ipaddress.ip_address(f"198.51.100.{self.rng.randrange(256)}"),
            )
        )

    def pick(self, values: Sequence[object]) -> object:
        return self.rng.choice(values)


def _flows(values: Values) -> list[Flow]:
    return [
        Flow(
            flow_id=flow_id,
            capture=values.capture(),
            transport=values.text() or "tcp",
            ip_version=4,
            initiator=values.address(),
            initiator_port=values.port(),
            responder=values.address(),
            responder_port=values.port(),
            initiator_basis=values.rng.choice(list(InitiatorBasis)),
            handshake_seen=values.rng.random() < 0.5,
            answered=values.rng.random() < 0.5,
            accepted=values.rng.random() < 0.5,
            rejected=values.rng.random() < 0.5,
            packets_out=values.number(),
            packets_in=values.number(),
            bytes_out=values.number(),
            bytes_in=values.number(),
            first_time=values.time(),
            last_time=values.time(),
            first_packet=values.number(),
            last_packet=values.number(),
            sample_packets=tuple(values.number() for _ in range(values.rng.randrange(9))),
            payload_out=values.rng.choice(list(PayloadKind)),
            payload_in=values.rng.choice(list(PayloadKind)),
            encapsulation=values.text(),
            ip_layer=values.rng.choice((1, 2)),
        )
        for flow_id in range(1, ROWS + 1)
    ]


def _flow_cells(flow: Flow) -> Cells:
    return (
        flow.flow_id, _label(flow.capture), flow.community_id, flow.transport,
        str(flow.initiator), flow.initiator_port, str(flow.responder), flow.responder_port,
        flow.initiator_basis.value, *(str(f).lower() for f in (
            flow.handshake_seen, flow.answered, flow.accepted, flow.rejected)),
        flow.packets_out, flow.packets_in, flow.bytes_out, flow.bytes_in,
        _time(flow.first_time), _time(flow.last_time), flow.first_packet, flow.last_packet,
        " ".join(str(p) for p in flow.sample_packets), flow.payload_out.value,
        flow.payload_in.value, flow.encapsulation, flow.ip_layer,
    )  # fmt: skip


def _hellos(values: Values) -> tuple[list[TlsClientHello], list[TlsServerHello]]:
    suites = [(0x1301, 0x1302), (0xC02C, 0x009D, 0xABCD), ()]
    clients = [
        TlsClientHello(
            capture=values.capture(),
            packet=packet,
            time=values.time(),
            flow_id=values.number() % 2**32,  # a flow's row: the compact hello keeps 32 bits
            sni=values.rng.choice((None, values.text())),
            versions=values.rng.choice(((0x0304, 0x0303), (0x0303,), (0x7F1C, 0x0300))),
            cipher_suites=values.rng.choice(suites),
            alpn=tuple(values.text() for _ in range(values.rng.randrange(3))),
            segments=values.rng.choice((1, 2)),
            quic_version=values.rng.choice((None, 1, 0x6B3343CF)),
            ech=values.rng.choice(list(EchKind)),
        )
        for packet in range(1, 2 * ROWS, 2)
    ]
    servers = [
        TlsServerHello(
            capture=values.capture(),
            packet=packet,
            time=values.time(),
            flow_id=values.number() % 2**32,  # a flow's row: the compact hello keeps 32 bits
            version=values.rng.choice((0x0304, 0x0303, 0x0299)),
            cipher_suite=values.rng.choice((0x1301, 0xC02C, 0xABCD)),
            quic_version=values.rng.choice((None, 1)),
        )
        for packet in range(2, 2 * ROWS, 2)
    ]
    return clients, servers


def _tls_cells(hello: TlsClientHello | TlsServerHello) -> Cells:
    named = {0x0300: "SSL3.0", 0x0303: "TLS1.2", 0x0304: "TLS1.3"}
    quic = "" if hello.quic_version is None else f"0x{hello.quic_version:08x}"
    head = (_label(hello.capture), hello.packet, _time(hello.time), hello.flow_id)
    if isinstance(hello, TlsServerHello):
        version = named.get(hello.version, f"0x{hello.version:04x}")
        return (*head, "server-hello", "", version, f"0x{hello.cipher_suite:04x}", "", "", quic, "")
    return (
        *head, "client-hello", "" if hello.sni is None else one_line(hello.sni),
        " ".join(named.get(v, f"0x{v:04x}") for v in hello.versions),
        " ".join(f"0x{s:04x}" for s in hello.cipher_suites), one_line(" ".join(hello.alpn)),
        hello.segments, quic, hello.ech.value,
    )  # fmt: skip


def _queries(values: Values) -> list[DnsQuery]:
    return [
        DnsQuery(
            capture=values.capture(),
            packet=values.number(),
            time=values.time(),
            flow_id=values.number(),
            client=values.address(),
            client_port=values.number(),
            server=values.address(),
            server_port=53,
            transport=values.text(),
            protocol=values.text(),
            qname=values.text(),
            qtype=values.rng.choice((1, 28, 99)),
            response_packet=values.rng.choice((None, values.number())),
            rcode=values.rng.choice((None, 0, 3)),
            answers=tuple(
                DnsAnswer(values.text(), values.rng.choice((1, 5, 99)), 60, values.text())
                for _ in range(values.rng.randrange(3))
            ),
            count=values.number(),
            last_packet=values.rng.choice((None, values.number())),
        )
        for _ in range(ROWS)
    ]


def _dns_cells(query: DnsQuery) -> Cells:
    types = {1: "A", 5: "CNAME", 28: "AAAA"}
    answers = "; ".join(
        f"{a.name} {types.get(a.rtype, f'TYPE{a.rtype}')} {a.value} ttl={a.ttl}"
        for a in query.answers
    )
    return (
        _label(query.capture), query.packet, _time(query.time), query.flow_id, query.protocol,
        query.transport, str(query.client), query.client_port, str(query.server),
        query.server_port, one_line(query.qname), types.get(query.qtype, f"TYPE{query.qtype}"),
        *("" if v is None else v for v in (query.rcode, query.response_packet)),
        one_line(answers), query.count, "" if query.last_packet is None else query.last_packet,
    )  # fmt: skip


def _requests(values: Values) -> list[HttpRequest]:
    return [
        HttpRequest(
            capture=values.capture(),
            packet=values.number(),
            time=values.time(),
            flow_id=values.number(),
            method=values.text(),
            target=values.text(),
            version=values.text(),
            host=values.rng.choice((None, values.text())),
            count=values.number(),
        )
        for _ in range(ROWS)
    ]


def _http_cells(request: HttpRequest) -> Cells:
    return (
        _label(request.capture), request.packet, _time(request.time), request.flow_id,
        one_line(request.method), one_line(request.target), one_line(request.version),
        "" if request.host is None else one_line(request.host), request.count,
    )  # fmt: skip


def _mentions(values: Values) -> list[NameMention]:
    return [
        NameMention(
            values.capture(), values.number(), values.number(), values.text(), values.text()
        )
        for _ in range(ROWS)
    ]


def _name_cells(mention: NameMention) -> Cells:
    return (
        _label(mention.capture), mention.packet, mention.flow_id, one_line(mention.protocol),
        one_line(mention.name),
    )  # fmt: skip


def _written(write: Callable[[io.StringIO], int]) -> tuple[int, str]:
    out = io.StringIO()
    return write(out), out.getvalue()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_table_is_what_csv_writer_writes(seed: int) -> None:
    values = Values(seed)
    flows, (clients, servers) = _flows(values), _hellos(values)
    queries, requests, mentions = _queries(values), _requests(values), _mentions(values)
    hellos: list[TlsClientHello | TlsServerHello] = [*clients, *servers]
    hellos.sort(key=lambda h: (h.capture, h.packet, h.flow_id))
    cases = [
        (FLOW_COLUMNS, lambda o: write_flows(o, flows, CAPTURE_NAMES),
         [_flow_cells(f) for f in flows]),
        (TLS_COLUMNS, lambda o: write_tls(o, clients, servers, CAPTURE_NAMES),
         [_tls_cells(h) for h in hellos]),
        (DNS_COLUMNS, lambda o: write_dns(o, queries, CAPTURE_NAMES),
         [_dns_cells(q) for q in queries]),
        (HTTP_COLUMNS, lambda o: write_http(o, requests, CAPTURE_NAMES),
         [_http_cells(r) for r in requests]),
        (NAME_COLUMNS, lambda o: write_names(o, mentions, CAPTURE_NAMES),
         [_name_cells(m) for m in mentions]),
    ]  # fmt: skip
    for columns, write, rows in cases:
        assert _written(write) == (len(rows), _csv([columns, *rows])), columns[4]
    # the random values did reach the quoting: rows with cells csv.writer had to quote
    assert _csv([_flow_cells(f) for f in flows]).count('"') > ROWS


def test_more_rows_than_one_write_holds() -> None:
    values = Values(4)
    flows = [f for _ in range(3) for f in _flows(values)][: 2 * ROWS_PER_WRITE + 1]
    flows = [replace(f, flow_id=i) for i, f in enumerate(flows, start=1)]
    written = _written(lambda o: write_flows(o, flows, CAPTURE_NAMES))
    assert written == (len(flows), _csv([FLOW_COLUMNS, *(_flow_cells(f) for f in flows)]))


def test_flow_row_gives_the_report_plain_cells() -> None:
    """The report's cited flows show the values themselves, never CSV quoting."""
    flow = replace(_flows(Values(5))[0], capture=1, encapsulation='ipv4>a"b,c')
    row = dict(zip(FLOW_COLUMNS, flow_row(flow, CAPTURE_NAMES), strict=True))
    assert row["capture"] == CAPTURE_NAMES[1] and row["encapsulation"] == 'ipv4>a"b,c'
    assert [str(c) for c in flow_row(flow, CAPTURE_NAMES)] == [str(c) for c in _flow_cells(flow)]
