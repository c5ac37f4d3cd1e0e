"""The general path's quick settling of simple frames (layers.LayerWalker._quick) changes
nothing: every capture here is observed with it and without it (the full walk), and every
fact must be the same. The cases cover what `_quick` takes (untagged link-layer control,
ICMP/ICMPv6 that is not an error) and each way a frame of that look must still take the
walk: VLAN tags, IP options, fragments, extension headers, errors quoting a packet, lengths
that lie either way, offload lengths of 0, headers cut short. A seeded fuzzer then damages
such frames byte by byte."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conformance.observe import layers
from conformance.observe.builder import observe_captures
from tests.capture_files import LINKTYPE_ETHERNET, write_pcap
from tests.compiled_paths import COMPILED_STEP, pure_python
from tests.observe.conftest import facts
from tests.observe.frames import T0

_MACS = bytes.fromhex("02000000000b02000000000a")
_V4 = (bytes([192, 0, 2, 10]), bytes([198, 51, 100, 7]))
_V6 = (
    bytes.fromhex("20010db8000100000000000000000010"),
    bytes.fromhex("20010db8ffff00000000000000000007"),
)


def _icmp4(icmp_type: int, code: int = 0, body: bytes = b"\0" * 12, **ip: int) -> bytes:
    payload = bytes((icmp_type, code)) + b"\0\0" + body
    ihl = ip.get("ihl", 5)
    total = ip.get("total", ihl * 4 + len(payload))
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        total,
        1,
        ip.get("frag", 0),
        64,
        ip.get("proto", 1),
        0,
        *(_V4[::-1] if ip.get("back") else _V4),
    )
    options = b"\x01" * (ihl * 4 - 20)
    return _MACS + b"\x08\x00" + header + options + payload


def _icmp6(icmp_type: int, code: int = 0, body: bytes = b"\0" * 20, **ip: int) -> bytes:
    payload = bytes((icmp_type, code)) + b"\0\0" + body
    length = ip.get("payload", len(payload))
    header = struct.pack(
        "!IHBB16s16s",
        0x60000000,
        length,
        ip.get("nh", 58),
        64,
        *(_V6[::-1] if ip.get("back") else _V6),
    )
    return _MACS + b"\x86\xdd" + header + payload


def _vlan(frame: bytes) -> bytes:
    return frame[:12] + b"\x81\x00\x00\x07" + frame[12:]


def _quoted4() -> bytes:
    """An ICMP error's body: 4 unused bytes, then the IPv4/UDP header it quotes."""
    inner = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 1, 0, 64, 17, 0, *_V4) + struct.pack(
        "!HHHH", 40000, 53, 8, 0
    )
    return b"\0\0\0\0" + inner


CASES: dict[str, list[bytes]] = {
    "link control": [
        _MACS + b"\x08\x06" + b"\0" * 28,  # ARP
        _MACS + b"\x88\xcc" + b"\0" * 20,  # LLDP
        _MACS + b"\x08\x06",  # ARP with nothing behind the type
        _vlan(_MACS + b"\x08\x06" + b"\0" * 28),
        _MACS + b"\x00\x26" + b"\x42\x42\x03" + b"\0" * 35,  # 802.3 length: STP over LLC
        _MACS[:10],  # shorter than an Ethernet header
    ],
    "icmp": [
        _icmp4(8),
        _icmp4(0, back=1),
        _icmp4(8),  # a second request on the same flow
        _icmp4(13),  # timestamp
        _icmp4(8, 5, back=1),  # an echo request with a code: the flow's second "port"
        _icmp4(9, 3),  # router advertisement: no counterpart, one way
        _icmp4(42, 1),  # extended echo
        _icmp4(200, 7),  # a type nobody defined
        _icmp4(8, total=900),  # longer than what was captured: counted at its IP length
    ],
    "icmp that must take the walk": [
        _icmp4(3, 3, _quoted4()),  # port unreachable, quoting UDP
        _icmp4(11, 0, _quoted4()),  # time exceeded
        _icmp4(3, 3, b"\0\0"),  # an error quoting too little
        _icmp4(8, ihl=6),  # IP options
        _icmp4(8, frag=0x2000),  # first fragment
        _icmp4(8, frag=0x0004),  # last fragment
        _icmp4(8, total=0),  # offload: length 0
        _icmp4(8, total=22),  # the ICMP header reaches past the datagram
        _icmp4(8, total=19),  # shorter than the IP header
        _icmp4(8)[:36],  # cut inside the ICMP header
        _vlan(_icmp4(8)),
        _icmp4(8, proto=2),  # IGMP
    ],
    "icmpv6": [
        _icmp6(128),
        _icmp6(129, back=1),
        _icmp6(135),  # neighbour solicitation
        _icmp6(136, back=1),
        _icmp6(133),  # router solicitation
        _icmp6(128, 3, back=1),
        _icmp6(134, back=1),
        _icmp6(143),  # MLDv2 report: one way
        _icmp6(255, 9),
        _icmp6(128, payload=1200),  # longer than what was captured
    ],
    "icmpv6 that must take the walk": [
        _icmp6(1, 4, b"\0" * 4 + _quoted4()),  # an error (quoting IPv4: not understood)
        _icmp6(128, payload=0),  # jumbogram or offload
        _icmp6(128, payload=2),  # shorter than the ICMPv6 header
        _icmp6(128, nh=0),  # an extension header first
        _icmp6(128)[:56],  # cut inside the ICMPv6 header
        _vlan(_icmp6(135)),
        _icmp6(128)[:14] + bytes([0x45]) + _icmp6(128)[15:],  # version 4 in an IPv6 frame
    ],
}


