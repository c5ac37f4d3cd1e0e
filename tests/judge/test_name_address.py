"""Names must agree with addresses (decision 8), QUIC endpoints, ECH (decision 9), DNS repeats
and answers seen first: HY-DEST, HY-TLS, PX-ONLY and PX-CONNECT on Observations built here.

These tests set `TlsClientHello.quic_version` and `.ech` directly, as the observers do;
tests/judge/test_quic_ech_captures.py judges the same rules on captures the observers read.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from conformance.judge import air_gapped, hybrid, proxy
from conformance.judge.result import ControlResult, Severity
from conformance.observe.proxy_log import ProxyLog, ProxyLogEntry
from conformance.observe.records import (
    DnsQuery,
    EchKind,
    Flow,
    InitiatorBasis,
    PayloadKind,
    TlsClientHello,
    TlsServerHello,
)
from conformance.profile_model import (
    Cloud,
    CloudEndpoint,
    Environment,
    Mode,
    NameHint,
    Profile,
    ProxySpec,
    Target,
    Telemetry,
)
from conformance.verdict import Verdict
from tests.judge.factory import T0, Scenario

TARGET = "192.0.2.10"
OTHER_HOST = "192.0.2.77"
RESOLVER = "192.0.2.53"
OUTSIDE_RESOLVER = "198.51.100.53"
PROXY = "192.0.2.80"
API = "203.0.113.10"
GRPC = "203.0.113.11"
EDGE = "203.0.113.30"
FRONT = "198.51.100.7"
P, F, I = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # noqa: E741
QUIC_V1 = 0x00000001


def profile(
    *endpoints: str, proxied: bool = False, hints: tuple[tuple[str, str], ...] = ()
) -> Profile:
    """A hybrid profile; endpoints written as in YAML (`name:port`, `name:port/udp`)."""
    parsed = []
    for written in endpoints or ("api.imagicle.com:443", "grpc.imagicle.com:443"):
        name, _, port = written.rpartition(":")
        number, _, transport = port.partition("/")
        parsed.append(CloudEndpoint(name, int(number), None, "udp" if transport else "tcp"))

    return Profile(
        source=Path("test.yaml"),
        name="site",
        mode=Mode.HYBRID,
        target=Target((ipaddress.ip_address(TARGET),)),
        environment=Environment((ipaddress.ip_network("192.0.2.0/24"),)),
        cloud=Cloud(
            services=("licensing",),
            endpoints=tuple(parsed),
            hints=tuple(NameHint(ipaddress.ip_address(a), n) for a, n in hints),
        ),
        proxy=ProxySpec(ipaddress.ip_address(PROXY), 3128) if proxied else None,
        telemetry=Telemetry.DISABLED,
    )


def at(s: Scenario, flow: Flow, time: float) -> Flow:
    """Move `flow` (the scenario's last) to `time`."""
    moved = dataclasses.replace(flow, first_time=time, last_time=time + 1)
    s.flows[flow.flow_id - 1] = moved
    return moved


def hello(
    s: Scenario,
    flow: Flow,
    sni: str | None,
    *,
    ech: EchKind = EchKind.NONE,
    quic: int | None = None,
) -> TlsClientHello:
    made = dataclasses.replace(s.tls(flow, sni), ech=ech, quic_version=quic)
    s.hellos[-1] = made
    return made


def lookup(
    s: Scenario,
    name: str,
    *addresses: str,
    client: str = TARGET,
    cnames: tuple[str, ...] = (),
    time: float | None = None,
    runs: tuple[tuple[float, float], ...] = (),
) -> DnsQuery:
    query = s.dns(client, RESOLVER, name, answers=addresses, cnames=cnames)
    if time is not None:
        at(s, s.flows[query.flow_id - 1], time)
    changed = dataclasses.replace(query, time=time if time is not None else query.time)
    if runs:
        changed = dataclasses.replace(changed, answer_runs=runs)
    s.dns_queries[-1] = changed
    return changed


def tls_flow(s: Scenario, address: str, sni: str | None, port: int = 443, **kwargs: object) -> Flow:
    flow = s.flow(TARGET, address, port)
    hello(s, flow, sni, **kwargs)  # type: ignore[arg-type]
    return flow


def dest(s: Scenario, prof: Profile | None = None) -> ControlResult:
    return hybrid.dest(s.observations(), prof or profile())


def summaries(result: ControlResult, severity: Severity) -> str:
    return " | ".join(f.summary for f in result.findings if f.severity is severity)


# --- decision 8: names agree with addresses ------------------------------------------------


def test_sni_to_an_address_its_dns_answer_gave_passes() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    tls_flow(s, API, "api.imagicle.com")
    result = dest(s)
    assert result.verdict is P, result
    assert not result.findings  # agreeing with DNS needs no remark


def test_sni_to_another_address_than_its_dns_answer_is_a_mismatch() -> None:
    # domain fronting, or a name resolved elsewhere: the target's own DNS says API
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    tls_flow(s, FRONT, "api.imagicle.com")
    result = dest(s)
    assert result.verdict is F, result
    (violation,) = result.violations
    assert "name/address mismatch" in violation.summary and FRONT in violation.summary
    assert f"give api.imagicle.com only {API}" in violation.summary
    assert violation.flow_id is not None and violation.packets is not None
    assert result.facts["name_address_mismatches"] == 1


def test_any_hosts_dns_answer_any_time_counts_for_the_name() -> None:
    # decision 8: any resolver, any time in the window; here another host asked, later
    s = Scenario()
    tls_flow(s, FRONT, "api.imagicle.com")
    lookup(s, "api.imagicle.com", API, client=OTHER_HOST)
    assert dest(s).verdict is F


def test_a_name_without_dns_in_the_capture_is_mapped_by_the_claim_and_the_report_says_so() -> None:
    # a hard-coded address the capture cannot check: the claim alone maps it
    s = Scenario()
    tls_flow(s, FRONT, "api.imagicle.com")
    tls_flow(s, FRONT, "api.imagicle.com")
    result = dest(s)
    assert result.verdict is P, result
    (info,) = [f for f in result.findings if f.severity is Severity.INFO]
    assert (
        "by its SNI alone" in info.summary and "no DNS answer for api.imagicle.com" in info.summary
    )
    assert info.summary.endswith("2 flows")
    assert result.facts["named_by_claim_alone"] == {"api.imagicle.com": 2}


def test_an_outside_flow_nothing_explains_is_unexplained() -> None:
    s = Scenario()
    s.flow(TARGET, FRONT, 8443)
    result = dest(s)
    assert result.verdict is F
    (violation,) = result.violations
    assert "unexplained: no SNI, CONNECT host, HTTP Host, earlier DNS answer or hint" in (
        violation.summary
    )
    assert result.facts["unexplained"] == 1


def test_http_host_is_a_claim_too() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    flow = s.flow(TARGET, FRONT, 80)
    s.http(flow, "GET", "/v1/poll", host="api.imagicle.com")
    result = dest(s, profile("api.imagicle.com:80"))
    assert result.verdict is F and "HTTP Host api.imagicle.com" in result.violations[0].summary


def test_http_host_that_agrees_names_the_flow() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    flow = s.flow(TARGET, API, 80)
    s.http(flow, "GET", "/v1/poll", host="api.imagicle.com:80")
    result = dest(s, profile("api.imagicle.com:80"))
    assert result.verdict is P, result


def test_an_address_answered_for_a_cname_target_counts_for_the_owner() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", EDGE, cnames=("api.imagicle.com.edge.example.net",))
    tls_flow(s, EDGE, "api.imagicle.com")
    s.flow(TARGET, EDGE, 443)  # no SNI: named by the DNS answer, the owner included
    result = dest(s)
    assert result.verdict is P, result
    assert result.facts["endpoints_reached"] == {"api.imagicle.com:443": 2}


def test_a_cname_chain_across_two_responses_is_followed() -> None:
    s = Scenario()
    s.dns(TARGET, RESOLVER, "api.imagicle.com", cnames=("edge.example.net",))
    lookup(s, "edge.example.net", EDGE)
    tls_flow(s, EDGE, "api.imagicle.com")
    s.flow(TARGET, EDGE, 443)
    assert dest(s).verdict is P


def test_a_cname_loop_in_the_answers_ends() -> None:
    s = Scenario()
    s.dns(TARGET, RESOLVER, "a.example.net", cnames=("b.example.net",))
    s.dns(TARGET, RESOLVER, "b.example.net", cnames=("a.example.net",))
    tls_flow(s, FRONT, "a.example.net")
    result = dest(s, profile("a.example.net:443"))
    assert result.verdict is P  # no address answered: the claim alone


def test_shared_address_of_the_claimed_name_is_no_mismatch() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API, GRPC)
    tls_flow(s, GRPC, "api.imagicle.com")
    assert dest(s).verdict is P


