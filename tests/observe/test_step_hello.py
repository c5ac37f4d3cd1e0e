"""The compiled step reads the usual TLS first payload itself (observe/_step.pyx
`_usual_hello`): a whole ClientHello without ECH or a ServerHello that is not a
HelloRetryRequest, in one handshake record behind a sound TCP header. Everything else goes
to PayloadInspector.inspect. The `observe` fixture compares every fact with the Python step;
here the split itself is checked, so a path that quietly stopped taking (or started taking)
a payload shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

from conformance.observe import payloads
from conformance.observe.builder import observe_captures
from conformance.observe.payloads import PayloadInspector
from conformance.observe.records import EchKind, Observations, PayloadKind
from tests.capture_files import write_pcap
from tests.compiled_paths import COMPILED_STEP
from tests.observe.conftest import Observe
from tests.observe.frames import (
    CLIENT,
    CLIENT6,
    SERVER,
    SERVER6,
    client_hello,
    eth,
    server_hello,
    tcp,
    tcp6,
    timed,
)
from tests.quic_captures import ech_client_hello, hello_retry_request

pytestmark = pytest.mark.skipif(not COMPILED_STEP, reason="the compiled step is not built")


@pytest.fixture
def inspected(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The packet numbers PayloadInspector.inspect was asked about."""
    asked: list[int] = []
    original = PayloadInspector.inspect

    def spy(self: PayloadInspector, *args: Any) -> None:
        asked.append(args[-1])
        original(self, *args)

    monkeypatch.setattr(PayloadInspector, "inspect", spy)
    yield asked


def _exchange(request: bytes, response: bytes, v6: bool = False) -> list[bytes]:
    """SYN, SYN-ACK, then the client's first payload and the server's."""
    if v6:
        return [
            tcp6(CLIENT6, SERVER6, 51000, 443, "S"),
            tcp6(SERVER6, CLIENT6, 443, 51000, "SA"),
            tcp6(CLIENT6, SERVER6, 51000, 443, "PA", request),
            tcp6(SERVER6, CLIENT6, 443, 51000, "PA", response),
        ]
    return [
        tcp(CLIENT, SERVER, 51000, 443, "S"),
        tcp(SERVER, CLIENT, 443, 51000, "SA", seq=5000, ack=1001),
        tcp(CLIENT, SERVER, 51000, 443, "PA", request, seq=1001, ack=5001),
        tcp(SERVER, CLIENT, 443, 51000, "PA", response, seq=5001, ack=1001 + len(request)),
    ]


def _with_options(options: list[tuple[str, Any]], payload: bytes) -> bytes:
    segment = TCP(sport=51000, dport=443, flags="PA", seq=1001, ack=5001, options=options)
    return eth(IP(src=CLIENT, dst=SERVER) / segment / payload)


def _compiled_step_asks(frames: list[bytes], inspected: list[int], tmp_path: Path) -> set[int]:
    """The packets the compiled step alone hands to the inspector (the `observe` fixture
    runs the Python step too)."""
    inspected.clear()
    observe_captures([write_pcap(tmp_path / "once.pcap", timed(frames))])
    return set(inspected)


@pytest.mark.parametrize("v6", [False, True])
def test_usual_hellos_are_read_without_the_inspector(
    observe: Observe, inspected: list[int], v6: bool, tmp_path: Path
) -> None:
    frames = _exchange(client_hello("api.imagicle.com"), server_hello(), v6)
    _assert_read(observe(frames))
    assert not {3, 4} & _compiled_step_asks(frames, inspected, tmp_path)


