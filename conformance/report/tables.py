"""The evidence tables (evidence/*.csv), streamed row by row.

`flows.csv` is the table findings link into: header on line 1, flow N on line N+1
(architecture.md). Every text cell is kept on one line (`one_line`), so no value from the
network can shift the rows below it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import TextIO

from conformance.observe.model import (
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
)  # fmt: skip
DNS_COLUMNS = (
    "capture", "packet", "time", "flow_id", "protocol", "transport", "client", "client_port",
    "server", "server_port", "qname", "qtype", "rcode", "response_packet", "answers", "count",
    "last_packet",
)  # fmt: skip
TLS_COLUMNS = (
    "capture", "packet", "time", "flow_id", "message", "sni", "versions", "cipher_suites",
    "alpn", "segments",
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


def capture_label(names: Sequence[str], index: int) -> str:
    """The capture's file name in evidence/, or `#<index>` when it was not copied."""
    return names[index] if 0 <= index < len(names) else f"#{index}"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _tls_version(value: int) -> str:
    return _TLS_VERSIONS.get(value, f"0x{value:04x}")


def _dns_type(value: int) -> str:
    return _DNS_TYPES.get(value, f"TYPE{value}")


def _stream(out: TextIO, columns: Sequence[str], rows: Iterable[Mapping[str, Cell]]) -> int:
    """Write the header and then each row as it comes; return the number of rows."""
    # lineterminator "\n": one row is one line for `#L<n>` links and for `sed -n Np`.
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def _text(value: str | None) -> str:
    return "" if value is None else one_line(value)


def _flow_rows(flows: Iterable[Flow], capture_names: Sequence[str]) -> Iterator[dict[str, Cell]]:
    for row_number, flow in enumerate(flows, start=1):
        if flow.flow_id != row_number:
            # Links into this table are line numbers; a gap would make them point elsewhere.
            raise ValueError(f"flow ids not dense from 1: row {row_number} is flow {flow.flow_id}")
        yield {
            "flow_id": flow.flow_id,
            "capture": capture_label(capture_names, flow.capture),
            "community_id": flow.community_id,
            "transport": flow.transport,
            "initiator": str(flow.initiator),
            "initiator_port": flow.initiator_port,
            "responder": str(flow.responder),
            "responder_port": flow.responder_port,
            "initiator_basis": flow.initiator_basis.value,
            "handshake_seen": _flag(flow.handshake_seen),
            "answered": _flag(flow.answered),
            "accepted": _flag(flow.accepted),
            "rejected": _flag(flow.rejected),
            "packets_out": flow.packets_out,
            "packets_in": flow.packets_in,
            "bytes_out": flow.bytes_out,
            "bytes_in": flow.bytes_in,
            "first_time": iso_utc(flow.first_time),
            "last_time": iso_utc(flow.last_time),
            "first_packet": flow.first_packet,
            "last_packet": flow.last_packet,
            "sample_packets": " ".join(map(str, flow.sample_packets)),
            "payload_out": flow.payload_out.value,
            "payload_in": flow.payload_in.value,
        }


def write_flows(out: TextIO, flows: Iterable[Flow], capture_names: Sequence[str]) -> int:
    """Write flows.csv; flows must come in flow_id order from 1 (flow N is line N+1)."""
    return _stream(out, FLOW_COLUMNS, _flow_rows(flows, capture_names))


def _optional(value: int | None) -> Cell:
    return "" if value is None else value


def _dns_row(query: DnsQuery, capture_names: Sequence[str]) -> dict[str, Cell]:
    answers = "; ".join(
        f"{a.name} {_dns_type(a.rtype)} {a.value} ttl={a.ttl}" for a in query.answers
    )
    return {
        "capture": capture_label(capture_names, query.capture),
        "packet": query.packet,
        "time": iso_utc(query.time),
        "flow_id": query.flow_id,
        "protocol": query.protocol,
        "transport": query.transport,
        "client": str(query.client),
        "client_port": query.client_port,
        "server": str(query.server),
        "server_port": query.server_port,
        "qname": one_line(query.qname),
        "qtype": _dns_type(query.qtype),
        "rcode": _optional(query.rcode),
        "response_packet": _optional(query.response_packet),
        "answers": one_line(answers),
        "count": query.count,
        "last_packet": _optional(query.last_packet),
    }


def write_dns(out: TextIO, queries: Iterable[DnsQuery], capture_names: Sequence[str]) -> int:
    """Write dns.csv: one row per query (identical repeats merged, with their count)."""
    return _stream(out, DNS_COLUMNS, (_dns_row(q, capture_names) for q in queries))


def _tls_row(
    hello: TlsClientHello | TlsServerHello, capture_names: Sequence[str]
) -> dict[str, Cell]:
    row: dict[str, Cell] = {
        "capture": capture_label(capture_names, hello.capture),
        "packet": hello.packet,
        "time": iso_utc(hello.time),
        "flow_id": hello.flow_id,
    }
    if isinstance(hello, TlsClientHello):
        return row | {
            "message": "client-hello",
            "sni": _text(hello.sni),
            "versions": " ".join(_tls_version(v) for v in hello.versions),
            "cipher_suites": " ".join(f"0x{s:04x}" for s in hello.cipher_suites),
            "alpn": one_line(" ".join(hello.alpn)),
            "segments": hello.segments,
        }
    return row | {
        "message": "server-hello",
        "versions": _tls_version(hello.version),
        "cipher_suites": f"0x{hello.cipher_suite:04x}",
    }


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


def _http_row(request: HttpRequest, capture_names: Sequence[str]) -> dict[str, Cell]:
    return {
        "capture": capture_label(capture_names, request.capture),
        "packet": request.packet,
        "time": iso_utc(request.time),
        "flow_id": request.flow_id,
        "method": one_line(request.method),
        "target": one_line(request.target),
        "version": one_line(request.version),
        "host": _text(request.host),
        "count": request.count,
    }


def write_http(out: TextIO, requests: Iterable[HttpRequest], capture_names: Sequence[str]) -> int:
    """Write http.csv: one row per HTTP/1.x request line seen (any port)."""
    return _stream(out, HTTP_COLUMNS, (_http_row(r, capture_names) for r in requests))


def _name_row(mention: NameMention, capture_names: Sequence[str]) -> dict[str, Cell]:
    return {
        "capture": capture_label(capture_names, mention.capture),
        "packet": mention.packet,
        "flow_id": mention.flow_id,
        "protocol": one_line(mention.protocol),
        "name": one_line(mention.name),
    }


def write_names(out: TextIO, mentions: Iterable[NameMention], capture_names: Sequence[str]) -> int:
    """Write names.csv: names carried by scope-limited protocols (SSDP, NBNS, ...)."""
    return _stream(out, NAME_COLUMNS, (_name_row(m, capture_names) for m in mentions))
