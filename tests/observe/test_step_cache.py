"""The compiled step's entry cache (observe/_step.pyx) holds counts back between packets.

The `observe` fixture observes every capture with the compiled step and with the Python one
(and in parts) and compares every fact; these captures are built to reach each path where a
held count could be lost or read stale: more directions than the cache has slots (evictions
of slots holding counts), a SYN that retires a 5-tuple's connection while other directions
are cached, the general path counting into a cached direction (VLAN tags, IP options), and
payload inspection between packets of one direction. The counts are also checked against
what was sent, so a loss shared by both steps fails too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from conformance.observe.builder import observe_captures
from conformance.observe.records import Observations
from tests.capture_files import LINKTYPE_ETHERNET, write_pcap
from tests.compiled_paths import COMPILED_STEP, pure_python
from tests.observe.conftest import facts
from tests.observe.frames import T0, tcp, udp

Observe = Callable[..., Observations]
_MACS = bytes.fromhex("02000000000b02000000000a")
CACHE_SLOTS = 32768  # _step.pyx _SLOTS


def _udp_frame(src: int, dst: int, sport: int, dport: int, payload: bytes = b"\x80\x00ab") -> bytes:
    """Ethernet/IPv4/UDP, built by hand: scapy is too slow for tens of thousands of frames."""
    udp_len = 8 + len(payload)
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + udp_len, 1, 0, 64, 17, 0, src, dst)
    return _MACS + b"\x08\x00" + ip + struct.pack("!HHHH", sport, dport, udp_len, 0) + payload


def _vlan(frame: bytes, vid: int = 7) -> bytes:
    return frame[:12] + struct.pack("!HH", 0x8100, vid) + frame[12:]


def _with_ip_options(frame: bytes) -> bytes:
    """The same packet with one 4-byte IP option (NOPs): IHL 6, the general path's."""
    ip = bytearray(frame[14:34])
    ip[0] = 0x46
    struct.pack_into("!H", ip, 2, struct.unpack_from("!H", ip, 2)[0] + 4)
    return frame[:14] + bytes(ip) + b"\x01\x01\x01\x01" + frame[34:]


def _by_ports(obs: Observations) -> dict[tuple[int, int], tuple[int, int]]:
    return {(f.initiator_port, f.responder_port): (f.packets_out, f.packets_in) for f in obs.flows}


@pytest.mark.skipif(not COMPILED_STEP, reason="the compiled step is not built")
def test_more_directions_than_slots_keep_every_count(tmp_path: Path) -> None:
    # Compiled and Python steps only (the observe fixture's other comparisons take a minute
    # on this many directions and test nothing the cache adds).
    base_src, base_dst = 0xC0000200, 0xC6336400  # 192.0.2.0, 198.51.100.0
    flows = CACHE_SLOTS + 1_000
    frames: list[tuple[float, bytes]] = []
    t = T0
    # The first round creates every direction (Python runs for each); in the second, nothing
    # but the hot path runs: slots are evicted holding counts, and more directions are held
    # than the list of held slots has room for.
    for _ in range(2):
        for i in range(flows):
            src = base_src + (i % 200) + 1
            sport = 1024 + i // 200
            frames.append((t, _udp_frame(src, base_dst + 7, sport, 5004)))
            t += 1e-5
    path = write_pcap(tmp_path / "many.pcap", frames, LINKTYPE_ETHERNET)
    obs = observe_captures([path])
    with pure_python():
        assert facts(observe_captures([path])) == facts(obs)
    per_flow = sorted(f.packets_out + f.packets_in for f in obs.flows)
    assert sum(per_flow) == len(frames)
    assert obs.captures[0].packets == len(frames)
    assert per_flow[0] == per_flow[-1] == 2
    assert len(obs.flows) == flows


def test_general_path_and_hot_path_count_into_one_direction(observe: Observe) -> None:
    src, dst = 0xC000020A, 0xC6336407
    plain = [_udp_frame(src, dst, 40000, 5004), _udp_frame(dst, src, 5004, 40000)]
    frames = []
    for i in range(40):
        frame = plain[i % 2]
        if i % 5 == 1:
            frame = _vlan(frame)
        elif i % 7 == 3:
            frame = _with_ip_options(frame)
        frames.append(frame)
    obs = observe(frames)
    assert _by_ports(obs) == {(40000, 5004): (20, 20)}


def test_a_syn_that_retires_a_connection_keeps_the_other_directions_counts(
    observe: Observe,
) -> None:
    other = [udp(sport=41000 + i) for i in range(5)]
    back = {"src": "198.51.100.7", "dst": "192.0.2.10", "sport": 443, "dport": 51000}
    first = [
        tcp(flags="S", seq=100),
        tcp(**back, flags="SA", seq=900, ack=101),  # type: ignore[arg-type]
        tcp(flags="A", seq=101, ack=901),
        tcp(flags="FA", seq=101, ack=901),
        tcp(**back, flags="FA", seq=901, ack=102),  # type: ignore[arg-type]
    ]
    again = [
        tcp(flags="S", seq=5000),
        tcp(**back, flags="SA", seq=7000, ack=5001),  # type: ignore[arg-type]
        tcp(flags="A", seq=5001, ack=7001),
    ]
    frames = []
    for part in (first, again):
        for frame in part:
            frames.append(frame)
            frames.extend(other)  # UDP directions counted between every TCP segment
    obs = observe(frames)
    tcp_flows = [(f.packets_out, f.packets_in) for f in obs.flows if f.transport == "tcp"]
    assert tcp_flows == [(3, 2), (2, 1)]  # the answer counts in the new connection
    udp_counts = [f.packets_out for f in obs.flows if f.transport == "udp"]
    assert udp_counts == [8] * 5