def _assert_read(obs: Observations) -> None:
    (flow,) = obs.flows
    (hello,) = obs.client_hellos
    (answer,) = obs.server_hellos
    assert (flow.payload_out, flow.payload_in) == (PayloadKind.TLS, PayloadKind.TLS)
    assert flow.first_payload_packet == 3
    # A TLS payload's head is its record header (flows.TLS_HEAD_BYTES): no finding shows more.
    assert flow.payload_head_out[:3] == b"\x16\x03\x01" and len(flow.payload_head_out) == 5
    assert (hello.flow_id, hello.packet, hello.sni, hello.alpn) == (
        1,
        3,
        "api.imagicle.com",
        ("h2", "http/1.1"),
    )
    assert (hello.ech, hello.segments) == (EchKind.NONE, 1)
    assert (answer.flow_id, answer.packet, answer.version, answer.cipher_suite) == (
        1,
        4,
        0x0304,
        0x1301,
    )


def test_timestamps_and_padding_options_are_sound(
    observe: Observe, inspected: list[int], tmp_path: Path
) -> None:
    frames = _exchange(client_hello("api.imagicle.com"), server_hello())
    options = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2)), ("EOL", None)]
    frames[2] = _with_options(options, client_hello("api.imagicle.com"))
    _assert_read(observe(frames))
    assert 3 not in _compiled_step_asks(frames, inspected, tmp_path)


@pytest.mark.parametrize(
    ("why", "first"),
    [
        ("ECH", ech_client_hello("public.example", 7)),
        ("not TLS", b"GET / HTTP/1.1\r\nHost: api.imagicle.com\r\n\r\n"),
        ("a record version TLS does not have", b"\x16\x05" + client_hello()[2:]),
    ],
)
def test_other_first_payloads_go_to_the_inspector(
    observe: Observe, inspected: list[int], why: str, first: bytes, tmp_path: Path
) -> None:
    frames = _exchange(first, server_hello())
    observe(frames)
    assert 3 in _compiled_step_asks(frames, inspected, tmp_path), why


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize("cuts", [(60,), (9,), (5, 70), (30, 31, 32)])
def test_a_hello_in_segments_is_collected_and_read_without_the_inspector(
    observe: Observe, inspected: list[int], v6: bool, cuts: tuple[int, ...], tmp_path: Path
) -> None:
    """A ClientHello one record holds whole, sent in several segments: begun from the first
    payload, collected, and read when complete, in C, with the inspector's record (its
    packet is the last segment's, `segments` how many there were)."""
    hello = client_hello("api.imagicle.com")
    pieces = [hello[a:b] for a, b in zip((0, *cuts), (*cuts, len(hello)), strict=True)]
    send = tcp6 if v6 else tcp
    client, server = (CLIENT6, SERVER6) if v6 else (CLIENT, SERVER)
    frames = [send(client, server, 51000, 443, "S"), send(server, client, 443, 51000, "SA")]
    frames += [send(client, server, 51000, 443, "PA", piece) for piece in pieces]
    frames.append(send(server, client, 443, 51000, "PA", server_hello()))
    obs = observe(frames)
    (record,) = obs.client_hellos
    last = 2 + len(pieces)
    assert (record.sni, record.packet, record.segments) == ("api.imagicle.com", last, len(pieces))
    assert len(obs.server_hellos) == 1
    asked = _compiled_step_asks(frames, inspected, tmp_path)
    # a first piece too short to show the handshake header goes to the inspector
    assert not set(range(4 if len(pieces[0]) < 9 else 3, last + 2)) & asked


def test_a_hello_that_never_ends_is_begun_in_c_and_given_up_as_the_inspector_does(
    observe: Observe,
) -> None:
    obs = observe(_exchange(client_hello("api.imagicle.com")[:-3], server_hello()))
    (record,) = obs.client_hellos  # its server name was there: read from what came
    assert (record.sni, record.packet) == ("api.imagicle.com", 3)
    (capture,) = obs.captures
    (why,) = capture.payload_not_understood
    assert (why.reason, why.frames) == ("TLS: ClientHello incomplete", (3,))


