"""Display filters (interface.md "Report additions"): each shows exactly its packets in tshark.

Unit tests of the filter's form, then tshark itself: every flow of captures carried in every
encapsulation (decision 9), and every finding of a report written by the CLI.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, UDP, fragment
from scapy.layers.inet6 import ICMPv6DestUnreach, IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from conformance.cli import main
from conformance.judge.result import Finding, PacketRef, Severity
from conformance.observe.builder import observe_captures
from conformance.observe.records import Observations
from conformance.report.display_filter import (
    display_filter,
    filter_context,
    flow_filter,
    frames_set,
)
from tests import defects
from tests import encapsulations as enc
from tests import tshark_version as tshark
from tests.defects import OUTSIDE, OUTSIDE6, TARGET, TARGET6
from tests.judge.factory import Scenario
from tests.report.tshark_filters import frames_matching, matches

# Layer operators (`ip.dst#2`) and sets with commas are Wireshark 4.0's (docs/report.md).
needs_tshark = tshark.needs_tshark((4, 0), "the report's filters use Wireshark 4.0's syntax")

ROUTER = "192.0.2.1"
ROUTER6 = "2001:db8:1::1"
TARGET_MAC = "02:00:c0:00:02:0a"  # as tests.defects names the target's MAC
GATEWAY_MAC = "02:00:00:00:00:01"


# --- the form -----------------------------------------------------------------------------


def test_frame_numbers_with_runs_as_ranges() -> None:
    assert frames_set([7]) == "frame.number in {7}"
    assert frames_set([5, 1, 2, 3, 9, 10, 3]) == "frame.number in {1..3,5,9,10}"


def _finding(flow_id: int | None, packets: Sequence[int], capture: int = 0) -> Finding:
    return Finding(Severity.VIOLATION, "x", flow_id, PacketRef(capture, tuple(packets)))


def test_flow_finding_gets_frames_and_the_flow_at_its_layer() -> None:
    s = Scenario()
    flow = s.flow(TARGET, OUTSIDE, 443)  # packets 1-5
    obs = s.observations()
    text = display_filter(_finding(flow.flow_id, (1, 2)), filter_context(obs, [1]))
    assert text == (
        "frame.number in {1,2} && ((ip.addr#1 == 192.0.2.10 && ip.addr#1 == 198.51.100.7)"
        " || (icmp && ip.addr#2 == 192.0.2.10 && ip.addr#2 == 198.51.100.7))"
        " && ((tcp.port#1 == 51234 && tcp.port#1 == 443)"
        " || ip.flags.mf#1 == 1 || ip.frag_offset#1 > 0)"
    )


def test_inner_flow_of_a_mirror_uses_the_inner_layers() -> None:
    s = Scenario()
    s.flow(TARGET, OUTSIDE, 53, transport="udp", sport=40000)
    flow = dataclasses.replace(s.flows[0], encapsulation="ipv4>udp>vxlan>eth", ip_layer=2)
    text = flow_filter(flow)
    assert "ip.addr#2 == 192.0.2.10 && ip.addr#2 == 198.51.100.7" in text
    assert "udp.port#2 == 40000 && udp.port#2 == 53" in text  # the outer UDP is udp#1


def test_inner_flow_of_a_gre_tunnel_counts_no_outer_udp() -> None:
    s = Scenario()
    s.flow(TARGET, OUTSIDE, 53, transport="udp", sport=40000)
    flow = dataclasses.replace(s.flows[0], encapsulation="ipv4>gre", ip_layer=2)
    assert "ip.addr#2 == " in flow_filter(flow) and "udp.port#1 == 53" in flow_filter(flow)


def test_ipv6_and_icmp_and_other_protocols() -> None:
    s = Scenario()
    v6 = s.flow(TARGET6, OUTSIDE6, 443)
    ping = s.flow(TARGET, OUTSIDE, 0, transport="icmp", sport=8)
    esp = s.flow(TARGET, OUTSIDE, 0, transport="ip-50", sport=0)
    assert "ipv6.addr#1 == 2001:db8:1::10" in flow_filter(v6)
    assert "icmpv6 && ipv6.addr#2" in flow_filter(v6) and "ipv6.fraghdr" in flow_filter(v6)
    assert flow_filter(ping).endswith(" && icmp")
    assert "port" not in flow_filter(esp)


def test_packets_not_known_to_be_the_flows_get_frame_numbers_only() -> None:
    s = Scenario()
    flow = s.flow(TARGET, OUTSIDE, 443)  # packets 1-5
    obs = s.observations()
    context = filter_context(obs, [flow.flow_id])
    # packet 40 belongs to some other flow: a finding that groups several flows
    assert display_filter(_finding(flow.flow_id, (1, 40)), context) == "frame.number in {1,40}"
    assert display_filter(_finding(None, (3,)), context) == "frame.number in {3}"
    # packets of another capture than the flow's
    assert display_filter(_finding(flow.flow_id, (1,), capture=1), context) == (
        "frame.number in {1}"
    )
    assert display_filter(Finding(Severity.INFO, "no packets"), context) is None


def test_a_record_on_the_flow_makes_its_packet_known() -> None:
    s = Scenario()
    query = s.dns(TARGET, "192.0.2.53", "license.imagicle.com", rcode=3)
    obs = s.observations()
    obs = dataclasses.replace(
        obs,
        flows=(dataclasses.replace(obs.flows[0], sample_packets=()),),
        dns=(dataclasses.replace(query, packet=1, response_packet=2),),
    )
    context = filter_context(obs, [1])
    assert "&& ((ip.addr#1" in (display_filter(_finding(1, (1, 2)), context) or "")


def test_vxlan_on_the_linux_port_gets_frame_numbers_only() -> None:
    """Wireshark decodes VXLAN on 4789 only: inside 8472 its layer fields do not exist."""
    s = Scenario()
    s.flow("192.0.2.250", "203.0.113.250", 8472, transport="udp")  # the mirror's own flow
    inner = s.flow(TARGET, OUTSIDE, 443)
    s.flows[1] = dataclasses.replace(inner, encapsulation="ipv4>udp>vxlan>eth", ip_layer=2)
    context = filter_context(s.observations(), [2])
    packets = inner.sample_packets[:2]
    assert display_filter(_finding(2, packets), context) == frames_set(packets)


# --- captures -----------------------------------------------------------------------------


def _out() -> Ether:
    """The target's frames to its gateway (explicit MACs: scapy never resolves one)."""
    return Ether(src=TARGET_MAC, dst=GATEWAY_MAC)


