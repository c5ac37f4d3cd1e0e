"""Remote capture: command building, statistics parsing, and a real tcpdump (local backend)."""

from __future__ import annotations

import base64
import dataclasses
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from conformance.evidence.host import HostSource
from conformance.host.facts import HostOptions
from conformance.host.remote_capture import (
    decode_fetch_chunk,
    parse_etl2pcap,
    parse_tcpdump_stats,
    pktmon_commands,
    pktmon_fetch_command,
    ssh_argv,
    tcpdump_command,
)
from conformance.observe.evidence import observe_evidence
from conformance.profile import load_profile
from conformance.profile_model import Profile
from conformance.progress import NULL_PROGRESS

TCPDUMP_STDERR = """\
tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 262144 bytes
1482 packets captured
1490 packets received by filter
7 packets dropped by kernel
"""
# `pktmon etl2pcap` output as its documented format has it; NOT recorded from a live host.
ETL2PCAP = """\
Processing...

Packets total:       5213
Packet drop count:   2
Packets formatted:   5213
Formatted file:      C:\\ProgramData\\ucx-conformance\\capture.pcapng
"""


def test_tcpdump_command_excludes_our_session_and_fails_clearly_without_tcpdump() -> None:
    command = tcpdump_command("eth0", 30)
    assert "command -v tcpdump" in command and "exit 127" in command
    assert "SSH_CLIENT" in command and "timeout -s INT 30 tcpdump -i eth0 -s 0 -U" in command
    assert "'eth 0'" in tcpdump_command("eth 0", 1)  # quoted, never split


def test_tcpdump_statistics() -> None:
    stats = parse_tcpdump_stats(TCPDUMP_STDERR)
    assert stats is not None and (stats.captured, stats.dropped) == (1482, 7)
    assert parse_tcpdump_stats("tcpdump: listening on eth0\n") is None  # killed: unknown


def test_ssh_argv_uses_only_the_given_config() -> None:
    options = HostOptions(ssh_config=Path("/w/ssh_config"), ssh_identity=Path("/w/id"))
    argv = ssh_argv("ssh://ops@ucx.example:2222", options, "true")
    assert argv[:1] == ["ssh"] and "BatchMode=yes" in argv
    assert argv[argv.index("-F") + 1] == "/w/ssh_config"
    assert "User=ops" in argv and "Port=2222" in argv
    assert argv[-3:] == ["--", "ucx.example", "true"]


def test_pktmon_route() -> None:
    commands = pktmon_commands()
    assert commands["start"].startswith("pktmon start --capture --pkt-size 0 --file-name")
    assert "etl2pcap" in commands["convert"] and commands["convert"].endswith(".pcapng'")
    assert "Seek(4096,0)" in pktmon_fetch_command(r"C:\x.pcapng", 4096, 1024)
    payload = bytes(range(256)) * 10
    winrm_output = base64.b64encode(payload).decode()
    wrapped = "\r\n".join(winrm_output[i : i + 76] for i in range(0, len(winrm_output), 76))
    assert decode_fetch_chunk(wrapped) == payload
    stats = parse_etl2pcap(ETL2PCAP)
    assert stats is not None and (stats.captured, stats.dropped) == (5213, 2)


def _profile(tmp_path: Path, capture: str) -> Profile:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: local\nmode: air-gapped\ntarget: {addresses: [127.0.0.1]}\n"
        "environment: {networks: [127.0.0.0/8]}\n"
        f"window: 2s\nhost: {{capture: {capture}, sample_interval: 0.5}}\n"
    )
    return load_profile(path)


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")
def test_real_tcpdump_on_loopback_becomes_observations(tmp_path: Path) -> None:
    profile = _profile(tmp_path, "lo")

    def chatter() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(40):
                sock.sendto(b"ucx-conformance test datagram", ("127.0.0.1", 9))
                time.sleep(0.05)

    sender = threading.Thread(target=chatter)
    source = HostSource("local://", None)
    try:
        timer = threading.Timer(0.7, sender.start)  # once tcpdump listens
        timer.start()
        evidence = source.collect(profile, NULL_PROGRESS)
        timer.join()
        sender.join()
        observations = observe_evidence(evidence, profile, tmp_path / "work").observations
    finally:
        source.close()
    (summary,) = observations.captures
    assert summary.packets >= 5 and summary.drops == 0, summary
    assert any(f.responder_port == 9 for f in observations.flows)
    assert any(name == "host/remote-capture.pcap" for _, name in evidence.files)


def test_missing_tcpdump_leaves_no_capture_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "timeout", "ss", "cat", "env", "ip", "sleep"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    profile = dataclasses.replace(_profile(tmp_path, "lo"), window_seconds=1.0)
    source = HostSource("local://", None)
    try:
        evidence = source.collect(profile, NULL_PROGRESS)
        observations = observe_evidence(evidence, profile, tmp_path / "work").observations
    finally:
        source.close()
    assert observations.captures == ()
    assert any("tcpdump: not installed" in note for note in evidence.notes), evidence.notes
