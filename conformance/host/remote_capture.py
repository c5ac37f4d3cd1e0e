"""Remote capture on a live host: tcpdump over ssh (Linux), pktmon over WinRM (Windows).

tcpdump's pcap goes straight from its stdout over the ssh channel into a local file, so
nothing is left on the host; its closing statistics (stderr) give the kernel drop count,
which the capture reader cannot see in a pcap file. The harness's own ssh session is
filtered out (`$SSH_CLIENT`), so the capture judges the host, not the harness.

The Windows route (pktmon start / stop / etl2pcap / fetch in base64 chunks over WinRM) is
built and its outputs parsed here from recorded examples; it has not been run against a
live Windows host by this project (docs/hosts.md).
"""

from __future__ import annotations

import base64
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from conformance.host.facts import HostOptions

_DROPPED = re.compile(r"^(\d+) packets? dropped by kernel", re.MULTILINE)
_CAPTURED = re.compile(r"^(\d+) packets? captured", re.MULTILINE)
_IFDROP = re.compile(r"^(\d+) packets? dropped by interface", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class CaptureStats:
    captured: int
    dropped: int  # kernel + interface


def tcpdump_command(interface: str, seconds: float) -> str:
    """The shell command run on the host: capture `interface` for `seconds` to stdout."""
    iface = shlex.quote(interface)
    return (
        'command -v tcpdump >/dev/null 2>&1 || { echo "tcpdump: not installed" >&2; exit 127; }; '
        "set -- ${SSH_CLIENT:-}; "
        # Leave out the harness's own ssh session, when there is one.
        'if [ -n "${1:-}" ]; then set -- not \\( host "$1" and tcp port "$2" \\); fi; '
        f'exec timeout -s INT {seconds:g} tcpdump -i {iface} -s 0 -U -n -w - "$@"'
    )


def parse_tcpdump_stats(stderr: str) -> CaptureStats | None:
    """tcpdump's closing statistics, or None when it never printed them (killed, crashed)."""
    captured = _CAPTURED.search(stderr)
    dropped = _DROPPED.search(stderr)
    if captured is None or dropped is None:
        return None
    interface = _IFDROP.search(stderr)
    extra = int(interface.group(1)) if interface else 0
    return CaptureStats(int(captured.group(1)), int(dropped.group(1)) + extra)


def ssh_argv(url: str, options: HostOptions, command: str) -> list[str]:
    """The ssh client command testinfra's ssh backend would run, for a streamed command."""
    parts = urlsplit(url)
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    if options.ssh_config is not None:
        argv += ["-F", str(options.ssh_config)]
    if options.ssh_identity is not None:
        argv += ["-i", str(options.ssh_identity)]
    if parts.username:
        argv += ["-o", f"User={parts.username}"]
    if parts.port:
        argv += ["-o", f"Port={parts.port}"]
    argv += ["--", parts.hostname or "", command]
    return argv


@dataclass
class RemoteCapture:
    """A tcpdump running on the host for the window, its pcap streamed to `output`."""

    url: str
    options: HostOptions
    interface: str
    seconds: float
    output: Path
    _proc: subprocess.Popen[bytes] | None = None
    _stderr: Path | None = None
    _failure: str | None = None

    def argv(self) -> list[str]:
        """The local command that runs tcpdump on the host (ValueError: scheme not supported)."""
        parts = urlsplit(self.url)
        command = tcpdump_command(self.interface, self.seconds)
        if self.options.sudo:
            command = f"sudo -n sh -c {shlex.quote(command)}"
        if parts.scheme in ("ssh", "paramiko"):
            # paramiko:// hosts are captured through the OpenSSH client with the same config.
            return ssh_argv(self.url, self.options, command)
        if parts.scheme == "local":
            return ["sh", "-c", command]
        if parts.scheme == "docker" and parts.hostname:
            return ["docker", "exec", parts.hostname, "sh", "-c", command]
        raise ValueError(
            f"remote tcpdump runs on ssh://, paramiko://, docker:// and local:// hosts, "
            f"not {parts.scheme}:// (Windows: the pktmon route, docs/hosts.md)"
        )

    def start(self) -> None:
        """Start tcpdump; a failure to start is kept and reported by `finish`, never raised."""
        try:
            argv = self.argv()
        except ValueError as exc:
            self._failure = str(exc)
            return
        self._stderr = self.output.with_suffix(".stderr.txt")
        try:
            with self.output.open("wb") as out, self._stderr.open("wb") as err:
                self._proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err
                )
        except OSError as exc:
            self._failure = f"{argv[0]}: {exc.strerror or exc}"

    def finish(self, grace: float = 15.0) -> tuple[CaptureStats | None, str]:
        """Wait for tcpdump to end (the window plus `grace`); return its stats and stderr."""
        if self._failure is not None:
            return None, self._failure
        if self._proc is None or self._stderr is None:
            return None, "not started"
        try:
            self._proc.wait(timeout=self.seconds + grace)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            timed_out = f"remote capture did not end {grace:g} s after its window: stopped\n"
            with self._stderr.open("a") as err:
                err.write(timed_out)
        stderr = self._stderr.read_text(errors="replace")
        return parse_tcpdump_stats(stderr), stderr

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