def _in() -> Ether:
    return Ether(src=GATEWAY_MAC, dst=TARGET_MAC)


def router_answers_a_leak() -> list[Packet]:
    """UDP probes to outside hosts answered with ICMP errors by a router and by the peer."""
    probe = _out() / IP(src=TARGET, dst=OUTSIDE) / UDP(sport=33434, dport=33435) / b"x"
    quoted = IP(src=TARGET, dst=OUTSIDE, ttl=1) / UDP(sport=33434, dport=33435) / b"x"
    probe6 = _out() / IPv6(src=TARGET6, dst=OUTSIDE6) / UDP(sport=1000, dport=2000) / b"y"
    return defects._with_clean(
        [
            probe,
            _in() / IP(src=ROUTER, dst=TARGET) / ICMP(type=11, code=0) / quoted,
            probe.copy(),  # every frame its own object: each gets its own time
            _in() / IP(src=OUTSIDE, dst=TARGET) / ICMP(type=3, code=3) / quoted,
            probe6,
            _in()
            / IPv6(src=ROUTER6, dst=TARGET6)
            / ICMPv6DestUnreach(code=1)
            / IPv6(src=TARGET6, dst=OUTSIDE6)
            / UDP(sport=1000, dport=2000)
            / b"y",
        ]
    )


