"""Which capture files in a directory are closed: judged only once nothing writes them any more.

A file is closed when its size and modification time have not changed for `settle` seconds,
no process holds it open for writing, and:

- every process's open files could be read (/proc/PID/fd and fdinfo: root, or the capture
  tool runs as the watcher's own user), so "no writer" is known; or else
- a newer file of the same ring exists (tcpdump `-G`/`-C`, dumpcap ring buffers write the
  next file only after closing this one), or
- it has been quiet for `quiet` seconds (a file copied in, such as a pktmon capture fetched
  from Windows, whose writer cannot be seen).

A ring is the files whose names differ only in digits: `ucx_00001_20240501120000.pcapng`
(dumpcap), `trace-1714564800.pcap` (tcpdump -G with a strftime name), `trace.pcap`,
`trace.pcap1` (tcpdump -C).
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# Capture files by name: pcap, pcapng or cap, with the digits tcpdump -C/-W append.
CAPTURE_NAME: Final = re.compile(r"[^.].*\.(pcap|pcapng|cap)\d*", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_WRITE_FLAGS = 0o3  # O_WRONLY | O_RDWR in fdinfo's octal `flags`


@dataclass(frozen=True, slots=True)
class CaptureFile:
    """A capture file as listed: its identity is (name, size, modification time)."""

    path: Path
    size: int
    mtime_ns: int

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.path.name, self.size, self.mtime_ns)


def ring_of(name: str) -> str:
    """The ring a file belongs to: its name with every run of digits made one `#`, trailing
    ones dropped (so tcpdump -C's `trace.pcap` and `trace.pcap1` are one ring)."""
    return _DIGITS.sub("#", name).rstrip("#")


def list_captures(directory: Path) -> list[CaptureFile]:
    """The regular capture files in `directory` (no hidden files, no symlinks)."""
    found = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not CAPTURE_NAME.fullmatch(entry.name) or not entry.is_file(follow_symlinks=False):
            continue
        try:
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # deleted by its ring meanwhile
        found.append(CaptureFile(Path(entry.path), stat.st_size, stat.st_mtime_ns))
    return found


def open_for_writing(directory: Path) -> tuple[set[str], bool]:
    """Paths under `directory` some process holds open for writing, and whether every
    process's open files could be read (False: a writer may be hidden)."""
    prefix = str(directory.resolve()) + os.sep
    writers: set[str] = set()
    complete = True
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return writers, False
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            complete = False
            continue
        except OSError:
            continue  # the process ended
        for fd in fds:
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if not target.startswith(prefix):
                continue
            if _writes(pid, fd):
                writers.add(target)
    return writers, complete


def _writes(pid: str, fd: str) -> bool:
    """Whether the descriptor is open for writing (unknown: assume it is)."""
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}") as info:
            for line in info:
                if line.startswith("flags:"):
                    return bool(int(line.split()[1], 8) & _WRITE_FLAGS)
    except (OSError, ValueError, IndexError):
        pass
    return True


class ClosureDetector:
    """Remembers what each file looked like at the last poll; says which ones are closed."""

    def __init__(self, directory: Path, *, settle: float, quiet: float) -> None:
        self.directory = directory
        self.settle = settle
        self.quiet = quiet
        self._seen: dict[str, tuple[int, int, float]] = {}  # name -> size, mtime, unchanged since

    def closed(
        self,
        files: list[CaptureFile],
        now: float,
        done: Collection[tuple[str, int, int]] = (),
    ) -> list[CaptureFile]:
        """Of `files` (this poll's listing), the closed ones not in `done` (file keys already
        judged: still listed, for the ring rule), oldest first."""
        seen: dict[str, tuple[int, int, float]] = {}
        stable: list[CaptureFile] = []
        for item in files:
            if item.key in done:
                continue
            before = self._seen.get(item.path.name)
            since = now
            if before is not None and before[:2] == (item.size, item.mtime_ns):
                since = before[2]
            seen[item.path.name] = (item.size, item.mtime_ns, since)
            if now - since >= self.settle:
                stable.append(item)
        self._seen = seen
        if not stable:
            return []
        writers, complete = open_for_writing(self.directory)
        newest: dict[str, int] = {}
        for item in files:
            ring = ring_of(item.path.name)
            newest[ring] = max(newest.get(ring, 0), item.mtime_ns)
        out = []
        for item in stable:
            if str(item.path.resolve()) in writers:
                continue
            successor = newest[ring_of(item.path.name)] > item.mtime_ns
            quiet = now - item.mtime_ns / 1e9 >= self.quiet
            if complete or successor or quiet:
                out.append(item)
        return sorted(out, key=lambda f: (f.mtime_ns, f.path.name))
