"""Lab pieces that need no namespaces: the AG-PERIMETER judge, profile sections, rules, certs."""

from __future__ import annotations

import dataclasses
import json
import ssl
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcapng

from conformance.errors import ProfileError
from conformance.evidence.interface import PROBE_LOG
from conformance.judge.perimeter import perimeter
from conformance.judge.result import ControlResult, Severity
from conformance.lab import list_faults
from conformance.lab.certs import LabCA
from conformance.lab.dumpcap import PacketCounter
from conformance.lab.options import lab_options
from conformance.lab.perimeter import ruleset
from conformance.lab.stimuli import lab_stimuli
from conformance.profile_model import ProbeSettings
from conformance.verdict import Verdict
from tests.lab.conftest import lab_profile
from tests.observed import observe_logs


def _probe(name: str, answer: dict[str, object] | None = None, error: str | None = None) -> str:
    return json.dumps(
        {
            "probe": name,
            "proto": "tcp",
            "destination": "203.0.113.100",
            "port": 443,
            "sent": "IP / TCP S",
            "answer": answer,
            "error": error,
        }
    )


def _log(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "probes.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def judge_perimeter(path: Path, probes: bool = True) -> ControlResult:
    """AG-PERIMETER on the probe log at `path` (absent: the source ran no probes)."""
    profile = lab_profile("lab-air-gapped")
    if not probes:
        profile = dataclasses.replace(profile, probes=ProbeSettings())
    logs = {PROBE_LOG: path} if path.exists() else {}
    return perimeter(observe_logs(path.parent, profile, logs), profile)


def test_perimeter_without_probing_in_the_profile_is_not_applicable(tmp_path: Path) -> None:
    result = judge_perimeter(_log(tmp_path, _probe("tcp-443-v4")), probes=False)
    assert result.verdict is Verdict.NOT_APPLICABLE


def test_perimeter_without_probe_log_is_inconclusive(tmp_path: Path) -> None:
    assert judge_perimeter(tmp_path / "probes.jsonl").verdict is Verdict.INCONCLUSIVE


def test_perimeter_with_empty_probe_log_is_inconclusive(tmp_path: Path) -> None:
    assert judge_perimeter(_log(tmp_path)).verdict is Verdict.INCONCLUSIVE


def test_perimeter_all_unanswered_passes(tmp_path: Path) -> None:
    result = judge_perimeter(_log(tmp_path, _probe("tcp-443-v4"), _probe("icmp-echo-v4")))
    assert result.verdict is Verdict.PASS
    assert result.facts["probes"] == 2


def test_perimeter_answered_probe_fails_naming_probe_and_line(tmp_path: Path) -> None:
    answer = {"from": "203.0.113.100", "kind": "syn-ack", "from_destination": True}
    result = judge_perimeter(_log(tmp_path, _probe("tcp-80-v4"), _probe("tcp-443-v4", answer)))
    assert result.verdict is Verdict.FAIL
    (finding,) = result.violations
    assert "tcp-443-v4" in finding.summary and "syn-ack" in finding.summary
    assert (finding.evidence_file, finding.evidence_line) == ("lab/probes.jsonl", 2)


def test_perimeter_rejection_on_the_way_is_not_an_answer(tmp_path: Path) -> None:
    answer = {"from": "192.0.2.1", "kind": "icmp-error", "from_destination": False}
    result = judge_perimeter(_log(tmp_path, _probe("udp-53-v4", answer)))
    assert result.verdict is Verdict.PASS
    assert result.findings[0].severity is Severity.INFO


def test_perimeter_probe_that_could_not_run_is_inconclusive(tmp_path: Path) -> None:
    result = judge_perimeter(_log(tmp_path, _probe("tcp-443-v4"), _probe("tcp-443-v6", error="x")))
    assert result.verdict is Verdict.INCONCLUSIVE


def test_perimeter_garbage_line_is_inconclusive_not_pass(tmp_path: Path) -> None:
    result = judge_perimeter(_log(tmp_path, _probe("tcp-443-v4"), "not json"))
    assert result.verdict is Verdict.INCONCLUSIVE


def test_stimuli_parse_sorted_with_lab_urls() -> None:
    profile = lab_profile(
        "lab-air-gapped",
        stimuli=[
            {"at": "4s", "shell": "true"},
            {"at": 1, "action": "licence-refresh"},
            {"at": "500ms", "http": {"method": "get", "url": "http://192.0.2.10:8080/status"}},
        ],
    )
    stimuli = lab_stimuli(profile.stimuli)
    assert [s.kind for s in stimuli] == ["http", "action", "shell"]
    assert stimuli[1].url == "http://192.0.2.10:8080/actions/licence-refresh"


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ({"at": "1s", "action": "format-disk"}, "stimuli[0].action"),
        ({"at": "1s", "http": {"url": "http://example.com/"}}, "stimuli[0].http.url"),
        ({"at": "1s", "http": {"url": "http://10.0.0.1/"}}, "stimuli[0].http.url"),
        ({"at": "soon", "shell": "true"}, "stimuli[0].at"),
        ({"at": "1s", "shell": "true", "action": "restart"}, "stimuli[0]"),
    ],
)
def test_bad_stimulus_names_its_key(item: dict[str, object], key: str) -> None:
    with pytest.raises(ProfileError) as raised:
        lab_profile("lab-air-gapped", stimuli=[item])
    assert raised.value.key == key