# --- DNS repeats: every answer time counts -------------------------------------------------


def test_a_flow_after_the_first_answer_expired_but_within_a_repeat_is_mapped() -> None:
    # repeated queries on one port: answers at T0 and T0+1000 (TTL 300), flow at T0+1100
    s = Scenario()
    lookup(s, "api.imagicle.com", API, time=T0, runs=((T0, T0), (T0 + 1000, T0 + 1000)))
    at(s, s.flow(TARGET, API, 443), T0 + 1100)
    result = dest(s)
    assert result.verdict is P, result
    assert result.facts["endpoints_reached"] == {"api.imagicle.com:443": 1}


def test_a_flow_between_two_answer_runs_is_not_mapped() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API, time=T0, runs=((T0, T0), (T0 + 1000, T0 + 1000)))
    at(s, s.flow(TARGET, API, 443), T0 + 600)  # the first answer expired at T0+300
    assert dest(s).verdict is F


def test_without_runs_the_last_repeat_time_counts() -> None:
    s = Scenario()
    query = lookup(s, "api.imagicle.com", API, time=T0)
    s.dns_queries[-1] = dataclasses.replace(query, count=2, last_time=T0 + 1000)
    at(s, s.flow(TARGET, API, 443), T0 + 1100)
    assert dest(s).verdict is P


