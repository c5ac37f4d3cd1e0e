"""evidence/*.csv: flow N on line N+1, one row per line whatever the network sent."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import replace
from itertools import chain
from operator import attrgetter

import pytest

from conformance.observe.records import TlsClientHello, TlsServerHello
from conformance.report import tables
from conformance.report.tables import (
    FLOW_COLUMNS,
    _in_packet_order,
    write_dns,
    write_flows,
    write_tls,
)
from conformance.report.text import one_line
from tests.report.builders import SignedReport, flow, make_run


def test_flows_header_then_flow_n_on_line_n_plus_1(written: SignedReport) -> None:
    lines = (written.report_dir / "evidence" / "flows.csv").read_text().splitlines()
    assert lines[0].split(",") == list(FLOW_COLUMNS)
    for number, line in enumerate(lines[1:], start=1):
        assert line.split(",")[0] == str(number)
    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    assert rows[1]["responder"] == "198.51.100.7" and rows[1]["answered"] == "false"
    assert rows[1]["first_time"] == "2023-11-14T22:13:22.000000Z"
    assert rows[1]["sample_packets"] == "20 21"


def test_flow_ids_must_be_dense_from_one() -> None:
    with pytest.raises(ValueError, match="not dense"):
        write_flows(io.StringIO(), [flow(1, "192.0.2.20", 53), flow(3, "192.0.2.20", 53)], [])


def test_network_newlines_stay_on_one_line(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    observations = make_run(tmp_path).observations
    assert observations is not None
    out = io.StringIO()
    assert write_dns(out, observations.dns, ["capture-0.pcapng"]) == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "evil\\x0aline.example" in lines[1]


def test_tls_rows_in_packet_order_with_named_versions(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    observations = make_run(tmp_path).observations
    assert observations is not None
    out = io.StringIO()
    server = replace(observations.server_hellos[0], packet=5)
    write_tls(out, observations.client_hellos, [server], [])
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["message"] for r in rows] == ["server-hello", "client-hello"]
    assert rows[1]["versions"] == "TLS1.3 TLS1.2" and rows[1]["capture"] == "#0"


def test_one_line_escapes_controls_only() -> None:
    """Printable text passes as it is; other unprintable characters are kept."""
    assert one_line("GET /é?a=1 HTTP/1.1") == "GET /é?a=1 HTTP/1.1"
    assert one_line("a\x00b\tc\x7fd\u2028e\xa0f") == "a\\x00b\\x09c\\x7fd\u2028e\xa0f"


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("seed", range(40))
def test_hellos_in_packet_order_merged_or_sorted_as_one_stable_sort(
    seed: int, compiled: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tls.csv's order: one stable sort by (capture, packet, flow_id) of the client hellos
    then the server hellos. Merged where each kind is in that order already (as the
    observers record them; in C where report/_tables.pyx is built), sorted where not; ties
    within and across kinds included."""
    if not compiled:
        monkeypatch.setattr(tables, "_COMPILED", None)
    elif tables._COMPILED is None:
        pytest.skip("report/_tables.pyx is not built")
    rng = random.Random(seed)

    def numbers() -> tuple[int, int, int]:
        return rng.randrange(2), rng.randrange(1, 12), rng.randrange(4)

    clients = [
        TlsClientHello(c, p, 1.0, f, f"n{i}", (0x0303,), (0x1301,), ())
        for i, (c, p, f) in enumerate(numbers() for _ in range(rng.randrange(30)))
    ]
    servers = [
        TlsServerHello(c, p, 1.0, f, 0x0303 + i, 0x1301)
        for i, (c, p, f) in enumerate(numbers() for _ in range(rng.randrange(30)))
    ]
    key = attrgetter("capture", "packet", "flow_id")
    if seed % 2:  # as the observers record them: each kind in order already
        clients.sort(key=key)
        servers.sort(key=key)
    expected = sorted(chain(clients, servers), key=key)
    got = _in_packet_order(tuple(clients), tuple(servers))
    assert [(type(h), id(h)) for h in got] == [(type(h), id(h)) for h in expected]
