"""`watch --host URI`: a remote tcpdump's pcap stream cut into rotated files the watch judges.

The host's tcpdump writes one endless pcap to its stdout (over ssh, `docker exec` or locally:
host/remote_capture.py builds the command, leaving out the harness's own ssh session); this
module reads it record by record and writes REPORT_ROOT/.watch/ring/host_NNNNN.pcap, a new file
every `seconds` of wall clock (also on a quiet link), each with the stream's own global
header. A file is held open while it is written, so the watch (which sees writers in /proc)
never judges one half written, and a period waits for it. The stream is cut only between
records (a record's length field is checked against the snap
length: a stream that stops making sense ends the capture, saying why, rather than writing
garbage into a file that would be judged).
"""

from __future__ import annotations

import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import IO, Final

from conformance.errors import ConformanceError
from conformance.watch.state import STATE_DIR

RING_DIR: Final = "ring"
_PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": "<",  # microseconds, little-endian
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",  # nanoseconds
    b"\xa1\xb2\x3c\x4d": ">",
}
GLOBAL_HEADER: Final = 24
RECORD_HEADER: Final = 16
# A record longer than this is not a packet (tcpdump's largest snap length is 262144).
MAX_RECORD: Final = 262_144
START_TIMEOUT: Final = 30.0  # ssh connects and tcpdump starts in well under this
STOP_TIMEOUT: Final = 10.0
ROTATE_CHECK_S: Final = 0.2  # how often a quiet file's age is checked


class StreamRing:
    """One remote capture streamed into rotated local files."""

    def __init__(self, argv: list[str], report_root: Path, seconds: float) -> None:
        self.argv = argv
        self.directory = report_root.absolute() / STATE_DIR / RING_DIR
        self.seconds = max(1.0, seconds)
        self.problem: str | None = None
        self.files = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._header = threading.Event()
        self._log = self.directory.parent / "host-capture.log"
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._out: IO[bytes] | None = None
        self._opened = 0.0
        self._global = b""

    def start(self) -> None:
        """Start the capture; ConformanceError if no pcap stream begins within START_TIMEOUT."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.files = max((_number(p) for p in self.directory.glob("host_*.pcap")), default=0)
        with self._log.open("ab") as err:
            self._proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
            )
        self._thread = threading.Thread(target=self._split, name="host-capture", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._header.wait(0.1):
            if (
                self.problem is not None
                or self._proc.poll() is not None
                or (time.monotonic() > deadline)
            ):
                self.stop()
                tail = self._log.read_text(errors="replace").strip().splitlines()[-1:]
                why = tail[0] if tail else (self.problem or "no pcap stream")
                raise ConformanceError(f"--host: the remote capture did not start: {why}")

    def stop(self) -> None:
        """End the capture; the file in hand is closed with the records it holds."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
        if self._proc is not None and self._proc.stdout is not None:
            self._proc.stdout.close()

    # -- the splitter thread ----------------------------------------------------------------

    def _split(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        header = _read_exactly(stream, GLOBAL_HEADER)
        if header is None:
            self.problem = "the stream ended before its pcap header"
            return
        order = _PCAP_MAGICS.get(header[:4])
        if order is None:
            self.problem = "the stream is not a pcap (tcpdump -w -)"
            return
        self._global = header
        self._header.set()
        record = struct.Struct(order + "IIII")
        rotator = threading.Thread(target=self._rotate_quiet, name="host-ring", daemon=True)
        rotator.start()
        try:
            while True:
                head = _read_exactly(stream, RECORD_HEADER)
                if head is None:
                    break
                incl = record.unpack(head)[2]
                if incl > MAX_RECORD:
                    self.problem = f"a record of {incl} bytes: the stream is damaged"
                    break
                body = _read_exactly(stream, incl)
                if body is None:
                    break  # the stream ended inside a record: the whole ones are kept
                with self._lock:
                    if self._out is not None and time.monotonic() - self._opened >= self.seconds:
                        self._close()
                    if self._out is None:
                        self._open()
                    assert self._out is not None
                    self._out.write(head + body)
                    self._out.flush()
        finally:
            self._ended.set()
            with self._lock:
                self._close()

    def _rotate_quiet(self) -> None:
        """Close a file that has been open `seconds` even when no packet comes (a quiet link
        must not hold its period's report back)."""
        while not self._ended.wait(ROTATE_CHECK_S):
            with self._lock:
                if self._out is not None and time.monotonic() - self._opened >= self.seconds:
                    self._close()

    def _open(self) -> None:
        self.files += 1
        path = self.directory / f"host_{self.files:05d}.pcap"
        # Written under its own name, held open meanwhile: the watch sees the writer (/proc)
        # and a period waits for the file whose first packet is in it.
        self._out = path.open("xb")
        self._out.write(self._global)
        self._opened = time.monotonic()

    def _close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    """`size` bytes from the stream, or None when it ends first."""
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _number(path: Path) -> int:
    digits = path.stem.removeprefix("host_")
    return int(digits) if digits.isdigit() else 0
