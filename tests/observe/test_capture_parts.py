"""One capture observed in parts (observe/capture_parts.py): owners, forks, joins, fallbacks.

The `observe` fixture (conftest.py) already observes every observe test's capture in 2 and 3
parts and compares with the one pass. Here: the owner rule itself, the forked children,
and the captures where the parts cannot join exactly (and the one pass decides).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPerror, TCPerror, UDPerror
from scapy.layers.l2 import Dot1Q, Ether

from conformance.errors import CaptureError
from conformance.observe import builder, capture_parts, ingest
from conformance.observe.builder import observe_captures
from conformance.observe.capture_parts import CapturePart, parts_for
from conformance.observe.frame_owner import frame_owner
from tests.capture_files import write_pcap
from tests.compiled_paths import COMPILED_STEP, parts_in_process
from tests.observe.conftest import facts
from tests.observe.frames import CLIENT, MAC_A, MAC_B, SERVER, T0, tcp, udp

PHONES = [f"192.0.2.{n}" for n in range(100, 160)]


def _calls(packets_per_call: int = 20) -> list[tuple[float, bytes]]:
    """RTP-like UDP calls between the target and many phones, interleaved, plus TCP."""
    frames: list[tuple[float, bytes]] = []
    t = T0
    for i in range(packets_per_call):
        for n, phone in enumerate(PHONES):
            t += 0.001
            frames.append((t, udp(CLIENT, phone, 20000 + n, 30000 + n, b"\x80\x00" + bytes(40))))
            t += 0.001
            frames.append((t, udp(phone, CLIENT, 30000 + n, 20000 + n, b"\x80\x00" + bytes(40))))
        t += 0.001
        frames.append((t, tcp(CLIENT, SERVER, 51000, 8443, "S" if i == 0 else "A", seq=i)))
    return frames


@pytest.fixture
def joins(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Whether each join of parts was exact (True) or fell back to one pass (False)."""
    seen: list[bool] = []
    real = builder.join_parts

    def spy(parts: list[CapturePart]) -> CapturePart | None:
        joined = real(parts)
        seen.append(joined is not None)
        return joined

    monkeypatch.setattr(builder, "join_parts", spy)
    yield seen


def _one_pass_and_parts(path: Path, parts: int) -> tuple[object, object]:
    return facts(observe_captures([path])), facts(observe_captures([path], parts=parts))


# --- the owner rule --------------------------------------------------------------------------


def test_both_directions_of_a_conversation_have_one_owner() -> None:
    for phone in PHONES:
        there = udp(CLIENT, phone, 1000, 2000)
        back = udp(phone, CLIENT, 2000, 1000)
        for parts in (2, 3, 4):
            assert frame_owner(there, 0, len(there), 1, parts) == frame_owner(
                back, 0, len(back), 1, parts
            )


def test_the_pairs_spread_over_the_parts() -> None:
    owners = {frame_owner(f, 0, len(f), 1, 2) for f in (udp(CLIENT, p) for p in PHONES)}
    assert owners == {0, 1}


def test_tcp_connections_between_two_hosts_spread_over_the_parts() -> None:
    """A target and its proxy: one address pair, many connections (each one owner)."""
    owners = set()
    for port in range(50000, 50040):
        there = tcp(CLIENT, SERVER, port, 3128, "S")
        back = tcp(SERVER, CLIENT, 3128, port, "SA")
        owner = frame_owner(there, 0, len(there), 1, 2)
        assert frame_owner(back, 0, len(back), 1, 2) == owner
        owners.add(owner)
    assert owners == {0, 1}


def test_an_icmp_error_quoting_tcp_belongs_to_its_connection() -> None:
    for port in range(50000, 50040):
        quoted = IPerror(src=CLIENT, dst=SERVER) / TCPerror(sport=port, dport=443)
        error = bytes(
            Ether(src=MAC_B, dst=MAC_A) / IP(src="203.0.113.1", dst=CLIENT) / ICMP(type=3) / quoted
        )
        flow = tcp(CLIENT, SERVER, port, 443)
        assert frame_owner(error, 0, len(error), 1, 3) == frame_owner(flow, 0, len(flow), 1, 3)


def test_part_zero_owns_the_smaller_share() -> None:
    """Part 0 also hashes and copies the capture: one share of three with two parts."""
    counts = [0, 0]
    for port in range(20000, 26000):
        frame = tcp(CLIENT, SERVER, port, 443)
        counts[frame_owner(frame, 0, len(frame), 1, 2)] += 1
    assert 0.25 < counts[0] / sum(counts) < 0.42


