"""Hostile captures against the egress judges (AG-EGRESS, HY-DEST, PX-ONLY): packets the target
sends out of the environment in shapes meant to look harmless. Each capture is written to a
file and read by the observers, as `run --pcap` reads it.

- Multicast to a globally scoped group can be routed out of the site: only the IPv4 local
  network control block (224.0.0.0/24), administratively scoped groups (239.0.0.0/8) and IPv6
  groups of interface- to organization-local scope are scope-limited (decision 6).
- A target packet to an outside address that answers nothing in the capture (an ICMP error
  quoting a datagram nobody sent, a reset to a connection nobody opened) is not shown to be
  an answer (decision 1): the absence claim stays open, never `pass`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Packet, Raw

from conformance.judge import air_gapped, hybrid, proxy
from conformance.judge.common import is_outside, is_scope_limited
from conformance.judge.result import Severity
from conformance.observe.builder import observe_captures
from conformance.observe.records import Observations
from conformance.profile import load_profile
from conformance.verdict import Verdict
from tests import defects
from tests.defects import OUTSIDE, TARGET, TARGET6, _Clock, _frame, clean_onprem_traffic
from tests.proxy_captures import PROFILES, proxied_clean, proxy_profile

ENV = defects.defect_profile().environment
HYBRID = load_profile(PROFILES / "lab-hybrid.yaml")


def observed(
    tmp_path: Path, frames: list[Packet], background: list[Packet] | None = None
) -> Observations:
    stamped = _Clock().stamp([*(background or clean_onprem_traffic()), *frames])
    return observe_captures([defects.write_pcap(tmp_path / "hostile.pcap", stamped)])


# --- decision 6: which multicast stays in ----------------------------------------------------


@pytest.mark.parametrize(
    "group", ["233.252.0.1", "224.0.1.1", "232.1.2.3", "ff0e::db8:1", "ff1e::1", "ff0f::1"]
)
def test_globally_scoped_multicast_is_not_scope_limited(group: str) -> None:
    address = ipaddress.ip_address(group)
    assert not is_scope_limited(address, ENV)
    assert is_outside(address, ENV)


@pytest.mark.parametrize(
    "group", ["224.0.0.251", "224.0.0.252", "239.255.255.250", "ff02::fb", "ff05::1:3", "ff18::1"]
)
def test_link_site_and_organization_multicast_stays_scope_limited(group: str) -> None:
    assert is_scope_limited(ipaddress.ip_address(group), ENV)


@pytest.mark.parametrize(("source", "group"), [(TARGET, "233.252.0.1"), (TARGET6, "ff0e::db8:1")])
def test_data_to_a_global_multicast_group_fails_ag_egress(
    source: str, group: str, tmp_path: Path
) -> None:
    frame = _frame(source, group, UDP(sport=40000, dport=5000) / Raw(b"licence-data" * 8))
    result = air_gapped.egress(observed(tmp_path, [frame]), defects.defect_profile())
    assert result.verdict is Verdict.FAIL, result.reason
    (finding,) = result.violations
    assert group in finding.summary and finding.flow_id is not None and finding.packets


def test_ssdp_and_mdns_multicast_are_still_not_egress(tmp_path: Path) -> None:
    frames = [
        _frame(
            TARGET,
            "239.255.255.250",
            UDP(sport=1900, dport=1900) / Raw(b"M-SEARCH * HTTP/1.1\r\n\r\n"),
        ),
        _frame(TARGET6, "ff02::fb", UDP(sport=5353, dport=5353) / Raw(bytes(12))),
    ]
    result = air_gapped.egress(observed(tmp_path, frames), defects.defect_profile())
    assert result.verdict is Verdict.PASS, result.reason


# --- decision 1: target packets that answer nothing in the capture ---------------------------


def icmp_error_quoting_nothing() -> list[Packet]:
    """The target's 'port unreachable' to an outside host, quoting a DNS answer that host never
    sent (none is in the capture), with 100 bytes of the target's own data in the quote."""
    quoted = IP(src=OUTSIDE, dst=TARGET) / UDP(sport=53, dport=40000) / Raw(b"exfil" * 20)
    return [_frame(TARGET, OUTSIDE, ICMP(type=3, code=3) / quoted)]


def reset_to_nobody() -> list[Packet]:
    """A reset from the target's SSH port to an outside port, nothing from that host seen.
    (With data in it, the observers count the flow accepted: AG-INGRESS fails it.)"""
    return [_frame(TARGET, OUTSIDE, TCP(sport=22, dport=40000, flags="R", seq=1))]


