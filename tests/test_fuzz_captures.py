"""Fuzzing the observers and the air-gapped judges with mutated captures (controls.md decision 10).

Seeded and bounded: three base captures (plain Ethernet, a VXLAN mirror, an ERSPAN mirror of
IPv6 traffic), each with one leak packet among clean traffic (fragments, VLAN tags, ARP,
NBNS, TLS, LDAP, DNS, SIP), and MUTANTS_PER_BASE mutants of each: one to three bytes
changed (a bit flipped, an interesting value, a random byte) in another packet's frame, in
the leak packet's frame, or in the file structure (file header, record headers). Every
mutant is observed and judged in-process; then

- nothing raises, whatever the bytes (one bad packet is never an error), except the
  one-line refusal of a file whose header is no capture header (exit 3), and every frame is
  decoded, link-layer control or not understood (the counts add up to the packets);
- a mutant whose leak packet's frame is intact never passes: the bytes of other packets
  cannot hide the leak;
- a mutant that passes although its leak packet (or the file structure) was changed must
  no longer show the leak to tshark either: no packet from the target to the leak's
  destination in `tshark -T fields -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst`, every
  layer looked at. Leak-packet mutants are checked in one tshark run over all of them.
"""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Packet, Raw

from conformance.errors import CaptureError
from conformance.judge import air_gapped
from conformance.observe.builder import observe_captures
from conformance.verdict import Verdict
from tests import defects
from tests import encapsulations as enc
from tests.byte_mutations import change_bytes
from tests.defects import DNS_SERVER, OUTSIDE, OUTSIDE6, TARGET, TARGET6, _Clock, _mac

# 3 bases x 800 mutants: a few thousand captures in well under a minute (about 8 ms each).
MUTANTS_PER_BASE = 800
SEED = 20261123
# Values that break length fields and flags more often than uniform random bytes do.
_INTERESTING = (0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x0F, 0x10, 0x40, 0x45, 0x7F, 0x80, 0xFF)
_PCAP_HEADER = 24
_RECORD_HEADER = 16
_JUDGES = (air_gapped.egress, air_gapped.ingress, air_gapped.cloud_names, air_gapped.onprem)


@dataclass(slots=True)
class Base:
    """A capture as bytes, where each record and its frame are, and which frame leaks."""

    name: str
    data: bytes
    records: list[tuple[int, int]]  # (record header offset, frame length)
    leak: int  # index of the leak packet
    leak_ends: tuple[str, str]  # (target address, leak destination)

    def frame_span(self, index: int) -> tuple[int, int]:
        start, length = self.records[index]
        return start + _RECORD_HEADER, start + _RECORD_HEADER + length


@dataclass(slots=True)
class Outcome:
    leak_passes: list[bytes] = field(default_factory=list)  # mutated leak frames that passed
    structure_passes: list[Path] = field(default_factory=list)
    clean_passes: list[str] = field(default_factory=list)
    raised: list[str] = field(default_factory=list)


def _pcap(packets: Sequence[Packet]) -> tuple[bytes, list[tuple[int, int]]]:
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
    records = []
    for packet in packets:
        frame = bytes(packet)
        micros = round(float(packet.time) * 1_000_000)
        records.append((len(out), len(frame)))
        out += struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(frame), len(frame))
        out += frame
    return bytes(out), records


def _background() -> list[Packet]:
    """Clean traffic with fragments, VLAN tags, ARP and NBNS besides the usual services."""
    datagram = (
        IP(src=TARGET, dst=DNS_SERVER, id=0x7777) / UDP(sport=53999, dport=53) / Raw(bytes(2400))
    )
    fragments = [
        Ether(src=_mac(TARGET), dst=_mac(DNS_SERVER)) / f for f in fragment(datagram, 1000)
    ]
    nbns = (
        struct.pack("!6H", 1, 0x0110, 1, 0, 0, 0) + b"\x20" + b"EN" * 15 + b"AA\x00\x00\x20\x00\x01"
    )
    return [
        *defects.clean_onprem_traffic(),
        *fragments,
        Ether(src=_mac(TARGET), dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=TARGET, pdst=DNS_SERVER),
        Ether(src=_mac(TARGET), dst=_mac(DNS_SERVER))
        / Dot1Q(vlan=20)
        / IP(src=TARGET, dst=DNS_SERVER)
        / UDP(sport=123, dport=123)
        / Raw(b"\x23" + bytes(47)),
        defects._frame(TARGET, "192.0.2.255", UDP(sport=137, dport=137) / Raw(nbns)),
    ]


def _with_leak(
    leak: Packet, wrap: Callable[[list[Packet]], list[Packet]] = list
) -> tuple[list[Packet], int]:
    background = _background()
    middle = len(background) // 2
    frames = _Clock().stamp([*background[:middle], leak, *background[middle:]])
    return wrap(frames), middle


