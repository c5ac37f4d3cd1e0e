"""The evidence tables (evidence/*.csv), streamed row by row.

`flows.csv` is the table findings link into: header on line 1, flow N on line N+1
(architecture.md). Every text cell is kept on one line (`one_line`), so no value from the
network can shift the rows below it.

A row is joined with commas here rather than by `csv.writer`, at a fraction of the cost (a
capture of millions of packets has tens of thousands of rows); a row with a cell that could
need quoting (a comma, a quote, a line break) is left to `csv.writer`, so the bytes are
always those it writes. Cells that repeat across rows (addresses, cipher suite lists,
capture names) are formatted once. A tls.csv line is its numbers and time before the text of
the hello's other cells, formatted and quoted once per distinct hello.
"""

from __future__ import annotations

import csv
import heapq
import io
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import chain, islice, pairwise
from operator import attrgetter
from typing import TextIO, TypeVar

from conformance.decode import compiled
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
from conformance.report import text
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

# The compiled lines of flows.csv and tls.csv (report/_tables.pyx), when built: the same bytes.
_COMPILED = compiled.load(compiled.MODULES[5])
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


def _numbers(values: Sequence[int]) -> str:
    """Integers separated by spaces (sample packet numbers): one %-format, no str() each."""
    return _spaced(len(values)) % (values if isinstance(values, tuple) else tuple(values))


def _tls_version(value: int) -> str:
    return _TLS_VERSIONS.get(value, f"0x{value:04x}")


def _quic_version(value: int | None) -> str:
    """A QUIC version as its wire value (0x00000001 is v1, 0x6b3343cf v2); "" for TCP."""
    return "" if value is None else f"0x{value:08x}"


def _dns_type(value: int) -> str:
    return _DNS_TYPES.get(value, f"TYPE{value}")


def _quoted_line(row: Row) -> str:
    """`row` as `csv.writer` writes it, without the line end."""
    out = io.StringIO()
    csv.writer(out, lineterminator=LINE_END).writerow(row)
    return out.getvalue().removesuffix(LINE_END)


def _quoted_cell(text: str) -> str:
    """`text` as `csv.writer` writes it as one cell of a row of several."""
    # An empty cell alone in a row is written `""`; beside another it is written as nothing.
    return _quoted_line((text, "")).removesuffix(",")


def _lines(rows: Iterable[Row], width: int) -> Iterator[str]:
    """Each row as its line (without the line end), exactly as `csv.writer` writes it."""
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row of {len(row)} cells for {width} columns")
        line = ",".join(row)
        # A cell holding a delimiter, a quote or a line break is quoted by csv.writer (3.13
        # also quotes a lone "\r", 3.11 does not): such a row is left to it. Without any,
        # it quotes nothing and writes exactly the joined cells.
        if line.count(",") != width - 1 or '"' in line or "\n" in line or "\r" in line:
            line = _quoted_line(row)
        yield line


def _write_lines(out: TextIO, columns: Sequence[str], lines: Iterator[str]) -> int:
    """Write the header and then the lines as they come; return the number of lines."""
    out.write(_quoted_line(tuple(columns)) + LINE_END)
    count = 0
    while batch := list(islice(lines, ROWS_PER_WRITE)):
        count += len(batch)
        batch.append("")  # the last line's end
        out.write(LINE_END.join(batch))
    return count


def _write_chunks(out: TextIO, columns: Sequence[str], chunks: Iterator[tuple[str, int]]) -> int:
    """Write the header and then the compiled chunks of lines; return the number of lines."""
    out.write(_quoted_line(tuple(columns)) + LINE_END)
    count = 0
    for chunk, lines in chunks:
        out.write(chunk)
        count += lines
    return count


def _stream(out: TextIO, columns: Sequence[str], rows: Iterable[Row]) -> int:
    """Write the header and then the rows as they come; return the number of rows."""
    return _write_lines(out, columns, _lines(rows, len(columns)))


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
    if _COMPILED is None:
        return _stream(out, FLOW_COLUMNS, _flow_rows(flows, capture_names))
    captures = _CaptureLabels(capture_names)

    def line_of(flow: Flow) -> str:
        return next(_lines((_flow_row(flow, captures),), len(FLOW_COLUMNS)))

    chunks = _COMPILED.flow_chunks(
        flows,
        captures,
        len(FLOW_COLUMNS),
        ROWS_PER_WRITE,
        iso_epoch,
        text._second_texts,
        _address,
        _FLAG,
        _numbers,
        line_of,
    )
    return _write_chunks(out, FLOW_COLUMNS, chunks)


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


def _row_end(cells: Row) -> str:
    """`cells` as they end a line, each after a comma, quoted as `csv.writer` quotes them."""
    return _quoted_line(("", *cells))


