"""The live-host backend against the lab target over real SSH (sshd in the target's namespace).

One well-behaved run, one run with every host-visible fault, and the ways a host can fail to
answer: each must end in a clear message and `inconclusive`, never `pass`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.evidence.host import HostSource
from conformance.evidence.interface import HOST_FACTS
from conformance.evidence.lab import LabSource
from conformance.host.facts import HostFacts
from conformance.judge import air_gapped, host
from conformance.judge.result import ControlResult
from conformance.observe.builder import observe_captures
from conformance.observe.evidence import load_facts, observe_evidence
from conformance.observe.records import Observations
from conformance.profile_model import HostSettings, Profile
from conformance.progress import NULL_PROGRESS
from conformance.verdict import Verdict
from tests.lab.conftest import lab_profile

pytestmark = pytest.mark.lab

HOST_FAULTS = ("cloud-licensing-airgapped", "listen-outside", "hosts-override", "proxy-mismatch")


def on_host(facts: HostFacts) -> Observations:
    """What the observe step holds for a run with only these host facts."""
    return Observations(captures=(), flows=(), source="host", host=facts)


REMOTE_PACKETS: dict[str, int] = {}  # run label -> packets in the remote tcpdump capture
REMOTE_EGRESS: dict[str, ControlResult] = {}  # run label -> AG-EGRESS judged on that capture alone
REMOTE_NOTES: dict[str, tuple[str, ...]] = {}


def _collect(
    profile: Profile, url: str, faults: tuple[str, ...] = (), label: str = ""
) -> HostFacts:
    source = HostSource(url, LabSource(faults))
    try:
        evidence = source.collect(profile, NULL_PROGRESS)
        path = evidence.log(HOST_FACTS)
        assert path is not None
        remote = [
            p
            for p, name in evidence.files
            if name == "host/remote-capture.pcap" and p.stat().st_size > 0
        ]
        if remote:
            observed = observe_captures(remote)
            REMOTE_PACKETS[label] = observed.captures[0].packets
        if source.remote_capture is not None:
            # The remote capture through the same engine and judge, as if it were the only one.
            work = Path(tempfile.mkdtemp(prefix="ucx-remote-"))
            try:
                alone = observe_evidence(source.remote_capture, profile, work).observations
            finally:
                shutil.rmtree(work, ignore_errors=True)
            REMOTE_EGRESS[label] = air_gapped.egress(alone, profile)
            REMOTE_NOTES[label] = alone.notes
        return load_facts(path)
    finally:
        source.close()


@pytest.fixture(scope="module")
def profile() -> Profile:
    return lab_profile("lab-air-gapped", window=5.0, probes={"perimeter": False})


@pytest.fixture(scope="module")
def clean(profile: Profile) -> HostFacts:
    # With a remote tcpdump over the same ssh route (kept beside the lab's own capture).
    capturing = dataclasses.replace(profile, host=HostSettings(capture="eth0"))
    return _collect(capturing, "lab", label="clean")


@pytest.fixture(scope="module")
def broken(profile: Profile) -> HostFacts:
    return _collect(profile, "lab", HOST_FAULTS)


def test_well_behaved_target_passes_every_host_judgement(
    clean: HostFacts, profile: Profile
) -> None:
    assert clean.samples >= 2, clean.problems
    assert clean.firewall == "nftables" and clean.firewall_input_restricted is True
    assert any(s.local_port == 22 for s in clean.listeners)  # sshd itself, seen over ssh
    for result in (
        host.socket_egress(clean, profile),
        host.socket_ingress(clean, profile),
        host.hosts_file(on_host(clean), profile),
        host.proxy_setting(on_host(clean), profile),
        host.product_settings(on_host(clean), profile),
    ):
        assert result is not None and result.verdict is Verdict.PASS, result


def test_remote_tcpdump_over_ssh_streams_a_capture(clean: HostFacts) -> None:
    assert REMOTE_PACKETS.get("clean", 0) > 10, REMOTE_PACKETS
    judged = REMOTE_EGRESS["clean"]
    assert judged.verdict is Verdict.PASS, judged  # tcpdump's own statistics: 0 dropped
    assert any("0 dropped" in note for note in REMOTE_NOTES["clean"]), REMOTE_NOTES


def test_missing_tcpdump_on_the_host_leaves_the_capture_inconclusive(profile: Profile) -> None:
    short = dataclasses.replace(profile, window_seconds=3.0, host=HostSettings(capture="eth0"))
    facts = _collect(short, "lab", ("no-tcpdump",), label="no-tcpdump")
    assert any("tcpdump: not installed" in n for n in REMOTE_NOTES["no-tcpdump"]), REMOTE_NOTES
    judged = REMOTE_EGRESS["no-tcpdump"]
    assert judged.verdict is Verdict.INCONCLUSIVE, judged
    # The host's facts are still read and judged.
    assert host.hosts_file(on_host(facts), profile).verdict is Verdict.PASS


def test_outside_connection_fails_egress(broken: HostFacts, profile: Profile) -> None:
    result = host.socket_egress(broken, profile)
    assert result is not None and result.verdict is Verdict.FAIL
    assert any("203.0.113.10:443" in f.summary for f in result.violations)


def test_listener_without_host_firewall_fails_ingress(broken: HostFacts, profile: Profile) -> None:
    result = host.socket_ingress(broken, profile)
    assert result.verdict is Verdict.FAIL
    assert any(":9443" in f.summary for f in result.violations)


def test_hosts_override_fails_host_hosts(broken: HostFacts, profile: Profile) -> None:
    result = host.hosts_file(on_host(broken), profile)
    assert result.verdict is Verdict.FAIL
    assert "api.imagicle.com" in result.violations[0].summary


def test_proxy_setting_unlike_the_profile_fails_host_proxy(
    broken: HostFacts, profile: Profile
) -> None:
    result = host.proxy_setting(on_host(broken), profile)
    assert result.verdict is Verdict.FAIL
    assert "192.0.2.99:3128" in result.violations[0].summary


@pytest.fixture
def short(profile: Profile) -> Iterator[Profile]:
    yield dataclasses.replace(profile, window_seconds=2.0)


def _all_inconclusive(facts: HostFacts, profile: Profile) -> None:
    for result in (
        host.socket_egress(facts, profile),
        host.socket_ingress(facts, profile),
        host.hosts_file(on_host(facts), profile),
    ):
        assert result is not None and result.verdict is Verdict.INCONCLUSIVE, result


def test_bad_credentials_are_inconclusive_with_the_reason(short: Profile) -> None:
    facts = _collect(short, "ssh://no-such-user@lab")
    assert any("Permission denied" in p for p in facts.problems), facts.problems
    _all_inconclusive(facts, short)


def test_unreachable_host_is_inconclusive(short: Profile) -> None:
    # 192.0.2.77 exists in no lab namespace: the relay inside the lab finds nothing there.
    facts = _collect(short, "ssh://root@192.0.2.77")
    assert any("No route to host" in p for p in facts.problems), facts.problems
    _all_inconclusive(facts, short)


def test_hanging_command_times_out_and_is_reported(short: Profile, tmp_path: Path) -> None:
    fifo = tmp_path / "settings.fifo"
    os.mkfifo(fifo)  # `cat` of a FIFO nobody writes blocks forever
    hanging = dataclasses.replace(
        short,
        host=HostSettings(settings=str(fifo), command_timeout=2.0),
    )
    facts = _collect(hanging, "lab")
    assert any("settings" in p and "timed out" in p for p in facts.problems), facts.problems
    assert host.product_settings(on_host(facts), hanging).verdict is Verdict.INCONCLUSIVE


def test_paramiko_backend_reads_the_same_host_over_real_ssh(short: Profile) -> None:
    facts = _collect(short, "paramiko://root@lab")
    assert facts.samples >= 1 and not facts.problems, facts.problems
    assert host.hosts_file(on_host(facts), short).verdict is Verdict.PASS
    assert host.socket_ingress(facts, short).verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("scheme", "message"),
    [("ssh", "Host key verification failed"), ("paramiko", "not found in known_hosts")],
)
def test_unknown_host_key_is_refused(short: Profile, scheme: str, message: str) -> None:
    # The target's own address: its key is known only under the lab's alias, so OpenSSH
    # (StrictHostKeyChecking yes, this run's known_hosts only) and paramiko (RejectPolicy)
    # refuse it.
    facts = _collect(short, f"{scheme}://root@192.0.2.10")
    assert any(message in p for p in facts.problems), facts.problems
    _all_inconclusive(facts, short)
