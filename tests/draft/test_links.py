"""The draft's frame-level pass: which MAC carries which address, per link type."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import ARP, Ether

from conformance.draft.infer import link_role
from conformance.draft.links import MAX_MACS_PER_ADDRESS, read_links
from tests.capture_files import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_RAW,
    Epb,
    Interface,
    write_pcap,
    write_pcapng,
)

HOST_MAC = "02:00:00:00:00:0a"
PEER_MAC = "02:00:00:00:00:14"
ROUTER_MAC = "02:00:00:00:00:01"


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(address)


def _udp(src: str, dst: str, ttl: int = 64) -> bytes:
    return bytes(IP(src=src, dst=dst, ttl=ttl) / UDP(sport=1, dport=2))


def test_ethernet_gives_both_macs_and_group_macs_are_dropped(tmp_path: Path) -> None:
    frames = [
        bytes(Ether(src=HOST_MAC, dst=PEER_MAC) / IP(src="192.0.2.10", dst="192.0.2.20") / UDP()),
        bytes(Ether(src=PEER_MAC, dst=HOST_MAC) / IP(src="192.0.2.20", dst="192.0.2.10") / UDP()),
        bytes(
            Ether(src=HOST_MAC, dst="ff:ff:ff:ff:ff:ff")
            / IP(src="192.0.2.10", dst="192.0.2.255")
            / UDP()
        ),
    ]
    facts = read_links([write_pcap(tmp_path / "e.pcap", frames)])
    assert facts.source_macs[_ip("192.0.2.10")] == {HOST_MAC}
    assert facts.destination_macs[_ip("192.0.2.20")] == {PEER_MAC}
    assert _ip("192.0.2.255") not in facts.destination_macs  # broadcast MAC: no host's
    assert link_role(_ip("192.0.2.20"), facts)[0] == "on-link"
    assert facts.frames == facts.frames_with_macs == 3


def test_a_mac_carrying_many_addresses_is_a_routers(tmp_path: Path) -> None:
    frames = [
        bytes(Ether(src=ROUTER_MAC, dst=HOST_MAC) / IP(src=a, dst="192.0.2.10") / UDP())
        for a in ("198.51.100.7", "203.0.113.9")
    ]
    facts = read_links([write_pcap(tmp_path / "r.pcap", frames)])
    role, why = link_role(_ip("198.51.100.7"), facts)
    assert role == "routed" and "also carries 203.0.113.9" in why


def test_linux_cooked_captures_give_the_senders_mac(tmp_path: Path) -> None:
    mac = bytes.fromhex(PEER_MAC.replace(":", ""))
    packet = _udp("192.0.2.20", "192.0.2.10")
    sll = struct.pack("!HHH", 0, 1, 6) + mac + b"\x00\x00" + struct.pack("!H", 0x0800) + packet
    sll2 = struct.pack("!HHIHBB", 0x0800, 0, 2, 1, 0, 6) + mac + b"\x00\x00" + packet
    path = write_pcapng(
        tmp_path / "sll.pcapng",
        [Epb(sll, interface=0), Epb(sll2, interface=1)],
        interfaces=[Interface(LINKTYPE_LINUX_SLL), Interface(LINKTYPE_LINUX_SLL2)],
    )
    facts = read_links([path])
    assert facts.source_macs[_ip("192.0.2.20")] == {PEER_MAC}
    assert not facts.destination_macs  # cooked headers name the sender only
    assert facts.frames_with_macs == 2


def test_raw_ip_has_no_macs(tmp_path: Path) -> None:
    facts = read_links(
        [write_pcap(tmp_path / "raw.pcap", [_udp("192.0.2.20", "192.0.2.10")], LINKTYPE_RAW)]
    )
    assert facts.frames == 1 and facts.frames_with_macs == 0
    assert link_role(_ip("192.0.2.20"), facts)[0] == "unknown"


def test_arp_and_neighbour_discovery_bind_addresses(tmp_path: Path) -> None:
    frames = [
        bytes(
            Ether(src=ROUTER_MAC, dst=HOST_MAC)
            / ARP(op=2, hwsrc=ROUTER_MAC, psrc="192.0.2.1", hwdst=HOST_MAC, pdst="192.0.2.10")
        ),
        bytes(
            Ether(src=ROUTER_MAC, dst="33:33:ff:00:00:10")
            / IPv6(src="fe80::1", dst="ff02::1:ff00:10")
            / ICMPv6ND_NS(tgt="2001:db8:1::10")
            / ICMPv6NDOptSrcLLAddr(lladdr=ROUTER_MAC)
        ),
        bytes(
            Ether(src=PEER_MAC, dst=HOST_MAC)
            / IPv6(src="2001:db8:1::20", dst="2001:db8:1::10")
            / ICMPv6ND_NA(tgt="2001:db8:1::20")
            / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC)
        ),
    ]
    facts = read_links([write_pcap(tmp_path / "nd.pcap", frames, LINKTYPE_ETHERNET)])
    assert facts.bound[_ip("192.0.2.1")] == {ROUTER_MAC}
    assert facts.bound[_ip("192.0.2.10")] == {HOST_MAC}  # the reply's target
    assert facts.bound[_ip("fe80::1")] == {ROUTER_MAC}
    assert facts.bound[_ip("2001:db8:1::20")] == {PEER_MAC}


def test_forwarded_packets_are_told_by_their_hop_count(tmp_path: Path) -> None:
    frames = [
        bytes(Ether(src=PEER_MAC, dst=HOST_MAC, type=0x0800))
        + _udp("192.0.2.200", "192.0.2.10", ttl=63)
    ]
    facts = read_links([write_pcap(tmp_path / "ttl.pcap", frames)])
    role, why = link_role(_ip("192.0.2.200"), facts)
    assert role == "routed" and "TTL/hop limit 63" in why


def test_damaged_frames_are_counted_and_macs_per_address_are_bounded(tmp_path: Path) -> None:
    frames = [bytes(Ether(src=HOST_MAC, dst=PEER_MAC, type=0x0800)) + b"\x45\x00"]
    for index in range(MAX_MACS_PER_ADDRESS + 3):
        mac = f"02:00:00:00:01:{index:02x}"
        frames.append(
            bytes(Ether(src=mac, dst=HOST_MAC, type=0x0800)) + _udp("198.51.100.7", "192.0.2.10")
        )
    facts = read_links([write_pcap(tmp_path / "d.pcap", frames)])
    assert facts.not_read == 1
    assert len(facts.source_macs[_ip("198.51.100.7")]) == MAX_MACS_PER_ADDRESS
