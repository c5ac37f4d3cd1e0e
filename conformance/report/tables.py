"""The evidence tables (evidence/*.csv), streamed row by row.

`flows.csv` is the table findings link into: header on line 1, flow N on line N+1
(architecture.md). Every text cell is kept on one line (`one_line`), so no value from the
network can shift the rows below it.

A row is joined with commas here rather than by `csv.writer`, at a fraction of the cost (a
capture of millions of packets has tens of thousands of rows); a row with a cell that could
need quoting (a comma, a quote, a line break) is left to `csv.writer`, so the bytes are
always those it writes. Cells that repeat across rows (addresses, cipher suite lists,
capture names) are formatted once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from typing import TextIO

from conformance.observe.records import (
    DnsAnswer,
    DnsQuery,
    EchKind,
    Flow,
    HttpRequest,
    IPAddress,
    NameMention,
    TlsClientHello,
    TlsServerHello,
)
from conformance.report.text import iso_epoch, one_line

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

LINE_END = "\n"  # one row is one line for `#L<n>` links and for `sed -n Np`
# Distinct repeating cells kept (addresses, cipher suite lists, ...): a target talks to a
# few hundred; the bound only keeps a long-running process (watch) flat.
CELLS_KEPT = 4096
# Rows joined into one write: a call per row would cost as much as joining the row; a batch
# of rows of a few hundred bytes each keeps memory flat.
ROWS_PER_WRITE = 1024

Row = tuple[str, ...]  # cells in the order of the table's columns
_FLAG = {False: "false", True: "true"}

# id(address) -> (address, its cell). observe.flows interns addresses, so rows share a few
# hundred address objects, and an ipaddress object hashes in Python code: keyed by identity
# instead. An entry holds its address, so no other object can take that id while it lives.
_address_cells: dict[int, tuple[IPAddress, str]] = {}


def _address(address: IPAddress) -> str:
    """The cell of an address (str() of it)."""
    kept = _address_cells.get(id(address))
    if kept is None:
        if len(_address_cells) >= CELLS_KEPT:
            _address_cells.clear()
        kept = _address_cells[id(address)] = (address, str(address))
    return kept[1]


class _CaptureLabels(dict[int, str]):
    """Capture index -> its file name in evidence/, or `#<index>` when it was not copied."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(enumerate(names))

    def __missing__(self, index: int) -> str:
        return f"#{index}"


@lru_cache(maxsize=64)
def _spaced(count: int) -> str:
    """A %-format for `count` values separated by spaces."""
    return " ".join(["%s"] * count)


def _numbers(values: tuple[int, ...]) -> str:
    """Integers separated by spaces (sample packet numbers): one %-format, no str() each."""
    return _spaced(len(values)) % values


def _tls_version(value: int) -> str:
    return _TLS_VERSIONS.get(value, f"0x{value:04x}")


def _quic_version(value: int | None) -> str:
    """A QUIC version as its wire value (0x00000001 is v1, 0x6b3343cf v2); "" for TCP."""
    return "" if value is None else f"0x{value:08x}"


def _dns_type(value: int) -> str:
    return _DNS_TYPES.get(value, f"TYPE{value}")


def _quoted_line(row: Row) -> str:
    """`row` as `csv.writer` writes it, without the line end (for rows with special cells)."""
    out = io.StringIO()
    csv.writer(out, lineterminator=LINE_END).writerow(row)
    return out.getvalue().removesuffix(LINE_END)


def _stream(out: TextIO, columns: Sequence[str], rows: Iterable[Row]) -> int:
    """Write the header and then the rows as they come; return the number of rows."""
    out.write(_quoted_line(tuple(columns)) + LINE_END)
    count = 0
    lines: list[str] = []
    width = len(columns)
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row of {len(row)} cells for {width} columns")
        line = ",".join(row)
        # A cell holding a delimiter, a quote or a line break is quoted by csv.writer (3.13
        # also quotes a lone "\r", 3.11 does not): such a row is left to it. Without any,
        # it quotes nothing and writes exactly the joined cells.
        if line.count(",") != width - 1 or '"' in line or "\n" in line or "\r" in line:
            line = _quoted_line(row)
        lines.append(line)
        count += 1
        if len(lines) == ROWS_PER_WRITE:
            out.write(LINE_END.join(lines) + LINE_END)
            lines.clear()
    if lines:
        out.write(LINE_END.join(lines) + LINE_END)
    return count


def _text(value: str | None) -> str:
    return "" if value is None else one_line(value)


def _flow_row(flow: Flow, captures: _CaptureLabels) -> Row:
    # The enum members are StrEnum: each is the str of its value, and is written as such.
    return (  # FLOW_COLUMNS
        str(flow.flow_id),
        captures[flow.capture],
        flow.community_id,
        flow.transport,
        _address(flow.initiator),
        str(flow.initiator_port),
        _address(flow.responder),
        str(flow.responder_port),
        flow.initiator_basis,
        _FLAG[flow.handshake_seen],
        _FLAG[flow.answered],
        _FLAG[flow.accepted],
        _FLAG[flow.rejected],
        str(flow.packets_out),
        str(flow.packets_in),
        str(flow.bytes_out),
        str(flow.bytes_in),
        iso_epoch(flow.first_time),
        iso_epoch(flow.last_time),
        str(flow.first_packet),
        str(flow.last_packet),
        _numbers(flow.sample_packets),
        flow.payload_out,
        flow.payload_in,
        flow.encapsulation,  # decision 9: how it was carried ("" when not)
        str(flow.ip_layer),
    )


def flow_row(flow: Flow, capture_names: Sequence[str]) -> Row:
    """One flow as its flows.csv row (cells in FLOW_COLUMNS order)."""
    return _flow_row(flow, _CaptureLabels(capture_names))


