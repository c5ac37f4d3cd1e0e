"""End to end: each defect capture, written to a file, read by the observers, then judged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.packet import Packet

from conformance.judge import air_gapped
from conformance.judge.result import ControlResult, Severity
from conformance.observe.builder import observe_captures
from conformance.profile_model import Profile
from conformance.verdict import Verdict
from tests import defects

P, F, I = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # noqa: E741

# defect -> verdicts of (AG-EGRESS, AG-INGRESS, AG-CLOUD-NAMES, AG-ONPREM)
EXPECTED: dict[str, tuple[Verdict, Verdict, Verdict, Verdict]] = {
    "clean_onprem_traffic": (P, P, P, P),
    "tcp_leak": (F, P, F, P),  # Host crl.microsoft.com on a flow leaving the environment
    "udp_leak": (F, P, P, P),
    "icmp_leak": (F, P, P, P),
    "ipv6_leak": (F, P, F, P),  # SNI example.net to an outside address
    "syn_unanswered": (F, P, P, P),
    "cloud_name_to_onprem_resolver": (P, P, F, P),
    "outside_resolver_query": (F, P, F, P),
    "inbound_accepted": (P, F, P, P),
    "inbound_refused": (P, P, P, P),
    "mid_connection_leak": (F, P, P, P),
    "mdns_cloud_name": (P, P, F, P),
    "sni_cloud_name": (P, P, F, P),
    "undeclared_onprem_endpoint": (P, P, P, P),
    "silent_target": (I, I, I, I),
    "fragmented_leak": (F, P, P, P),
}


def judge_all(path: Path, profile: Profile | None = None) -> dict[str, ControlResult]:
    obs = observe_captures([path])
    profile = profile or defects.defect_profile()
    results = (
        air_gapped.egress(obs, profile),
        air_gapped.ingress(obs, profile),
        air_gapped.cloud_names(obs, profile),
        air_gapped.onprem(obs, profile),
    )
    return {r.control_id: r for r in results}


def builder(name: str) -> Callable[[], list[Packet]]:
    found: Callable[[], list[Packet]] = getattr(defects, name)
    return found


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_defect_capture_verdicts(name: str, tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / f"{name}.pcap", builder(name)())
    results = judge_all(path)
    got = tuple(r.verdict for r in results.values())
    assert got == EXPECTED[name], {k: r.reason for k, r in results.items()}


def test_tcp_leak_finding_names_the_flow_and_what_it_looks_like(tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "leak.pcap", defects.tcp_leak())
    result = judge_all(path)["AG-EGRESS"]
    (finding,) = result.violations
    assert finding.summary.startswith("192.0.2.10:51234 -> 198.51.100.7:80 tcp, SYN, ")
    assert finding.facts["looks_like"] == "Windows certificate revocation fetch"
    assert finding.flow_id is not None and finding.packets is not None


def test_syn_unanswered_is_three_packets_unanswered(tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "syn.pcap", defects.syn_unanswered())
    (finding,) = judge_all(path)["AG-EGRESS"].violations
    assert finding.summary.endswith("tcp, SYN, 3 packets, unanswered")


def test_mid_connection_leak_says_how_direction_was_decided(tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "mid.pcap", defects.mid_connection_leak())
    (finding,) = judge_all(path)["AG-EGRESS"].violations
    assert finding.summary.endswith("(direction by port heuristic)")


def test_inbound_refused_is_shown_as_info(tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "refused.pcap", defects.inbound_refused())
    result = judge_all(path)["AG-INGRESS"]
    assert [f.severity for f in result.findings] == [Severity.INFO]
    assert "refused" in result.findings[0].summary


def test_undeclared_endpoint_warns_and_fails_when_strict(tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "undeclared.pcap", defects.undeclared_onprem_endpoint())
    relaxed = judge_all(path)["AG-ONPREM"]
    assert [f.severity for f in relaxed.findings if f.severity is not Severity.INFO] == [
        Severity.WARNING
    ]
    strict = judge_all(path, defects.defect_profile(strict=True))["AG-ONPREM"]
    assert strict.verdict is Verdict.FAIL


def test_raw_ip_capture_is_judged_the_same(tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "raw.pcap", defects.ipv6_leak(), raw_ip=True)
    assert judge_all(path)["AG-EGRESS"].verdict is Verdict.FAIL


def test_truncated_clean_capture_is_inconclusive(tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "clean.pcap", defects.clean_onprem_traffic())
    defects.truncate(path, 10)
    for result in judge_all(path).values():
        assert result.verdict is Verdict.INCONCLUSIVE, result.reason


def test_leak_in_truncated_capture_is_still_fail(tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / "leak.pcap", defects.tcp_leak())
    defects.truncate(path, 10)
    result = judge_all(path)["AG-EGRESS"]
    assert result.verdict is Verdict.FAIL
    assert "the evidence is also incomplete" in result.reason


def test_drops_recorded_in_pcapng_make_it_inconclusive(tmp_path: Path) -> None:
    path = defects.write_pcapng(tmp_path / "drops.pcapng", defects.clean_onprem_traffic(), drops=3)
    result = judge_all(path)["AG-EGRESS"]
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "3 packets dropped" in result.reason


def test_pcapng_without_drops_passes(tmp_path: Path) -> None:
    path = defects.write_pcapng(tmp_path / "clean.pcapng", defects.clean_onprem_traffic(), drops=0)
    assert judge_all(path)["AG-EGRESS"].verdict is Verdict.PASS
