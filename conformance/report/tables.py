"""The evidence tables (evidence/*.csv), streamed row by row.

`flows.csv` is the table findings link into: header on line 1, flow N on line N+1
(architecture.md). Every text cell is kept on one line (`one_line`), so no value from the
network can shift the rows below it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import chain
from typing import TextIO

from conformance.observe.records import (
    DnsAnswer,
    DnsQuery,
    Flow,
    HttpRequest,
    NameMention,
    TlsClientHello,
    TlsServerHello,
)
from conformance.report.text import iso_utc, one_line

FLOW_COLUMNS = (
    "flow_id", "capture", "community_id", "transport", "initiator", "initiator_port",
    "responder", "responder_port", "initiator_basis", "handshake_seen", "answered", "accepted",
    "rejected", "packets_out", "packets_in", "bytes_out", "bytes_in", "first_time", "last_time",
    "first_packet", "last_packet", "sample_packets", "payload_out", "payload_in",
    "encapsulation", "ip_layer",
)  # fmt: skip
DNS_COLUMNS = (
    "capture", "packet", "time", "flow_id", "protocol", "transport", "client", "client_port",
    "server", "server_port", "qname", "qtype", "rcode", "response_packet", "answers", "count",
    "last_packet",
)  # fmt: skip
TLS_COLUMNS = (
    "capture", "packet", "time", "flow_id", "message", "sni", "versions", "cipher_suites",
    "alpn", "segments", "quic_version", "ech",
)  # fmt: skip
HTTP_COLUMNS = (
    "capture", "packet", "time", "flow_id", "method", "target", "version", "host", "count",
)  # fmt: skip
NAME_COLUMNS = ("capture", "packet", "flow_id", "protocol", "name")

_TLS_VERSIONS = {
    0x0300: "SSL3.0", 0x0301: "TLS1.0", 0x0302: "TLS1.1", 0x0303: "TLS1.2", 0x0304: "TLS1.3",
}  # fmt: skip
_DNS_TYPES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
    33: "SRV", 64: "SVCB", 65: "HTTPS", 255: "ANY",
}  # fmt: skip

Cell = str | int
Row = tuple[Cell, ...]  # cells in the order of the table's columns


@lru_cache(maxsize=4096)
def _address(address: object) -> str:
    """str() of an address: flows and queries repeat the same few addresses all day."""
    return str(address)


def capture_label(names: Sequence[str], index: int) -> str:
    """The capture's file name in evidence/, or `#<index>` when it was not copied."""
    return names[index] if 0 <= index < len(names) else f"#{index}"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _tls_version(value: int) -> str:
    return _TLS_VERSIONS.get(value, f"0x{value:04x}")


def _quic_version(value: int | None) -> str:
    """A QUIC version as its wire value (0x00000001 is v1, 0x6b3343cf v2); "" for TCP."""
    return "" if value is None else f"0x{value:08x}"


def _dns_type(value: int) -> str:
    return _DNS_TYPES.get(value, f"TYPE{value}")


def _stream(out: TextIO, columns: Sequence[str], rows: Iterable[Row]) -> int:
    """Write the header and then each row as it comes; return the number of rows."""
    # lineterminator "\n": one row is one line for `#L<n>` links and for `sed -n Np`.
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    write = writer.writerow
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row of {len(row)} cells for {len(columns)} columns")
        write(row)
        count += 1
    return count


def _text(value: str | None) -> str:
    return "" if value is None else one_line(value)


def flow_row(flow: Flow, capture_names: Sequence[str]) -> Row:
    """One flow as its flows.csv row (cells in FLOW_COLUMNS order)."""
    return (  # FLOW_COLUMNS
        flow.flow_id,
        capture_label(capture_names, flow.capture),
        flow.community_id,
        flow.transport,
        _address(flow.initiator),
        flow.initiator_port,
        _address(flow.responder),
        flow.responder_port,
        flow.initiator_basis.value,
        _flag(flow.handshake_seen),
        _flag(flow.answered),
        _flag(flow.accepted),
        _flag(flow.rejected),
        flow.packets_out,
        flow.packets_in,
        flow.bytes_out,
        flow.bytes_in,
        iso_utc(flow.first_time),
        iso_utc(flow.last_time),
        flow.first_packet,
        flow.last_packet,
        " ".join(map(str, flow.sample_packets)),
        flow.payload_out.value,
        flow.payload_in.value,
        flow.encapsulation,  # decision 9: how it was carried ("" when not)
        flow.ip_layer,
    )