def test_an_icmp_error_belongs_to_the_packet_it_quotes() -> None:
    router = "203.0.113.1"
    for phone in PHONES:
        quoted = IP(src=CLIENT, dst=phone) / UDPerror(sport=1000, dport=2000)
        error = bytes(
            Ether(src=MAC_B, dst=MAC_A) / IP(src=router, dst=CLIENT) / ICMP(type=3, code=3) / quoted
        )
        flow = udp(CLIENT, phone, 1000, 2000)
        assert frame_owner(error, 0, len(error), 1, 4) == frame_owner(flow, 0, len(flow), 1, 4)


def test_vlan_tags_do_not_change_the_owner() -> None:
    for phone in PHONES:
        plain = udp(CLIENT, phone)
        tagged = bytes(
            Ether(src=MAC_A, dst=MAC_B)
            / Dot1Q(vlan=7)
            / Dot1Q(vlan=8)
            / IP(src=CLIENT, dst=phone)
            / UDP(sport=40000, dport=5004)
        )
        assert frame_owner(tagged, 0, len(tagged), 1, 3) == frame_owner(plain, 0, len(plain), 1, 3)


def test_frames_without_a_reachable_ip_header_are_part_zeros() -> None:
    arp = bytes.fromhex("ffffffffffff02000000000a0806") + bytes(28)
    assert frame_owner(arp, 0, len(arp), 1, 4) == 0
    assert frame_owner(b"\x45", 0, 1, 101, 4) == 0  # too short for its IPv4 header
    assert frame_owner(bytes(60), 0, 60, 147, 4) == 0  # a link type without IP


@pytest.mark.skipif(not COMPILED_STEP, reason="the compiled step is not built")
def test_the_compiled_owner_is_the_python_one() -> None:
    from conformance.observe import _step  # type: ignore[attr-defined]

    rng = random.Random(17)
    samples = [udp(CLIENT, p) for p in PHONES] + [tcp()]
    for _ in range(20_000):
        frame = bytearray(rng.choice(samples))
        for _ in range(rng.randrange(4)):  # damage a few bytes anywhere
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        cut = bytes(frame[: rng.randrange(len(frame) + 1)])
        lead = bytes(rng.randrange(3))
        buf = lead + cut
        lt = rng.choice((0, 1, 1, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147))
        parts = rng.choice((1, 2, 3, 4))
        assert _step.frame_owner(buf, len(lead), len(cut), lt, parts) == frame_owner(
            buf, len(lead), len(cut), lt, parts
        ), (buf.hex(), lt, parts)


# --- when to split ---------------------------------------------------------------------------


def test_small_files_are_read_in_one_pass_unless_parts_are_asked_for() -> None:
    assert parts_for(1 << 20, None) == 1
    assert parts_for(1 << 20, 3) == 3
    cores = len(os.sched_getaffinity(0))
    expected = min(cores - 1, capture_parts.MAX_PARTS) if cores >= 3 else 1
    assert parts_for(1 << 40, None) == expected


def test_a_file_written_to_while_its_parts_were_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_pcap(tmp_path / "calls.pcap", _calls())
    real = builder._read_part
    calls = []

    def then_written(*args: object, **kwargs: object) -> CapturePart:
        part = real(*args, **kwargs)  # type: ignore[arg-type]
        calls.append(part)
        if len(calls) == 1:  # after part 0: the same size, other bytes
            data = bytearray(path.read_bytes())
            data[-1] ^= 0xFF
            path.write_bytes(bytes(data))
        return part

    monkeypatch.setattr(builder, "_read_part", then_written)
    with parts_in_process(), pytest.raises(CaptureError, match="changed while it was being read"):
        observe_captures([path], parts=2)


