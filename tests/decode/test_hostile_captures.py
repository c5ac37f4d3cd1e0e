"""Hostile capture files: damaged pcapng blocks and link labels that lie about the packet.

Decision 10: one bad block is a counted packet, never an error for the run nor the end of
the file when its framing (leading and trailing length) still holds; a label (EtherType,
link type) is not trusted over the bytes it labels.
"""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from conformance.decode.capture_reader import LINKTYPE_UNDEFINED_INTERFACE
from conformance.decode.ip import decode_ip
from conformance.decode.keylog import DSB_TYPE, KeyLogError, pcapng_secrets
from conformance.decode.link import ETHERTYPE_IPV4, ETHERTYPE_IPV6, LINKTYPE_IPV4, LINKTYPE_IPV6
from conformance.observe.builder import observe_captures
from tests.capture_files import (
    LINKTYPE_ETHERNET,
    Epb,
    Interface,
    RawBlock,
    pcapng_section,
    write_bytes,
)
from tests.compiled_paths import COMPILED_WALK, pure_python
from tests.decode.test_capture_reader import read_all
from tests.observe.conftest import assert_every_frame_accounted, facts

TARGET, OUTSIDE, INSIDE = "192.0.2.10", "203.0.113.5", "192.0.2.20"
TARGET6, OUTSIDE6 = "2001:db8:1::10", "2001:db8:ff::5"
LEAK = bytes(IP(src=TARGET, dst=OUTSIDE) / TCP(sport=41000, dport=443, flags="S"))
LEAK6 = bytes(IPv6(src=TARGET6, dst=OUTSIDE6) / TCP(sport=41000, dport=443, flags="S"))
ETH_LEAK = bytes(Ether(type=0x0800)) + LEAK
PLAIN = [
    bytes(Ether() / IP(src=TARGET, dst=INSIDE) / TCP(sport=40000 + i, dport=8443, flags="S"))
    for i in range(3)
]
_EPB_CAPTURED_AT = 20  # type, length, interface, timestamp (2), then the captured length


def _packets(path: Path) -> list[tuple[bytes, int, int]]:
    """(frame, original length, link type) of every record: the same walked and iterated,
    in tiny chunks, compiled and pure (test_capture_reader.read_all)."""
    _, packets = read_all(path)
    return [(frame, orig, lt) for _, frame, orig, lt, _ in packets]


def _truncated(path: Path) -> str | None:
    reader, _ = read_all(path)
    return reader.truncated_detail


def _observed_flows(path: Path) -> set[tuple[str, str]]:
    obs = observe_captures([path])
    assert_every_frame_accounted(obs)
    if COMPILED_WALK:
        with pure_python():
            assert facts(observe_captures([path])) == facts(obs)
    return {(str(f.initiator), str(f.responder)) for f in obs.flows}


# -- pcapng blocks too short for their fields --------------------------------------------


def test_interface_block_too_short_at_the_end_is_no_error(tmp_path: Path) -> None:
    # A 12-byte IDB: reading its link type ran past the file (struct.error: every control
    # of the run became `error`, the leak before it unjudged).
    path = write_bytes(tmp_path / "idb.pcapng", pcapng_section([*PLAIN, ETH_LEAK, RawBlock(1)]))
    assert len(_packets(path)) == 4
    assert _truncated(path) is None


def test_interface_block_too_short_numbers_an_undescribed_interface(tmp_path: Path) -> None:
    # Its packets are not read with the link type of whatever bytes followed the block.
    records = [PLAIN[0], RawBlock(1), Epb(PLAIN[1], interface=1), PLAIN[2]]
    path = write_bytes(tmp_path / "idb-mid.pcapng", pcapng_section(records))
    link_types = [lt for _, _, lt in _packets(path)]
    assert link_types == [LINKTYPE_ETHERNET, LINKTYPE_UNDEFINED_INTERFACE, LINKTYPE_ETHERNET]


def test_simple_packet_block_too_short_is_an_empty_packet(tmp_path: Path) -> None:
    # A 12-byte SPB has no original length: its captured length came out negative.
    path = write_bytes(tmp_path / "spb.pcapng", pcapng_section([PLAIN[0], RawBlock(3), ETH_LEAK]))
    packets = _packets(path)
    assert packets[1] == (b"", 0, LINKTYPE_ETHERNET)
    assert len(packets) == 3


