"""Decryption through tshark, session by session: what is decrypted, what is not and why,
message fields for HTTP/1.1 (chunked, TLS 1.2), HTTP/2 (several streams, cut short), gRPC with
a protobuf body, TLS on a port tshark does not know, a protocol it cannot dissect, plaintext
HTTP, wrong keys, several key logs."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conformance.content import tshark_content
from conformance.content.own_evidence import _why
from conformance.content.own_inputs import check_inputs
from conformance.content.tshark_content import Session
from conformance.evidence.interface import TLS_DECRYPTED, SecretInputs
from conformance.evidence.pcap import PcapSource
from tests.content.beats import beat
from tests.content.own_captures import ON, collect
from tests.tls_sessions import (
    SessionFactory,
    grpc,
    plaintext,
    post,
    write_sessions,
)


@pytest.fixture
def factory(tmp_path: Path) -> SessionFactory:
    return SessionFactory(tmp_path)


@pytest.fixture
def opened() -> Iterator[list[PcapSource]]:
    sources: list[PcapSource] = []
    yield sources
    for source in sources:
        source.close()


def kept(
    tmp_path: Path,
    sessions: list[Any],
    keylogs: list[Path],
    opened: list[PcapSource],
) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]], tuple[str, ...]]:
    """Messages and coverage (by flow) of content/tls-decrypted.jsonl, and the notes."""
    capture = write_sessions(tmp_path / "c.pcap", sessions)
    evidence, source = collect([capture], ON, keylogs=keylogs)
    opened.append(source)
    path = evidence.log(TLS_DECRYPTED)
    assert path is not None
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert records[0]["event"] == "keys"
    messages = [r for r in records if r["event"] in ("request", "tcp-message")]
    coverage = {r["flow"]: r for r in records if r["event"] == "coverage"}
    return messages, coverage, evidence.notes


def test_http1_tls12_chunked_and_tls13(
    tmp_path: Path, factory: SessionFactory, opened: list[PcapSource]
) -> None:
    sessions = [
        factory.http1("api.imagicle.com", [post("/v1/telemetry/beat", beat())], version="1.2"),
        factory.http1("api.imagicle.com", [post("/a?x=1", {"k": 1})] * 2, chunked=True),
    ]
    messages, coverage, _ = kept(tmp_path, sessions, [factory.keylog], opened)
    assert [(m["tls"]["version"], m["proto"], m["path"]) for m in messages] == [
        ("TLSv1.2", "HTTP/1.1", "/v1/telemetry/beat"),
        ("TLSv1.3", "HTTP/1.1", "/a?x=1"),
        ("TLSv1.3", "HTTP/1.1", "/a?x=1"),
    ]
    assert messages[0]["body"] == {"encoding": "json", "value": beat()}
    assert messages[1]["body"]["value"] == {"k": 1}  # de-chunked
    first = messages[0]
    assert (first["host"], first["port"], first["client"], first["server"]) == (
        "api.imagicle.com",
        443,
        "192.0.2.10",
        "198.51.100.7",
    )
    assert first["capture"] == "capture-0.pcap" and first["flow"] == 1 and first["packets"]
    assert all(c["covered"] and c["keys"] for c in coverage.values())
    assert coverage[1]["version"] == "TLSv1.2" and coverage[2]["why"] == "decrypted: 2 messages"


def test_http2_streams_grpc_protobuf_and_a_request_cut_short(
    tmp_path: Path, factory: SessionFactory, opened: list[PcapSource]
) -> None:
    protobuf = bytes([0x08, 0x2A, 0x12, 0x05]) + b"hello"  # field 1 = 42, field 2 = "hello"
    sessions = [
        factory.h2(
            "grpc.imagicle.com",
            [grpc("/p.v1.S/A", protobuf), post("/v1/x", {"n": 1}), post("/v1/y", {"n": 2})],
            cut=True,
        )
    ]
    messages, coverage, _ = kept(tmp_path, sessions, [factory.keylog], opened)
    assert [(m["h2_stream"], m["path"]) for m in messages] == [
        (1, "/p.v1.S/A"),
        (3, "/v1/x"),
        (5, "/v1/y"),
    ]
    grpc_body = messages[0]["body"]
    assert grpc_body["encoding"] == "grpc"
    assert grpc_body["messages"][0]["value"]["protobuf"] == [
        {"field": 1, "wire": "varint", "value": 42},
        {"field": 2, "wire": "len", "value": "hello"},
    ]
    assert ["content-type", "application/grpc"] in messages[0]["headers"]
    assert messages[2]["incomplete"].endswith("before END_STREAM")
    assert messages[2]["body"]["encoding"] == "text"  # half a JSON document
    assert coverage[1]["covered"]


def test_sessions_that_are_not_decrypted_say_why(
    tmp_path: Path, factory: SessionFactory, opened: list[PcapSource]
) -> None:
    good = factory.http1("api.imagicle.com", [post("/v1/licensing/poll", {"a": 1})])
    unkeyed = factory.http1("api.imagicle.com", [post("/v1/telemetry/beat", {})], keys=False)
    handshake_only = factory.raw("api.imagicle.com", [], keys=False)  # a TLS 1.3 Finished
    keyed_silent = factory.raw("api.imagicle.com", [])
    hello_only = factory.hello_only("api.imagicle.com", keys=False)
    wrong = factory.http1("grpc.imagicle.com", [post("/v1/telemetry/beat", {})])
    text = factory.keylog.read_text()
    random_of_wrong = text.splitlines()[-1].split()[1]
    broken = tmp_path / "wrong-keys.txt"
    lines = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[1] == random_of_wrong:
            lines.append(f"{fields[0]} {fields[1]} {'00' * (len(fields[2]) // 2)}")
        else:
            lines.append(line)
    broken.write_text("\n".join(lines) + "\n")
    _, coverage, notes = kept(
        tmp_path, [good, unkeyed, handshake_only, keyed_silent, wrong, hello_only], [broken], opened
    )
    why = {flow: (c["covered"], c["why"]) for flow, c in coverage.items()}
    assert why == {
        1: (True, "decrypted: 1 messages"),
        2: (False, "no key for its client random"),
        # without keys an encrypted Finished cannot be told from application data
        3: (False, "no key for its client random"),
        4: (True, "decrypted: the target sent no application data"),
        5: (False, "a key was given but tshark did not decrypt it (wrong secret?)"),
        6: (True, "the handshake did not complete: the target sent no application data"),
    }
    assert any("not decrypted: flow 2" in n and "flow 5" in n for n in notes)


def test_tls_on_an_unknown_port_and_a_protocol_tshark_cannot_dissect(
    tmp_path: Path, factory: SessionFactory, opened: list[PcapSource]
) -> None:
    sessions = [
        factory.http1("updates.example.net", [post("/check", {"v": 1})], port=9443),
        factory.raw("api.imagicle.com", [b"\x00\x01opaque"], port=9999, version="1.2"),
        factory.raw("api.imagicle.com", [b"\x00\x01opaque"], port=8883, version="1.2"),
    ]
    messages, coverage, _ = kept(tmp_path, sessions, [factory.keylog], opened)
    request, *raws = messages
    assert (request["host"], request["port"], request["path"]) == (
        "updates.example.net",
        9443,
        "/check",
    )
    by_port = {m["port"]: m for m in raws}
    assert by_port[8883]["event"] == "tcp-message"
    (unknown,) = [c for c in coverage.values() if c["server_port"] == 9999]
    if 9999 not in by_port:  # Wireshark 3.4: nothing dissected above TLS, so not covered
        assert not unknown["covered"] and "dissected no application protocol" in unknown["why"]
        return
    # Wireshark 4: what no dissector claims reaches its data dissector; either way the
    # decrypted bytes are kept, as the interceptor logs a raw TCP message.
    raw = by_port[9999]
    assert raw["event"] == "tcp-message" and raw["body"]["encoding"] == "binary"
    assert base64.b64decode(raw["body"]["base64"]) == b"\x00\x01opaque"
    assert all(c["covered"] for c in coverage.values())


def test_a_decrypted_session_with_nothing_dissected_is_not_covered() -> None:
    session = Session(0, 0, "192.0.2.10", 50000, "198.51.100.7", 8883, 1, client_random="ab")
    session.finished, session.opaque = True, 2
    covered, why = _why(session, {"ab": frozenset({"CLIENT_RANDOM"})})
    assert not covered and "dissected no application protocol" in why
    assert _why(None, {}) == (False, "tshark found no TLS session in it")


def test_a_decrypted_session_of_control_frames_only_says_so() -> None:
    """HTTP/2 SETTINGS and PING dissected, no request: covered, and not said to be a session
    without application data (how one whose requests tshark printed unread looked before)."""
    session = Session(0, 0, "192.0.2.10", 50000, "198.51.100.7", 443, 1, client_random="ab")
    session.finished, session.application = True, 2
    assert _why(session, {"ab": frozenset({"CLIENT_RANDOM"})}) == (
        True,
        "decrypted: no request in its 2 application packets (connection control only)",
    )


def test_plaintext_http_of_the_target_is_content_too(
    tmp_path: Path, factory: SessionFactory, opened: list[PcapSource]
) -> None:
    body = json.dumps(beat()).encode()
    head = (
        b"POST /v1/telemetry/beat HTTP/1.1\r\nHost: api.imagicle.com\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    factory.raw("grpc.imagicle.com", [])  # a key log exists
    sessions = [plaintext("api.imagicle.com", head + body)]
    messages, coverage, _ = kept(tmp_path, sessions, [factory.keylog], opened)
    (message,) = messages
    assert message["tls"] is None and message["scheme"] == "http" and message["port"] == 80
    assert coverage == {}  # not a TLS connection: nothing to decrypt


def test_several_key_logs_are_joined(
    tmp_path: Path, factory: SessionFactory, opened: list[PcapSource]
) -> None:
    sessions = [
        factory.http1("api.imagicle.com", [post("/v1/a", {})]),
        factory.http1("api.imagicle.com", [post("/v1/b", {})]),
    ]
    lines = factory.keylog.read_text().splitlines()
    first, second = tmp_path / "one.txt", tmp_path / "two.txt"
    first.write_text("\n".join(lines[:6]))  # no newline at the end: joined safely anyway
    second.write_text("\n".join(lines[6:]) + "\n")
    messages, _, notes = kept(tmp_path, sessions, [first, second], opened)
    assert [m["path"] for m in messages] == ["/v1/a", "/v1/b"]
    assert sum("TLS key log" in n for n in notes) == 2


def test_without_tshark_the_run_stops_before_judging(
    tmp_path: Path, factory: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory.raw("api.imagicle.com", [])
    monkeypatch.setattr(tshark_content.shutil, "which", lambda name: None)
    with pytest.raises(tshark_content.TsharkMissingError, match="apt-get install tshark"):
        check_inputs(SecretInputs((factory.keylog,)), [])


def test_the_display_filter_names_the_target_in_both_families() -> None:
    text = tshark_content.display_filter(["192.0.2.10", "2001:db8:1::10"])
    assert "ip.src in {192.0.2.10}" in text and "ipv6.src in {2001:db8:1::10}" in text
    assert "tls.handshake.type == 2" in text
    argv = tshark_content.tshark_argv(Path("c.pcap"), None, ["192.0.2.10"], [443, 9443])
    assert "tcp.port==9443,tls" in argv and "tcp.port==443,tls" not in argv
    assert not any(a.startswith("tls.keylog_file") for a in argv)


def test_an_interrupted_reading_leaves_no_tshark_running(
    tmp_path: Path, factory: SessionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = write_sessions(
        tmp_path / "c.pcap",
        [factory.http1("api.imagicle.com", [post("/v1/a", {})] * 3) for _ in range(3)],
    )
    started: list[Any] = []
    real = tshark_content.subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> Any:
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(tshark_content.subprocess, "Popen", spy)
    argv = tshark_content.tshark_argv(capture, factory.keylog, ["192.0.2.10"])
    packets = tshark_content.run_tshark(argv, [])
    next(packets)
    packets.close()  # what Ctrl-C or SIGTERM does to the reading loop
    (proc,) = started
    assert proc.returncode is not None


# --- what another Wireshark prints (fixtures/tshark/README.md) ------------------------------

RECORDED = Path(__file__).parents[2] / "fixtures" / "tshark"
LAB_TARGETS = frozenset({"192.0.2.10", "2001:db8:1::10"})


def _extracted(packets: Iterator[dict[str, Any]]) -> tuple[list[dict[str, Any]], Any]:
    records: list[dict[str, Any]] = []
    extractor = tshark_content.Extractor(
        0, "telemetry-h2.pcapng", LAB_TARGETS, None, records.append
    )
    for layers in packets:
        extractor.packet(layers)
    return records, extractor.close()


def _recorded(version: str = "4.4.19", edit: Any = None) -> Iterator[dict[str, Any]]:
    with gzip.open(RECORDED / f"telemetry-h2.ek-{version}.jsonl.gz", "rt") as lines:
        for line in lines:
            if not line.startswith('{"index"'):
                layers = json.loads(line)["layers"]
                yield edit(layers) if edit is not None else layers


@pytest.mark.parametrize(
    ("printed", "seconds"),
    [
        ("1700000000.256996000", 1700000000.256996),  # Wireshark before 4.2, and -T fields
        ("2023-11-14T22:13:20.256996000Z", 1700000000.256996),  # -T ek since 4.2
        ("2023-11-14T22:13:20Z", 1700000000.0),
        ("2023-11-14T23:13:20.5+01:00", 1700000000.5),
        ("1969-12-31T23:59:59.5Z", -0.5),
        (1700000000, 1700000000.0),
        ("2023-13-14T22:13:20Z", None),  # no 13th month
        ("2023-11-14 22:13:20Z", None),
        ("2023-11-14T22:13:20.1234567890Z", None),  # finer than nanoseconds: not tshark's
        ("nan", None),
        ("inf", None),
        ("", None),
        (True, None),
        (None, None),
    ],
)
def test_a_frame_time_is_read_as_either_wireshark_prints_it(printed: Any, seconds: Any) -> None:
    assert tshark_content.epoch_seconds(printed) == seconds


@pytest.mark.parametrize(
    ("printed", "name"),
    [
        ("0x0304", "TLSv1.3"),  # Wireshark before 4.6
        ("772", "TLSv1.3"),  # 4.6
        ("0x0303", "TLSv1.2"),
        ("771", "TLSv1.2"),
        (0x0301, "TLSv1"),
        ("0x7f1c", "0x7f1c"),  # a draft: in hex, whichever way it was printed
        ("32540", "0x7f1c"),
        ("0x10000", "0x10000"),  # not a 16-bit version: as printed
        ("TLS 1.3", "TLS 1.3"),
    ],
)
def test_a_tls_version_is_named_whichever_way_tshark_prints_it(printed: Any, name: str) -> None:
    assert tshark_content.tls_version_name(printed) == name


def test_both_forms_of_one_time_are_the_same_float() -> None:
    for fraction in ("000000001", "256996000", "999999999", "5", "123456"):
        iso = tshark_content.epoch_seconds(f"2023-11-14T22:13:20.{fraction}Z")
        assert iso == tshark_content.epoch_seconds(f"1700000000.{fraction}")


@pytest.mark.parametrize("version", ["3.4.10", "4.4.19", "4.6.9"])
def test_another_wiresharks_output_gives_the_messages_this_tshark_gives(version: str) -> None:
    """Debian 11's and RHEL 9's tshark (3.4) prints the HTTP/2 frames of one packet as one
    object, Debian 13's times in ISO 8601 and file data as hex, 4.6 numbers in decimal: the
    same capture gives the same messages as from the tshark here, whichever version that is."""
    if shutil.which("tshark") is None:
        pytest.skip("no tshark here to compare with")
    packets = list(_recorded(version))
    times = [layers["frame"]["frame_frame_time_epoch"] for layers in packets]
    if version.startswith("3."):  # the form this test is about
        merged = [p["http2"] for p in packets if isinstance(p.get("http2"), dict)]
        assert any(isinstance(h2.get("http2_http2_type"), list) for h2 in merged)
    else:
        assert all(str(t).endswith("Z") for t in times)
    if version.startswith("4.6"):
        versions = [layers["tls"] for layers in packets if "tls" in layers]
        assert '"tls_tls_handshake_version": "771"' in json.dumps(versions)
    recorded, recorded_result = _extracted(iter(packets))
    argv = tshark_content.tshark_argv(
        RECORDED / "telemetry-h2.pcapng", RECORDED / "telemetry-h2.keys", sorted(LAB_TARGETS)
    )
    problems: list[str] = []
    here, here_result = _extracted(tshark_content.run_tshark(argv, problems))
    assert problems == [] and recorded_result.problems == [] and here_result.problems == []
    assert [s.unread for s in recorded_result.sessions + here_result.sessions] == [None] * 6
    assert recorded and recorded == here
    assert {r["event"] for r in recorded} >= {"request"}
    assert all(r["t"] > 1.6e9 for r in recorded)
    assert {r["tls"]["version"] for r in recorded} == {"TLSv1.3"}


def test_a_time_in_no_known_form_is_said_once_and_loses_no_message() -> None:
    def garbled(layers: dict[str, Any]) -> dict[str, Any]:
        layers["frame"]["frame_frame_time_epoch"] = "next Tuesday"
        return layers

    good, _ = _extracted(_recorded())
    records, result = _extracted(_recorded(edit=garbled))
    assert [{**r, "t": 0.0} for r in good] == records
    assert result.problems == []  # every message was read: the connections stay covered
    (note,) = result.notes
    assert "times are in a form tshark never printed before ('next Tuesday')" in note
    assert note.startswith("14 packets'") and "and 9 more" in note


@pytest.mark.parametrize(
    "problem",
    [
        "tshark wrote a line that is not JSON (skipped)",
        "a packet's dissection is larger than 64 MiB of tshark output and was skipped",
        "tshark exited with status 2: tshark: out of memory",
    ],
)
def test_tshark_output_not_all_read_covers_no_connection_of_its_capture(
    tmp_path: Path,
    factory: SessionFactory,
    opened: list[PcapSource],
    monkeypatch: pytest.MonkeyPatch,
    problem: str,
) -> None:
    """A skipped line may have held any connection's message: none is claimed covered, so the
    telemetry controls cannot pass on what was read (fail closed), and the note says why."""
    real = tshark_content.run_tshark

    def skipping(argv: Any, problems: list[str]) -> Iterator[dict[str, Any]]:
        yield from real(argv, problems)
        problems.append(problem)

    monkeypatch.setattr(tshark_content, "run_tshark", skipping)
    sessions = [factory.http1("api.imagicle.com", [post("/v1/telemetry/beat", beat())])]
    messages, coverage, notes = kept(tmp_path, sessions, [factory.keylog], opened)
    assert len(messages) == 1  # what was read is kept
    (flow,) = coverage.values()
    assert not flow["covered"] and flow["why"] == (
        f"tshark's output of its capture was not all read: {problem}"
    )
    assert any(problem in note for note in notes)


def test_merged_http2_frames_that_cannot_be_split_leave_their_connection_uncovered() -> None:
    """Wireshark 3.4's one object for several frames, with raw bytes that do not hold them:
    the connection is not covered (its request may be unseen) and the others' messages stay."""

    def broken(layers: dict[str, Any]) -> dict[str, Any]:
        h2 = layers.get("http2")
        if isinstance(h2, dict) and "1" in h2.get("http2_http2_type", []):
            layers["http2_raw"] = layers["http2_raw"][:40]
        return layers

    good, _ = _extracted(_recorded("3.4.10"))
    records, result = _extracted(_recorded("3.4.10", edit=broken))
    assert [r["path"] for r in records] == ["/v1/licensing/poll"]
    assert [r["path"] for r in good if r["proto"] == "HTTP/1.1"] == ["/v1/licensing/poll"]
    assert result.problems == []
    unread = [s for s in result.sessions if s.unread is not None]
    assert len(unread) == 2
    covered, why = _why(unread[0], {})
    assert not covered
    assert why.startswith("not all it sent could be read: packet ")
    assert why.endswith("merged HTTP/2 frames end inside a frame (Wireshark 4 prints each apart)")


