"""`watch --capture IFACE`: dumpcap writing the interface to a ring buffer the watch judges.

dumpcap (as the lab's captures, lab/dumpcap.py): libpcap's ring at line rate, pcapng with the
kernel's drop counters in each file's statistics block. Files rotate every `seconds` and the
ring keeps RING_FILES of them; the watch copies each one as it closes.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Final

from conformance.errors import ConformanceError
from conformance.lab.dumpcap import KERNEL_BUFFER_MIB
from conformance.watch.state import STATE_DIR

RING_DIR: Final = "ring"
# The watch copies a file seconds after it closes; this many files is slack for a slow disk
# or a long report, after which dumpcap overwrites the oldest (a gap the reports name).
RING_FILES: Final = 100
READY_TIMEOUT: Final = 10.0  # dumpcap opens an interface in well under a second
STOP_TIMEOUT: Final = 10.0  # writing the statistics block and closing takes milliseconds


class RingCapture:
    """One dumpcap process writing IFACE into REPORT_ROOT/.watch/ring/."""

    def __init__(self, interface: str, report_root: Path, seconds: float) -> None:
        self.interface = interface
        self.directory = report_root.absolute() / STATE_DIR / RING_DIR
        self.seconds = max(1, round(seconds))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start dumpcap and wait until it captures (ConformanceError if it cannot)."""
        if shutil.which("dumpcap") is None:
            raise ConformanceError("--capture: dumpcap is not installed (Wireshark's capture tool)")
        self.directory.mkdir(parents=True, exist_ok=True)
        log = self.directory.parent / "dumpcap.log"
        argv = [
            "dumpcap",
            "-q",
            "-i",
            self.interface,
            "-w",
            str(self.directory / "ucx.pcapng"),
            "-B",
            str(KERNEL_BUFFER_MIB),
            "-b",
            f"duration:{self.seconds}",
            "-b",
            f"files:{RING_FILES}",
        ]
        with log.open("ab") as err:
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ConformanceError(
                    f"--capture {self.interface}: dumpcap stopped"
                    f" (exit {self.proc.returncode}); see {log}"
                )
            if any(self.directory.glob("ucx_*.pcapng")):
                return
            time.sleep(0.05)
        self.stop()
        raise ConformanceError(f"--capture {self.interface}: dumpcap did not start; see {log}")

    def stop(self) -> None:
        """Stop dumpcap (it closes the current file, which the next watch judges)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
