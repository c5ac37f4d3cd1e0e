"""Frames for the decode and observe tests, built with scapy without touching the network.

Explicit MAC addresses and source addresses everywhere, so scapy never looks up
routes or interfaces. Documentation addresses only (RFC 5737, RFC 3849).
"""

from __future__ import annotations

import struct

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

CLIENT = "192.0.2.10"
SERVER = "198.51.100.7"
OTHER = "203.0.113.9"
CLIENT6 = "2001:db8:1::10"
SERVER6 = "2001:db8:ffff::7"
MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"
T0 = 1_700_000_000.0


def eth(layer3: Packet, src_mac: str = MAC_A, dst_mac: str = MAC_B) -> bytes:
    """An Ethernet frame around a network-layer packet."""
    return bytes(Ether(src=src_mac, dst=dst_mac) / layer3)


def udp(
    src: str = CLIENT,
    dst: str = SERVER,
    sport: int = 40000,
    dport: int = 5004,
    payload: bytes = b"\x80\x00payload",
) -> bytes:
    """An Ethernet/IPv4/UDP frame."""
    return eth(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)


def tcp(
    src: str = CLIENT,
    dst: str = SERVER,
    sport: int = 51000,
    dport: int = 443,
    flags: str = "S",
    payload: bytes = b"",
    seq: int = 1000,
    ack: int = 0,
) -> bytes:
    """An Ethernet/IPv4/TCP frame."""
    segment = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)
    packet = IP(src=src, dst=dst) / segment
    if payload:
        packet = packet / payload
    return eth(packet)


def tcp6(
    src: str = CLIENT6,
    dst: str = SERVER6,
    sport: int = 51000,
    dport: int = 443,
    flags: str = "S",
    payload: bytes = b"",
) -> bytes:
    """An Ethernet/IPv6/TCP frame."""
    packet = IPv6(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)
    if payload:
        packet = packet / payload
    return eth(packet)


def timed(frames: list[bytes], start: float = T0, step: float = 0.01) -> list[tuple[float, bytes]]:
    """Give frames increasing timestamps."""
    return [(start + i * step, frame) for i, frame in enumerate(frames)]


def handshake(
    client: str = CLIENT,
    server: str = SERVER,
    cport: int = 51000,
    sport: int = 443,
    request: bytes = b"",
    response: bytes = b"",
) -> list[bytes]:
    """SYN, SYN-ACK, ACK, then optional request and response segments."""
    frames = [
        tcp(client, server, cport, sport, "S", seq=1000),
        tcp(server, client, sport, cport, "SA", seq=5000, ack=1001),
        tcp(client, server, cport, sport, "A", seq=1001, ack=5001),
    ]
    if request:
        frames.append(tcp(client, server, cport, sport, "PA", request, seq=1001, ack=5001))
    if response:
        frames.append(
            tcp(server, client, sport, cport, "PA", response, seq=5001, ack=1001 + len(request))
        )
    return frames


def client_hello(sni: str | None = "api.imagicle.com", padding: int = 0) -> bytes:
    """A TLS 1.3-capable ClientHello record (SNI, supported_versions, ALPN, padding)."""
    exts = b""
    if sni is not None:
        name = sni.encode()
        entry = b"\x00" + struct.pack("!H", len(name)) + name
        exts += struct.pack("!HHH", 0, len(entry) + 2, len(entry)) + entry
    exts += struct.pack("!HHB", 43, 5, 4) + b"\x03\x04\x03\x03"
    alpn = b"\x02h2\x08http/1.1"
    exts += struct.pack("!HHH", 16, len(alpn) + 2, len(alpn)) + alpn
    if padding:
        exts += struct.pack("!HH", 21, padding) + bytes(padding)  # RFC 7685
    body = (
        b"\x03\x03"
        + bytes(32)
        + b"\x00"
        + struct.pack("!H", 4)
        + b"\x13\x01\xc0\x2f"
        + b"\x01\x00"
        + struct.pack("!H", len(exts))
        + exts
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def server_hello(version: int = 0x0304, suite: int = 0x1301) -> bytes:
    """A ServerHello record (TLS 1.3 via supported_versions when version is 0x0304)."""
    exts = struct.pack("!HHH", 43, 2, version) if version == 0x0304 else b""
    body = (
        b"\x03\x03"
        + bytes(32)
        + b"\x00"
        + struct.pack("!H", suite)
        + b"\x00"
        + struct.pack("!H", len(exts))
        + exts
    )
    handshake = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack("!H", len(handshake)) + handshake
