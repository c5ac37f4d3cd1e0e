"""HY-TLS and HY-DEST edge cases on captures built here: TLS-framed bytes with no handshake, a
ClientHello that only offers old versions, and an SNI the target's own DNS answers contradict."""

from __future__ import annotations

import struct
from pathlib import Path

from scapy.layers.inet import TCP
from scapy.packet import Packet, Raw

from conformance.judge import hybrid
from conformance.judge.result import Severity
from conformance.verdict import Verdict
from tests import defects
from tests.defects import TARGET
from tests.judge.test_hybrid import API, OTHER, lookup, observe, profile_for, scenario, tls_to

APP_DATA = b"\x17\x03\x03\x00\x10" + bytes(16)


def tls10_only_hello(sni: str) -> bytes:
    """A TLS 1.0 ClientHello (legacy_version 0x0301, no supported_versions) with SNI."""
    name = sni.encode()
    server_name = struct.pack("!HBH", len(name) + 3, 0, len(name)) + name
    extensions = struct.pack("!HH", 0, len(server_name)) + server_name
    body = (
        b"\x03\x01"
        + bytes(32)
        + b"\x00"
        + struct.pack("!H", 2)
        + b"\x00\x2f"
        + b"\x01\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(handshake)) + handshake


def mid_flow(server: str, cport: int, payload: bytes) -> list[Packet]:
    """A connection that began before the capture: data both ways, no SYN."""
    out = TCP(sport=cport, dport=443, flags="PA", seq=7001, ack=9001)
    back = TCP(sport=443, dport=cport, flags="PA", seq=9001, ack=7001 + len(payload))
    return [
        defects._frame(TARGET, server, out) / Raw(payload),
        defects._frame(server, TARGET, back) / Raw(APP_DATA),
    ]


def test_application_data_first_on_a_captured_connection_is_not_tls(tmp_path: Path) -> None:
    packets = scenario(
        lookup("api.imagicle.com", API), defects.tcp_session(TARGET, 40201, API, 443, APP_DATA)
    )
    result = hybrid.tls(observe(tmp_path, packets), profile_for(tmp_path, "fake"))
    assert result.verdict is Verdict.FAIL, result
    (finding,) = result.violations
    assert "no handshake" in finding.summary and finding.packets is not None


def test_application_data_on_a_flow_begun_before_the_capture_stays_open(tmp_path: Path) -> None:
    # decision 1: the handshake is simply not in the capture; TLS framing keeps HY-TLS open
    packets = scenario(lookup("api.imagicle.com", API), mid_flow(API, 40202, APP_DATA))
    result = hybrid.tls(observe(tmp_path, packets), profile_for(tmp_path, "mid"))
    assert result.verdict is Verdict.INCONCLUSIVE, result
    assert "decision 1" in result.reason


def test_plaintext_on_a_flow_begun_before_the_capture_fails(tmp_path: Path) -> None:
    post = b"POST /v1/licence HTTP/1.1\r\nHost: api.imagicle.com\r\n\r\n"
    packets = scenario(lookup("api.imagicle.com", API), mid_flow(API, 40203, post))
    result = hybrid.tls(observe(tmp_path, packets), profile_for(tmp_path, "midplain"))
    assert result.verdict is Verdict.FAIL and "plaintext HTTP" in result.violations[0].summary


def test_client_offering_only_tls10_fails_without_a_server_hello(tmp_path: Path) -> None:
    hello = tls10_only_hello("api.imagicle.com")
    packets = scenario(defects.tcp_session(TARGET, 40204, API, 443, hello))
    result = hybrid.tls(observe(tmp_path, packets), profile_for(tmp_path, "offer10"))
    assert result.verdict is Verdict.FAIL, result
    assert "offered at most TLS 1.0" in result.violations[0].summary


def test_modern_client_hello_without_a_server_hello_stays_open(tmp_path: Path) -> None:
    hello = defects.client_hello("api.imagicle.com")
    packets = scenario(defects.tcp_session(TARGET, 40205, API, 443, hello))
    result = hybrid.tls(observe(tmp_path, packets), profile_for(tmp_path, "nosh"))
    assert result.verdict is Verdict.INCONCLUSIVE, result


def test_sni_the_targets_dns_contradicts_is_shown_as_a_warning(tmp_path: Path) -> None:
    packets = scenario(
        lookup("updates.example.net", OTHER), tls_to(OTHER, "api.imagicle.com", cport=40206)
    )
    result = hybrid.dest(observe(tmp_path, packets), profile_for(tmp_path, "front"))
    assert result.verdict is Verdict.PASS, result  # the mapping order: SNI first
    (warning,) = [f for f in result.findings if f.severity is Severity.WARNING]
    assert "updates.example.net" in warning.summary and warning.flow_id is not None


def test_shared_address_of_two_allowed_names_is_no_conflict(tmp_path: Path) -> None:
    packets = scenario(
        lookup("api.imagicle.com", API, cport=53001),
        lookup("grpc.imagicle.com", API, cport=53002),
        tls_to(API, "api.imagicle.com", cport=40207),
    )
    result = hybrid.dest(observe(tmp_path, packets), profile_for(tmp_path, "shared"))
    assert result.verdict is Verdict.PASS and not result.findings, result