# --- QUIC -----------------------------------------------------------------------------------


def quic_flow(s: Scenario, sni: str = "api.imagicle.com", **kwargs: object) -> Flow:
    flow = s.flow(TARGET, API, 443, transport="udp", sport=50000)
    hello(s, flow, sni, quic=QUIC_V1, **kwargs)  # type: ignore[arg-type]
    return flow


def test_quic_to_an_allowed_udp_endpoint_passes_hy_dest_and_hy_tls() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    quic_flow(s)
    prof = profile("api.imagicle.com:443", "api.imagicle.com:443/udp")
    result = dest(s, prof)
    assert result.verdict is P, result
    assert result.facts["endpoints_reached"] == {"api.imagicle.com:443/udp": 1}
    tls_result = hybrid.tls(s.observations(), prof)
    assert tls_result.verdict is P, tls_result
    endpoints = tls_result.facts["endpoints"]
    assert isinstance(endpoints, dict)
    assert endpoints["api.imagicle.com:443/udp"]["version"] == "TLS 1.3 (QUIC)"


def test_quic_to_a_tcp_only_endpoint_fails() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    quic_flow(s)
    result = dest(s, profile("api.imagicle.com:443"))
    assert result.verdict is F
    assert "allowed for TCP only, not QUIC" in result.violations[0].summary


def test_tcp_to_a_udp_only_endpoint_fails() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    tls_flow(s, API, "api.imagicle.com")
    result = dest(s, profile("api.imagicle.com:443/udp"))
    assert result.verdict is F
    assert "allowed for QUIC (/udp) only, not TCP" in result.violations[0].summary


def test_quic_with_a_server_hello_is_judged_by_it() -> None:
    s = Scenario()
    flow = quic_flow(s)
    obs = dataclasses.replace(
        s.observations(),
        server_hellos=(TlsServerHello(0, flow.first_packet + 1, T0, flow.flow_id, 0x0304, 0x1302),),
    )
    result = hybrid.tls(obs, profile("api.imagicle.com:443/udp"))
    assert result.verdict is P, result
    endpoints = result.facts["endpoints"]
    assert isinstance(endpoints, dict)
    assert endpoints["api.imagicle.com:443/udp"]["suite"] == "TLS_AES_256_GCM_SHA384"


def test_quic_whose_initial_was_not_read_is_not_plaintext_but_open() -> None:
    s = Scenario()
    flow = s.flow(TARGET, API, 443, transport="udp", sport=50001)
    head = bytes([0xC3]) + QUIC_V1.to_bytes(4, "big") + bytes(20)
    s.flows[-1] = dataclasses.replace(flow, payload_head_out=head, first_payload_packet=1)
    result = hybrid.tls(s.observations(), profile("api.imagicle.com:443/udp"))
    assert result.verdict is I, result
    assert "QUIC flow whose Initial packets could not be read" in result.reason