def ipv6_fragmented_leak() -> list[Packet]:
    """A large UDP datagram to an outside host, sent as IPv6 fragments."""
    datagram = (
        IPv6(src=TARGET6, dst=OUTSIDE6)
        / IPv6ExtHdrFragment(id=7)
        / UDP(sport=4000, dport=514)
        / Raw(b"z" * 3000)
    )
    return defects._with_clean([_out() / part for part in fragment6(datagram, 1280)])


def fragments_out_of_order() -> list[Packet]:
    """An IPv4 datagram whose last fragment arrives first."""
    datagram = IP(src=TARGET, dst=OUTSIDE, id=0x77) / UDP(sport=4100, dport=514) / Raw(b"q" * 2500)
    parts = [_out() / part for part in fragment(datagram, fragsize=1000)]
    return defects._with_clean(parts[::-1])


DEFECTS: tuple[Callable[[], list[Packet]], ...] = (
    defects.tcp_leak,
    defects.udp_leak,
    defects.icmp_leak,
    defects.ipv6_leak,
    defects.fragmented_leak,
    defects.inbound_refused,
    defects.mdns_cloud_name,
    defects.sni_cloud_name,
    defects.mid_connection_leak,
    defects.cloud_name_to_onprem_resolver,
    router_answers_a_leak,
    ipv6_fragmented_leak,
    fragments_out_of_order,
)


@functools.cache
def _every_defect_bytes() -> tuple[bytes, ...]:
    return tuple(bytes(frame) for defect in DEFECTS for frame in defect())


def every_defect() -> list[Packet]:
    """Every defect capture one after the other, one millisecond apart.

    Built once and read back: a dissected frame keeps its bytes, so wrapping it builds only
    the new outer headers (scapy would otherwise rebuild every inner layer for every wrap).
    """
    frames = [Ether(raw) for raw in _every_defect_bytes()]
    for i, frame in enumerate(frames):
        frame.time = defects._T0 + i * 0.001
    return frames


WRAPS: dict[str, Callable[[Sequence[Packet]], list[Packet]]] = {
    "plain": list,
    "vlan": enc.vlan_tagged,
    "pppoe": enc.pppoe_session,
    "mpls": enc.mpls_labelled,
    "vxlan-mirror": enc.vxlan_mirror,
    "vxlan-8472-mirror": lambda frames: enc.vxlan_mirror(frames, 8472),
    "vxlan-over-ipv6-mirror": lambda frames: enc.vxlan_mirror(frames, six=True),
    "geneve-mirror": enc.geneve_mirror,
    "erspan-iii-mirror": enc.erspan_iii_mirror,
    "gre-tunnel": lambda frames: enc.gre_tunnel(frames, enc.TUNNEL_ENDPOINT_OUTSIDE, key=5),
    "gre-bridge": lambda frames: enc.gre_bridge(frames, enc.TUNNEL_ENDPOINT_OUTSIDE),
    "4in6-tunnel": lambda frames: enc.four_in_six_tunnel(frames, enc.TUNNEL_ENDPOINT6_OUTSIDE),
    "vxlan-mirror-in-gre": lambda frames: enc.gre_tunnel(
        enc.vxlan_mirror(frames), enc.TUNNEL_ENDPOINT_OUTSIDE
    ),
}


def _every_flow(obs: Observations) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    context = filter_context(obs, [f.flow_id for f in obs.flows])
    filters, packets = {}, {}
    for flow in obs.flows:
        if not flow.sample_packets:
            continue
        name = f"flow{flow.flow_id}"
        text = display_filter(_finding(flow.flow_id, flow.sample_packets, flow.capture), context)
        assert text is not None
        filters[name], packets[name] = text, tuple(sorted(set(flow.sample_packets)))
    return filters, packets