def _flow_rows(flows: Iterable[Flow], capture_names: Sequence[str]) -> Iterator[Row]:
    captures = _CaptureLabels(capture_names)
    for row_number, flow in enumerate(flows, start=1):
        if flow.flow_id != row_number:
            # Links into this table are line numbers; a gap would make them point elsewhere.
            raise ValueError(f"flow ids not dense from 1: row {row_number} is flow {flow.flow_id}")
        yield _flow_row(flow, captures)


def write_flows(out: TextIO, flows: Iterable[Flow], capture_names: Sequence[str]) -> int:
    """Write flows.csv; flows must come in flow_id order from 1 (flow N is line N+1)."""
    return _stream(out, FLOW_COLUMNS, _flow_rows(flows, capture_names))


def _optional(value: int | None) -> str:
    return "" if value is None else str(value)


@lru_cache(maxsize=1024)
def _answers(answers: tuple[DnsAnswer, ...]) -> str:
    """The answers cell (queries repeat the same few answer sets: shared, so cached)."""
    return one_line(
        "; ".join(f"{a.name} {_dns_type(a.rtype)} {a.value} ttl={a.ttl}" for a in answers)
    )


def _dns_row(query: DnsQuery, captures: _CaptureLabels) -> Row:
    return (  # DNS_COLUMNS
        captures[query.capture],
        str(query.packet),
        iso_epoch(query.time),
        str(query.flow_id),
        query.protocol,
        query.transport,
        _address(query.client),
        str(query.client_port),
        _address(query.server),
        str(query.server_port),
        one_line(query.qname),
        _dns_type(query.qtype),
        _optional(query.rcode),
        _optional(query.response_packet),
        _answers(query.answers),
        str(query.count),
        _optional(query.last_packet),
    )


def write_dns(out: TextIO, queries: Iterable[DnsQuery], capture_names: Sequence[str]) -> int:
    """Write dns.csv: one row per query (identical repeats merged, with their count)."""
    captures = _CaptureLabels(capture_names)
    return _stream(out, DNS_COLUMNS, (_dns_row(q, captures) for q in queries))


@lru_cache(maxsize=CELLS_KEPT)
def _client_hello_cells(
    sni: str | None,
    versions: tuple[int, ...],
    suites: tuple[int, ...],
    alpn: tuple[str, ...],
    segments: int,
    quic_version: int | None,
    ech: EchKind,
) -> Row:
    """The cells of a ClientHello after its flow_id (TLS_COLUMNS from "message").

    A client sends the same few hellos again and again: each is formatted once.
    """
    return (
        "client-hello",
        _text(sni),
        " ".join(_tls_version(v) for v in versions),
        " ".join(f"0x{s:04x}" for s in suites),
        one_line(" ".join(alpn)),
        str(segments),
        _quic_version(quic_version),
        ech.value,
    )


@lru_cache(maxsize=CELLS_KEPT)
def _server_hello_cells(version: int, suite: int, quic_version: int | None) -> Row:
    """The cells of a ServerHello after its flow_id (TLS_COLUMNS from "message")."""
    return (
        "server-hello",
        "",
        _tls_version(version),
        f"0x{suite:04x}",
        "",
        "",
        _quic_version(quic_version),
        "",
    )


def _tls_row(hello: TlsClientHello | TlsServerHello, captures: _CaptureLabels) -> Row:
    head = (captures[hello.capture], str(hello.packet), iso_epoch(hello.time), str(hello.flow_id))
    if isinstance(hello, TlsClientHello):
        return head + _client_hello_cells(  # TLS_COLUMNS
            hello.sni,
            hello.versions,
            hello.cipher_suites,
            hello.alpn,
            hello.segments,
            hello.quic_version,
            hello.ech,
        )
    return head + _server_hello_cells(hello.version, hello.cipher_suite, hello.quic_version)


def write_tls(
    out: TextIO,
    client_hellos: Iterable[TlsClientHello],
    server_hellos: Iterable[TlsServerHello],
    capture_names: Sequence[str],
) -> int:
    """Write tls.csv: ClientHello and ServerHello rows in packet order per capture."""
    hellos: list[TlsClientHello | TlsServerHello] = sorted(
        chain(client_hellos, server_hellos), key=attrgetter("capture", "packet", "flow_id")
    )
    captures = _CaptureLabels(capture_names)
    return _stream(out, TLS_COLUMNS, (_tls_row(h, captures) for h in hellos))


def _http_row(request: HttpRequest, captures: _CaptureLabels) -> Row:
    return (  # HTTP_COLUMNS
        captures[request.capture],
        str(request.packet),
        iso_epoch(request.time),
        str(request.flow_id),
        one_line(request.method),
        one_line(request.target),
        one_line(request.version),
        _text(request.host),
        str(request.count),
    )


def write_http(out: TextIO, requests: Iterable[HttpRequest], capture_names: Sequence[str]) -> int:
    """Write http.csv: one row per HTTP/1.x request line seen (any port)."""
    captures = _CaptureLabels(capture_names)
    return _stream(out, HTTP_COLUMNS, (_http_row(r, captures) for r in requests))


def _name_row(mention: NameMention, captures: _CaptureLabels) -> Row:
    return (  # NAME_COLUMNS
        captures[mention.capture],
        str(mention.packet),
        str(mention.flow_id),
        one_line(mention.protocol),
        one_line(mention.name),
    )


def write_names(out: TextIO, mentions: Iterable[NameMention], capture_names: Sequence[str]) -> int:
    """Write names.csv: names carried by scope-limited protocols (SSDP, NBNS, ...)."""
    captures = _CaptureLabels(capture_names)
    return _stream(out, NAME_COLUMNS, (_name_row(m, captures) for m in mentions))
