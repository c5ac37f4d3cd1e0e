"""`profile draft`: a draft loads, `run` refuses it until reviewed, and once the `draft: true`
line is removed (the documented review step, the only change made here) the same capture
passes where it is clean and still fails where it leaks: a draft never legitimises a leak."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
import yaml
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from conformance.cli import main
from conformance.draft import DraftRequest, draft_profile
from conformance.errors import ConformanceError
from conformance.profile import load_profile
from conformance.profile_model import Mode
from conformance.resources import captures_dir
from conformance.sign.keys import generate_key
from tests.defects import (
    AD,
    CUCM,
    DNS_SERVER,
    OUTSIDE,
    OUTSIDE_NTP,
    TARGET,
    _Clock,
    clean_onprem_traffic,
    client_hello,
    dns_lookup,
    tcp_leak,
    tcp_session,
    udp_exchange,
    write_pcap,
)
from tests.proxy_captures import disallowed_connect, proxied_clean

GATEWAY_MAC = "02:00:00:00:00:01"  # tests.defects: every outside host sits behind it
ROUTED_INSIDE = "192.0.2.200"  # in the target's /24, but behind the router (a /25 segment)


def reviewed(text: str, path: Path) -> Path:
    """The review step the draft asks for, and nothing else: remove the `draft: true` line."""
    lines = text.splitlines(keepends=True)
    assert lines.count("draft: true\n") == 1
    path.write_text("".join(line for line in lines if line != "draft: true\n"))
    return path


def run(profile: Path, capture: Path, tmp_path: Path) -> tuple[int, dict[str, str]]:
    """`ucx-conformance run --profile P --pcap C`: exit status and each control's verdict."""
    key = generate_key(tmp_path / "keys" / "signer.pem")
    report = tmp_path / "report"
    code = main(
        [
            "run",
            "--profile",
            str(profile),
            "--pcap",
            str(capture),
            "--report-dir",
            str(report),
            "--sign-key",
            str(key),
        ]
    )
    if code == 3:
        return code, {}
    data = json.loads((report / "report.json").read_text())
    return code, {c["id"]: c["verdict"] for c in data["controls"]}


def failed(verdicts: dict[str, str]) -> set[str]:
    return {control for control, verdict in verdicts.items() if verdict == "fail"}


def _inside(profile_path: Path, address: str) -> bool:
    profile = load_profile(profile_path)
    return profile.environment.contains(ipaddress.ip_address(address))


# --- the bundled samples -----------------------------------------------------------------


def test_clean_sample_draft_passes_run_once_reviewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "default-key.pem"))
    capture = captures_dir() / "sample-air-gapped.pcapng"
    draft = draft_profile(DraftRequest((capture,)))
    assert draft.profile.draft and draft.profile.mode is Mode.AIR_GAPPED
    assert draft.would_fail == ()
    assert [str(n) for n in draft.profile.environment.networks] == ["192.0.2.0/24"]
    assert {str(e.address) for e in draft.profile.environment.endpoints} >= {
        "192.0.2.20",
        "192.0.2.30",
        "192.0.2.53",
        "192.0.2.123",
    }
    as_written = tmp_path / "draft.yaml"
    as_written.write_text(draft.text)
    assert run(as_written, capture, tmp_path / "refused")[0] == 3  # `run` refuses a draft
    code, verdicts = run(reviewed(draft.text, tmp_path / "site.yaml"), capture, tmp_path)
    assert code == 0, verdicts
    assert verdicts["AG-ONPREM"] == "pass"


def test_leaking_sample_draft_still_fails_on_the_leak(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "default-key.pem"))
    capture = captures_dir() / "sample-air-gapped-leak.pcapng"
    draft = draft_profile(DraftRequest((capture,)))
    assert {line.control for line in draft.would_fail} == {"AG-EGRESS", "AG-CLOUD-NAMES"}
    assert (
        "#   203.0.113.25 443/tcp: 1 flow; named api.imagicle.com; through a router" in draft.text
    )
    site = reviewed(draft.text, tmp_path / "site.yaml")
    assert not _inside(site, "203.0.113.25") and not _inside(site, "198.51.100.123")
    code, verdicts = run(site, capture, tmp_path)
    assert code == 1
    assert failed(verdicts) == {"AG-EGRESS", "AG-CLOUD-NAMES", "TM-AIRGAP"}