def test_lab_options_default_perimeter_follows_mode() -> None:
    assert lab_options(lab_profile("lab-air-gapped", lab={})).perimeter == "closed"
    assert lab_options(lab_profile("lab-hybrid", lab={})).perimeter == "cloud"
    assert lab_options(lab_profile("lab-air-gapped")).probe_perimeter


def test_lab_options_reject_unknown_perimeter() -> None:
    with pytest.raises(ProfileError) as raised:
        lab_options(lab_profile("lab-air-gapped", lab={"perimeter": "ajar"}))
    assert raised.value.key == "lab.perimeter"


def test_lab_window_defaults_to_twenty_seconds() -> None:
    profile = dataclasses.replace(lab_profile("lab-air-gapped"), window_seconds=None)
    assert lab_options(profile).window == 20.0


def test_closed_perimeter_lets_nothing_out() -> None:
    rules = ruleset("closed", proxied=False)
    assert 'iifname "onprem" oifname "inet"' not in rules
    assert "policy drop" in rules


def test_proxied_cloud_perimeter_lets_only_the_proxy_out() -> None:
    rules = ruleset("cloud", proxied=True)
    assert "ip saddr { 192.0.2.80 } tcp dport { 443, 636 }" in rules
    assert "192.0.2.10 }" not in rules.split("scanner")[0].split("ip saddr 203")[0]


def test_packet_counter_counts_only_complete_blocks(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    frames = [Ether() / IP(src="192.0.2.10", dst="192.0.2.20") / UDP() for _ in range(5)]
    wrpcapng(str(path), frames)
    data = path.read_bytes()
    partial = tmp_path / "p.pcapng"
    partial.write_bytes(data[:-10])
    counter = PacketCounter(partial)
    assert counter.update() == 4
    partial.write_bytes(data)
    assert counter.update() == 5


def test_lab_ca_issues_trusted_and_impostor_certificates(tmp_path: Path) -> None:
    ca = LabCA(tmp_path)
    for kind, trusted in (("valid", True), ("untrusted", False), ("expired", False)):
        pair = ca.issue(kind, ("api.imagicle.com",), kind)
        client = ssl.create_default_context(cafile=str(ca.ca_file))
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(pair.chain, pair.key)
        c_in, c_out, s_in, s_out = (
            ssl.MemoryBIO(),
            ssl.MemoryBIO(),
            ssl.MemoryBIO(),
            ssl.MemoryBIO(),
        )
        c = client.wrap_bio(c_in, c_out, server_hostname="api.imagicle.com")
        s = server.wrap_bio(s_in, s_out, server_side=True)
        ok = True
        for _ in range(6):
            for side, out, peer_in in ((c, c_out, s_in), (s, s_out, c_in)):
                try:
                    side.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError:
                    ok = False
                peer_in.write(out.read())
        assert ok is trusted, kind
    assert (tmp_path / "valid.key").stat().st_mode & 0o077 == 0


def test_faults_are_unique_and_described() -> None:
    faults = list_faults()
    names = [name for name, _ in faults]
    assert len(names) == len(set(names)) >= 15
    assert all(description and "\n" not in description for _, description in faults)


def test_every_ip_link_command_names_its_device_by_keyword(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """iproute2 7 (Debian testing) reads `ip link add inet ...` as the `inet` keyword and
    refuses the line: the lab names every device it adds or sets with `name` or `dev`."""
    from conformance.lab import network, topology

    batches: list[tuple[str | None, list[str]]] = []

    class State:
        def add_namespace(self, namespace: str, resolver: str | None) -> None:
            pass

    monkeypatch.setattr(network, "ip_batch", lambda ns, cmds: batches.append((ns, list(cmds))))
    monkeypatch.setattr(network, "write_sysctl", lambda ns, settings: None)
    network.build(State(), topology.Namespaces("x1"))  # type: ignore[arg-type]
    links = [c for _, cmds in batches for c in cmds if c.startswith("link ")]
    assert len(links) >= 12
    for command in links:
        verb, *rest = command.split()[1:]
        assert (verb, rest[0]) in {("add", "name"), ("set", "dev")}, command
    assert any("link add name inet " in c for c in links)