def _bases() -> list[Base]:
    syn = defects._frame(TARGET, OUTSIDE, TCP(sport=51234, dport=443, flags="S", seq=1000))
    syn6 = defects._frame(TARGET6, OUTSIDE6, TCP(sport=51235, dport=443, flags="S", seq=1000))
    bases = []
    for name, leak, wrap, ends in (
        ("plain", syn, list, (TARGET, OUTSIDE)),
        ("vxlan-mirror", syn, enc.vxlan_mirror, (TARGET, OUTSIDE)),
        ("erspan-mirror-ipv6", syn6, enc.erspan_ii_mirror, (TARGET6, OUTSIDE6)),
    ):
        frames, index = _with_leak(leak, wrap)
        data, records = _pcap(frames)
        bases.append(Base(name, data, records, index, ends))
    return bases


def _verdicts(path: Path) -> tuple[Verdict, ...]:
    obs = observe_captures([path])
    for c in obs.captures:  # decision 10, on every mutant: each frame in exactly one count
        if c.decoded + c.link_control_frames + c.not_understood_frames != c.packets:
            raise AssertionError(f"frames unaccounted for: {c}")
    profile = defects.defect_profile()
    return tuple(judge(obs, profile).verdict for judge in _JUDGES)


def _structure_span(base: Base, rng: random.Random) -> tuple[int, int]:
    if rng.random() < 0.1:
        return 0, _PCAP_HEADER
    start, _ = base.records[rng.randrange(len(base.records))]
    return start, start + _RECORD_HEADER


def _fuzz(base: Base, tmp_path: Path, rng: random.Random) -> Outcome:
    outcome = Outcome()
    leak_start, leak_end = base.frame_span(base.leak)
    others = [i for i in range(len(base.records)) if i != base.leak]
    for n in range(MUTANTS_PER_BASE):
        data = bytearray(base.data)
        roll = rng.random()
        if roll < 0.45:
            kind = "clean"
            start, end = base.frame_span(rng.choice(others))
        elif roll < 0.85:
            kind = "leak"
            start, end = leak_start, leak_end
        else:
            kind = "structure"
            start, end = _structure_span(base, rng)
        change_bytes(data, start, end, rng, _INTERESTING)
        path = tmp_path / f"{base.name}-{n}.pcap"
        path.write_bytes(bytes(data))
        try:
            got = _verdicts(path)
        except CaptureError:
            # A file header that is no pcap header: the user's bad input, refused with a
            # one-line error (exit 3) before anything is judged. Not a packet.
            assert kind == "structure"
            continue
        except Exception as err:  # the property under test: nothing raises
            outcome.raised.append(f"{path.name}: {type(err).__name__}: {err}")
            continue
        if any(v is not Verdict.PASS for v in got):
            path.unlink()
            continue
        if kind == "clean":
            outcome.clean_passes.append(path.name)
        elif kind == "leak":
            outcome.leak_passes.append(bytes(data[leak_start:leak_end]))
            path.unlink()
        else:
            outcome.structure_passes.append(path)
    return outcome


def _tshark_pairs(path: Path) -> list[set[tuple[str, str]]]:
    """Per packet, every (source, destination) pair tshark shows, IPv4 and IPv6, any layer."""
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed: passing mutants cannot be cross-checked")
    fields = ["-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst"]
    options = ["-E", "occurrence=a", "-E", "aggregator=;", "-E", "separator=|"]
    done = subprocess.run(
        [tshark, "-n", "-r", str(path), "-T", "fields", *fields, *options],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out = []
    for line in done.stdout.splitlines():
        cells = [*line.split("|"), "", "", ""][:4]
        pairs = set()
        for src, dst in ((cells[0], cells[1]), (cells[2], cells[3])):
            pairs.update(zip(src.split(";"), dst.split(";"), strict=False))
        out.append(pairs)
    return out


def _shows_leak(pairs: set[tuple[str, str]], ends: tuple[str, str]) -> bool:
    return ends in pairs


@pytest.mark.parametrize("base", _bases(), ids=lambda b: b.name)
def test_mutated_captures(base: Base, tmp_path: Path) -> None:
    whole = tmp_path / "base.pcap"
    whole.write_bytes(base.data)
    assert any(v is Verdict.FAIL for v in _verdicts(whole)), "the base capture must fail"
    clean = bytearray(base.data)
    start, end = base.frame_span(base.leak)
    outcome = _fuzz(base, tmp_path, random.Random(f"{SEED}-{base.name}"))
    assert not outcome.raised, outcome.raised[:5]
    assert not outcome.clean_passes, outcome.clean_passes[:5]
    if outcome.leak_passes:
        leak_frames = [Raw(frame) for frame in outcome.leak_passes]
        for i, packet in enumerate(leak_frames):
            packet.time = 1_700_000_000 + i
        batch = tmp_path / "leak-passes.pcap"
        batch.write_bytes(_pcap(leak_frames)[0])
        shown = [
            i for i, pairs in enumerate(_tshark_pairs(batch)) if _shows_leak(pairs, base.leak_ends)
        ]
        assert not shown, [outcome.leak_passes[i].hex() for i in shown[:3]]
    for path in outcome.structure_passes:
        assert not any(_shows_leak(p, base.leak_ends) for p in _tshark_pairs(path)), path.name
    assert clean[start:end]  # the base's leak frame was there to mutate
