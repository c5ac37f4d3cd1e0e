"""Each fault switch of the reference target produces the traffic it promises.

Checked on the capture (scapy's rdpcap on the small file) or on the cloud stand-ins' request
log, never through the harness's own decoders, so a decoder bug cannot hide a fixture bug.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from scapy.layers.dns import DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw
from scapy.utils import rdpcap

from conformance.lab import list_faults
from tests.lab.conftest import Scenario

pytestmark = pytest.mark.lab

Runs = Callable[[str], Scenario]
TARGET = "192.0.2.10"
ENVIRONMENT = (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8:1::/64"))
SCOPE_LIMITED = (
    ipaddress.ip_network("224.0.0.0/4"),
    ipaddress.ip_network("ff00::/8"),
    ipaddress.ip_network("fe80::/10"),
)


def packets(scenario: Scenario) -> list[Packet]:
    return list(rdpcap(str(scenario.capture)))


def sent_by_target(scenario: Scenario) -> list[Packet]:
    return [
        p
        for p in packets(scenario)
        if (IP in p and p[IP].src == TARGET) or (IPv6 in p and p[IPv6].src == "2001:db8:1::10")
    ]


def has(scenario: Scenario, test: Callable[[Packet], bool]) -> bool:
    return any(test(p) for p in sent_by_target(scenario))


def _ip(p: Packet) -> Any:
    """The IPv4 or IPv6 layer, or None."""
    return p.getlayer(IP) or p.getlayer(IPv6)


def syn_to(address: str, port: int) -> Callable[[Packet], bool]:
    def test(p: Packet) -> bool:
        ip = _ip(p)
        return (
            ip is not None
            and TCP in p
            and ip.dst == address
            and p[TCP].dport == port
            and p[TCP].flags.S
            and not p[TCP].flags.A
        )

    return test


def udp_to(address: str, port: int) -> Callable[[Packet], bool]:
    def test(p: Packet) -> bool:
        ip = _ip(p)
        return ip is not None and UDP in p and ip.dst == address and p[UDP].dport == port

    return test


def dns_query(name: str, server: str) -> Callable[[Packet], bool]:
    def test(p: Packet) -> bool:
        return (
            udp_to(server, 5353 if server.startswith("224.") else 53)(p)
            and DNSQR in p
            and p[DNSQR].qname.decode().rstrip(".") == name
        )

    return test


def payload_to(address: str, port: int, prefix: bytes) -> Callable[[Packet], bool]:
    def test(p: Packet) -> bool:
        return (
            IP in p
            and TCP in p
            and p[IP].dst == address
            and p[TCP].dport == port
            and Raw in p
            and bytes(p[Raw].load).startswith(prefix)
        )

    return test


def requests(scenario: Scenario, **match: Any) -> list[dict[str, Any]]:
    return [r for r in scenario.cloud_requests() if all(r.get(k) == v for k, v in match.items())]


def _phone_home_dns(runs: Runs) -> bool:
    return has(runs("ag-faults"), dns_query("api.imagicle.com", "192.0.2.53"))


def _cloud_licensing_airgapped(runs: Runs) -> bool:
    return has(runs("ag-faults"), syn_to("203.0.113.10", 443))


def _ipv6_leak(runs: Runs) -> bool:
    return has(runs("ag-faults"), syn_to("2001:db8:ffff::10", 443))


def _ntp_public(runs: Runs) -> bool:
    return has(runs("ag-faults"), udp_to("203.0.113.123", 123))


def _outside_resolver(runs: Runs) -> bool:
    return has(runs("ag-faults"), udp_to("198.51.100.53", 53))


def _mdns_cloud_name(runs: Runs) -> bool:
    return has(runs("ag-faults"), dns_query("api.imagicle.com", "224.0.0.251"))


def _listen_outside(runs: Runs) -> bool:
    def syn_ack_to_scanner(p: Packet) -> bool:
        return (
            IP in p
            and TCP in p
            and p[IP].dst == "203.0.113.66"
            and p[TCP].flags.S
            and p[TCP].flags.A
        )

    return has(runs("ag-faults"), syn_ack_to_scanner)


def _undeclared_onprem(runs: Runs) -> bool:
    return has(runs("ag-faults"), udp_to("192.0.2.99", 514))


def _direct_despite_proxy(runs: Runs) -> bool:
    return has(runs("px-faults"), syn_to("203.0.113.10", 443))


def _plaintext_get_via_proxy(runs: Runs) -> bool:
    return has(runs("px-faults"), payload_to("192.0.2.80", 3128, b"GET http://api.imagicle.com/"))


def _plaintext_licence(runs: Runs) -> bool:
    scenario = runs("hy-faults-1")
    return has(scenario, payload_to("203.0.113.10", 443, b"POST /v1/licensing/poll")) and bool(
        requests(scenario, tls=None, path="/v1/licensing/poll")
    )


def _tls10(runs: Runs) -> bool:
    return bool(requests(runs("hy-faults-2"), tls="TLSv1", host="api.imagicle.com"))


def _no_sni(runs: Runs) -> bool:
    found = [r for r in requests(runs("hy-faults-2"), sni=None) if r.get("tls")]
    return bool(found)


def _accept_untrusted_cert(runs: Runs) -> bool:
    return bool(requests(runs("cert-fault"), event="request", path="/v1/licensing/poll"))


def _undocumented_endpoint(runs: Runs) -> bool:
    scenario = runs("hy-faults-1")
    return has(scenario, syn_to("203.0.113.99", 443)) and bool(
        requests(scenario, host="updates.example.net")
    )


def _telemetry_despite_optout(runs: Runs) -> bool:
    return bool(requests(runs("tm-optout"), path="/v1/telemetry/beat"))


def _pii_in_telemetry(runs: Runs) -> bool:
    beats = requests(runs("hy-faults-1"), path="/v1/telemetry/beat")
    return any("mario.rossi@example.com" in str(b.get("body")) for b in beats)


def _undocumented_telemetry_field(runs: Runs) -> bool:
    beats = requests(runs("hy-faults-1"), path="/v1/telemetry/beat")
    return any("recent_calls" in (b.get("body") or {}) for b in beats)


def _telemetry_off_channel(runs: Runs) -> bool:
    return bool(requests(runs("hy-faults-2"), host="grpc.imagicle.com", path="/telemetry"))


PROMISES: dict[str, Callable[[Runs], bool]] = {
    "phone-home-dns": _phone_home_dns,
    "cloud-licensing-airgapped": _cloud_licensing_airgapped,
    "ipv6-leak": _ipv6_leak,
    "ntp-public": _ntp_public,
    "outside-resolver": _outside_resolver,
    "mdns-cloud-name": _mdns_cloud_name,
    "listen-outside": _listen_outside,
    "undeclared-onprem": _undeclared_onprem,
    "direct-despite-proxy": _direct_despite_proxy,
    "plaintext-get-via-proxy": _plaintext_get_via_proxy,
    "plaintext-licence": _plaintext_licence,
    "tls10": _tls10,
    "no-sni": _no_sni,
    "accept-untrusted-cert": _accept_untrusted_cert,
    "undocumented-endpoint": _undocumented_endpoint,
    "telemetry-despite-optout": _telemetry_despite_optout,
    "pii-in-telemetry": _pii_in_telemetry,
    "undocumented-telemetry-field": _undocumented_telemetry_field,
    "telemetry-off-channel": _telemetry_off_channel,
}


# Faults that change what a live host shows (--host), not traffic: tests/host covers them.
HOST_FAULTS = {"hosts-override", "proxy-mismatch", "no-tcpdump"}


def test_every_fault_has_a_check() -> None:
    assert set(PROMISES) | HOST_FAULTS == {name for name, _ in list_faults()}


@pytest.mark.parametrize("fault", sorted(PROMISES))
def test_fault_produces_its_traffic(fault: str, lab_runs: Runs) -> None:
    assert PROMISES[fault](lab_runs), f"{fault}: the promised traffic is not in the evidence"


def test_well_behaved_air_gapped_target_talks_only_on_prem(lab_runs: Runs) -> None:
    scenario = lab_runs("ag-clean")
    destinations = set()
    for p in sent_by_target(scenario):
        ip = _ip(p)
        destinations.add(ipaddress.ip_address(ip.dst))
    assert destinations, "the target sent nothing"
    outside = {
        d
        for d in destinations
        if not any(d in n for n in (*ENVIRONMENT, *SCOPE_LIMITED) if n.version == d.version)
    }
    # Only replies to the outside scanner may leave towards the outside, and the clean
    # target's host firewall sends none.
    assert outside == set()
    assert requests(scenario, event="request") == []


def test_well_behaved_hybrid_target_refuses_an_untrusted_cloud(lab_runs: Runs) -> None:
    scenario = lab_runs("cert-clean")
    assert requests(scenario, event="request") == []
    assert requests(scenario, event="handshake-failed"), "the target never tried"


def test_clean_target_sends_every_on_prem_integration(lab_runs: Runs) -> None:
    scenario = lab_runs("ag-clean")
    assert has(scenario, udp_to("192.0.2.20", 5060))  # SIP OPTIONS
    assert has(scenario, syn_to("192.0.2.20", 5060))  # SIP REGISTER over TCP
    assert has(scenario, syn_to("192.0.2.30", 389))  # LDAP
    assert has(scenario, dns_query("cucm.lab.internal", "192.0.2.53"))
    assert has(scenario, udp_to("192.0.2.123", 123))  # NTP
