"""Remote capture on Windows: pktmon driven through WinRM (docs/hosts.md).

start -> (the window) -> stop -> etl2pcap (all packets, then the stack's dropped ones) ->
fetch both pcapng files in base64 chunks -> remove them from the host. Every step is one
PowerShell command through a `Runner`, so the steps and the parsing of their outputs are
tested with recorded outputs (tests/host/test_pktmon.py). THIS ROUTE HAS NOT BEEN RUN AGAINST
A LIVE WINDOWS HOST BY THIS PROJECT: nothing Windows can run here.

Loss: `pktmon stop` reports lost events ("(No events lost)" / "(N events lost)"); when it
says neither, losses are unknown and the capture is marked incomplete (fail closed).
pktmon's "Packet drop count" counts packets the *network stack* dropped (a firewall, for
example): they are not capture losses but attempts, so they are converted into a second
file and judged like the others.
"""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conformance.host.facts import HostOptions
from conformance.host.remote_capture import (
    FETCH_CHUNK,
    PKTMON_DIR,
    CaptureStats,
    decode_fetch_chunk,
    parse_etl2pcap,
    pktmon_commands,
    pktmon_fetch_command,
)

Runner = Callable[[str], tuple[int, str, str]]  # PowerShell -> (exit status, stdout, stderr)
_LOST = re.compile(r"\((No|\d+) events? lost\)", re.IGNORECASE)
MAX_FETCH = 2 * 1024 * 1024 * 1024  # refuse to pull more than 2 GiB over WinRM


def powershell(script: str) -> str:
    """A cmd.exe command line running `script` in PowerShell, immune to quoting."""
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    return f"powershell.exe -NoProfile -NonInteractive -EncodedCommand {encoded}"


def parse_events_lost(stop_output: str) -> int | None:
    """Events `pktmon stop` says were lost: 0, N, or None when it does not say."""
    match = _LOST.search(stop_output)
    if match is None:
        return None
    return 0 if match.group(1).lower() == "no" else int(match.group(1))


def winrm_runner(url: str, options: HostOptions) -> Runner:
    """A Runner on testinfra's winrm backend, each call bounded by the command timeout."""
    limit = int(options.command_timeout)
    hosts: list[Any] = []

    def run(script: str) -> tuple[int, str, str]:
        if not hosts:  # made on first use, so a missing pywinrm is a step's recorded failure
            import testinfra

            hosts.append(
                testinfra.get_host(url, operation_timeout_sec=limit, read_timeout_sec=limit + 10)
            )
        result = hosts[0].run(powershell(script))
        return int(result.rc), str(result.stdout), str(result.stderr)

    return run


@dataclass
class PktmonCapture:
    """pktmon on a Windows host for the window; its pcapng files fetched to `output`."""

    run: Runner
    seconds: float
    output: Path  # all packets; the stack's dropped ones go beside it (.drops.pcapng)
    interface: str = "pktmon"
    label: str = "pktmon"
    transcript: list[str] = field(default_factory=list)
    _failure: str | None = None
    _started: bool = False

    @property
    def drops_output(self) -> Path:
        return self.output.with_suffix(".drops.pcapng")

    @property
    def outputs(self) -> tuple[Path, ...]:
        return (self.output, self.drops_output)

    def _step(self, name: str, script: str) -> tuple[int, str] | None:
        """Run one step; a failure (exit status, exception) is kept and ends the route."""
        try:
            status, stdout, stderr = self.run(script)
        except Exception as exc:  # pywinrm / requests: the link, credentials, a timeout
            self._failure = f"pktmon {name}: WinRM failed: {type(exc).__name__}: {exc}"[:400]
            self.transcript.append(f"# {name}\n{script}\n{self._failure}\n")
            return None
        self.transcript.append(f"# {name} (exit {status})\n{script}\n{stdout}{stderr}\n")
        if status != 0:
            last = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
            self._failure = f"pktmon {name} failed (exit {status}): {last[0][:300]}"
            return None
        return status, stdout

    def start(self) -> None:
        commands = pktmon_commands()
        if self._step("prepare", commands["prepare"]) and self._step("start", commands["start"]):
            self._started = True

    def finish(self) -> tuple[CaptureStats | None, str]:
        """Stop, convert, fetch, clean up; (stats, transcript). Stats None: loss unknown."""
        try:
            return self._finish()
        finally:
            self._write_transcript()

    def _finish(self) -> tuple[CaptureStats | None, str]:
        if not self._started:
            return None, self._failure or "pktmon was not started"
        commands = pktmon_commands()
        stopped = self._step("stop", commands["stop"])
        if stopped is None:
            return None, self._failure or "pktmon stop failed"
        self._started = False
        lost = parse_events_lost(stopped[1])
        converted = self._step("convert", commands["convert"])
        if converted is None:
            return None, self._failure or "pktmon etl2pcap failed"
        summary = parse_etl2pcap(converted[1])
        fetched = self._fetch(commands["pcapng"], self.output)
        if (
            fetched
            and summary is not None
            and summary.dropped
            and self._step("convert drops", commands["convert_drops"])
        ):
            self._fetch(commands["drops_pcapng"], self.drops_output)
        self._step("cleanup", commands["cleanup"])
        if not fetched:
            return None, self._failure or "the pcapng file could not be fetched"
        if lost is None or summary is None:
            return None, "pktmon did not report its event loss or packet totals"
        if summary.dropped and not self.drops_output.exists():
            return None, self._failure or "the stack's dropped packets could not be fetched"
        return CaptureStats(summary.captured, lost), "\n".join(self.transcript)

    def _fetch(self, remote: str, local: Path) -> bool:
        sized = self._step(f"size of {remote}", f"(Get-Item '{remote}').Length")
        if sized is None:
            return False
        try:
            size = int(sized[1].strip())
        except ValueError:
            self._failure = f"pktmon: not a file size: {sized[1].strip()[:80]!r}"
            return False
        if size > MAX_FETCH:
            self._failure = f"pktmon: {remote} is {size} bytes, over the {MAX_FETCH} fetch limit"
            return False
        with local.open("wb") as out:
            offset = 0
            while offset < size:
                chunk = self._step(f"fetch {offset}", pktmon_fetch_command(remote, offset))
                if chunk is None:
                    return False
                try:
                    data = decode_fetch_chunk(chunk[1])
                except ValueError as exc:
                    self._failure = f"pktmon fetch at {offset}: not base64 ({exc})"
                    return False
                if not data:
                    self._failure = f"pktmon fetch at {offset}: no data before {size} bytes"
                    return False
                out.write(data)
                offset += len(data)
        return True

    def _write_transcript(self) -> None:
        self.output.with_suffix(".stderr.txt").write_text("\n".join(self.transcript))

    def stop(self) -> None:
        """On an interrupted run: stop pktmon on the host (best effort)."""
        if self._started:
            with contextlib.suppress(Exception):  # already reporting another failure
                self.run(pktmon_commands()["stop"])
            self._started = False


def is_windows(url: str) -> bool:
    return urlsplit(url).scheme == "winrm"


__all__ = ["FETCH_CHUNK", "PKTMON_DIR", "PktmonCapture", "powershell", "winrm_runner"]