def test_udp_that_is_not_quic_is_plaintext() -> None:
    s = Scenario()
    flow = s.flow(TARGET, API, 443, transport="udp", sport=50002)
    s.flows[-1] = dataclasses.replace(
        flow, payload_head_out=b"hello", first_payload_packet=1, payload_out=PayloadKind.OTHER
    )
    assert hybrid.tls(s.observations(), profile("api.imagicle.com:443/udp")).verdict is F


# --- ECH (decision 9) -------------------------------------------------------------------------


def test_grease_ech_does_not_hide_the_name() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    tls_flow(s, API, "api.imagicle.com", ech=EchKind.GREASE)
    result = dest(s)
    assert result.verdict is P and result.facts["real_name_hidden"] == 0


@pytest.mark.parametrize("kind", [EchKind.REAL, EchKind.UNKNOWN])
def test_real_ech_behind_an_allowed_public_name_cannot_pass_on_it(kind: EchKind) -> None:
    s = Scenario()
    tls_flow(s, API, "ech.imagicle.com", ech=kind)
    result = dest(s, profile("*.imagicle.com:443"))
    assert result.verdict is I, result
    assert "cannot pass on that name alone (decision 9)" in result.reason
    assert "the real name is hidden by Encrypted ClientHello" in summaries(result, Severity.WARNING)


def test_real_ech_behind_a_public_name_that_is_not_allowed_fails() -> None:
    s = Scenario()
    tls_flow(s, FRONT, "cloudflare-ech.com", ech=EchKind.REAL)
    result = dest(s)
    assert result.verdict is F
    assert (
        "public name cloudflare-ech.com is not an allowed endpoint" in result.violations[0].summary
    )


def test_real_ech_is_named_by_the_targets_dns_answer_and_says_the_name_is_hidden() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    tls_flow(s, API, "cloudflare-ech.com", ech=EchKind.REAL)
    result = dest(s)
    assert result.verdict is P, result
    assert "real name is hidden by Encrypted ClientHello" in summaries(result, Severity.INFO)
    assert result.facts["real_name_hidden"] == 1


def test_ech_public_name_is_not_a_dns_name_for_the_flow() -> None:
    # the target resolved the public name itself: that names the front, not the real name
    s = Scenario()
    lookup(s, "ech.imagicle.com", API)
    tls_flow(s, API, "ech.imagicle.com", ech=EchKind.REAL)
    assert dest(s, profile("*.imagicle.com:443")).verdict is I


# --- tunnels through the proxy ------------------------------------------------------------


def tunnel(s: Scenario, authority: str, sni: str | None, **kwargs: object) -> Flow:
    flow = s.flow(TARGET, PROXY, 3128, sport=41000 + len(s.flows))
    s.http(flow, "CONNECT", authority, host=authority)
    if sni is not None or kwargs:
        hello(s, flow, sni, **kwargs)  # type: ignore[arg-type]
    return flow


def test_sni_that_differs_from_the_connect_host_is_a_mismatch_for_hy_dest() -> None:
    s = Scenario()
    tunnel(s, "api.imagicle.com:443", "grpc.imagicle.com")
    result = dest(s, profile(proxied=True))
    assert result.verdict is F
    assert (
        "SNI grpc.imagicle.com inside a tunnel to api.imagicle.com" in result.violations[0].summary
    )
    assert proxy.connect(s.observations(), profile(proxied=True)).verdict is F


def test_connect_to_an_address_literal_is_judged_by_its_sni_and_dns() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    tunnel(s, f"{FRONT}:443", "api.imagicle.com")  # hard-coded address, fronted name
    prof = profile(proxied=True)
    result = dest(s, prof)
    assert result.verdict is F and "name/address mismatch" in result.violations[0].summary
    assert proxy.connect(s.observations(), prof).verdict is F  # an address literal never matches


def test_connect_to_the_address_the_name_resolved_to_agrees() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    tunnel(s, f"{API}:443", "api.imagicle.com")
    assert dest(s, profile(proxied=True)).verdict is P


def test_ech_inside_a_tunnel_is_named_by_the_connect_host_but_px_connect_stays_open() -> None:
    s = Scenario()
    tunnel(s, "api.imagicle.com:443", "public.example.net", ech=EchKind.REAL)
    prof = profile(proxied=True)
    result = dest(s, prof)
    assert result.verdict is P, result
    assert "named api.imagicle.com by its CONNECT host" in summaries(result, Severity.INFO)
    connect = proxy.connect(s.observations(), prof)
    assert connect.verdict is I, connect
    assert "hides its real name" in connect.reason
    assert "public name public.example.net" in summaries(connect, Severity.WARNING)