def test_parts_whose_file_looks_touched_are_read_again_in_one_pass(
    tmp_path: Path, joins: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_pcap(tmp_path / "calls.pcap", _calls())
    one = facts(observe_captures([path]))
    stamps = iter(range(100))
    monkeypatch.setattr(builder, "file_identity", lambda _path: (next(stamps),))
    with parts_in_process():
        split = facts(observe_captures([path], parts=2))
    assert joins == []  # not even tried
    assert split == one


# --- forked parts ----------------------------------------------------------------------------


def test_forked_parts_join_into_the_one_pass(tmp_path: Path, joins: list[bool]) -> None:
    path = write_pcap(tmp_path / "calls.pcap", _calls())
    one, split = _one_pass_and_parts(path, 2)
    assert joins == [True]
    assert split == one


def test_a_failed_child_has_its_part_read_here(
    tmp_path: Path, joins: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_pcap(tmp_path / "calls.pcap", _calls())
    parent = os.getpid()
    real = ingest.CaptureIngest.run_reader

    def fails_in_children(self: ingest.CaptureIngest, reader: object) -> None:
        if os.getpid() != parent:
            raise RuntimeError("a child that fails")
        real(self, reader)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest.CaptureIngest, "run_reader", fails_in_children)
    one, split = _one_pass_and_parts(path, 3)
    assert joins == [True]
    assert split == one


def test_a_part_that_cannot_be_forked_is_read_here(
    tmp_path: Path, joins: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_pcap(tmp_path / "calls.pcap", _calls())

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(capture_parts.os, "fork", no_fork)
    before = len(os.listdir("/proc/self/fd"))
    one, split = _one_pass_and_parts(path, 3)
    assert joins == [True]
    assert split == one
    assert len(os.listdir("/proc/self/fd")) == before  # no pipe left open


def test_children_are_reaped_when_this_part_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_pcap(tmp_path / "calls.pcap", _calls())
    parent = os.getpid()
    real = ingest.CaptureIngest.run_reader

    def fails_here(self: ingest.CaptureIngest, reader: object) -> None:
        if os.getpid() == parent:
            raise KeyboardInterrupt
        real(self, reader)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest.CaptureIngest, "run_reader", fails_here)
    forked: list[int] = []
    real_fork = os.fork

    def recorded_fork() -> int:
        pid = real_fork()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(capture_parts.os, "fork", recorded_fork)
    with pytest.raises(KeyboardInterrupt):
        observe_captures([path], parts=3)
    assert len(forked) == 2
    for pid in forked:  # killed and reaped: no longer this process's child at all
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


# --- captures whose parts cannot join exactly --------------------------------------------------


def test_time_running_backwards_is_judged_in_one_pass(tmp_path: Path, joins: list[bool]) -> None:
    frames = _calls(4)
    frames[50] = (frames[50][0] - 100.0, frames[50][1])
    path = write_pcap(tmp_path / "back.pcap", frames)
    with parts_in_process():
        one, split = _one_pass_and_parts(path, 2)
    assert joins == [False]
    assert split == one


def test_a_fragment_set_given_up_on_is_judged_in_one_pass(
    tmp_path: Path, joins: list[bool]
) -> None:
    first = IP(src=CLIENT, dst=PHONES[0], id=7, flags="MF", frag=0) / UDP(sport=1, dport=2)
    frames = _calls(2)
    t = frames[-1][0]
    frames.append((t + 1, bytes(Ether(src=MAC_A, dst=MAC_B) / first / bytes(64))))
    later = IP(src=CLIENT, dst=PHONES[1], id=8, flags="MF", frag=0) / UDP(sport=3, dport=4)
    frames.append((t + 90, bytes(Ether(src=MAC_A, dst=MAC_B) / later / bytes(64))))
    frames.append((t + 91, udp(CLIENT, PHONES[0], 20000, 30000)))
    path = write_pcap(tmp_path / "fragments.pcap", frames)
    with parts_in_process():
        one, split = _one_pass_and_parts(path, 2)
    assert joins == [False]
    assert split == one


def test_a_dns_table_that_could_fill_up_is_judged_in_one_pass(
    tmp_path: Path, joins: list[bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scapy.layers.dns import DNS, DNSQR

    monkeypatch.setattr(capture_parts, "MAX_PENDING_QUERIES", 2)
    frames = _calls(2)
    t = frames[-1][0]
    for n, phone in enumerate(PHONES[:4]):
        query = (
            IP(src=phone, dst=CLIENT)
            / UDP(sport=5000 + n, dport=53)
            / DNS(id=n, qd=DNSQR(qname="api.imagicle.com"))
        )
        frames.append((t + n, bytes(Ether(src=MAC_A, dst=MAC_B) / query)))
    path = write_pcap(tmp_path / "dns.pcap", frames)
    with parts_in_process():
        one, split = _one_pass_and_parts(path, 2)
    assert joins == [False]
    assert split == one


def test_flows_of_one_conversation_in_two_parts_are_judged_in_one_pass(
    tmp_path: Path, joins: list[bool]
) -> None:
    """The same inner flow inside tunnels between different endpoints: one flow, two owners."""
    inner = IP(src=CLIENT, dst=SERVER) / UDP(sport=1111, dport=2222) / b"\x80\x00data"
    frames = _calls(2)
    t = frames[-1][0]
    for n, endpoint in enumerate(PHONES[:8]):
        outer = Ether(src=MAC_A, dst=MAC_B) / IP(src="203.0.113.1", dst=endpoint) / inner
        frames.append((t + n * 0.01, bytes(outer)))
    path = write_pcap(tmp_path / "tunnels.pcap", frames)
    owners = {frame_owner(f, 0, len(f), 1, 2) for _, f in frames[-8:]}
    assert owners == {0, 1}, "the test needs the tunnels in both parts"
    with parts_in_process():
        one, split = _one_pass_and_parts(path, 2)
    assert joins == [False]
    assert split == one
