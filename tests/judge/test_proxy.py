"""PX-ONLY, PX-CONNECT and PX-DNS on captures built for them (tests/proxy_captures.py), plus
the proxy's access.log and the interceptor's log as second sources."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from scapy.packet import Packet

from conformance.content.logs import load_content
from conformance.evidence.interface import DECRYPTED_REQUESTS
from conformance.judge import proxy
from conformance.judge.result import Severity
from conformance.observe.builder import observe_captures
from conformance.observe.proxy_log import ProxyLog, read_access_log
from conformance.observe.records import Observations
from conformance.verdict import Verdict
from tests import proxy_captures as pc
from tests.defects import write_pcap


def observe(tmp_path: Path, packets: list[Packet]) -> Observations:
    return observe_captures([write_pcap(tmp_path / "capture.pcap", packets)])


def squid_log(tmp_path: Path, *lines: str) -> ProxyLog:
    path = tmp_path / "access.log"
    path.write_text("".join(line + "\n" for line in lines))
    entries, bad = read_access_log(path)
    return ProxyLog("lab/squid-access.log", tuple(entries), tuple(bad))


TUNNEL = (
    "1700000000.100     25 192.0.2.10 TCP_TUNNEL/200 1573 CONNECT api.imagicle.com:443 -"
    " HIER_DIRECT/203.0.113.10 -"
)
GET = (
    "1700000001.100      3 192.0.2.10 TCP_MISS/200 120 GET"
    " http://api.imagicle.com/v1/licensing/poll - HIER_DIRECT/203.0.113.10 application/json"
)
OTHER_CLIENT = (
    "1700000002.100      3 192.0.2.50 TCP_MISS/200 120 GET http://intranet.lab.internal/ -"
    " HIER_DIRECT/192.0.2.99 text/html"
)


# --- PX-ONLY -------------------------------------------------------------------------------


def test_proxied_target_passes_px_only(tmp_path: Path) -> None:
    result = proxy.only(observe(tmp_path, pc.proxied_clean()), pc.proxy_profile())
    assert result.verdict is Verdict.PASS, result
    assert result.facts["flows_to_proxy"] == 2


def test_direct_tls_around_the_proxy_fails_px_only(tmp_path: Path) -> None:
    result = proxy.only(observe(tmp_path, pc.direct_tls()), pc.proxy_profile())
    assert result.verdict is Verdict.FAIL, result
    assert "203.0.113.10:443" in result.violations[0].summary
    assert result.violations[0].flow_id is not None and result.violations[0].packets


def test_dns_to_an_outside_resolver_fails_px_only_and_px_dns(tmp_path: Path) -> None:
    # The query itself is a flow around the proxy (PX-ONLY); the name it carries leaves
    # around the proxy too (PX-DNS): both fail.
    obs = observe(tmp_path, pc.outside_resolver())
    only = proxy.only(obs, pc.proxy_profile())
    assert only.verdict is Verdict.FAIL, only
    (violation,) = only.violations
    assert (
        "198.51.100.53:53" in violation.summary
        and "DNS to an outside resolver" in violation.summary
    )
    assert only.facts["dns_flows_to_outside_resolvers"] == 1
    assert proxy.dns(obs, pc.proxy_profile()).verdict is Verdict.FAIL


def test_no_flow_to_the_proxy_is_inconclusive(tmp_path: Path) -> None:
    from tests.defects import clean_onprem_traffic

    result = proxy.only(observe(tmp_path, clean_onprem_traffic()), pc.proxy_profile())
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "no connection to the proxy" in result.reason


def test_proxy_controls_need_a_proxy(tmp_path: Path) -> None:
    profile = dataclasses.replace(pc.proxy_profile(), proxy=None)
    obs = observe(tmp_path, pc.proxied_clean())
    for judge in (proxy.only, proxy.connect, proxy.dns):
        assert judge(obs, profile).verdict is Verdict.NOT_APPLICABLE  # type: ignore[operator]


def test_access_log_counts_the_targets_tunnels(tmp_path: Path) -> None:
    log = squid_log(tmp_path, TUNNEL, OTHER_CLIENT)
    result = proxy.only(
        replace(observe(tmp_path, pc.proxied_clean()), proxy_log=log), pc.proxy_profile()
    )
    assert result.verdict is Verdict.PASS
    assert result.facts["proxy_log_tunnels_for_target"] == 1


# --- PX-CONNECT ----------------------------------------------------------------------------


def test_tunnels_with_matching_sni_pass_px_connect(tmp_path: Path) -> None:
    obs = replace(observe(tmp_path, pc.proxied_clean()), proxy_log=squid_log(tmp_path, TUNNEL))
    result = proxy.connect(obs, pc.proxy_profile())
    assert result.verdict is Verdict.PASS, result
    assert result.facts["sni_matched"] == 2


@pytest.mark.parametrize(
    ("capture", "expected"),
    [
        (pc.sni_mismatch, "SNI files.example.net"),
        (pc.no_sni, "no SNI"),
        (pc.disallowed_connect, "CONNECT updates.example.net:443: not an allowed endpoint"),
        (pc.wrong_port_connect, "CONNECT api.imagicle.com:8443: not an allowed endpoint"),
        (pc.plaintext_get, "GET http://api.imagicle.com/v1/licensing/poll sent to the proxy"),
    ],
)
def test_what_is_not_a_tls_tunnel_to_an_allowed_endpoint_fails(
    capture: Callable[[], list[Packet]], expected: str, tmp_path: Path
) -> None:
    result = proxy.connect(observe(tmp_path, capture()), pc.proxy_profile())
    assert result.verdict is Verdict.FAIL, result
    assert any(expected in f.summary for f in result.violations), result.findings
    assert all(f.flow_id and f.packets for f in result.violations)


def test_plaintext_request_in_the_access_log_fails(tmp_path: Path) -> None:
    log = squid_log(tmp_path, TUNNEL, GET, OTHER_CLIENT)
    result = proxy.connect(
        replace(observe(tmp_path, pc.proxied_clean()), proxy_log=log), pc.proxy_profile()
    )
    assert result.verdict is Verdict.FAIL, result
    (finding,) = result.violations
    assert finding.evidence_file == "lab/squid-access.log" and finding.evidence_line == 2
    assert "GET http://api.imagicle.com/v1/licensing/poll" in finding.summary


CUT = (
    "1795420053.433      0 192.0.2.10 NONE_NONE/000 0 - error:transaction-end-before-headers -"
    " HIER_NONE/- -"
)
INVALID = "1795420054.433      0 192.0.2.10 NONE_NONE/400 0 - error:invalid-request - HIER_NONE/- -"


def test_a_connection_cut_before_any_request_is_a_warning(tmp_path: Path) -> None:
    log = squid_log(tmp_path, TUNNEL, CUT)
    result = proxy.connect(
        replace(observe(tmp_path, pc.proxied_clean()), proxy_log=log), pc.proxy_profile()
    )
    assert result.verdict is Verdict.PASS, result
    (warning,) = [f for f in result.findings if f.severity is Severity.WARNING]
    assert warning.evidence_line == 2 and "before any request" in warning.summary


def test_a_request_the_proxy_could_not_read_fails(tmp_path: Path) -> None:
    log = squid_log(tmp_path, TUNNEL, INVALID)
    result = proxy.connect(
        replace(observe(tmp_path, pc.proxied_clean()), proxy_log=log), pc.proxy_profile()
    )
    assert result.verdict is Verdict.FAIL, result
    (finding,) = result.violations
    assert finding.evidence_line == 2 and "error:invalid-request" in finding.summary


def test_plaintext_request_seen_by_the_interceptor_fails(tmp_path: Path) -> None:
    log = tmp_path / "decrypted.jsonl"
    record = {
        "t": 1.0,
        "event": "request",
        "client": "192.0.2.80",
        "tls": None,
        "method": "GET",
        "host": "api.imagicle.com",
        "port": 80,
        "path": "/v1/licensing/poll",
        "body": {"encoding": "empty"},
    }
    log.write_text(json.dumps(record) + "\n")
    content = load_content({DECRYPTED_REQUESTS: log}, {log: "lab/decrypted-requests.jsonl"})
    result = proxy.connect(
        replace(observe(tmp_path, pc.proxied_clean()), content=content), pc.proxy_profile()
    )
    assert result.verdict is Verdict.FAIL
    assert result.violations[0].evidence_file == "lab/decrypted-requests.jsonl"


def test_no_connect_at_all_is_inconclusive(tmp_path: Path) -> None:
    from tests.defects import clean_onprem_traffic

    result = proxy.connect(observe(tmp_path, clean_onprem_traffic()), pc.proxy_profile())
    assert result.verdict is Verdict.INCONCLUSIVE


# --- PX-DNS --------------------------------------------------------------------------------


def test_outside_resolver_fails_px_dns(tmp_path: Path) -> None:
    result = proxy.dns(observe(tmp_path, pc.outside_resolver()), pc.proxy_profile())
    assert result.verdict is Verdict.FAIL, result
    assert "198.51.100.53" in result.violations[0].summary


def test_cloud_name_at_the_onprem_resolver_is_reported_not_failed(tmp_path: Path) -> None:
    result = proxy.dns(observe(tmp_path, pc.cloud_name_onprem()), pc.proxy_profile())
    assert result.verdict is Verdict.PASS, result
    assert [f.severity for f in result.findings] == [Severity.INFO]
    assert "api.imagicle.com" in result.findings[0].summary
