"""The Windows capture route (pktmon over WinRM): command building and output parsing.

Nothing Windows can run here, so a scripted runner stands in for WinRM (a mock, by
necessity) and replays outputs written in pktmon's format; the route has NOT been run
against a live Windows host (docs/hosts.md). The fetched bytes are real pcapng files that
go through the same engine as every other capture.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from conformance.evidence.host import HostSource
from conformance.host.pktmon import PktmonCapture, parse_events_lost, powershell
from conformance.host.remote_capture import pktmon_commands
from conformance.judge import air_gapped
from conformance.observe.builder import observe_captures
from conformance.observe.evidence import observe_evidence
from conformance.profile import load_profile
from conformance.progress import NULL_PROGRESS
from conformance.verdict import Verdict
from tests.capture_files import pcapng_section

MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
# Outputs written after the format pktmon documents; NOT recorded from a live Windows host.
ETL = "C:\\ProgramData\\ucx-conformance\\capture.etl"
STOP_OK = f"Flushing logs...\nMerging metadata...\nLog file: {ETL} (No events lost)\n"
STOP_LOST = (
    "Flushing logs...\nLog file: C:\\ProgramData\\ucx-conformance\\capture.etl (12 events lost)\n"
)
STOP_SILENT = "Flushing logs...\n"


def _etl2pcap(total: int, drops: int) -> str:
    return (
        "Processing...\n\n"
        f"Packets total:       {total}\nPacket drop count:   {drops}\n"
        f"Packets formatted:   {total}\n"
        "Formatted file:      C:\\ProgramData\\ucx-conformance\\capture.pcapng\n"
    )


def _pcapng(dst: str) -> bytes:
    frames = [
        bytes(Ether(src=MAC_A, dst=MAC_B) / IP(src="192.0.2.10", dst=dst) / TCP(sport=40000 + i))
        for i in range(3)
    ]
    return pcapng_section(frames)


Script = dict[str, tuple[int, str, str]]


def _runner(
    files: dict[str, bytes], stop: str, convert: str, fail: str | None = None
) -> tuple[Callable[[str], tuple[int, str, str]], list[str]]:
    """A stand-in for WinRM answering each step as pktmon/PowerShell would."""
    commands = pktmon_commands()
    calls: list[str] = []

    def run(script: str) -> tuple[int, str, str]:
        calls.append(script)
        if fail is not None and fail in script:
            raise ConnectionError("HTTPSConnectionPool(host='192.0.2.50', port=5986): timed out")
        if script == commands["stop"]:
            return 0, stop, ""
        if script == commands["convert"] or script == commands["convert_drops"]:
            return 0, convert, ""
        for name, data in files.items():
            if script == f"(Get-Item '{name}').Length":
                return 0, f"{len(data)}\r\n", ""
            if script.startswith(f"$f=[IO.File]::OpenRead('{name}')"):
                offset = int(script.split(".Seek(")[1].split(",", maxsplit=1)[0])
                chunk = data[offset : offset + 100]  # small chunks: several fetches
                return 0, base64.encodebytes(chunk).decode().replace("\n", "\r\n"), ""
        return 0, "", ""

    return run, calls


def test_powershell_is_encoded_for_cmd() -> None:
    line = powershell("pktmon stop; 'quote' \"double\"")
    encoded = line.rsplit(" ", 1)[1]
    assert line.startswith("powershell.exe -NoProfile -NonInteractive -EncodedCommand ")
    assert base64.b64decode(encoded).decode("utf-16-le") == "pktmon stop; 'quote' \"double\""


def test_events_lost() -> None:
    assert parse_events_lost(STOP_OK) == 0
    assert parse_events_lost(STOP_LOST) == 12
    assert parse_events_lost(STOP_SILENT) is None


def test_full_route_fetches_a_capture_the_engine_reads(tmp_path: Path) -> None:
    commands = pktmon_commands()
    data = _pcapng("192.0.2.20")
    run, calls = _runner({commands["pcapng"]: data}, STOP_OK, _etl2pcap(3, 0))
    capture = PktmonCapture(run, 5, tmp_path / "remote-capture.pcapng")
    capture.start()
    stats, _ = capture.finish()
    assert stats is not None and (stats.captured, stats.dropped) == (3, 0)
    assert capture.output.read_bytes() == data
    assert calls[:2] == [commands["prepare"], commands["start"]]
    assert calls[-1] == commands["cleanup"]  # nothing left on the host
    assert sum("Seek(" in c for c in calls) > 1  # fetched in several chunks
    assert observe_captures([capture.output]).captures[0].packets == 3
    assert "pktmon stop" in (tmp_path / "remote-capture.stderr.txt").read_text()


def test_stack_drops_are_fetched_and_judged_as_attempts(tmp_path: Path) -> None:
    commands = pktmon_commands()
    files = {
        commands["pcapng"]: _pcapng("192.0.2.20"),
        commands["drops_pcapng"]: _pcapng("203.0.113.9"),
    }
    run, calls = _runner(files, STOP_OK, _etl2pcap(6, 3))
    capture = PktmonCapture(run, 5, tmp_path / "remote-capture.pcapng")
    capture.start()
    stats, _ = capture.finish()
    assert stats is not None and stats.dropped == 0  # stack drops are not capture losses
    assert commands["convert_drops"] in calls and "--drop-only" in commands["convert_drops"]
    assert capture.drops_output.read_bytes() == files[commands["drops_pcapng"]]


@pytest.mark.parametrize(("stop", "why"), [(STOP_LOST, None), (STOP_SILENT, "event loss")])
def test_lost_or_unknown_events_are_not_a_complete_capture(
    tmp_path: Path, stop: str, why: str | None
) -> None:
    commands = pktmon_commands()
    run, _ = _runner({commands["pcapng"]: _pcapng("192.0.2.20")}, stop, _etl2pcap(3, 0))
    capture = PktmonCapture(run, 5, tmp_path / "remote-capture.pcapng")
    capture.start()
    stats, text = capture.finish()
    if why is None:
        assert stats is not None and stats.dropped == 12
    else:
        assert stats is None and why in text


def test_winrm_failure_ends_the_route_with_its_reason(tmp_path: Path) -> None:
    run, _ = _runner({}, STOP_OK, _etl2pcap(0, 0), fail="pktmon start")
    capture = PktmonCapture(run, 5, tmp_path / "remote-capture.pcapng")
    capture.start()
    stats, text = capture.finish()
    assert stats is None and "pktmon start: WinRM failed" in text and "timed out" in text


@pytest.mark.skipif(
    importlib.util.find_spec("winrm") is not None,
    reason="pywinrm is installed: the run would try to reach the host",
)
def test_winrm_host_without_pywinrm_is_inconclusive(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: win\nmode: air-gapped\ntarget: {addresses: [192.0.2.50]}\n"
        "environment: {networks: [192.0.2.0/24]}\n"
        "window: 1s\nhost: {capture: pktmon, command_timeout: 3}\n"
    )
    profile = dataclasses.replace(load_profile(path), window_seconds=0.5)
    source = HostSource("winrm://audit:secret@192.0.2.50", None)
    try:
        evidence = source.collect(profile, NULL_PROGRESS)
        observations = observe_evidence(evidence, profile, tmp_path / "work").observations
    finally:
        source.close()
    assert observations.captures == ()
    assert any("pktmon" in n and "no packets file" in n for n in evidence.notes), evidence.notes
    assert all("secret" not in n for n in evidence.notes)
    result = air_gapped.egress(observations, profile)
    assert result.verdict is Verdict.INCONCLUSIVE