@contextmanager
def _quick(enabled: bool) -> Iterator[None]:
    saved = layers.QUICK_FRAMES
    layers.QUICK_FRAMES = enabled
    try:
        yield
    finally:
        layers.QUICK_FRAMES = saved


def _same_with_and_without(tmp_path: Path, frames: list[bytes]) -> None:
    timed = [(T0 + i * 0.01, f) for i, f in enumerate(frames)]
    path = write_pcap(tmp_path / "frames.pcap", timed, LINKTYPE_ETHERNET)
    with _quick(True):
        quick = observe_captures([path])
    with _quick(False):
        walked = observe_captures([path])
    assert facts(quick) == facts(walked)
    c = quick.captures[0]
    assert c.decoded + c.link_control_frames + c.not_understood_frames == c.packets


@pytest.mark.parametrize("case", sorted(CASES))
def test_quick_settling_is_the_walk(case: str, tmp_path: Path) -> None:
    _same_with_and_without(tmp_path, CASES[case])


def test_all_cases_interleaved_with_each_other(tmp_path: Path) -> None:
    frames = [f for case in sorted(CASES) for f in CASES[case]]
    random.Random(7).shuffle(frames)
    _same_with_and_without(tmp_path, frames * 2)


def test_damaged_frames_are_settled_as_the_walk_settles_them(tmp_path: Path) -> None:
    _same_with_and_without(tmp_path, _damaged(20261203, 3000))


def test_the_quick_path_takes_the_common_frames() -> None:
    from conformance.observe.ingest import CaptureIngest

    ingest = CaptureIngest(0)
    walker = ingest.walker
    for frame in (*CASES["link control"][:2], *CASES["icmp"], *CASES["icmpv6"]):
        assert walker._quick(T0, frame, 0, len(frame), 0, 1)
    for frame in (*CASES["icmp that must take the walk"], *CASES["icmpv6 that must take the walk"]):
        assert not walker._quick(T0, frame, 0, len(frame), 0, 1)


def _damaged(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    seeds = [f for case in sorted(CASES) for f in CASES[case]]
    frames = []
    for _ in range(count):
        frame = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(12, len(frame)) if len(frame) > 12 else 0
            frame[at] = rng.randrange(256)
        if rng.random() < 0.2:
            frame = frame[: rng.randrange(len(frame) + 1)]
        frames.append(bytes(frame))
    return frames


@pytest.mark.skipif(not COMPILED_STEP, reason="the compiled step is not built")
def test_the_compiled_quick_settling_is_the_python_one(tmp_path: Path) -> None:
    frames = [f for case in sorted(CASES) for f in CASES[case]] * 2 + _damaged(20261204, 3000)
    timed = [(T0 + i * 0.01, f) for i, f in enumerate(frames)]
    path = write_pcap(tmp_path / "frames.pcap", timed, LINKTYPE_ETHERNET)
    compiled = observe_captures([path])
    with pure_python():
        python = observe_captures([path])
    assert facts(compiled) == facts(python)


@pytest.mark.skipif(not COMPILED_STEP, reason="the compiled step is not built")
def test_the_compiled_step_settles_the_common_frames_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    general: list[int] = []
    frame = layers.LayerWalker.frame

    def counted(self: layers.LayerWalker, *args: Any) -> None:
        general.append(args[-1])
        frame(self, *args)

    monkeypatch.setattr(layers.LayerWalker, "frame", counted)
    common = (*CASES["link control"][:2], *CASES["icmp"], *CASES["icmpv6"])
    timed = [(T0 + i * 0.01, f) for i, f in enumerate(common)]
    path = write_pcap(tmp_path / "frames.pcap", timed, LINKTYPE_ETHERNET)
    obs = observe_captures([path])
    assert general == []
    assert obs.captures[0].decoded + obs.captures[0].link_control_frames == len(common)
    walk = CASES["icmp that must take the walk"] + CASES["icmpv6 that must take the walk"]
    timed = [(T0 + i * 0.01, f) for i, f in enumerate(walk)]
    observe_captures([write_pcap(tmp_path / "walk.pcap", timed, LINKTYPE_ETHERNET)])
    assert len(general) == len(walk)