@pytest.mark.parametrize("build", [icmp_error_quoting_nothing, reset_to_nobody])
def test_a_target_packet_answering_nothing_seen_keeps_ag_egress_open(
    build: Callable[[], list[Packet]], tmp_path: Path
) -> None:
    obs = observed(tmp_path, build())
    result = air_gapped.egress(obs, defects.defect_profile())
    assert result.verdict is Verdict.INCONCLUSIVE, result.reason
    assert "answer no packet in the capture" in result.reason
    (finding,) = [f for f in result.findings if f.severity is Severity.WARNING]
    assert OUTSIDE in finding.summary and finding.flow_id is not None and finding.packets
    # AG-INGRESS sees a refused attempt and passes: AG-EGRESS is what must not.
    assert air_gapped.ingress(obs, defects.defect_profile()).verdict is Verdict.PASS


def test_a_target_reset_answering_an_outside_syn_in_the_capture_still_passes(
    tmp_path: Path,
) -> None:
    frames = defects.tcp_session(defects.OUTSIDE_CLIENT, 40001, TARGET, 22, accept=False)
    result = air_gapped.egress(observed(tmp_path, frames), defects.defect_profile())
    assert result.verdict is Verdict.PASS, result.reason


def test_hy_dest_does_not_pass_a_target_packet_answering_nothing(tmp_path: Path) -> None:
    result = hybrid.dest(observed(tmp_path, icmp_error_quoting_nothing()), HYBRID)
    assert result.verdict is not Verdict.PASS, result.reason
    assert "answer no packet in the capture" in result.reason


def test_px_only_does_not_pass_a_target_packet_answering_nothing(tmp_path: Path) -> None:
    obs = observed(tmp_path, icmp_error_quoting_nothing(), background=proxied_clean())
    result = proxy.only(obs, proxy_profile())
    assert result.verdict is Verdict.INCONCLUSIVE, result.reason
    assert "answer no packet in the capture" in result.reason


# --- what went through the proxy without a request ------------------------------------------


def test_hy_dest_does_not_pass_bytes_sent_to_the_proxy_without_a_request(tmp_path: Path) -> None:
    """SOCKS5 to the proxy port: no CONNECT names where the proxy took it."""
    socks = defects.tcp_session(TARGET, 50016, defects.PROXY, 3128, b"\x05\x01\x00", b"\x05\x00")
    obs = observed(tmp_path, socks, background=proxied_clean())
    result = hybrid.dest(obs, proxy_profile())
    assert result.verdict is Verdict.INCONCLUSIVE, result.reason
    assert "no readable HTTP request" in result.reason
    (finding,) = [f for f in result.findings if "no readable HTTP request" in f.summary]
    assert finding.flow_id is not None and finding.packets


def test_hy_dest_still_passes_a_connection_to_the_proxy_that_sent_nothing(tmp_path: Path) -> None:
    opened = defects.tcp_session(TARGET, 50017, defects.PROXY, 3128)
    result = hybrid.dest(observed(tmp_path, opened, background=proxied_clean()), proxy_profile())
    assert result.verdict is Verdict.PASS, result.reason


# --- AG-CLOUD-NAMES: an external name handed to an on-prem relay -----------------------------


def sni_to_onprem_relay(sni: str) -> list[Packet]:
    """TLS to an on-prem SNI proxy (192.0.2.80:443) naming `sni`, no DNS by the target."""
    return defects.tcp_session(TARGET, 52000, defects.PROXY, 443, defects.client_hello(sni))


def test_sni_to_an_onprem_relay_for_a_name_dns_shows_external_fails(tmp_path: Path) -> None:
    """The admin workstation's lookup shows the name is outside; the target never resolves
    it, but hands it to an on-prem relay."""
    lookup = defects.dns_lookup(
        defects.ADMIN, defects.DNS_SERVER, "updates.example.net", answers=[OUTSIDE], cport=53800
    )
    obs = observed(tmp_path, [*lookup, *sni_to_onprem_relay("updates.example.net")])
    result = air_gapped.cloud_names(obs, defects.defect_profile())
    assert result.verdict is Verdict.FAIL, result.reason
    (finding,) = result.violations
    assert "SNI updates.example.net" in finding.summary and OUTSIDE in finding.summary
    assert finding.flow_id is not None and finding.packets


def test_sni_to_an_onprem_relay_for_a_name_nothing_shows_internal_is_a_warning(
    tmp_path: Path,
) -> None:
    obs = observed(tmp_path, sni_to_onprem_relay("updates.example.net"))
    result = air_gapped.cloud_names(obs, defects.defect_profile())
    assert result.verdict is Verdict.PASS, result.reason
    (warning,) = [f for f in result.findings if f.severity is Severity.WARNING]
    assert "no on-prem resolver showed this name internal" in warning.summary


def test_sni_for_a_name_the_onprem_resolver_shows_internal_is_fine(tmp_path: Path) -> None:
    lookup = defects.dns_lookup(
        TARGET, defects.DNS_SERVER, "web.corp.example", answers=[defects.PROXY], cport=53801
    )
    obs = observed(tmp_path, [*lookup, *sni_to_onprem_relay("web.corp.example")])
    result = air_gapped.cloud_names(obs, defects.defect_profile())
    assert result.verdict is Verdict.PASS, result.reason
    assert not [f for f in result.findings if "web.corp.example" in f.summary]