def squid(*lines: tuple[str, str]) -> ProxyLog:
    entries = tuple(
        ProxyLogEntry(n, T0, TARGET, "TCP_TUNNEL", 200, "CONNECT", url, f"line {n}", hierarchy)
        for n, (url, hierarchy) in enumerate(lines, 1)
    )
    return ProxyLog("lab/squid-access.log", entries)


def test_the_address_the_proxy_reached_is_checked_against_the_captures_dns() -> None:
    s = Scenario()
    lookup(s, "api.imagicle.com", API)
    tunnel(s, "api.imagicle.com:443", "api.imagicle.com")
    tunnel(s, "api.imagicle.com:443", "api.imagicle.com")
    log = squid(
        ("api.imagicle.com:443", f"HIER_DIRECT/{API}"),
        ("api.imagicle.com:443", f"HIER_DIRECT/{FRONT}"),
        ("grpc.imagicle.com:443", f"HIER_DIRECT/{GRPC}"),  # no DNS for it in the capture
        ("api.imagicle.com:443", "FIRSTUP_PARENT/192.0.2.80"),  # a parent: no address
    )
    result = proxy.connect(
        dataclasses.replace(s.observations(), proxy_log=log), profile(proxied=True)
    )
    assert result.verdict is P, result  # the proxy's own resolution: a warning
    (warning,) = [f for f in result.findings if f.severity is Severity.WARNING]
    assert f"reached api.imagicle.com at {FRONT}" in warning.summary
    assert warning.evidence_file == "lab/squid-access.log" and warning.evidence_line == 2
    assert result.facts["proxy_peers_agreeing"] == 1
    assert result.facts["proxy_peers_disagreeing"] == 1


# --- PX-ONLY: every external flow not to the proxy ----------------------------------------


def test_dns_straight_to_an_outside_resolver_fails_px_only_and_px_dns() -> None:
    s = Scenario()
    tunnel(s, "api.imagicle.com:443", "api.imagicle.com")
    s.dns(TARGET, OUTSIDE_RESOLVER, "api.imagicle.com", answers=(API,))
    obs, prof = s.observations(), profile(proxied=True)
    only = proxy.only(obs, prof)
    assert only.verdict is F and "DNS to an outside resolver" in only.violations[0].summary
    assert proxy.dns(obs, prof).verdict is F


# --- answers seen first (InitiatorBasis.RESPONSE_FIRST) -------------------------------------


def answer_only(s: Scenario) -> Flow:
    """Only an outside resolver's answer to the target is in the capture (turned around)."""
    return s.flow(
        TARGET,
        OUTSIDE_RESOLVER,
        53,
        transport="udp",
        sport=40000,
        packets_out=0,
        packets_in=1,
        basis=InitiatorBasis.RESPONSE_FIRST,
    )


def test_an_answer_alone_is_a_warning_not_a_flow_of_the_window() -> None:
    s = Scenario()
    tunnel(s, "api.imagicle.com:443", "api.imagicle.com")
    answer_only(s)
    obs, prof = s.observations(), profile(proxied=True)
    for result in (proxy.only(obs, prof), hybrid.dest(obs, prof), air_gapped.egress(obs, prof)):
        assert result.verdict is P, result
        warnings = summaries(result, Severity.WARNING)
        assert "only the answer is in the capture" in warnings, result.control_id
        assert "(its first packet is a response: the other side asked)" in warnings


def test_a_conversation_seen_from_an_answer_on_is_the_targets_flow() -> None:
    s = Scenario()
    tunnel(s, "api.imagicle.com:443", "api.imagicle.com")
    s.flow(
        TARGET,
        OUTSIDE_RESOLVER,
        53,
        transport="udp",
        sport=40000,
        packets_out=1,
        packets_in=2,
        basis=InitiatorBasis.RESPONSE_FIRST,
    )
    obs, prof = s.observations(), profile(proxied=True)
    assert proxy.only(obs, prof).verdict is F
    assert air_gapped.egress(obs, prof).verdict is F


def test_hint_still_names_a_flow_without_claims() -> None:
    s = Scenario()
    s.flow(TARGET, "203.0.113.20", 443)
    result = dest(s, profile(hints=(("203.0.113.20", "api.imagicle.com"),)))
    assert result.verdict is P