@needs_tshark
@pytest.mark.slow
@pytest.mark.parametrize("wrap", sorted(WRAPS))
def test_every_flows_filter_shows_exactly_its_packets(wrap: str, tmp_path: Path) -> None:
    path = defects.write_pcap(tmp_path / f"{wrap}.pcap", WRAPS[wrap](every_defect()))
    obs = observe_captures([path])
    filters, packets = _every_flow(obs)
    assert len(filters) > 20
    found = matches(path, filters, packets)
    wrong = {n: (found[n], packets[n], filters[n]) for n in filters if found[n] != list(packets[n])}
    assert not wrong
    with_flow = sum("addr#" in text for text in filters.values())
    assert with_flow == (len(filters) if "8472" not in wrap else with_flow)


# --- findings of a report written by the CLI ----------------------------------------------

PROFILE = """\
name: display-filters
mode: air-gapped
target:
  addresses: [192.0.2.10, "2001:db8:1::10"]
environment:
  networks: [192.0.2.0/24, "2001:db8:1::/64"]
  endpoints:
    - {name: cucm, address: 192.0.2.20, ports: [5060/udp, 5061/tcp, 8443/tcp]}
    - {name: ad, address: 192.0.2.30, ports: [389/tcp, 636/tcp]}
    - {name: dns, address: 192.0.2.53, ports: [53/udp, 53/tcp]}
    - {name: ntp, address: 192.0.2.123, ports: [123/udp]}
"""

REPORTED = ("plain", "vlan", "vxlan-mirror", "gre-tunnel")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run over the defects, plain and in a VLAN, a VXLAN mirror and a GRE tunnel."""
    root = tmp_path_factory.mktemp("display-filters")
    profile = root / "profile.yaml"
    profile.write_text(PROFILE)
    from conformance.sign.keys import generate_key

    key = generate_key(root / "signer.pem")
    args = ["run", "--profile", str(profile), "--report-dir", str(root / "report")]
    for wrap in REPORTED:
        path = defects.write_pcap(root / f"{wrap}.pcap", WRAPS[wrap](every_defect()))
        args += ["--pcap", str(path)]
    assert main([*args, "--sign-key", str(key)]) == 1  # the leaks fail
    return root / "report"


def _findings(report: Path) -> list[dict[str, object]]:
    document = json.loads((report / "report.json").read_text())
    return [f for c in document["controls"] for f in c["findings"]]


@needs_tshark
@pytest.mark.slow
def test_every_findings_filter_shows_exactly_its_packets_in_its_capture(report: Path) -> None:
    by_capture: dict[str, tuple[dict[str, str], dict[str, tuple[int, ...]]]] = {}
    for i, finding in enumerate(_findings(report)):
        packets = finding["packets"]
        if packets is None:
            assert "display_filter" not in finding
            continue
        assert isinstance(packets, dict)
        text = finding["display_filter"]
        assert isinstance(text, str)
        filters, wanted = by_capture.setdefault(str(packets["capture"]), ({}, {}))
        numbers = tuple(sorted(set(packets["numbers"])))
        if (text, numbers) in zip(filters.values(), wanted.values(), strict=True):
            continue  # TM-AIRGAP repeats AG-EGRESS's findings
        filters[f"finding{i}"] = text
        wanted[f"finding{i}"] = numbers
    assert sorted(by_capture) == [f"evidence/capture-{i}.pcap" for i in range(len(REPORTED))]
    for capture, (filters, wanted) in by_capture.items():
        found = matches(report / capture, filters, wanted)
        assert {n: found[n] for n in filters} == {n: list(wanted[n]) for n in filters}, capture
        # and as a person would type it: tshark -r evidence/capture-N.pcap -Y FILTER
        name, text = next((n, t) for n, t in filters.items() if "addr#" in t)
        assert frames_matching(report / capture, text) == list(wanted[name])


def test_html_shows_each_filter_with_its_packets_and_file(report: Path) -> None:
    page = (report / "report.html").read_text()
    for finding in _findings(report):
        text = finding.get("display_filter")
        if isinstance(text, str):
            escaped = text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")
            assert f"<code class='filter'>{escaped}</code>" in page
    assert "display filter for that file" in page