# --- networks: a routed destination is never inside by inference --------------------------


def _via_gateway(packets: list[Packet]) -> list[Packet]:
    """The packets with every frame of `ROUTED_INSIDE` carried by the gateway's MAC."""
    for packet in packets:
        if packet[IP].dst == ROUTED_INSIDE:
            packet[Ether].dst = GATEWAY_MAC
        if packet[IP].src == ROUTED_INSIDE:
            packet[Ether].src = GATEWAY_MAC
    return packets


def test_leak_through_the_gateway_to_another_range_stays_outside(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "leak.pcap", tcp_leak())
    draft = draft_profile(DraftRequest((capture,), targets=(TARGET,)))
    networks = draft.profile.environment.networks
    assert [str(n) for n in networks] == ["192.0.2.0/24"]
    assert not draft.profile.environment.contains(ipaddress.ip_address(OUTSIDE))
    assert "AG-EGRESS" in {line.control for line in draft.would_fail}


def test_a_routed_destination_inside_the_targets_24_shrinks_the_network(tmp_path: Path) -> None:
    # The segment is really a /25: 192.0.2.200 is reached through the router, whose MAC also
    # carries an outside NTP server. The /24 would hold it; the draft must not.
    packets = _Clock().stamp(
        [
            *clean_onprem_traffic(),
            *_via_gateway(tcp_session(TARGET, 50200, ROUTED_INSIDE, 443, client_hello("x.corp"))),
            *udp_exchange(TARGET, 123, OUTSIDE_NTP, 123, b"\x23" + bytes(47), b"\x24" + bytes(47)),
        ]
    )
    capture = write_pcap(tmp_path / "routed.pcap", packets)
    draft = draft_profile(DraftRequest((capture,), targets=(TARGET,)))
    environment = draft.profile.environment
    assert not environment.contains(ipaddress.ip_address(ROUTED_INSIDE))
    assert [str(n) for n in environment.networks] == ["192.0.2.0/25"]
    for address in (TARGET, CUCM, AD, DNS_SERVER):
        assert environment.contains(ipaddress.ip_address(address))
    assert "192.0.2.0/24 would hold 192.0.2.200, reached through a router" in draft.text
    leaks = [line.summary for line in draft.would_fail if line.control == "AG-EGRESS"]
    assert len(leaks) == 2 and any(ROUTED_INSIDE in leak for leak in leaks)


def test_a_router_seen_for_one_address_is_told_by_the_hop_count(tmp_path: Path) -> None:
    # Nothing else goes through the gateway; the TTL the router decremented gives it away.
    session = _via_gateway(tcp_session(TARGET, 50300, ROUTED_INSIDE, 443, b"x", b"y"))
    for packet in session:
        if packet[IP].src == ROUTED_INSIDE:
            packet[IP].ttl = 63
    capture = write_pcap(tmp_path / "ttl.pcap", _Clock().stamp([*clean_onprem_traffic(), *session]))
    draft = draft_profile(DraftRequest((capture,), targets=(TARGET,)))
    assert not draft.profile.environment.contains(ipaddress.ip_address(ROUTED_INSIDE))
    assert "TTL/hop limit 63" in draft.text


def test_the_gateways_own_address_is_on_link_by_arp(tmp_path: Path) -> None:
    gateway = "192.0.2.1"
    arp = Ether(src=GATEWAY_MAC, dst="02:00:c0:00:02:0a") / ARP(
        op=2, hwsrc=GATEWAY_MAC, psrc=gateway, hwdst="02:00:c0:00:02:0a", pdst=TARGET
    )
    dns_at_gateway = udp_exchange(TARGET, 53111, gateway, 53, b"\x00" * 12, b"\x80" * 12)
    for packet in dns_at_gateway:
        if packet[IP].dst == gateway:
            packet[Ether].dst = GATEWAY_MAC
        else:
            packet[Ether].src = GATEWAY_MAC
    packets = _Clock().stamp([*tcp_leak(), arp, *dns_at_gateway])
    capture = write_pcap(tmp_path / "arp.pcap", packets)
    draft = draft_profile(DraftRequest((capture,), targets=(TARGET,)))
    assert [str(n) for n in draft.profile.environment.networks] == ["192.0.2.0/24"]
    assert "on-link: ARP/neighbour discovery binds it to 02:00:00:00:00:01" in draft.text
    assert gateway in {str(e.address) for e in draft.profile.environment.endpoints}