def test_merged_http1_requests_leave_their_connection_uncovered() -> None:
    def pipelined(layers: dict[str, Any]) -> dict[str, Any]:
        http = layers.get("http")
        if isinstance(http, dict) and "http_http_request_method" in http:
            http["http_http_request_method"] = ["POST", "POST"]
        return layers

    records, result = _extracted(_recorded("3.4.10", edit=pipelined))
    assert all(r["proto"] == "HTTP/2.0" for r in records) and len(records) == 2
    (session,) = [s for s in result.sessions if s.unread is not None]
    assert "several HTTP/1 requests as one" in str(session.unread)


def _renamed(layer: str, key: str) -> Any:
    def rename(layers: dict[str, Any]) -> dict[str, Any]:
        value = layers.get(layer)
        for instance in value if isinstance(value, list) else [value]:
            if isinstance(instance, dict) and key in instance:
                instance[key + "_renamed"] = instance.pop(key)
        return layers

    return rename


def _dropped(layers: dict[str, Any]) -> dict[str, Any]:
    layers.pop("http2", None)
    return layers


@pytest.mark.parametrize(
    ("edit", "why", "left"),
    [
        (_dropped, "tshark dissected HTTP/2 in it and printed no HTTP/2 frame", 1),
        (_renamed("http2", "http2_http2_type"), "an HTTP/2 frame without its type", 1),
        (_renamed("http", "http_http_request_method"), "an HTTP/1 request without its method", 2),
        (_renamed("http", "http_http_request"), "dissected HTTP in it and printed no request", 2),
    ],
)
def test_output_in_a_form_not_known_leaves_its_connection_uncovered(
    edit: Any, why: str, left: int
) -> None:
    """A tshark that names a field otherwise (or prints no layer for a protocol it says it
    dissected) would leave a request unseen in a connection claimed read: it is not covered."""
    records, result = _extracted(_recorded("4.4.19", edit=edit))
    assert len(records) == left  # what was read is kept
    unread = [s.unread for s in result.sessions if s.unread is not None]
    assert unread and all(why in str(u) for u in unread)
    for session in result.sessions:
        if session.unread is not None:
            assert _why(session, {})[0] is False
