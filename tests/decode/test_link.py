"""Link-layer headers: where the network header starts, and what it is."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from conformance.decode.errors import DecodeError
from conformance.decode.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_LLC,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    MAX_VLAN_TAGS,
    network_layer,
)
from tests.observe.frames import MAC_A, MAC_B

IPV4 = bytes(IP(src="192.0.2.1", dst="198.51.100.2") / UDP(sport=1, dport=2))
IPV6 = bytes.fromhex("6000000000081140") + bytes(32) + bytes(8)


def decode(linktype: int, frame: bytes) -> tuple[int, int, int]:
    return network_layer(linktype, frame, 0, len(frame))


def test_ethernet() -> None:
    frame = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src="192.0.2.1", dst="198.51.100.2"))
    assert decode(LINKTYPE_ETHERNET, frame) == (ETHERTYPE_IPV4, 14, 0)


def test_802_1q_and_qinq_tags_are_skipped() -> None:
    one = bytes(Ether(src=MAC_A, dst=MAC_B) / Dot1Q(vlan=10) / IP(src="192.0.2.1"))
    assert decode(LINKTYPE_ETHERNET, one) == (ETHERTYPE_IPV4, 18, 0)
    qinq = bytes(
        Ether(src=MAC_A, dst=MAC_B) / Dot1AD(vlan=100) / Dot1Q(vlan=10) / IP(src="192.0.2.1")
    )
    assert qinq[12:14] == b"\x88\xa8"
    assert decode(LINKTYPE_ETHERNET, qinq) == (ETHERTYPE_IPV4, 22, 0)


@pytest.mark.parametrize("tpid", [0x8100, 0x88A8, 0x9100])
def test_stacked_tags_of_every_tpid(tpid: int) -> None:
    # Outer type tpid, TCI 7, inner type tpid, TCI 8, then IPv6.
    frame = bytes(12) + struct.pack("!H", tpid) + b"\x00\x07" + struct.pack("!H", tpid)
    frame += b"\x00\x08\x86\xdd" + IPV6
    assert decode(LINKTYPE_ETHERNET, frame) == (ETHERTYPE_IPV6, 22, 0)


def test_too_many_vlan_tags() -> None:
    frame = bytes(12) + b"\x81\x00" + b"\x00\x01\x81\x00" * (MAX_VLAN_TAGS + 1) + IPV4
    with pytest.raises(DecodeError, match="stacked VLAN tags"):
        decode(LINKTYPE_ETHERNET, frame)


def test_non_ip_and_802_3_frames() -> None:
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    assert decode(LINKTYPE_ETHERNET, arp)[0] == 0x0806
    llc = bytes(12) + b"\x00\x26" + bytes(38)  # a length, not a type
    assert decode(LINKTYPE_ETHERNET, llc)[0] == ETHERTYPE_LLC


@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, 12, 14])
def test_raw_ip_by_version_nibble(linktype: int) -> None:
    assert decode(linktype, IPV4) == (ETHERTYPE_IPV4, 0, 0)
    assert decode(linktype, IPV6) == (ETHERTYPE_IPV6, 0, 0)
    with pytest.raises(DecodeError, match="bad IP version 5"):
        decode(linktype, b"\x50" + IPV4[1:])


def test_raw_ipv4_and_ipv6_link_types() -> None:
    assert decode(LINKTYPE_IPV4, IPV4) == (ETHERTYPE_IPV4, 0, 0)
    assert decode(LINKTYPE_IPV6, IPV6) == (ETHERTYPE_IPV6, 0, 0)


@pytest.mark.parametrize(("pkttype", "direction"), [(0, 1), (1, 1), (2, 1), (3, 0), (4, 2)])
def test_linux_cooked_v1(pkttype: int, direction: int) -> None:
    header = struct.pack("!HHH8sH", pkttype, 1, 6, MAC_A.encode()[:8], 0x0800)
    assert decode(LINKTYPE_LINUX_SLL, header + IPV4) == (ETHERTYPE_IPV4, 16, direction)


def test_linux_cooked_v1_with_vlan_tag() -> None:
    header = struct.pack("!HHH8sH", 4, 1, 6, bytes(8), 0x8100) + b"\x00\x0a\x86\xdd"
    assert decode(LINKTYPE_LINUX_SLL, header + IPV6) == (ETHERTYPE_IPV6, 20, 2)


def test_linux_cooked_v2() -> None:
    header = struct.pack("!HHIHBB8s", 0x86DD, 0, 3, 1, 4, 6, bytes(8))
    assert len(header) == 20
    assert decode(LINKTYPE_LINUX_SLL2, header + IPV6) == (ETHERTYPE_IPV6, 20, 2)


@pytest.mark.parametrize(
    ("header", "ethertype"),
    [
        (struct.pack("<I", 2), ETHERTYPE_IPV4),  # little-endian writer
        (struct.pack(">I", 2), ETHERTYPE_IPV4),  # big-endian writer
        (struct.pack("<I", 24), ETHERTYPE_IPV6),  # NetBSD/OpenBSD
        (struct.pack(">I", 28), ETHERTYPE_IPV6),  # FreeBSD
        (struct.pack("<I", 30), ETHERTYPE_IPV6),  # macOS
    ],
)
def test_bsd_null_loopback(header: bytes, ethertype: int) -> None:
    assert decode(LINKTYPE_NULL, header + IPV4)[:2] == (ethertype, 4)


def test_loopback_family_that_is_not_ip() -> None:
    with pytest.raises(DecodeError, match="loopback address family 7"):
        decode(LINKTYPE_NULL, struct.pack("<I", 7) + IPV4)


def test_openbsd_loop_is_network_order() -> None:
    assert decode(LINKTYPE_LOOP, struct.pack(">I", 2) + IPV4)[:2] == (ETHERTYPE_IPV4, 4)
    assert decode(LINKTYPE_LOOP, struct.pack(">I", 24) + IPV6)[:2] == (ETHERTYPE_IPV6, 4)


@pytest.mark.parametrize(
    ("linktype", "frame"),
    [
        (LINKTYPE_ETHERNET, bytes(10)),
        (LINKTYPE_LINUX_SLL, bytes(12)),
        (LINKTYPE_LINUX_SLL2, bytes(16)),
        (LINKTYPE_NULL, b"\x02"),
        (LINKTYPE_RAW, b""),
        (LINKTYPE_ETHERNET, bytes(12) + b"\x81\x00\x00"),
    ],
)
def test_truncated_link_headers(linktype: int, frame: bytes) -> None:
    with pytest.raises(DecodeError, match=r"truncated|empty"):
        decode(linktype, frame)


def test_unknown_link_type() -> None:
    with pytest.raises(KeyError):
        decode(147, IPV4)
