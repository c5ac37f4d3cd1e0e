"""HAR 1.2 files: entries read (base64 bodies, form parameters), bad files refused naming the
key path, entries matched to the one target flow that carried them."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.content.decryption_coverage import TlsFlow
from conformance.content.har import HarError, entry_records, match, read_har

T0 = 1_700_000_000.0


def har(tmp_path: Path, entries: list[dict[str, Any]], version: str = "1.2") -> Path:
    path = tmp_path / "x.har"
    path.write_text(json.dumps({"log": {"version": version, "creator": {}, "entries": entries}}))
    return path


def entry(url: str, at: float = T0 + 0.5, **request: Any) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "startedDateTime": datetime.fromtimestamp(at, UTC).isoformat(),
        "time": 20,
        "request": {"method": "POST", "url": url, "headers": [], **request},
    }


def flow(flow_id: int, first: float, last: float, **extra: Any) -> TlsFlow:
    values: dict[str, Any] = {
        "flow_id": flow_id,
        "capture": 0,
        "transport": "tcp",
        "client": "192.0.2.10",
        "client_port": 50000 + flow_id,
        "server": "198.51.100.7",
        "server_port": 443,
        "sni": "api.imagicle.com",
        "connect": None,
        "client_hello": 4,
        "first_time": first,
        "last_time": last,
    }
    return TlsFlow(**{**values, **extra})


def test_entries_bodies_and_matching(tmp_path: Path) -> None:
    protobuf = bytes([0x08, 0x01])
    path = har(
        tmp_path,
        [
            entry(
                "https://api.imagicle.com/v1/telemetry/beat?x=1",
                postData={"mimeType": "application/json", "text": '{"a": 1}'},
            ),
            entry(
                "https://grpc.imagicle.com/p.S/M",
                postData={
                    "mimeType": "application/grpc",
                    "text": base64.b64encode(b"\0\0\0\0\x02" + protobuf).decode(),
                    "encoding": "base64",
                },
            ),
            entry(
                "https://other.example.net/x", postData={"params": [{"name": "a", "value": "b"}]}
            ),
        ],
    )
    parsed = read_har(path)
    assert [e.path for e in parsed.entries] == ["/v1/telemetry/beat?x=1", "/p.S/M", "/x"]
    assert parsed.entries[1].body == b"\0\0\0\0\x02" + protobuf
    assert parsed.entries[2].body == b"a=b"
    flows = [
        flow(1, T0, T0 + 1),
        flow(2, T0, T0 + 1, server="198.51.100.8", sni="grpc.imagicle.com"),
    ]
    matches = match(parsed, flows)
    assert {i: f.flow_id for i, f in matches.items()} == {0: 1, 1: 2}
    records = list(entry_records(parsed, "x.har", matches, ["capture-0.pcap"]))
    assert [r["flow"] for r in records] == [1, 2]
    assert records[1]["body"]["encoding"] == "grpc"
    assert records[0]["tls"] == {"sni": "api.imagicle.com", "version": None, "alpn": None}


def test_an_entry_goes_to_the_nearest_flow_and_time_must_agree(tmp_path: Path) -> None:
    path = har(tmp_path, [entry("https://api.imagicle.com/a", at=T0 + 5.2)])
    parsed = read_har(path)
    near, far = flow(1, T0 + 5, T0 + 6), flow(2, T0 + 3.5, T0 + 4)
    assert {f.flow_id for f in match(parsed, [far, near]).values()} == {1}
    assert match(parsed, [flow(3, T0 + 20, T0 + 21)]) == {}  # 15 s apart: not that connection


def test_a_proxy_tunnel_is_matched_by_its_connect_host(tmp_path: Path) -> None:
    path = har(tmp_path, [entry("https://api.imagicle.com/a")])
    tunnel = flow(
        1, T0, T0 + 1, server="192.0.2.80", server_port=3128, connect="api.imagicle.com:443"
    )
    assert list(match(read_har(path), [tunnel]).values()) == [tunnel]
    elsewhere = flow(2, T0, T0 + 1, connect="api.imagicle.com:8443", server_port=3128)
    assert match(read_har(path), [elsewhere]) == {}


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("not json", "<file>: not JSON"),
        ({"log": {"version": "1.2"}}, "log.entries: expected list"),
        ({"log": {"version": "2.0", "entries": []}}, "log.version: '2.0' is not HAR 1.1 or 1.2"),
        (
            {"log": {"version": "1.2", "entries": [{"request": {}}]}},
            "log.entries[0].request.url: expected str",
        ),
        (
            {"log": {"version": "1.2", "entries": [entry("/relative")]}},
            "log.entries[0].request.url: not an absolute URL",
        ),
        (
            {
                "log": {
                    "version": "1.2",
                    "entries": [{**entry("https://a.example/"), "startedDateTime": "x"}],
                }
            },
            "log.entries[0].startedDateTime: not an ISO 8601 date-time",
        ),
    ],
)
def test_a_bad_har_names_the_key(tmp_path: Path, document: Any, problem: str) -> None:
    path = tmp_path / "bad.har"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    with pytest.raises(HarError) as caught:
        read_har(path)
    assert str(caught.value).startswith(f"{path}: ") and problem in str(caught.value)