@lru_cache(maxsize=CELLS_KEPT)
def _client_hello_end(
    sni: str | None,
    versions: tuple[int, ...],
    suites: tuple[int, ...],
    alpn: tuple[str, ...],
    segments: int,
    quic_version: int | None,
    ech: EchKind,
) -> str:
    """A ClientHello's line after its flow_id (TLS_COLUMNS from "message").

    A client sends the same few hellos again and again: each is formatted once.
    """
    return _row_end(
        (
            "client-hello",
            _text(sni),
            " ".join(_tls_version(v) for v in versions),
            " ".join(f"0x{s:04x}" for s in suites),
            one_line(" ".join(alpn)),
            str(segments),
            _quic_version(quic_version),
            ech.value,
        )
    )


@lru_cache(maxsize=CELLS_KEPT)
def _server_hello_end(version: int, suite: int, quic_version: int | None) -> str:
    """A ServerHello's line after its flow_id (TLS_COLUMNS from "message")."""
    return _row_end(
        (
            "server-hello",
            "",
            _tls_version(version),
            f"0x{suite:04x}",
            "",
            "",
            _quic_version(quic_version),
            "",
        )
    )


def _tls_lines(
    hellos: Iterable[TlsClientHello | TlsServerHello], captures: _CaptureLabels
) -> Iterator[str]:
    """Each hello's line. `captures` holds each capture's cell already quoted; the other
    cells before the hello's formatted end are numbers and a time, which never need quoting:
    no line is checked or joined cell by cell."""
    for hello in hellos:
        yield (  # TLS_COLUMNS
            f"{captures[hello.capture]},{hello.packet},{iso_epoch(hello.time)},{hello.flow_id}"
            + _hello_end(hello)
        )


def _hello_end(hello: TlsClientHello | TlsServerHello) -> str:
    """A hello's line after its flow_id, formatted once per distinct hello."""
    if isinstance(hello, TlsClientHello):
        return _client_hello_end(
            hello.sni,
            hello.versions,
            hello.cipher_suites,
            hello.alpn,
            hello.segments,
            hello.quic_version,
            hello.ech,
        )
    return _server_hello_end(hello.version, hello.cipher_suite, hello.quic_version)


def write_tls(
    out: TextIO,
    client_hellos: Iterable[TlsClientHello],
    server_hellos: Iterable[TlsServerHello],
    capture_names: Sequence[str],
) -> int:
    """Write tls.csv: ClientHello and ServerHello rows in packet order per capture."""
    hellos = _in_packet_order(_sequence(client_hellos), _sequence(server_hellos))
    captures = _CaptureLabels([_quoted_cell(name) for name in capture_names])
    if _COMPILED is None:
        return _write_lines(out, TLS_COLUMNS, _tls_lines(hellos, captures))

    def line_of(hello: TlsClientHello | TlsServerHello) -> str:
        return next(_tls_lines((hello,), captures))

    chunks = _COMPILED.tls_chunks(
        hellos,
        captures,
        ROWS_PER_WRITE,
        iso_epoch,
        text._second_texts,
        _hello_end,
        line_of,
    )
    return _write_chunks(out, TLS_COLUMNS, chunks)


_HELLO_ORDER = attrgetter("capture", "packet", "flow_id")
_H = TypeVar("_H", TlsClientHello, TlsServerHello)


def _sequence(hellos: Iterable[_H]) -> Sequence[_H]:
    """`hellos` itself where it is a sequence (an observation's RecordStore is not copied
    into a tuple: #17), else its items in a tuple."""
    return hellos if isinstance(hellos, Sequence) else tuple(hellos)


def _in_packet_order(
    clients: Sequence[TlsClientHello], servers: Sequence[TlsServerHello]
) -> Iterable[TlsClientHello | TlsServerHello]:
    """The hellos ordered by (capture, packet, flow_id), the client hellos first among
    equals, each kind in its own order among its equals: a stable sort of the two kinds
    one after the other. The observers record each kind in that order already, so the two
    are merged as they are written, with no key kept for every hello (a key list of 130k
    numbers is 5 MiB, the 2M web mix's report's peak) and no list of them; else sorted."""
    if _COMPILED is not None:
        merged: Iterator[TlsClientHello | TlsServerHello] | None = _COMPILED.merged_hellos(
            clients, servers
        )
        if merged is not None:
            return merged
    elif _ordered(clients) and _ordered(servers):
        return heapq.merge(clients, servers, key=_HELLO_ORDER)
    hellos: list[TlsClientHello | TlsServerHello] = list(chain(clients, servers))
    # Stable sorts from the last key to the first: a key tuple per hello would be 100k+ new
    # objects at once, and the cyclic collector would run over and over meanwhile
    # (measured at 2M: 180 collections, 0.03-0.3 s).
    for key in ("flow_id", "packet", "capture"):
        hellos.sort(key=attrgetter(key))
    return hellos


def _ordered(hellos: Sequence[TlsClientHello | TlsServerHello]) -> bool:
    return all(_HELLO_ORDER(a) <= _HELLO_ORDER(b) for a, b in pairwise(hellos))


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
