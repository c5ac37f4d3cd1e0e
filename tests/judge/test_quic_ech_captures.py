"""HY-DEST and HY-TLS on QUIC and ECH captures built here and read by the real observers
(issue #12 items 2 and 3): the judges' QUIC and ECH rules, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.decode.quic import VERSION_1, VERSION_2
from conformance.judge import hybrid
from conformance.judge.result import Severity
from conformance.observe.records import EchKind, PayloadKind
from conformance.profile import load_profile
from conformance.profile_model import Profile
from conformance.verdict import Verdict
from tests import quic_captures as qc
from tests.judge.test_hybrid import API, lookup, observe, scenario

P, F, I = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # noqa: E741
GRPC = "203.0.113.11"
FRONT = "203.0.113.12"
PUBLIC = "ech.imagicle.com"  # an ECH public name that is itself an allowed endpoint
CONFIG = 7

PROFILE = """\
name: hybrid-quic
mode: hybrid
target:
  addresses: [192.0.2.10]
environment:
  networks: [192.0.2.0/24]
  endpoints:
    - {name: dns, address: 192.0.2.53, ports: [53/udp]}
cloud:
  services: [licensing]
  endpoints: ["api.imagicle.com:443/udp", "grpc.imagicle.com:443", "*.imagicle.com:443"]
telemetry: disabled
"""


def profile(tmp_path: Path) -> Profile:
    path = tmp_path / "hybrid-quic.yaml"
    path.write_text(PROFILE)
    return load_profile(path)


@pytest.mark.parametrize("version", [VERSION_1, VERSION_2])
def test_quic_to_an_allowed_udp_endpoint_passes(tmp_path: Path, version: int) -> None:
    obs = observe(
        tmp_path, scenario(lookup("api.imagicle.com", API), qc.quic_session(API, version))
    )
    prof = profile(tmp_path)
    dest, tls = hybrid.dest(obs, prof), hybrid.tls(obs, prof)
    assert dest.verdict is P, dest
    assert dest.facts["endpoints_reached"] == {"api.imagicle.com:443/udp": 1}
    assert tls.verdict is P, tls
    assert tls.facts["endpoints"] == {
        "api.imagicle.com:443/udp": {
            "version": "TLS 1.3 (QUIC)",
            "suite": "TLS_AES_256_GCM_SHA384",
            "sni": "api.imagicle.com",
        }
    }


def test_quic_split_and_coalesced_initials_pass(tmp_path: Path) -> None:
    packets = scenario(
        lookup("api.imagicle.com", API),
        qc.quic_hello_in_two_datagrams(API),
        qc.quic_coalesced(API, cport=50444),
    )
    obs = observe(tmp_path, packets)
    assert [h.segments for h in obs.client_hellos] == [2, 1]
    result = hybrid.dest(obs, profile(tmp_path))
    assert result.verdict is P and result.facts["allowed"] == 2, result


def test_quic_to_a_port_nothing_allows_fails(tmp_path: Path) -> None:
    obs = observe(tmp_path, scenario(qc.quic_session(API, port=8443)))  # SNI api.imagicle.com
    result = hybrid.dest(obs, profile(tmp_path))
    assert result.verdict is F, result
    assert "api.imagicle.com:8443/udp is not an allowed endpoint" in result.violations[0].summary


def test_quic_to_a_name_allowed_for_tcp_only_fails(tmp_path: Path) -> None:
    from tests.decode.quic_packets import crypto_frame, initial
    from tests.decode.test_quic import client_hello

    packet = initial(crypto_frame(0, client_hello("grpc.imagicle.com")), pad_to=1200)
    packets = scenario(lookup("grpc.imagicle.com", GRPC), qc.datagrams(GRPC, [packet]))
    result = hybrid.dest(observe(tmp_path, packets), profile(tmp_path))
    assert result.verdict is F, result
    assert "allowed for TCP only, not QUIC" in result.violations[0].summary


def test_corrupted_initial_is_not_understood_and_cannot_pass(tmp_path: Path) -> None:
    packets = scenario(lookup("api.imagicle.com", API), qc.quic_corrupted_initial(API))
    obs = observe(tmp_path, packets)
    (flow,) = [f for f in obs.flows if f.transport == "udp" and f.responder_port == 443]
    assert flow.payload_out is PayloadKind.QUIC and obs.client_hellos == ()
    (unread,) = obs.captures[0].payload_not_understood
    assert unread.reason.startswith("QUIC: ") and unread.frames == (flow.first_packet,)
    prof = profile(tmp_path)
    dest, tls = hybrid.dest(obs, prof), hybrid.tls(obs, prof)
    # the DNS answer names the address, but the unread Initial may carry another name
    assert dest.verdict is I, dest
    assert any("QUIC: " in gap for gap in dest.facts["incomplete"])
    assert tls.verdict is I, tls


def test_real_ech_behind_an_allowed_public_name_cannot_pass_on_it(tmp_path: Path) -> None:
    packets = scenario(
        qc.https_lookup("hidden.example.org", configs=[(CONFIG, PUBLIC)]),
        qc.ech_session(FRONT, PUBLIC, CONFIG),
    )
    obs = observe(tmp_path, packets)
    assert [h.ech for h in obs.client_hellos] == [EchKind.REAL]
    result = hybrid.dest(obs, profile(tmp_path))
    assert result.verdict is I, result
    assert any(
        "hidden by Encrypted ClientHello" in f.summary
        for f in result.findings
        if f.severity is Severity.WARNING
    )


def test_grease_ech_is_judged_on_its_sni(tmp_path: Path) -> None:
    packets = scenario(
        qc.https_lookup(PUBLIC, configs=None),
        qc.ech_session(FRONT, PUBLIC, CONFIG),
    )
    obs = observe(tmp_path, packets)
    assert [h.ech for h in obs.client_hellos] == [EchKind.GREASE]
    result = hybrid.dest(obs, profile(tmp_path))
    assert result.verdict is P, result
    assert result.facts["endpoints_reached"] == {f"{PUBLIC}:443": 1}


def test_ech_without_dns_is_unknown_and_cannot_pass(tmp_path: Path) -> None:
    obs = observe(tmp_path, scenario(qc.ech_session(FRONT, PUBLIC, CONFIG)))
    assert [h.ech for h in obs.client_hellos] == [EchKind.UNKNOWN]
    assert hybrid.dest(obs, profile(tmp_path)).verdict is I
