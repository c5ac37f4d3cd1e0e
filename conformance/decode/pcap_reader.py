"""The pcap reader: a file header, then records of a fixed header and the frame.

Both byte orders, micro- and nanosecond magic, and the old "modified" pcap whose records
carry 8 more header bytes (pcap-savefile(5); Alexey Kuznetzov's patched libpcap). One link
type for the whole file; no drop counters and no direction flags.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, ClassVar

from conformance.decode import compiled
from conformance.decode.capture_reader import MAX_RECORD_BYTES, CaptureReader, PacketStep
from conformance.decode.read_ahead import OnBytes
from conformance.errors import CaptureError

_PCAP_NANO = 0xA1B23C4D
_PCAP_MODIFIED = 0xA1B2CD34
_PCAP_HEADER = 24
_PCAP_VERSION_MAJOR = 2
# pcap LinkType field: the low 16 bits are the link type, the high bits carry FCS info.
_PCAP_LINKTYPE_MASK = 0xFFFF


class PcapReader(CaptureReader):
    """A pcap file (see the module docstring)."""

    format: ClassVar[str] = "pcap"

    def __init__(
        self,
        path: Path,
        file: BinaryIO,
        head: bytes,
        magic: int,
        order: str,
        on_chunk: Callable[[], None] | None = None,
        on_bytes: OnBytes | None = None,
    ) -> None:
        """Check the file header in `head` (read with byte order `order`, "<" or ">")."""
        if len(head) < _PCAP_HEADER:
            raise CaptureError(path, "file ends inside the pcap file header")
        _, major, minor, _, _, _, network = struct.unpack_from(order + "IHHiIII", head)
        if major != _PCAP_VERSION_MAJOR:
            raise CaptureError(path, f"unsupported pcap version {major}.{minor}")
        super().__init__(path, file, head, on_chunk, on_bytes)
        self._start = _PCAP_HEADER
        self.link_types = [network & _PCAP_LINKTYPE_MASK]
        self.interfaces = 1
        self._record = struct.Struct(order + ("IIII8x" if magic == _PCAP_MODIFIED else "IIII"))
        self._hsize = self._record.size
        self._big = order == ">"
        self._scale = 1e-9 if magic == _PCAP_NANO else 1e-6

    def _records(self, buf: bytes, pos: int, base: int, step: PacketStep) -> int:
        pos = _run(self, buf, pos, step)
        cap = self._need - self._hsize
        if cap > MAX_RECORD_BYTES:
            self.truncated_detail = (
                f"record {self.packets_read + 1} at byte {base + pos} claims {cap} captured "
                "bytes (corrupt length); the rest of the file was not read"
            )
            return -1
        return pos

    def _ends_inside(self, offset: int, present: int) -> str:
        return (
            f"file ends inside record {self.packets_read + 1} at byte {offset} "
            f"({present} bytes of it present)"
        )


def _python_run(reader: PcapReader, buf: bytes, pos: int, step: PacketStep) -> int:
    """Walk the whole records of `buf` from `pos`, calling `step` for each.

    Returns the offset of the first record that is not whole, with `reader._need` set to
    the bytes it needs from there (its header, or header and data). The counters
    (packets, snaplen cuts, first and last time) are the reader's.
    """
    unpack = reader._record.unpack_from
    hsize = reader._hsize
    scale = reader._scale
    linktype = reader.link_types[0]
    n = reader.packets_read
    snap = reader.snap_truncated
    ts = reader.last_time or 0.0
    end = len(buf)
    try:
        while pos + hsize <= end:
            sec, frac, cap, orig = unpack(buf, pos)
            off = pos + hsize
            nxt = off + cap
            if nxt > end:
                reader._need = nxt - pos
                return pos
            n += 1
            ts = sec + frac * scale
            if n == 1:
                reader.first_time = ts
            if cap < orig:
                snap += 1
            step(ts, buf, off, cap, orig, linktype, 0, n)
            pos = nxt
        reader._need = hsize
        return pos
    finally:
        reader.packets_read = n
        reader.snap_truncated = snap
        if n:
            reader.last_time = ts


_run = compiled.walk.pcap_run if compiled.walk is not None else _python_run
