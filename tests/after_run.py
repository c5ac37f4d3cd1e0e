"""Signed reports of real runs (`ucx-conformance run --pcap`) for the after-the-run tests.

Captures come from tests.defects (the builders named after the defect they carry); the
profile below is `defect_profile()` written as YAML. Each report is a real run of the CLI,
judged by the real suites, signed with a test key: diff, export and waivers read exactly
what users' reports hold.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scapy.packet import Packet

from conformance.cli import main
from conformance.sign.keys import generate_key
from tests import defects

DEFECT_PROFILE = """\
name: defects
mode: air-gapped
target:
  addresses: [192.0.2.10, "2001:db8:1::10"]
environment:
  networks: [192.0.2.0/24, "2001:db8:1::/64"]
  endpoints:
    - {name: cucm, address: 192.0.2.20, ports: [5060/udp, 5061/tcp, 8443/tcp]}
    - {name: ad, address: 192.0.2.30, ports: [389/tcp, 636/tcp]}
    - {name: dns, address: 192.0.2.53, ports: [53/udp, 53/tcp]}
    - {name: ntp, address: 192.0.2.123, ports: [123/udp]}
"""

# The two leaks of tcp_and_udp_leak(): a CRL fetch over HTTP and NTP to an outside server.
TCP_LEAK = f"{defects.OUTSIDE}:80/tcp"
UDP_LEAK = f"{defects.OUTSIDE_NTP}:123/udp"


def tcp_and_udp_leak() -> list[Packet]:
    """Clean on-prem traffic, then an HTTP CRL fetch and an NTP query to outside hosts."""
    request = defects.http_get("crl.microsoft.com", "/pki/crl/products/root.crl")
    leaks = [
        *defects.tcp_session(
            defects.TARGET, 51234, defects.OUTSIDE, 80, request, b"HTTP/1.1 200 OK\r\n\r\n"
        ),
        *defects.udp_exchange(
            defects.TARGET, 123, defects.OUTSIDE_NTP, 123, b"\x23" + bytes(47), b"\x24" + bytes(47)
        ),
    ]
    packets = [*defects.clean_onprem_traffic(), *leaks]
    start = float(packets[0].time)
    for i, packet in enumerate(packets):
        packet.time = start + i * 0.001
    return packets


@dataclass(frozen=True, slots=True)
class Lab:
    """A scratch directory with the defect profile and a signing key pair."""

    root: Path
    profile: Path
    key: Path

    @property
    def pub(self) -> Path:
        return Path(f"{self.key}.pub")

    def capture(self, name: str, packets: Sequence[Packet]) -> Path:
        return defects.write_pcap(self.root / f"{name}.pcap", packets)

    def run(self, name: str, packets: Sequence[Packet], *extra: str | Path) -> tuple[int, Path]:
        """`ucx-conformance run` on `packets`; returns the exit status and the report dir."""
        report = self.root / name
        code = main(
            [
                "run",
                "--profile",
                str(self.profile),
                "--pcap",
                str(self.capture(name, packets)),
                "--report-dir",
                str(report),
                "--sign-key",
                str(self.key),
                *map(str, extra),
            ]
        )
        return code, report


def make_lab(root: Path) -> Lab:
    root.mkdir(parents=True, exist_ok=True)
    profile = root / "site.yaml"
    profile.write_text(DEFECT_PROFILE)
    key = generate_key(root / "keys" / "signer.pem")
    return Lab(root, profile, key)


def report_json(report_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((report_dir / "report.json").read_text())
    return data


def controls(report_dir: Path) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in report_json(report_dir)["controls"]}


def copy_report(source: Path, target: Path) -> Path:
    """A private copy of a report directory (to tamper with)."""
    shutil.copytree(source, target, symlinks=True)
    return target
