"""Builders for report tests: a fake catalog, observations and results of one small run.

The run judged one capture holding a leak: flow 2 is an unanswered SYN to an outside address
(AG-EGRESS fails on it); other controls cover every other verdict.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.digest import sha256_file
from conformance.judge.result import ControlResult, Finding, PacketRef, Severity
from conformance.observe.records import (
    Anomaly,
    CaptureSummary,
    DnsAnswer,
    DnsQuery,
    Flow,
    HttpRequest,
    InitiatorBasis,
    NameMention,
    NotUnderstood,
    Observations,
    PayloadKind,
    TlsClientHello,
    TlsServerHello,
)
from conformance.report.assemble import write_report
from conformance.report.interface import ReportRun, ReportSummary
from conformance.sign.keys import generate_key, load_private_key
from conformance.sign.seal import Ed25519Sealer
from conformance.verdict import Verdict

TARGET = ipaddress.ip_address("192.0.2.10")
T0 = 1_700_000_000.0
PROFILE_TEXT = "name: report-test\nmode: air-gapped\n# exact bytes, kept: ünïcode\n"


@dataclass(frozen=True, slots=True)
class FakeControl:
    id: str
    title: str
    promise: str
    clauses: tuple[str, ...]
    clause_text: str


def fake_lookup(control_id: str) -> FakeControl:
    """A catalog entry for any id, shaped like conformance.catalog.Control."""
    return FakeControl(
        id=control_id,
        title=f"Title of {control_id}",
        promise=f"The promise of {control_id}.",
        clauses=("HA 2.2", "HA 1"),
        clause_text=(
            "HA 2.2: No component of the Software initiates or accepts connections.\n"
            "HA 1: “Air-Gapped Mode” means a deployment without cloud."
        ),
    )


def flow(flow_id: int, responder: str, port: int, **changes: object) -> Flow:
    base = Flow(
        flow_id=flow_id,
        capture=0,
        transport="tcp",
        ip_version=4,
        initiator=TARGET,
        initiator_port=50000 + flow_id,
        responder=ipaddress.ip_address(responder),
        responder_port=port,
        initiator_basis=InitiatorBasis.SYN,
        handshake_seen=True,
        answered=True,
        accepted=True,
        rejected=False,
        packets_out=3,
        packets_in=2,
        bytes_out=180,
        bytes_in=120,
        first_time=T0 + flow_id,
        last_time=T0 + flow_id + 0.5,
        first_packet=flow_id * 10,
        last_packet=flow_id * 10 + 4,
        sample_packets=(flow_id * 10, flow_id * 10 + 1),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def write_capture(path: Path, size: int = 3 * (1 << 20) + 17) -> Path:
    """A stand-in capture (the report never parses it); larger than one copy chunk."""
    path.write_bytes(os.urandom(size))
    return path


def observations_for(capture: Path) -> Observations:
    sha256, size = sha256_file(capture)
    summary = CaptureSummary(
        path=str(capture),
        format="pcapng",
        sha256=sha256,
        link_types=(1,),
        interfaces=1,
        packets=64,
        bytes=size,
        first_time=T0,
        last_time=T0 + 60,
        malformed=1,
        anomalies=(Anomaly(0, 33, "bad IPv4 header length <5>"),),
        not_understood=(NotUnderstood("bad IPv4 header length <5>", 1, (33,), (), 1),),
        decoded=63,
        snap_truncated=0,
        truncated_file=False,
        truncated_detail=None,
        drops=0,
    )
    return Observations(
        captures=(summary,),
        flows=(
            flow(1, "192.0.2.20", 5060),
            flow(2, "198.51.100.7", 443, answered=False, accepted=False, packets_in=0),
            flow(3, "192.0.2.53", 53, transport="udp", initiator_basis=InitiatorBasis.FIRST_PACKET),
            flow(4, "203.0.113.9", 80, payload_out=PayloadKind.HTTP),
        ),
        dns=(
            DnsQuery(
                capture=0,
                packet=31,
                time=T0 + 3,
                flow_id=3,
                client=TARGET,
                client_port=50003,
                server=ipaddress.ip_address("192.0.2.53"),
                server_port=53,
                transport="udp",
                protocol="dns",
                qname="evil\nline.example",  # a newline from the wire stays on one CSV line
                qtype=1,
                response_packet=32,
                rcode=0,
                answers=(DnsAnswer("evil\nline.example", 1, 60, "203.0.113.9"),),
            ),
        ),
        client_hellos=(
            TlsClientHello(
                capture=0,
                packet=22,
                time=T0 + 2.1,
                flow_id=2,
                sni="api.imagicle.com",
                versions=(0x0304, 0x0303),
                cipher_suites=(0x1301, 0x1302),
                alpn=("h2",),
            ),
        ),
        server_hellos=(
            TlsServerHello(
                capture=0, packet=23, time=T0 + 2.2, flow_id=2, version=0x0304, cipher_suite=0x1301
            ),
        ),
        http_requests=(
            HttpRequest(
                capture=0,
                packet=41,
                time=T0 + 4,
                flow_id=4,
                method="GET",
                target="/<script>alert(1)</script>",
                version="HTTP/1.1",
                host="203.0.113.9",
            ),
        ),
        names=(NameMention(capture=0, packet=50, flow_id=1, protocol="ssdp", name="ucx.local"),),
        notes=("1 flow began before the capture",),
    )


def results() -> tuple[ControlResult, ...]:
    return (
        ControlResult(
            "AG-EGRESS",
            Verdict.FAIL,
            "1 flow leaves the environment",
            findings=(
                Finding(
                    Severity.VIOLATION,
                    "192.0.2.10:50002 -> 198.51.100.7:443 tcp, SYN, 3 packets <b>bold</b>",
                    flow_id=2,
                    packets=PacketRef(0, (20, 21, 22)),
                    facts={"looks like": "<img src=x onerror=alert(1)>"},
                ),
                Finding(
                    Severity.WARNING,
                    "probe log mentions it",
                    evidence_file="probes.log",
                    evidence_line=2,
                ),
            ),
            facts={"flows judged": 4, "outside": {"198.51.100.7"}},
        ),
        ControlResult("AG-INGRESS", Verdict.PASS, "no outside flow was accepted"),
        ControlResult("AG-CLOUD-NAMES", Verdict.INCONCLUSIVE, "no DNS seen\x1b[31m"),
        ControlResult("HY-DEST", Verdict.NOT_APPLICABLE, "hybrid only"),
        ControlResult("AG-PERIMETER", Verdict.ERROR, "probe crashed: <boom> & \x00"),
        ControlResult("RP-SIGNED", Verdict.PASS, "report.intoto.json signs every file"),
    )


def make_run(tmp_path: Path, *, observations: bool = True) -> ReportRun:
    """A run over one capture, a probe log and a profile, all under `tmp_path/inputs`."""
    inputs = tmp_path / "inputs"
    inputs.mkdir(exist_ok=True)
    capture = inputs / "leak.pcapng"
    if not capture.exists():
        write_capture(capture)
    probes = inputs / "probes.log"
    probes.write_text("probe 1 ok\nprobe 2 answered\n")
    profile = inputs / "site.yaml"
    profile.write_bytes(PROFILE_TEXT.encode())
    return ReportRun(
        profile_name="report-test <site>",
        profile_mode="air-gapped",
        profile_source=profile,
        results=results(),
        observations=observations_for(capture) if observations else None,
        evidence_files=((capture, "capture-0.pcapng"), (probes, "probes.log")),
        tool_versions={"python": "3.11", "ucx-conformance": "0.1.0"},
        started=datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
        finished=datetime(2024, 5, 1, 12, 0, 7, 250000, tzinfo=UTC),
        harness_version="0.1.0",
        notes=("judged from capture files",),
    )


@dataclass(frozen=True, slots=True)
class SignedReport:
    report_dir: Path
    key_path: Path
    pub_path: Path
    summary: ReportSummary

    def key(self) -> Ed25519PrivateKey:
        return load_private_key(self.key_path)


def signed_report(tmp_path: Path, *, observations: bool = True) -> SignedReport:
    """Write a signed report for `make_run` with a fresh key kept outside it."""
    key_path = generate_key(tmp_path / "keys" / "signer.pem")
    report_dir = tmp_path / "report"
    run = make_run(tmp_path, observations=observations)
    sealer = Ed25519Sealer(load_private_key(key_path))
    summary = write_report(report_dir, run, sealer, fake_lookup)
    return SignedReport(report_dir, key_path, Path(f"{key_path}.pub"), summary)


REPORT_FILES = (
    "evidence/capture-0.pcapng",
    "evidence/captures.json",
    "evidence/dns.csv",
    "evidence/flows.csv",
    "evidence/http.csv",
    "evidence/names.csv",
    "evidence/probes.log",
    "evidence/profile.yaml",
    "evidence/tls.csv",
    "evidence/tool-versions.json",
    "junit.xml",
    "report.html",
    "report.json",
)