def _flow_rows(flows: Iterable[Flow], capture_names: Sequence[str]) -> Iterator[Row]:
    for row_number, flow in enumerate(flows, start=1):
        if flow.flow_id != row_number:
            # Links into this table are line numbers; a gap would make them point elsewhere.
            raise ValueError(f"flow ids not dense from 1: row {row_number} is flow {flow.flow_id}")
        yield flow_row(flow, capture_names)


def write_flows(out: TextIO, flows: Iterable[Flow], capture_names: Sequence[str]) -> int:
    """Write flows.csv; flows must come in flow_id order from 1 (flow N is line N+1)."""
    return _stream(out, FLOW_COLUMNS, _flow_rows(flows, capture_names))


def _optional(value: int | None) -> Cell:
    return "" if value is None else value


@lru_cache(maxsize=1024)
def _answers(answers: tuple[DnsAnswer, ...]) -> str:
    """The answers cell (queries repeat the same few answer sets: shared, so cached)."""
    return one_line(
        "; ".join(f"{a.name} {_dns_type(a.rtype)} {a.value} ttl={a.ttl}" for a in answers)
    )


def _dns_row(query: DnsQuery, capture_names: Sequence[str]) -> Row:
    return (  # DNS_COLUMNS
        capture_label(capture_names, query.capture),
        query.packet,
        iso_utc(query.time),
        query.flow_id,
        query.protocol,
        query.transport,
        _address(query.client),
        query.client_port,
        _address(query.server),
        query.server_port,
        one_line(query.qname),
        _dns_type(query.qtype),
        _optional(query.rcode),
        _optional(query.response_packet),
        _answers(query.answers),
        query.count,
        _optional(query.last_packet),
    )


def write_dns(out: TextIO, queries: Iterable[DnsQuery], capture_names: Sequence[str]) -> int:
    """Write dns.csv: one row per query (identical repeats merged, with their count)."""
    return _stream(out, DNS_COLUMNS, (_dns_row(q, capture_names) for q in queries))


def _tls_row(hello: TlsClientHello | TlsServerHello, capture_names: Sequence[str]) -> Row:
    head = (
        capture_label(capture_names, hello.capture),
        hello.packet,
        iso_utc(hello.time),
        hello.flow_id,
    )
    if isinstance(hello, TlsClientHello):
        return (  # TLS_COLUMNS
            *head,
            "client-hello",
            _text(hello.sni),
            " ".join(_tls_version(v) for v in hello.versions),
            " ".join(f"0x{s:04x}" for s in hello.cipher_suites),
            one_line(" ".join(hello.alpn)),
            hello.segments,
            _quic_version(hello.quic_version),
            hello.ech.value,
        )
    return (
        *head,
        "server-hello",
        "",
        _tls_version(hello.version),
        f"0x{hello.cipher_suite:04x}",
        "",
        "",
        _quic_version(hello.quic_version),
        "",
    )


def write_tls(
    out: TextIO,
    client_hellos: Iterable[TlsClientHello],
    server_hellos: Iterable[TlsServerHello],
    capture_names: Sequence[str],
) -> int:
    """Write tls.csv: ClientHello and ServerHello rows in packet order per capture."""
    hellos: list[TlsClientHello | TlsServerHello] = sorted(
        chain(client_hellos, server_hellos), key=lambda h: (h.capture, h.packet, h.flow_id)
    )
    return _stream(out, TLS_COLUMNS, (_tls_row(h, capture_names) for h in hellos))


def _http_row(request: HttpRequest, capture_names: Sequence[str]) -> Row:
    return (  # HTTP_COLUMNS
        capture_label(capture_names, request.capture),
        request.packet,
        iso_utc(request.time),
        request.flow_id,
        one_line(request.method),
        one_line(request.target),
        one_line(request.version),
        _text(request.host),
        request.count,
    )


def write_http(out: TextIO, requests: Iterable[HttpRequest], capture_names: Sequence[str]) -> int:
    """Write http.csv: one row per HTTP/1.x request line seen (any port)."""
    return _stream(out, HTTP_COLUMNS, (_http_row(r, capture_names) for r in requests))


def _name_row(mention: NameMention, capture_names: Sequence[str]) -> Row:
    return (  # NAME_COLUMNS
        capture_label(capture_names, mention.capture),
        mention.packet,
        mention.flow_id,
        one_line(mention.protocol),
        one_line(mention.name),
    )


def write_names(out: TextIO, mentions: Iterable[NameMention], capture_names: Sequence[str]) -> int:
    """Write names.csv: names carried by scope-limited protocols (SSDP, NBNS, ...)."""
    return _stream(out, NAME_COLUMNS, (_name_row(m, capture_names) for m in mentions))