def test_a_hello_in_too_many_segments_is_given_up_as_the_inspector_does(
    observe: Observe,
) -> None:
    hello = client_hello("api.imagicle.com", padding=200)
    size = len(hello) // 20 + 1
    pieces = [hello[i : i + size] for i in range(0, len(hello), size)]
    frames = [tcp(CLIENT, SERVER, 51000, 443, "S"), tcp(SERVER, CLIENT, 443, 51000, "SA")]
    frames += [tcp(CLIENT, SERVER, 51000, 443, "PA", piece) for piece in pieces]
    obs = observe(frames)
    (capture,) = obs.captures
    (why,) = capture.payload_not_understood
    assert why.reason == "TLS: ClientHello incomplete"
    assert why.frames == (2 + payloads.MAX_HELLO_SEGMENTS,)  # the last segment it waited for


def test_hello_retry_request_goes_to_the_inspector(
    observe: Observe, inspected: list[int], tmp_path: Path
) -> None:
    frames = _exchange(client_hello(), hello_retry_request(ech_confirmed=False))
    assert observe(frames).server_hellos == ()  # not the server's choice yet
    assert 4 in _compiled_step_asks(frames, inspected, tmp_path)


def _with_raw_options(raw: bytes, payload: bytes) -> bytes:
    """The client's first payload behind TCP options `raw` (a multiple of 4 bytes)."""
    frame = _with_options([("NOP", None)] * len(raw), payload)
    return frame[:54] + raw + frame[54 + len(raw) :]


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x01\x00\x00",  # not zero padding after the end of the list
        b"\x02\x08\x05\xb4",  # an MSS whose length runs past the header
        b"\x01\x01\x01\x05",  # a kind with no room for its length
    ],
)
def test_options_that_do_not_parse_go_to_the_inspector(
    observe: Observe, inspected: list[int], raw: bytes, tmp_path: Path
) -> None:
    frames = _exchange(client_hello(), server_hello())
    frames[2] = _with_raw_options(raw, client_hello())
    observe(frames)
    assert 3 in _compiled_step_asks(frames, inspected, tmp_path)


