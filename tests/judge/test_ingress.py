"""AG-INGRESS: no flow from outside the environment is accepted by the target."""

from __future__ import annotations

from conformance.judge.air_gapped import ingress
from conformance.judge.result import Severity
from conformance.observe.records import InitiatorBasis
from conformance.verdict import Verdict
from tests.defects import (
    ADMIN,
    CUCM,
    OUTSIDE,
    OUTSIDE6,
    OUTSIDE_CLIENT,
    TARGET,
    TARGET6,
    defect_profile,
)
from tests.judge.factory import Scenario

PROFILE = defect_profile()


def base() -> Scenario:
    s = Scenario()
    s.flow(TARGET, CUCM, 5061)
    s.flow(ADMIN, TARGET, 443)
    return s


def test_no_inbound_from_outside_passes() -> None:
    result = ingress(base().observations(), PROFILE)
    assert result.verdict is Verdict.PASS
    assert result.reason == "2 target flows; none opened from outside"


def test_accepted_inbound_fails() -> None:
    s = base()
    flow = s.flow(OUTSIDE_CLIENT, TARGET, 443, sport=40000)
    result = ingress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    (finding,) = result.violations
    assert finding.flow_id == flow.flow_id
    assert finding.summary == (
        "203.0.113.9:40000 -> 192.0.2.10:443 tcp, SYN, 5 packets, accepted: opened from outside"
    )
    assert result.facts["accepted_from_outside"] == 1


def test_accepted_inbound_udp_and_icmp_and_ipv6_fail() -> None:
    s = base()
    s.flow(OUTSIDE_CLIENT, TARGET, 161, transport="udp", sport=40000)
    s.flow(OUTSIDE_CLIENT, TARGET, 0, transport="icmp", sport=8)
    s.flow(OUTSIDE6, TARGET6, 22)
    result = ingress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert len(result.violations) == 3
    assert result.violations[0].facts["looks_like"] == "SNMP"


def test_refused_and_unanswered_inbound_are_info_and_pass() -> None:
    s = base()
    s.flow(OUTSIDE_CLIENT, TARGET, 22, packets_in=1, rejected=True)
    s.flow(OUTSIDE, TARGET, 3389, packets_in=0)
    result = ingress(s.observations(), PROFILE)
    assert result.verdict is Verdict.PASS
    assert [f.severity for f in result.findings] == [Severity.INFO, Severity.INFO]
    assert "refused: opened from outside, not accepted" in result.findings[0].summary
    assert "unanswered" in result.findings[1].summary
    assert result.reason.startswith("2 flows from outside addresses reached the target; none")


def test_mid_connection_inbound_by_port_heuristic_fails() -> None:
    s = base()
    s.flow(
        OUTSIDE_CLIENT,
        TARGET,
        443,
        sport=40000,
        handshake=False,
        basis=InitiatorBasis.PORT_HEURISTIC,
    )
    result = ingress(s.observations(), PROFILE)
    assert result.verdict is Verdict.FAIL
    assert result.violations[0].summary.endswith("(direction by port heuristic)")


def test_outbound_leak_is_not_ingress() -> None:
    s = base()
    s.flow(TARGET, OUTSIDE, 443)
    assert ingress(s.observations(), PROFILE).verdict is Verdict.PASS


def test_control_id_is_a_parameter_for_hybrid() -> None:
    s = base()
    s.flow(OUTSIDE_CLIENT, TARGET, 443)
    result = ingress(s.observations(), PROFILE, control_id="HY-INGRESS")
    assert result.control_id == "HY-INGRESS"
    assert result.verdict is Verdict.FAIL