# --- Windows: pktmon over WinRM -------------------------------------------------------------

PKTMON_DIR = r"C:\ProgramData\ucx-conformance"
_PKT_TOTAL = re.compile(r"Packets total:\s*(\d+)", re.IGNORECASE)
_PKT_DROPS = re.compile(r"Packet drop count:\s*(\d+)", re.IGNORECASE)
FETCH_CHUNK = 4 * 1024 * 1024


def pktmon_commands(etl: str = rf"{PKTMON_DIR}\capture.etl") -> dict[str, str]:
    """PowerShell commands of the pktmon route, by step (run each through WinRM)."""
    pcapng = etl.removesuffix(".etl") + ".pcapng"
    drops = etl.removesuffix(".etl") + ".drops.pcapng"
    return {
        "prepare": f"New-Item -ItemType Directory -Force -Path '{PKTMON_DIR}' | Out-Null",
        "start": f"pktmon start --capture --pkt-size 0 --file-name '{etl}'",
        "stop": "pktmon stop",
        "convert": f"pktmon etl2pcap '{etl}' --out '{pcapng}'",
        "convert_drops": f"pktmon etl2pcap '{etl}' --drop-only --out '{drops}'",
        "pcapng": pcapng,
        "drops_pcapng": drops,
        "size": f"(Get-Item '{pcapng}').Length",
        "cleanup": f"Remove-Item -Force -ErrorAction SilentlyContinue '{etl}','{pcapng}','{drops}'",
    }


def pktmon_fetch_command(path: str, offset: int, count: int = FETCH_CHUNK) -> str:
    """PowerShell printing `count` bytes of `path` from `offset`, base64 (one WinRM call)."""
    return (
        f"$f=[IO.File]::OpenRead('{path}');$f.Seek({offset},0)|Out-Null;"
        f"$b=New-Object byte[] {count};$n=$f.Read($b,0,{count});$f.Close();"
        "[Convert]::ToBase64String($b,0,$n)"
    )


def decode_fetch_chunk(output: str) -> bytes:
    """One fetch's output back to bytes (whitespace and CRLF from WinRM ignored)."""
    return base64.b64decode("".join(output.split()), validate=True)


def parse_etl2pcap(output: str) -> CaptureStats | None:
    """`pktmon etl2pcap` summary: packets total and dropped (None if not printed)."""
    total = _PKT_TOTAL.search(output)
    drops = _PKT_DROPS.search(output)
    if total is None or drops is None:
        return None
    return CaptureStats(int(total.group(1)), int(drops.group(1)))