def test_a_hello_reader_that_breaks_leaves_it_to_the_inspector(
    inspected: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A failing `quick_hello` changes nothing: inspect reads it again and counts the error."""

    def broken(_payload: bytes) -> None:
        raise ValueError("broken")

    monkeypatch.setattr(payloads, "quick_hello", broken)
    path = write_pcap(tmp_path / "broken.pcap", timed(_exchange(client_hello(), server_hello())))
    obs = observe_captures([path])
    assert 3 in inspected and 4 in inspected
    reasons = {r.reason: r.count for r in obs.captures[0].payload_not_understood}
    assert reasons == {"TLS: ValueError": 2}


def _syn_with_options(raw: bytes, v6: bool, payload: bytes = b"") -> bytes:
    """A SYN carrying TCP options `raw` (a multiple of 4 bytes) and `payload`."""
    segment = TCP(sport=51000, dport=443, flags="S", seq=1000, options=[("NOP", None)] * len(raw))
    frame = eth(
        (IPv6(src=CLIENT6, dst=SERVER6) if v6 else IP(src=CLIENT, dst=SERVER)) / segment / payload
    )
    at = (54 if v6 else 34) + 20
    return frame[:at] + raw + frame[at + len(raw) :]


_SYN_OPTIONS = b"\x02\x04\x05\xb4\x04\x02\x08\x0a\x00\x00\x00\x01\x00\x00\x00\x00\x01\x03\x03\x07"


@pytest.mark.parametrize("v6", [False, True])
def test_a_segment_with_sound_options_and_no_payload_is_not_inspected(
    observe: Observe, inspected: list[int], v6: bool, tmp_path: Path
) -> None:
    """A SYN's options (MSS, SACK, timestamps, window scale) hide nothing: inspect would
    read nothing, so the compiled step does not ask it (every new connection did)."""
    frames = _exchange(client_hello("api.imagicle.com"), server_hello(), v6)
    frames[0] = _syn_with_options(_SYN_OPTIONS, v6)
    _assert_read(observe(frames))
    assert 1 not in _compiled_step_asks(frames, inspected, tmp_path)


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize(
    ("raw", "payload"),
    [
        (b"\x00\x01\x00\x00" + bytes(16), b""),  # not zero padding after the end of the list
        (b"\x01" * 16 + b"\x02\x08\x05\xb4", b""),  # an MSS whose length runs past the header
        (_SYN_OPTIONS, b"data"),  # sound options, then bytes: read
    ],
)
def test_a_segment_that_may_hide_bytes_is_still_inspected(
    observe: Observe, inspected: list[int], v6: bool, raw: bytes, payload: bytes, tmp_path: Path
) -> None:
    frames = _exchange(client_hello(), server_hello(), v6)
    frames[0] = _syn_with_options(raw, v6, payload)
    observe(frames)
    assert 1 in _compiled_step_asks(frames, inspected, tmp_path)


def _tunnel(hello: bytes, answer: bytes) -> list[bytes]:
    """A CONNECT, the proxy's 200, then the ClientHello and ServerHello inside the tunnel."""
    request = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    status = b"HTTP/1.1 200 Connection established\r\n\r\n"
    c, s = 1001 + len(request), 5001 + len(status)
    return [
        tcp(CLIENT, SERVER, 51000, 3128, "S"),
        tcp(SERVER, CLIENT, 3128, 51000, "SA", seq=5000, ack=1001),
        tcp(CLIENT, SERVER, 51000, 3128, "PA", request, seq=1001, ack=5001),
        tcp(SERVER, CLIENT, 3128, 51000, "PA", status, seq=5001, ack=c),
        tcp(CLIENT, SERVER, 51000, 3128, "PA", hello, seq=c, ack=s),
        tcp(SERVER, CLIENT, 3128, 51000, "PA", answer, seq=s, ack=c + len(hello)),
        tcp(CLIENT, SERVER, 51000, 3128, "PA", _APPLICATION_DATA, seq=c + len(hello)),
    ]


_APPLICATION_DATA = b"\x17\x03\x03\x00\x05hello"


def test_the_hellos_of_a_connect_tunnel_are_read_without_the_inspector(
    observe: Observe, inspected: list[int], tmp_path: Path
) -> None:
    """After CONNECT both sides look for a hello (W_SEARCH, the client's side also for a
    request): the usual hellos are read in C, with the same records and the same end of
    the search."""
    frames = _tunnel(client_hello("api.imagicle.com"), server_hello())
    obs = observe(frames)
    (hello,), (answer,) = obs.client_hellos, obs.server_hellos
    assert (hello.flow_id, hello.packet, hello.sni, answer.packet) == (1, 5, "api.imagicle.com", 6)
    assert [r.method for r in obs.http_requests] == ["CONNECT"]
    # and the search is over: the tunnel's next bytes are not looked at
    assert not {5, 6, 7} & _compiled_step_asks(frames, inspected, tmp_path)


@pytest.mark.parametrize(
    ("why", "hello", "answer", "asked"),
    [
        ("ECH", ech_client_hello("public.example", 7), server_hello(), {5}),
        ("half a hello", client_hello()[:60], server_hello(), {5}),
        ("a retry", client_hello(), hello_retry_request(ech_confirmed=False), {6}),
        ("a request in the tunnel", b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", b"", {5}),
    ],
)
def test_other_tunnel_payloads_go_to_the_inspector(
    observe: Observe,
    inspected: list[int],
    why: str,
    hello: bytes,
    answer: bytes,
    asked: set[int],
    tmp_path: Path,
) -> None:
    frames = _tunnel(hello, answer) if answer else [*_tunnel(hello, b"")[:5]]
    observe(frames)
    assert asked <= _compiled_step_asks(frames, inspected, tmp_path), why
