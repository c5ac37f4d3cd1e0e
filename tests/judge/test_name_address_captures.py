"""Decision 8 and the DNS/direction defects of issue #12 on captures built here, read by the
real observers: name/address mismatch with and without DNS in the capture, an unexplained
flow, repeated DNS queries on one port, a DNS response seen first, PX-ONLY's DNS bypass."""

from __future__ import annotations

from pathlib import Path

from scapy.packet import Packet

from conformance.judge import air_gapped, hybrid, proxy
from conformance.judge.result import Severity
from conformance.observe.records import InitiatorBasis
from conformance.verdict import Verdict
from tests import defects
from tests import proxy_captures as pc
from tests.defects import DNS_SERVER, OUTSIDE_DNS, TARGET
from tests.judge.test_hybrid import API, OTHER, lookup, observe, profile_for, scenario, tls_to

P, F = Verdict.PASS, Verdict.FAIL


def test_mismatch_with_the_targets_dns_in_the_capture_fails(tmp_path: Path) -> None:
    packets = scenario(lookup("api.imagicle.com", API), tls_to(OTHER, "api.imagicle.com"))
    result = hybrid.dest(observe(tmp_path, packets), profile_for(tmp_path, "fronted"))
    assert result.verdict is F, result
    (violation,) = result.violations
    assert "name/address mismatch: SNI api.imagicle.com" in violation.summary
    assert OTHER in violation.summary and violation.packets is not None


def test_without_dns_in_the_capture_the_claim_maps_and_is_reported(tmp_path: Path) -> None:
    packets = scenario(tls_to(OTHER, "api.imagicle.com"))
    result = hybrid.dest(observe(tmp_path, packets), profile_for(tmp_path, "hardcoded"))
    assert result.verdict is P, result
    assert any(
        "by its SNI alone" in f.summary for f in result.findings if f.severity is Severity.INFO
    )


def test_an_outside_flow_without_any_name_is_unexplained(tmp_path: Path) -> None:
    packets = scenario(defects.tcp_session(TARGET, 40301, OTHER, 8443, b"\x00\x01blob"))
    result = hybrid.dest(observe(tmp_path, packets), profile_for(tmp_path, "unexplained"))
    assert result.verdict is F and "unexplained" in result.violations[0].summary


def repeated_lookups(*offsets: float, flow_at: float) -> list[Packet]:
    """The same lookup on one client port at each offset (TTL 300), then a flow without SNI."""
    clock = defects._Clock()
    packets: list[Packet] = []
    start = clock.now
    for offset in offsets:
        clock.now = start + offset
        packets += clock.stamp(lookup("api.imagicle.com", API, cport=53100))
    clock.now = start + flow_at
    packets += clock.stamp(tls_to(API, None, cport=40302))
    return packets


def test_a_repeat_on_one_port_keeps_its_own_answer_time(tmp_path: Path) -> None:
    # the first answer expired at +300; the repeat at +1000 is valid until +1300
    obs = observe(tmp_path, repeated_lookups(0, 1000, flow_at=1100))
    (query,) = [q for q in obs.dns if q.qname == "api.imagicle.com"]
    assert query.count == 2 and len(query.answer_runs) == 2  # one record, two validity runs
    result = hybrid.dest(obs, profile_for(tmp_path, "repeat"))
    assert result.verdict is P, result
    assert result.facts["endpoints_reached"] == {"api.imagicle.com:443": 1}


def test_a_flow_in_the_gap_between_repeats_is_not_named(tmp_path: Path) -> None:
    obs = observe(tmp_path, repeated_lookups(0, 1000, 2000, flow_at=1500))
    result = hybrid.dest(obs, profile_for(tmp_path, "gap"))
    assert result.verdict is F and "unexplained" in result.violations[0].summary


def outside_dns_seen_from_its_answer() -> list[Packet]:
    """A query to an outside resolver went out before the capture; its answer, then the
    target's next query and answer on the same port, are in it."""
    first = defects.dns_lookup(TARGET, OUTSIDE_DNS, "api.imagicle.com", answers=[API])
    again = defects.dns_lookup(TARGET, OUTSIDE_DNS, "grpc.imagicle.com", answers=[API])
    return [first[1], *again]


def test_a_dns_response_seen_first_is_the_targets_query(tmp_path: Path) -> None:
    packets = scenario(pc.proxied_clean(), outside_dns_seen_from_its_answer())
    obs = observe(tmp_path, packets)
    (flow,) = [f for f in obs.flows if OUTSIDE_DNS in (str(f.initiator), str(f.responder))]
    assert str(flow.initiator) == TARGET and flow.initiator_basis is InitiatorBasis.RESPONSE_FIRST
    prof = pc.proxy_profile()
    only = proxy.only(obs, prof)
    assert only.verdict is F, only  # the target's flow around the proxy, not an inbound one
    assert "its first packet is a response" in only.violations[0].summary
    assert proxy.dns(obs, prof).verdict is F
    assert air_gapped.ingress(obs, prof).verdict is not F  # nothing from outside was accepted


def test_a_lone_answer_from_outside_is_a_warning(tmp_path: Path) -> None:
    answer = defects.dns_lookup(TARGET, OUTSIDE_DNS, "api.imagicle.com", answers=[API])[1]
    obs = observe(tmp_path, scenario(pc.proxied_clean(), [answer]))
    only = proxy.only(obs, pc.proxy_profile())
    assert only.verdict is P, only
    assert any("only the answer is in the capture" in f.summary for f in only.findings)


def test_px_only_dns_bypass_fails_both_controls(tmp_path: Path) -> None:
    obs = observe(tmp_path, pc.outside_resolver())
    prof = pc.proxy_profile()
    assert proxy.only(obs, prof).verdict is F
    assert proxy.dns(obs, prof).verdict is F


def test_on_prem_dns_is_no_bypass(tmp_path: Path) -> None:
    queries = defects.dns_lookup(TARGET, DNS_SERVER, "cucm.lab.internal", answers=["192.0.2.20"])
    obs = observe(tmp_path, scenario(pc.proxied_clean(), queries))
    assert proxy.only(obs, pc.proxy_profile()).verdict is P