def test_raw_ip_capture_puts_only_the_target_inside(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "raw.pcap", clean_onprem_traffic(), raw_ip=True)
    draft = draft_profile(DraftRequest((capture,), targets=(TARGET,)))
    assert [str(n) for n in draft.profile.environment.networks] == ["192.0.2.10/32"]
    assert draft.profile.environment.endpoints == ()
    assert any("give --network CIDR" in note for note in draft.notes)
    # Every on-prem flow is now outside: the draft says so rather than guessing a network.
    assert {"AG-EGRESS", "AG-INGRESS"} <= {line.control for line in draft.would_fail}


def test_given_networks_and_targets_are_used_as_given(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "c.pcap", clean_onprem_traffic(), raw_ip=True)
    draft = draft_profile(
        DraftRequest((capture,), targets=(TARGET,), networks=("192.0.2.0/24",), name="hq")
    )
    assert draft.profile.name == "hq"
    assert [str(n) for n in draft.profile.environment.networks] == ["192.0.2.0/24"]
    assert "192.0.2.0/24: given with --network" in draft.text
    assert "192.0.2.10: given with --target" in draft.text
    assert draft.would_fail == ()


def test_a_target_absent_from_the_capture_is_said(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "c.pcap", clean_onprem_traffic())
    draft = draft_profile(DraftRequest((capture,), targets=("192.0.2.99",)))
    assert "no flow of 192.0.2.99 is in the captures: check --target" in draft.text
    assert draft.profile.environment.endpoints == ()


@pytest.mark.parametrize(
    ("targets", "networks", "problem"),
    [
        (("ucx.corp",), (), "--target ucx.corp: not an IPv4 or IPv6 address"),
        ((), ("192.0.2.1/24",), "--network 192.0.2.1/24: 192.0.2.1/24 has host bits set"),
        ((TARGET,), ("198.51.100.0/24",), "--target 192.0.2.10 is outside every --network"),
    ],
)
def test_bad_options_are_usage_errors(
    tmp_path: Path, targets: tuple[str, ...], networks: tuple[str, ...], problem: str
) -> None:
    capture = write_pcap(tmp_path / "c.pcap", clean_onprem_traffic())
    with pytest.raises(ConformanceError, match=problem):
        draft_profile(DraftRequest((capture,), targets=targets, networks=networks))


# --- hybrid ------------------------------------------------------------------------------


def _direct_cloud(*leak: list[Packet]) -> list[Packet]:
    return _Clock().stamp(
        [
            *clean_onprem_traffic(),
            *dns_lookup(
                TARGET, DNS_SERVER, "api.imagicle.com", answers=["203.0.113.10"], cport=53100
            ),
            *tcp_session(
                TARGET,
                50100,
                "203.0.113.10",
                443,
                client_hello("api.imagicle.com"),
                b"\x16\x03\x03\x00\x00",
            ),
            *(p for part in leak for p in part),
        ]
    )


def test_hybrid_draft_proposes_documented_names_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "default-key.pem"))
    leak = tcp_session(TARGET, 50101, OUTSIDE, 443, client_hello("updates.example.net"), b"\x16")
    capture = write_pcap(tmp_path / "hybrid.pcap", _direct_cloud(leak))
    draft = draft_profile(DraftRequest((capture,), mode="hybrid"))
    cloud = draft.profile.cloud
    assert cloud is not None and [str(e) for e in cloud.endpoints] == ["api.imagicle.com:443"]
    assert cloud.services == ("licensing",)
    assert "198.51.100.7:443/tcp: named updates.example.net, not an endpoint" in draft.text
    assert {line.control for line in draft.would_fail} == {"HY-DEST"}
    code, verdicts = run(reviewed(draft.text, tmp_path / "site.yaml"), capture, tmp_path)
    assert code == 1 and "HY-DEST" in failed(verdicts)


def test_clean_hybrid_draft_fails_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "default-key.pem"))
    capture = write_pcap(tmp_path / "hybrid.pcap", _direct_cloud())
    draft = draft_profile(DraftRequest((capture,), mode="hybrid"))
    assert draft.would_fail == ()
    verdicts = run(reviewed(draft.text, tmp_path / "site.yaml"), capture, tmp_path)[1]
    assert failed(verdicts) == set(), verdicts
    assert verdicts["HY-DEST"] == "pass"


