"""Decision 9 end to end: captures from mirror ports, from tunnels the target opens, and from
PPPoE, MPLS and VLAN links are judged by the packets inside, each capture written to a file."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from scapy.packet import Packet

from conformance.observe.builder import observe_captures
from conformance.verdict import Verdict
from tests import defects
from tests import encapsulations as enc
from tests.defects import AD, DNS_SERVER, TARGET, TARGET6, tcp_session
from tests.judge.test_defect_captures import judge_all

P, F, I = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # noqa: E741
CLEAN = (P, P, P, P)  # AG-EGRESS, AG-INGRESS, AG-CLOUD-NAMES, AG-ONPREM
LEAK = (F, P, F, P)  # tcp_leak: an HTTP CRL fetch to an outside address


def verdicts(tmp_path: Path, frames: Sequence[Packet], name: str = "c") -> tuple[Verdict, ...]:
    path = defects.write_pcap(tmp_path / f"{name}.pcap", frames)
    results = judge_all(path)
    return tuple(r.verdict for r in results.values())


def reasons(tmp_path: Path, frames: Sequence[Packet]) -> dict[str, str]:
    path = defects.write_pcap(tmp_path / "r.pcap", frames)
    return {k: r.reason for k, r in judge_all(path).items()}


@pytest.mark.parametrize("mirror", sorted(enc.MIRRORS))
def test_mirrored_clean_traffic_passes_and_the_mirror_header_is_not_judged(
    mirror: str, tmp_path: Path
) -> None:
    frames = enc.MIRRORS[mirror](defects.clean_onprem_traffic())
    assert verdicts(tmp_path, frames) == CLEAN, reasons(tmp_path, frames)


@pytest.mark.parametrize("mirror", sorted(enc.MIRRORS))
def test_mirrored_leak_fails(mirror: str, tmp_path: Path) -> None:
    frames = enc.MIRRORS[mirror](defects.tcp_leak())
    assert verdicts(tmp_path, frames) == LEAK, reasons(tmp_path, frames)


@pytest.mark.parametrize("link", sorted(enc.LINKS))
@pytest.mark.parametrize(
    ("defect", "expected"),
    [("clean_onprem_traffic", CLEAN), ("tcp_leak", LEAK), ("ipv6_leak", LEAK)],
)
def test_pppoe_mpls_and_vlan_links(
    link: str, defect: str, expected: tuple[Verdict, ...], tmp_path: Path
) -> None:
    frames = enc.LINKS[link](getattr(defects, defect)())
    assert verdicts(tmp_path, frames) == expected, reasons(tmp_path, frames)


def _inner_clean() -> list[Packet]:
    """What the target sends through its tunnel when it behaves: internal DNS, LDAP to AD."""
    return [
        *defects.dns_lookup(TARGET, DNS_SERVER, "dc1.corp.example", answers=[AD], cport=53300),
        *defects.tcp_session(TARGET, 49200, AD, 389, b"\x30\x05\x02\x01\x01\x42\x00"),
    ]


def _inner_clean6() -> list[Packet]:
    return defects.tcp_session(TARGET6, 49300, "2001:db8:1::20", 8443, b"\x16\x03\x01\x00\x00")


def _inner_leak() -> list[Packet]:
    request = defects.http_get("crl.microsoft.com", "/pki/crl/x.crl")
    return defects.tcp_session(
        TARGET, 51234, defects.OUTSIDE, 80, request, b"HTTP/1.1 200 OK\r\n\r\n"
    )


def _inner_leak6() -> list[Packet]:
    return defects.tcp_session(
        TARGET6, 51000, defects.OUTSIDE6, 443, defects.client_hello("x.example")
    )


Tunnel = Callable[[Sequence[Packet], str], list[Packet]]
TUNNELS: dict[
    str, tuple[Tunnel, Callable[[], list[Packet]], Callable[[], list[Packet]], str, str]
] = {
    # name: (builder, clean inner, leaking inner, endpoint inside, endpoint outside)
    "gre": (
        enc.gre_tunnel,
        _inner_clean,
        _inner_leak,
        enc.TUNNEL_ENDPOINT_INSIDE,
        enc.TUNNEL_ENDPOINT_OUTSIDE,
    ),
    "gre-key": (
        lambda frames, end: enc.gre_tunnel(frames, end, key=0x1234),
        _inner_clean,
        _inner_leak,
        enc.TUNNEL_ENDPOINT_INSIDE,
        enc.TUNNEL_ENDPOINT_OUTSIDE,
    ),
    "gre-ethernet": (
        enc.gre_bridge,
        _inner_clean,
        _inner_leak,
        enc.TUNNEL_ENDPOINT_INSIDE,
        enc.TUNNEL_ENDPOINT_OUTSIDE,
    ),
    "ipip": (
        enc.ipip_tunnel,
        _inner_clean,
        _inner_leak,
        enc.TUNNEL_ENDPOINT_INSIDE,
        enc.TUNNEL_ENDPOINT_OUTSIDE,
    ),
    "6in4": (
        enc.six_in_four_tunnel,
        _inner_clean6,
        _inner_leak6,
        enc.TUNNEL_ENDPOINT_INSIDE,
        enc.TUNNEL_ENDPOINT_OUTSIDE,
    ),
    "4in6": (
        enc.four_in_six_tunnel,
        _inner_clean,
        _inner_leak,
        enc.TUNNEL_ENDPOINT6_INSIDE,
        enc.TUNNEL_ENDPOINT6_OUTSIDE,
    ),
}


def _with_clean(frames: list[Packet]) -> list[Packet]:
    return defects._Clock().stamp([*defects.clean_onprem_traffic(), *frames])


@pytest.mark.parametrize("tunnel", sorted(TUNNELS))
def test_tunnel_to_an_inside_endpoint_with_clean_inner_flows_passes(
    tunnel: str, tmp_path: Path
) -> None:
    build, clean, _, inside, _ = TUNNELS[tunnel]
    frames = _with_clean(build(defects._Clock().stamp(clean()), inside))
    assert verdicts(tmp_path, frames) == CLEAN, reasons(tmp_path, frames)


@pytest.mark.parametrize("tunnel", sorted(TUNNELS))
def test_tunnel_to_an_outside_endpoint_is_an_outer_flow_that_fails(
    tunnel: str, tmp_path: Path
) -> None:
    build, clean, _, _, outside = TUNNELS[tunnel]
    frames = _with_clean(build(defects._Clock().stamp(clean()), outside))
    got = verdicts(tmp_path, frames)
    assert got[0] is F, reasons(tmp_path, frames)
    path = defects.write_pcap(tmp_path / "t.pcap", frames)
    (violation,) = judge_all(path)["AG-EGRESS"].violations
    assert f"-> {outside} ip-" in violation.summary  # the tunnel itself, to its endpoint


@pytest.mark.parametrize("tunnel", sorted(TUNNELS))
def test_inner_flow_leaving_through_an_inside_tunnel_fails(tunnel: str, tmp_path: Path) -> None:
    build, _, leak, inside, _ = TUNNELS[tunnel]
    frames = _with_clean(build(defects._Clock().stamp(leak()), inside))
    got = verdicts(tmp_path, frames)
    assert got[0] is F, reasons(tmp_path, frames)
    path = defects.write_pcap(tmp_path / "t.pcap", frames)
    (violation,) = judge_all(path)["AG-EGRESS"].violations
    # the inner flow, not the tunnel
    assert f"-> {defects.OUTSIDE}" in violation.summary or "ffff::7" in violation.summary


def test_vlan_in_vxlan_over_ipv6_nested_in_erspan(tmp_path: Path) -> None:
    inner = enc.vlan_tagged(defects.tcp_leak())
    frames = enc.erspan_ii_mirror(enc.vxlan_mirror(inner, six=True))
    assert verdicts(tmp_path, frames) == LEAK, reasons(tmp_path, frames)


def test_mirror_of_the_targets_own_tunnel_judges_tunnel_and_inner_flows(tmp_path: Path) -> None:
    tunnelled = enc.gre_tunnel(defects._Clock().stamp(_inner_clean()), enc.TUNNEL_ENDPOINT_OUTSIDE)
    frames = enc.vxlan_mirror(_with_clean(tunnelled))
    assert verdicts(tmp_path, frames)[0] is F


def test_encapsulation_deeper_than_the_limit_is_not_understood(tmp_path: Path) -> None:
    hidden = tcp_session(TARGET, 51234, defects.OUTSIDE, 80, b"GET / HTTP/1.1\r\n\r\n")
    frames = _with_clean(enc.nested_vxlan(hidden, 9))
    path = defects.write_pcap(tmp_path / "deep.pcap", frames)
    results = judge_all(path)
    summary = observe_captures([path]).captures[0]
    assert [n.reason for n in summary.not_understood] == ["encapsulation deeper than 8"]
    for result in results.values():
        assert result.verdict is I, result.reason
        assert "encapsulation deeper than 8" in result.reason


def test_eight_levels_are_still_read(tmp_path: Path) -> None:
    frames = enc.nested_vxlan(defects.tcp_leak(), 8)  # MAX_ENCAPSULATION_DEPTH
    assert verdicts(tmp_path, frames) == LEAK, reasons(tmp_path, frames)
