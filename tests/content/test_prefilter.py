"""The capture cut down for tshark: only the wanted connections' packets, in order, each
mapped back to its number in the capture; a connection whose packets are not all found (one
the Observations decoded through a tunnel the cut does not look into) sends tshark the whole
capture instead."""

from __future__ import annotations

from pathlib import Path

from conformance.content.prefilter import subset, wanted_flows
from conformance.decode.capture_file import open_capture
from conformance.observe.builder import observe_captures
from tests.tls_sessions import SessionFactory, plaintext, write_sessions


def test_only_the_wanted_connection_is_kept_and_numbers_map_back(tmp_path: Path) -> None:
    factory = SessionFactory(tmp_path)
    sessions = [
        factory.raw("api.imagicle.com", [b"one"]),
        plaintext("api.imagicle.com", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        factory.raw("grpc.imagicle.com", [b"two"]),
    ]
    capture = write_sessions(tmp_path / "c.pcap", sessions)
    observations = observe_captures([capture])
    wanted = wanted_flows(observations, 0, [3])
    cut = subset(capture, wanted, tmp_path / "cut.pcapng")
    assert cut is not None
    (flow,) = wanted
    assert cut.frames == tuple(range(flow.first_packet, flow.last_packet + 1))
    assert cut.original(1) == flow.first_packet
    with open_capture(cut.path) as reader:
        kept = list(reader.packets())
    assert len(kept) == flow.packets_out + flow.packets_in
    with open_capture(capture) as reader:
        times = [record[0] for record in reader.packets()]
    assert [record[0] for record in kept] == [times[n - 1] for n in cut.frames]


def test_a_connection_not_wholly_found_sends_the_whole_capture(tmp_path: Path) -> None:
    import dataclasses

    factory = SessionFactory(tmp_path)
    capture = write_sessions(tmp_path / "c.pcap", [factory.raw("api.imagicle.com", [b"x"])])
    (flow,) = observe_captures([capture]).flows
    # As if the Observations had seen more of it (decoded through a tunnel the cut ignores).
    bigger = dataclasses.replace(flow, packets_out=flow.packets_out + 1)
    assert subset(capture, [bigger], tmp_path / "cut.pcapng") is None
    assert not (tmp_path / "cut.pcapng").exists()