def test_enhanced_packet_block_too_short_does_not_end_the_file(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "epb.pcapng", pcapng_section([PLAIN[0], RawBlock(6, bytes(4)), ETH_LEAK])
    )
    packets = _packets(path)
    assert packets[1] == (b"", 0, LINKTYPE_UNDEFINED_INTERFACE)
    assert packets[2][0] == ETH_LEAK
    assert _truncated(path) is None


def test_captured_length_past_the_block_is_cut_and_reading_goes_on(tmp_path: Path) -> None:
    # Both lengths of the block agree, so the blocks after it are sound: the leak after
    # a lying captured length was never read (the file's reading stopped there).
    data = bytearray(pcapng_section([PLAIN[0], PLAIN[1], ETH_LEAK]))
    first = 28 + 20  # after the SHB and the IDB
    second = first + struct.unpack_from("<I", data, first + 4)[0]
    struct.pack_into("<I", data, second + _EPB_CAPTURED_AT, 5000)
    path = write_bytes(tmp_path / "cap.pcapng", bytes(data))
    packets = _packets(path)
    assert [p[0] for p in packets[::2]] == [PLAIN[0], ETH_LEAK]
    assert packets[1][0] == PLAIN[1] + bytes(-len(PLAIN[1]) & 3)  # all the block holds
    assert packets[1][1] == 5000  # counted as cut short
    assert _truncated(path) is None
    assert (TARGET, OUTSIDE) in _observed_flows(path)


def test_section_header_too_short_stops_with_a_reason(tmp_path: Path) -> None:
    short_shb = struct.pack("<IIIHHI", 0x0A0D0D0A, 20, 0x1A2B3C4D, 1, 0, 20)
    path = write_bytes(tmp_path / "shb.pcapng", pcapng_section([PLAIN[0]]), short_shb)
    detail = _truncated(path)
    assert detail is not None
    assert "section header shorter than its fields" in detail


# -- link labels that disagree with the packet ----------------------------------------------


def test_version_nibble_decides_over_the_ethertype() -> None:
    ip = decode_ip(LEAK, 0, len(LEAK), ETHERTYPE_IPV6)
    assert (ip.version, ipaddress.ip_address(ip.src), ipaddress.ip_address(ip.dst)) == (
        4,
        ipaddress.ip_address(TARGET),
        ipaddress.ip_address(OUTSIDE),
    )
    ip6 = decode_ip(LEAK6, 0, len(LEAK6), ETHERTYPE_IPV4)
    assert (ip6.version, ipaddress.ip_address(ip6.dst)) == (6, ipaddress.ip_address(OUTSIDE6))


def test_ipv4_under_an_ipv6_link_type_is_the_targets_flow(tmp_path: Path) -> None:
    # Read as IPv6, the leak showed "addresses" from the wrong offsets and was settled as
    # someone else's not-understood frame: an air-gapped judgement passed.
    records = [*PLAIN, Epb(LEAK, interface=1), Epb(LEAK6, interface=2)]
    interfaces = (Interface(), Interface(LINKTYPE_IPV6), Interface(LINKTYPE_IPV4))
    path = write_bytes(tmp_path / "labels.pcapng", pcapng_section(records, interfaces))
    flows = _observed_flows(path)
    assert (TARGET, OUTSIDE) in flows
    assert (TARGET6, OUTSIDE6) in flows


def test_ipv4_under_the_ipv6_ethertype_is_the_targets_flow(tmp_path: Path) -> None:
    frame = bytes(Ether(type=0x86DD)) + LEAK
    path = write_bytes(tmp_path / "ethertype.pcapng", pcapng_section([*PLAIN, frame]))
    assert (TARGET, OUTSIDE) in _observed_flows(path)


# -- decryption secrets blocks -----------------------------------------------------------------


def test_secrets_block_too_short_is_a_one_line_error(tmp_path: Path) -> None:
    # A 12-byte DSB at the end: its secrets type and length were read past the file
    # (struct.error: a traceback instead of exit 3 naming the block).
    path = write_bytes(tmp_path / "dsb.pcapng", pcapng_section([PLAIN[0], RawBlock(DSB_TYPE)]))
    with pytest.raises(KeyLogError, match=r"DSB at byte \d+: block of 12 bytes has no room"):
        pcapng_secrets(path)
