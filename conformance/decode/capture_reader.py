"""Capture files: open one by its format and stream its packet records to one per-packet step.

`open_capture` (decode/capture_file.py) checks the file header and returns the reader of its format
(decode/pcap_reader.py, decode/pcapng_reader.py). Every reader walks its records in
large chunks with `struct.unpack_from` on offsets (no slicing per packet) and calls one
step per packet, `step(time, buffer, offset, captured, original, link type, direction,
number)`: the frame is `buffer[offset : offset + captured]`, pointing into the current
chunk instead of a copy. `walk(step)` is the decoder's road; `packets()` yields the same
records as tuples for everyone else. A consumer that keeps bytes must slice them out.

The file is read, hashed (SHA-256 of every byte) and shown to a subscriber (`on_bytes`,
e.g. the report's copy) on a read-ahead thread (decode/read_ahead.py), in the same pass.

A file whose header cannot be read raises `CaptureError`; a damaged tail does not: the
reader stops at the last whole record and says where in `truncated_detail`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, ClassVar

from conformance.decode.read_ahead import OnBytes, ReadAhead

# No link layer or offload segment comes near this; a longer record or block length
# is a corrupt length field, and reading on would only misinterpret the rest.
MAX_RECORD_BYTES = 1 << 26

# (time, buffer, offset of the frame in buffer, captured length, original length,
#  link type, direction). Direction: 0 unknown, 1 inbound, 2 outbound.
PacketRecord = tuple[float, bytes, int, int, int, int, int]
# A record's fields, then its number in the file (from 1).
PacketStep = Callable[[float, bytes, int, int, int, int, int, int], None]

DIRECTION_UNKNOWN = 0
DIRECTION_INBOUND = 1
DIRECTION_OUTBOUND = 2
# Link type given to packets whose pcapng block names an interface no IDB described.
LINKTYPE_UNDEFINED_INTERFACE = -1

# File magics (pcap-savefile(5); draft-ietf-opsawg-pcapng §4.1).
PCAP_MAGICS = (0xA1B2C3D4, 0xA1B23C4D, 0xA1B2CD34)  # micro-, nanoseconds, "modified"
PCAPNG_MAGIC = 0x0A0D0D0A
# The first read holds at least this much: every file header check fits in it.
HEAD_MIN_BYTES = 64


class CaptureReader:
    """One capture file, read front to back once: the part every format shares.

    Use as a context manager. `walk(step)` (or `packets()`) reads the records; the
    counters below are final once it returns (or is closed). A format subclass walks
    the whole records of one buffer (`_records`) and says how a file ending inside one
    is described (`_ends_inside`); the chunks, the records straddling two of them, the
    hash and the subscriber are handled here.
    """

    format: ClassVar[str] = ""

    def __init__(
        self,
        path: Path,
        file: BinaryIO,
        head: bytes,
        on_chunk: Callable[[], None] | None = None,
        on_bytes: OnBytes | None = None,
    ) -> None:
        self.path = path
        self._file: BinaryIO | None = file
        self._source = ReadAhead(file, head, on_bytes)
        self._on_chunk = on_chunk
        self._start = 0  # offset of the first record (after the file header)
        self._need = 0  # bytes the record at the walker's stop needs, from its start
        self.link_types: list[int] = []
        self.interfaces = 0
        self.packets_read = 0
        self.bytes_read = len(head)  # file bytes the decoder has taken (for progress)
        self.file_size = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.snap_truncated = 0
        self.truncated_detail: str | None = None
        self.drops: int | None = None
        self.drop_detail: str | None = None
        self.direction_flags = False

    # -- public --------------------------------------------------------------------------

    @property
    def sha256(self) -> str:
        """SHA-256 of the whole file (read to its end if the decoder stopped early); empty
        without a digest or `by_copy`."""
        if self._file is not None:
            self._source.finish()
        return self._source.sha256

    @property
    def complete(self) -> bool:
        """Every byte of the file was read: hashed and shown to the subscriber."""
        return self._source.complete

    @property
    def truncated(self) -> bool:
        """The file ends inside a record, or a length field is corrupt."""
        return self.truncated_detail is not None

    def without_digest(self) -> None:
        """Compute no SHA-256 (before the walk starts): another reader hashes this file."""
        self._source.digest = False

    def hash_in_copy(self) -> None:
        """Let the subscriber's copy stand for the SHA-256 when every byte comes back from it
        (before the walk starts; decode/read_ahead.py): its owner hashes it afterwards."""
        self._source.hash_in_copy = True

    @property
    def by_copy(self) -> bool:
        """Every byte came back from the subscriber's copy, and `sha256` is empty: the copy's
        SHA-256 is the file's."""
        return self._source.by_copy

    def walk(self, step: PacketStep) -> None:
        """Call `step` for every packet record of the file, in file order."""
        for _ in self._chunks_walked(step):
            pass

    def packets(self) -> Iterator[PacketRecord]:
        """Every packet record of the file, in file order."""
        batch: list[PacketRecord] = []
        add = batch.append

        def keep(
            ts: float, buf: bytes, off: int, cap: int, orig: int, lt: int, dirf: int, n: int
        ) -> None:
            add((ts, buf, off, cap, orig, lt, dirf))

        for _ in self._chunks_walked(keep):
            yield from batch
            batch.clear()
        yield from batch

    def close(self) -> None:
        """Release the file (and stop the read-ahead thread where it is).

        The progress callback goes too: it is usually a closure that names this reader, a
        cycle that only the cyclic collector could free, with all it holds.
        """
        self._on_chunk = None
        self._source.close()
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- what a format provides ------------------------------------------------------------

    def _records(self, buf: bytes, pos: int, base: int, step: PacketStep) -> int:
        """Walk the whole records of `buf` from `pos` (file offset `base` + pos), calling step.

        Returns the offset of the first record that is not whole in `buf`, with `_need` set
        to the bytes it needs from there to go on, or -1 when the file cannot be read on
        (`truncated_detail` says why).
        """
        raise NotImplementedError

    def _ends_inside(self, offset: int, present: int) -> str:
        """`truncated_detail` for a file that ends `present` bytes into a record at `offset`."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Settle what the format counts only at the end (drops). Called once, at the end."""

    # -- the chunk loop ----------------------------------------------------------------------

    def _chunks_walked(self, step: PacketStep) -> Iterator[None]:
        """Walk the file chunk by chunk, yielding after each one.

        A record that straddles two chunks is completed in a small buffer of its own (the
        rest of one chunk and what it needs of the next), so no chunk is ever copied whole
        to join it to the next.
        """
        buf = self._source.next_chunk() or b""
        chunk: bytes | None = None  # the next one, taken once `buf` is walked
        pos, base = self._start, 0  # base: file offset of buf[0]
        try:
            while True:
                pos = self._records(buf, pos, base, step)
                yield
                if pos < 0:
                    return
                tail, tail_at = buf[pos:], base + pos
                base += len(buf)
                # Let go of the walked chunk (`chunk` names it too, from the second on)
                # before taking the next, which lets the read-ahead read one more: so at most
                # three are alive (walked, ready, being read). Held here while the next was
                # taken, a fourth was read in one run of four (2M-packet web mix: 66 instead
                # of 62 MiB at the peak).
                buf = chunk = b""
                chunk = self._next_chunk()
                used = 0  # bytes of `chunk` already moved into `tail`
                while tail:
                    parts = [tail]
                    have, need = len(tail), self._need
                    while have < need:
                        if chunk is None:
                            self.truncated_detail = self._ends_inside(tail_at, have)
                            return
                        if used == len(chunk):
                            base += len(chunk)
                            chunk, used = self._next_chunk(), 0
                            continue
                        take = min(need - have, len(chunk) - used)
                        parts.append(chunk[used : used + take])
                        used += take
                        have += take
                    tail = b"".join(parts)
                    done = self._records(tail, 0, tail_at, step)
                    if done < 0:
                        return
                    if done == 0 and self._need <= len(tail):
                        raise RuntimeError(f"{self.path}: the reader made no progress at {tail_at}")
                    tail, tail_at = tail[done:], tail_at + done
                if chunk is None:
                    return
                buf, pos = chunk, used
        finally:
            self._finish()

    def _next_chunk(self) -> bytes | None:
        chunk = self._source.next_chunk()
        if chunk is not None:
            self.bytes_read += len(chunk)
            if self._on_chunk is not None:
                self._on_chunk()
        return chunk
