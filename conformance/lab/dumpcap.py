"""Live capture of the target's link with dumpcap (pcapng, with drop counters).

dumpcap, not scapy: it captures through libpcap's ring buffer at line rate, and on stop
writes an Interface Statistics Block with the kernel's drop counters, which the capture
reader turns into CaptureSummary.drops (architecture.md: drops make a pass inconclusive).
The capture is ready before the target starts: we wait for dumpcap's "Capturing on" line
and for the file's header.
"""

from __future__ import annotations

import signal
import struct
import subprocess
import time
from pathlib import Path
from typing import Final

from conformance.errors import LabError
from conformance.lab.netns import LabState, in_netns

READY_TIMEOUT: Final = 5.0  # dumpcap opens the interface in well under a second
STOP_TIMEOUT: Final = 5.0  # writing the statistics block and closing takes milliseconds
# libpcap hands dumpcap the kernel's ring a block at a time (a block is handed over when full
# or after dumpcap's 250 ms read timeout); what is still in a block when SIGINT arrives is
# discarded ("flushed") or never read. Waiting longer than that timeout before the signal
# makes the file hold every packet that crossed the link before stop() was called.
DRAIN_SECONDS: Final = 0.8
KERNEL_BUFFER_MIB: Final = 64  # dumpcap's default 2 MiB drops packets above ~50k/s
MAX_FILE_KB: Final = 2_000_000  # autostop at 2 GB: a runaway target must not fill the disk
_EPB, _SPB, _OPB = 6, 3, 2  # pcapng packet block types (enhanced, simple, obsolete)


class PacketCounter:
    """Counts packet blocks appended to a growing pcapng file, reading only new bytes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.packets = 0
        self.little = True

    def update(self) -> int:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except OSError:
            return self.packets
        pos = 0
        while len(data) - pos >= 12:
            if self.offset == 0 and pos == 0:
                self.little = data[8:12] == b"\x4d\x3c\x2b\x1a"  # section header byte order
            fmt = "<II" if self.little else ">II"
            block_type, length = struct.unpack_from(fmt, data, pos)
            if length < 12 or len(data) - pos < length:
                break  # the rest is still being written
            if block_type in (_EPB, _SPB, _OPB):
                self.packets += 1
            pos += length
        self.offset += pos
        return self.packets


class Capture:
    """One dumpcap process writing the target's link to a pcapng file."""

    def __init__(self, state: LabState, namespace: str, interface: str, path: Path) -> None:
        self.path = path
        self.log = path.with_suffix(".dumpcap.log")
        self.counter = PacketCounter(path)
        argv = [
            "dumpcap",
            "-i",
            interface,
            "-w",
            str(path),
            "-B",
            str(KERNEL_BUFFER_MIB),
            "-a",
            f"filesize:{MAX_FILE_KB}",
        ]
        with self.log.open("wb") as err:
            self.proc: subprocess.Popen[bytes] = state.spawn(
                "dumpcap", in_netns(namespace, argv), stderr=err
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            text = self.log.read_text(errors="replace")
            if "Capturing on" in text and self.path.exists() and self.path.stat().st_size > 0:
                return
            if self.proc.poll() is not None:
                raise LabError(f"dumpcap exited with {self.proc.returncode}: {text.strip()}")
            time.sleep(0.02)
        raise LabError(f"dumpcap was not capturing after {READY_TIMEOUT:g} s")

    def packets(self) -> int:
        """Packets written so far (cheap: only the bytes added since the last call are read)."""
        return self.counter.update()

    def stop(self) -> str:
        """Stop dumpcap so it writes its statistics block; returns its summary lines.

        Every packet that crossed the link before this call is in the file (DRAIN_SECONDS).
        """
        if self.proc.poll() is None:
            time.sleep(DRAIN_SECONDS)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        lines = self.log.read_text(errors="replace").splitlines()
        keep = ("Packets captured", "Packets received/dropped")
        return "; ".join(line.strip() for line in lines if line.startswith(keep))
