"""Fixtures for end-to-end runs of the CLI and the pytest suites on small built captures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

TARGET = "192.0.2.10"
TARGET_MAC = "02:00:00:00:00:10"
GATEWAY_MAC = "02:00:00:00:00:01"

AIR_GAPPED_PROFILE = """\
name: cli-test-site
mode: air-gapped
target:
  addresses: [192.0.2.10]
environment:
  networks: [192.0.2.0/24, "2001:db8:1::/64"]
  endpoints:
    - {name: cucm, address: 192.0.2.20, ports: [5060/udp, 5060/tcp]}
    - {name: dns, address: 192.0.2.53, ports: [53/udp, 53/tcp]}
"""


def _ether(src_mac: str, dst_mac: str):  # type: ignore[no-untyped-def]
    from scapy.layers.l2 import Ether

    return Ether(src=src_mac, dst=dst_mac)


def _onprem_packets(start: float) -> list:  # type: ignore[type-arg]
    """SIP OPTIONS to CUCM and an internal DNS lookup, both answered."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR
    from scapy.layers.inet import IP, UDP

    sip = b"OPTIONS sip:cucm.acme.example SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10\r\n\r\n"
    ok = b"SIP/2.0 200 OK\r\n\r\n"
    out = _ether(TARGET_MAC, GATEWAY_MAC)
    back = _ether(GATEWAY_MAC, TARGET_MAC)
    packets = [
        out / IP(src=TARGET, dst="192.0.2.20") / UDP(sport=5060, dport=5060) / sip,
        back / IP(src="192.0.2.20", dst=TARGET) / UDP(sport=5060, dport=5060) / ok,
        out
        / IP(src=TARGET, dst="192.0.2.53")
        / UDP(sport=40000, dport=53)
        / DNS(id=7, rd=1, qd=DNSQR(qname="cucm.acme.example")),
        back
        / IP(src="192.0.2.53", dst=TARGET)
        / UDP(sport=53, dport=40000)
        / DNS(
            id=7,
            qr=1,
            qd=DNSQR(qname="cucm.acme.example"),
            an=DNSRR(rrname="cucm.acme.example", rdata="192.0.2.20", ttl=60),
        ),
    ]
    for i, packet in enumerate(packets):
        packet.time = start + i * 0.01
    return packets


def write_capture(path: Path, packets: list) -> Path:  # type: ignore[type-arg]
    from scapy.utils import wrpcap

    wrpcap(str(path), packets, linktype=1)
    return path


@pytest.fixture
def profile_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(AIR_GAPPED_PROFILE)
    return path


@pytest.fixture
def clean_capture(tmp_path: Path) -> Path:
    return write_capture(tmp_path / "clean.pcap", _onprem_packets(1_700_000_000.0))


@pytest.fixture
def leak_capture(tmp_path: Path) -> Path:
    """Clean traffic plus one unanswered SYN to an outside address."""
    from scapy.layers.inet import IP, TCP

    packets = _onprem_packets(1_700_000_000.0)
    syn = (
        _ether(TARGET_MAC, GATEWAY_MAC)
        / IP(src=TARGET, dst="198.51.100.7")
        / TCP(sport=51234, dport=443, flags="S")
    )
    syn.time = 1_700_000_001.0
    return write_capture(tmp_path / "leak.pcap", [*packets, syn])


@pytest.fixture
def silent_capture(tmp_path: Path) -> Path:
    """Only other hosts talk; the target sends nothing."""
    from scapy.layers.inet import IP, UDP

    packet = (
        _ether(GATEWAY_MAC, TARGET_MAC)
        / IP(src="192.0.2.20", dst=TARGET)
        / UDP(sport=5060, dport=5060)
        / b"OPTIONS sip:ucx SIP/2.0\r\n\r\n"
    )
    packet.time = 1_700_000_000.0
    return write_capture(tmp_path / "silent.pcap", [packet])


@pytest.fixture
def sign_key(tmp_path: Path) -> Path:
    from conformance.sign.keys import generate_key

    return generate_key(tmp_path / "keys" / "signer.pem")


@pytest.fixture(autouse=True)
def _isolated_default_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never let a test create or reuse a key in the real home directory."""
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "default-key" / "signing-key.pem"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    yield
