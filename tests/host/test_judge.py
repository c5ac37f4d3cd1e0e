"""Host-fact judgements: each control passes on a sound host and fails on the broken one."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from conformance.host.collect import build_facts
from conformance.host.facts import CommandRecord, HostFacts, HostOptions
from conformance.judge import host
from conformance.observe.records import Observations
from conformance.profile import load_profile
from conformance.profile_model import Profile
from conformance.verdict import Verdict


def on_host(facts: HostFacts) -> Observations:
    """What the observe step holds for a run with only these host facts."""
    return Observations(captures=(), flows=(), source="host", host=facts)


NFT_DROP = (
    "table inet f {\n chain input {\n  type filter hook input priority 0; policy drop;\n }\n}\n"
)
CLEAN_SS = """\
tcp LISTEN 0 128 192.0.2.10:8080 0.0.0.0:*
tcp ESTAB 0 0 192.0.2.10:40000 192.0.2.20:5060
tcp ESTAB 0 0 192.0.2.10:8080 192.0.2.200:51000
"""
PROFILE = """\
name: host-site
mode: {mode}
target:
  addresses: [192.0.2.10]
environment:
  networks: [192.0.2.0/24]
  endpoints:
    - {{name: cucm, address: 192.0.2.20, ports: [5060/tcp]}}
{extra}
"""
HYBRID_EXTRA = """\
cloud:
  services: [licensing]
  endpoints: ["api.imagicle.com:443"]