def test_proxied_draft_declares_the_proxy_not_as_an_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "default-key.pem"))
    capture = write_pcap(tmp_path / "proxied.pcap", proxied_clean())
    draft = draft_profile(DraftRequest((capture,), mode="hybrid"))
    profile = draft.profile
    assert str(profile.proxy) == "192.0.2.80:3128"
    assert "192.0.2.80" not in {str(e.address) for e in profile.environment.endpoints}
    assert profile.cloud is not None
    assert [str(e) for e in profile.cloud.endpoints] == [
        "api.imagicle.com:443",
        "grpc.imagicle.com:443",
    ]
    verdicts = run(reviewed(draft.text, tmp_path / "site.yaml"), capture, tmp_path)[1]
    assert failed(verdicts) == set(), verdicts
    assert verdicts["PX-ONLY"] == verdicts["PX-CONNECT"] == verdicts["HY-DEST"] == "pass"


def test_proxied_draft_does_not_allow_an_undocumented_connect(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "proxied.pcap", disallowed_connect())
    draft = draft_profile(DraftRequest((capture,), mode="hybrid"))
    assert draft.profile.cloud is not None
    assert "updates.example.net" not in {e.pattern for e in draft.profile.cloud.endpoints}
    assert {"HY-DEST", "PX-CONNECT"} <= {line.control for line in draft.would_fail}


def test_hybrid_without_cloud_traffic_activates_nothing(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "c.pcap", clean_onprem_traffic())
    draft = draft_profile(DraftRequest((capture,), mode="hybrid"))
    assert draft.profile.cloud is not None and draft.profile.cloud.services == ()
    assert draft.would_fail == ()


# --- the command -------------------------------------------------------------------------


def test_draft_command_writes_a_new_file_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = captures_dir() / "sample-air-gapped.pcapng"
    out = tmp_path / "site.yaml"
    assert main(["profile", "draft", "--pcap", str(capture), "-o", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["draft"] is True
    assert "review every entry" in capsys.readouterr().err
    assert main(["profile", "draft", "--pcap", str(capture), "-o", str(out)]) == 3
    assert "exists" in capsys.readouterr().err
    assert main(["profile", "draft", "--pcap", str(tmp_path / "none.pcap")]) == 3


def test_draft_then_check_has_no_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = write_pcap(tmp_path / "proxied.pcap", proxied_clean())
    out = tmp_path / "site.yaml"
    assert (
        main(["profile", "draft", "--mode", "hybrid", "--pcap", str(capture), "-o", str(out)]) == 0
    )
    capsys.readouterr()
    assert main(["profile", "check", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "DRAFT: `run` refuses it" in printed
    assert printed.rstrip().endswith("no warnings")


def test_names_in_comments_cannot_break_the_yaml(tmp_path: Path) -> None:
    # A DNS answer whose name carries a newline-like and a comment character.
    packets = _Clock().stamp(
        [
            *clean_onprem_traffic(),
            *dns_lookup(TARGET, DNS_SERVER, "evil\u2028name #x.corp", answers=[CUCM], cport=53300),
        ]
    )
    capture = write_pcap(tmp_path / "names.pcap", packets)
    draft = draft_profile(DraftRequest((capture,), targets=(TARGET,)))
    assert draft.profile.environment.endpoints  # it loaded, with its endpoints
    assert "\u2028" not in draft.text


def test_endpoint_names_are_unique(tmp_path: Path) -> None:
    packets = _Clock().stamp(
        [
            *clean_onprem_traffic(),
            *dns_lookup(
                TARGET, DNS_SERVER, "cucm.corp.example", answers=["192.0.2.21"], cport=53400
            ),
            *tcp_session(TARGET, 50400, "192.0.2.21", 5061, b"x"),
        ]
    )
    capture = write_pcap(tmp_path / "dup.pcap", packets)
    draft = draft_profile(DraftRequest((capture,), targets=(TARGET,)))
    names = [e.name for e in draft.profile.environment.endpoints]
    assert len(names) == len(set(names)) and {"cucm", "cucm-2"} <= set(names)