proxy: 192.0.2.80:3128
telemetry: disabled
"""


def profile(tmp_path: Path, mode: str = "air-gapped") -> Profile:
    path = tmp_path / f"{mode}.yaml"
    extra = HYBRID_EXTRA if mode == "hybrid" else ""
    path.write_text(PROFILE.format(mode=mode, extra=extra))
    return load_profile(path)


def facts(
    ss: str = CLEAN_SS,
    nft: str | None = NFT_DROP,
    hosts: str = "127.0.0.1 localhost\n",
    settings: str | None = '{"mode": "air-gapped", "telemetry": "disabled", "proxy": "none"}',
    env: str = "PATH=/bin\n",
) -> HostFacts:
    def ok(name: str, out: str) -> CommandRecord:
        return CommandRecord(name, name, 0, out, "")

    records = [ok("sockets", ss), ok("sample-1", ss), ok("hosts", hosts), ok("environment", env)]
    if nft is not None:
        records.append(ok("nftables", nft))
    if settings is not None:
        records.append(ok("settings", settings))
    options = HostOptions(settings_path="/etc/ucx/settings.json" if settings else None)
    return build_facts("ssh://root@ucx", tuple(records), options)


def test_sound_host_passes_everything(tmp_path: Path) -> None:
    p = profile(tmp_path)
    f = facts()
    for result in (
        host.socket_egress(f, p),
        host.socket_ingress(f, p),
        host.hosts_file(on_host(f), profile(tmp_path)),
        host.proxy_setting(on_host(f), p),
        host.product_settings(on_host(f), p),
    ):
        assert result is not None and result.verdict is Verdict.PASS, result


def test_socket_to_an_outside_address_fails_egress_and_points_at_the_line(tmp_path: Path) -> None:
    f = facts(ss=CLEAN_SS + "tcp ESTAB 0 0 192.0.2.10:40112 198.51.100.7:443\n")
    result = host.socket_egress(f, profile(tmp_path))
    assert result is not None and result.verdict is Verdict.FAIL
    (finding,) = result.violations
    assert finding.evidence_file == "host/sockets.txt" and finding.evidence_line == 4
    assert "198.51.100.7:443" in finding.summary


def test_with_a_proxy_an_outside_socket_fails_px_only(tmp_path: Path) -> None:
    f = facts(
        ss=CLEAN_SS + "tcp ESTAB 0 0 192.0.2.10:40112 203.0.113.10:443\n",
        settings='{"mode": "hybrid", "telemetry": "disabled", "proxy": "192.0.2.80:3128"}',
    )
    result = host.socket_egress(f, profile(tmp_path, "hybrid"))
    assert result is not None and (result.control_id, result.verdict) == ("PX-ONLY", Verdict.FAIL)


def test_listener_on_all_interfaces_without_firewall_fails_ingress(tmp_path: Path) -> None:
    f = facts(ss=CLEAN_SS + "tcp LISTEN 0 4096 0.0.0.0:9443 0.0.0.0:*\n", nft="")
    result = host.socket_ingress(f, profile(tmp_path))
    assert result.verdict is Verdict.FAIL
    assert any("all interfaces" in v.summary for v in result.violations)


def test_listener_with_unknown_firewall_is_a_warning_only(tmp_path: Path) -> None:
    f = facts(ss=CLEAN_SS + "tcp LISTEN 0 4096 0.0.0.0:9443 0.0.0.0:*\n", nft=None)
    result = host.socket_ingress(f, profile(tmp_path))
    assert result.verdict is Verdict.PASS
    assert [x.severity.value for x in result.findings] == ["warning", "warning"]


def test_connection_accepted_from_outside_fails_ingress(tmp_path: Path) -> None:
    f = facts(ss=CLEAN_SS + "tcp ESTAB 0 0 192.0.2.10:8080 203.0.113.66:41000\n")
    result = host.socket_ingress(f, profile(tmp_path))
    assert result.verdict is Verdict.FAIL
    assert "accepted a connection from outside" in result.violations[0].summary


def test_hosts_override_of_a_cloud_name_fails(tmp_path: Path) -> None:
    result = host.hosts_file(
        on_host(facts(hosts="127.0.0.1 localhost\n203.0.113.99 api.imagicle.com\n")),
        profile(tmp_path),
    )
    assert result.verdict is Verdict.FAIL
    assert result.violations[0].evidence_line == 2


@pytest.mark.parametrize(
    ("settings", "env", "verdict"),
    [
        ('{"proxy": "192.0.2.81:3128"}', "", Verdict.FAIL),
        ('{"proxy": "none"}', "https_proxy=http://192.0.2.99:8080\n", Verdict.FAIL),
        ('{"proxy": "none"}', "no_proxy=localhost\n", Verdict.PASS),
    ],
)
def test_proxy_setting_must_match_the_profile(
    tmp_path: Path, settings: str, env: str, verdict: Verdict
) -> None:
    result = host.proxy_setting(on_host(facts(settings=settings, env=env)), profile(tmp_path))
    assert result.verdict is verdict


def test_declared_proxy_must_be_the_configured_one(tmp_path: Path) -> None:
    p = profile(tmp_path, "hybrid")
    good = facts(settings='{"proxy": "http://192.0.2.80:3128"}')
    assert host.proxy_setting(on_host(good), p).verdict is Verdict.PASS
    unset = facts(settings='{"telemetry": "disabled"}')
    assert host.proxy_setting(on_host(unset), p).verdict is Verdict.FAIL


def test_settings_must_state_mode_and_telemetry(tmp_path: Path) -> None:
    p = profile(tmp_path)
    on = facts(settings='{"mode": "air-gapped", "telemetry": "on"}')
    assert host.product_settings(on_host(on), p).verdict is Verdict.FAIL
    silent = facts(settings='{"mode": "air-gapped"}')
    assert host.product_settings(on_host(silent), p).verdict is Verdict.FAIL  # default is on (CT 3)
    hybrid = facts(settings='{"mode": "hybrid", "telemetry": "disabled"}')
    assert host.product_settings(on_host(hybrid), p).verdict is Verdict.FAIL


def test_nothing_read_is_inconclusive_never_pass(tmp_path: Path) -> None:
    p = profile(tmp_path)
    failed = CommandRecord("sockets", "ss", None, "", "", "ssh to x failed: Permission denied")
    empty = build_facts("ssh://x", (failed,), HostOptions())
    assert empty.problems
    for result in (
        host.socket_egress(empty, p),
        host.socket_ingress(empty, p),
        host.hosts_file(on_host(empty), profile(tmp_path)),
        host.proxy_setting(on_host(empty), p),
        host.product_settings(on_host(empty), p),
    ):
        assert result is not None and result.verdict is Verdict.INCONCLUSIVE, result
    assert ipaddress.ip_address("192.0.2.10") in p.target.addresses


def test_open_outbound_firewall_and_outside_resolver_are_warnings(tmp_path: Path) -> None:
    sound = facts()
    base = [c for c in sound.commands if c.name != "resolv.conf"]
    resolv = CommandRecord(
        "resolv.conf", "cat /etc/resolv.conf", 0, "nameserver 198.51.100.53\n", ""
    )
    result = host.socket_egress(
        build_facts(sound.url, (*base, resolv), HostOptions()), profile(tmp_path)
    )
    assert result is not None and result.verdict is Verdict.PASS  # the customer's, HA 5
    summaries = [f.summary for f in result.findings]
    assert any("no default-drop output policy" in s for s in summaries), summaries
    resolver = next(f for f in result.findings if "198.51.100.53" in f.summary)
    assert (resolver.evidence_file, resolver.evidence_line) == ("host/resolv.conf.txt", 1)
