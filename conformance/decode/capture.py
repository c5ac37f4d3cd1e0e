"""Stream packet records out of pcap and pcapng files in constant memory.

`CaptureReader` reads the file in large chunks, walks the records with
`struct.unpack_from` on offsets (no slicing per packet), hashes every byte of the file,
and yields one `PacketRecord` per packet: a tuple that points into the current
chunk instead of copying the frame. Records stay valid while the consumer handles
them; a consumer that keeps bytes must slice them out.

Reading, hashing and (optionally) copying the file happen on a read-ahead thread: the
system calls and SHA-256 release the GIL, so on a second core they cost the decoding
thread nothing, and the copy (`tee`) is made of exactly the bytes that were hashed and
decoded, in the same pass.

Formats: pcap (both byte orders, micro- and nanosecond magic, and the old
"modified" pcap with longer record headers) and pcapng (draft-ietf-opsawg-pcapng):
several sections with their own byte order, several interfaces with their own link
type and timestamp resolution, Enhanced, Simple and obsolete Packet Blocks, and
Interface Statistics Blocks for drop counters.

A file whose header cannot be read raises `CaptureError`; a damaged tail does not:
the reader stops at the last whole record and says where in `truncated_detail`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import queue
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from conformance.errors import CaptureError

# Large enough that read() calls, buffer copies and the read-ahead thread's GIL
# hand-overs vanish in the per-packet cost, small enough that the few in flight keep
# memory flat.
CHUNK_BYTES = 1 << 20
# No link layer or offload segment comes near this; a longer record or block length
# is a corrupt length field, and reading on would only misinterpret the rest.
MAX_RECORD_BYTES = 1 << 26
# Chunks the read-ahead thread may hold ready (read, hashed, copied) for the decoder.
READ_AHEAD_CHUNKS = 3

# (time, buffer, offset of the frame in buffer, captured length, original length,
#  link type, direction). Direction: 0 unknown, 1 inbound, 2 outbound.
PacketRecord = tuple[float, bytes, int, int, int, int, int]

DIRECTION_UNKNOWN = 0
DIRECTION_INBOUND = 1
DIRECTION_OUTBOUND = 2
# Link type given to packets whose pcapng block names an interface no IDB described.
LINKTYPE_UNDEFINED_INTERFACE = -1

# pcap file header magics (https://www.tcpdump.org/manpages/pcap-savefile.5.html).
_PCAP_MICRO = 0xA1B2C3D4
_PCAP_NANO = 0xA1B23C4D
_PCAP_MODIFIED = 0xA1B2CD34  # Alexey Kuznetzov's patched libpcap: 8 more bytes per record
_PCAP_HEADER = 24
_PCAP_VERSION_MAJOR = 2
# pcap LinkType field: the low 16 bits are the link type, the high bits carry FCS info.
_PCAP_LINKTYPE_MASK = 0xFFFF

# pcapng block types (draft-ietf-opsawg-pcapng §11.1).
_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_PB = 0x00000002  # obsolete Packet Block (Appendix A)
_SPB = 0x00000003
_ISB = 0x00000005
_EPB = 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_PCAPNG_VERSION_MAJOR = 1
_SHB_MIN = 28  # type, length, magic, major, minor, section length, trailing length
_EPB_HEADER = 28  # type, length, interface, timestamp (2), captured, original length
_EPB_MIN = 32  # the header and the trailing length
_BLOCK_MIN = 12  # type, length, trailing length
# For consumers that walk EPBs themselves (PcapngScan).
EPB_BLOCK_TYPE = _EPB
EPB_HEADER_BYTES = _EPB_HEADER

# pcapng option codes (§4.2 IDB, §4.3 EPB, §4.6 ISB).
_OPT_END = 0
_IF_NAME = 2
_IF_TSRESOL = 9
_IF_TSOFFSET = 14
_EPB_FLAGS = 2
_EPB_DROPCOUNT = 4
_ISB_IFDROP = 5
_ISB_OSDROP = 7
_EPB_DIRECTION_MASK = 0x3  # epb_flags bits 0-1: 01 inbound, 10 outbound
_PB_DROPS_UNKNOWN = 0xFFFF  # Appendix A: "not available"
_DEFAULT_TS_UNITS = 1_000_000  # if_tsresol absent: microseconds


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    units: int  # timestamp units per second
    offset: int  # if_tsoffset, seconds
    name: str


@dataclass(frozen=True, slots=True)
class _Structs:
    """The struct layouts of one pcapng section, in its byte order."""

    block: struct.Struct  # type, length
    u16: struct.Struct
    u32: struct.Struct
    u64: struct.Struct
    i64: struct.Struct
    epb: struct.Struct  # block type, length, interface, ts high, ts low, captured, original
    pb: struct.Struct  # interface(16), drops(16), ts high, ts low, captured, original
    idb: struct.Struct  # link type, reserved, snaplen
    isb: struct.Struct  # interface, ts high, ts low
    option: struct.Struct  # code, length

    @classmethod
    def for_order(cls, order: str) -> _Structs:
        return cls(
            block=struct.Struct(order + "II"),
            u16=struct.Struct(order + "H"),
            u32=struct.Struct(order + "I"),
            u64=struct.Struct(order + "Q"),
            i64=struct.Struct(order + "q"),
            epb=struct.Struct(order + "IIIIIII"),
            pb=struct.Struct(order + "HHIIII"),
            idb=struct.Struct(order + "HHI"),
            isb=struct.Struct(order + "III"),
            option=struct.Struct(order + "HH"),
        )


_LITTLE = _Structs.for_order("<")
_BIG = _Structs.for_order(">")


@dataclass(slots=True)
class _PcapngState:
    """What reading a pcapng file must remember between blocks."""

    structs: _Structs = _LITTLE  # the current section's byte order
    ifaces: list[_Interface] = field(default_factory=list)  # the current section's
    # Per interface: (link type, seconds per 2^32 units, seconds per unit, offset).
    by_if: list[tuple[int, float, float, float]] = field(default_factory=list)
    section: int = 0
    other_blocks: int = 0  # blocks that carried no packet
    isb_drops: dict[tuple[int, int], tuple[int | None, int | None, str]] = field(
        default_factory=dict
    )
    packet_drops: int | None = None
    flags_seen: bool = False
    need: int = 0  # bytes the current block still needs beyond the buffer
    packet: PacketRecord | None = None  # handed from the general path to the generator

    def epb_options(self, buf: bytes, pos: int, end: int) -> int:
        """Read epb_flags and epb_dropcount; return the packet's direction (0 if none)."""
        flags, drops = _epb_options(buf, pos, end, self.structs)
        if drops is not None:
            self.packet_drops = (self.packet_drops or 0) + drops
        if flags is None:
            return 0
        self.flags_seen = True
        direction = flags & _EPB_DIRECTION_MASK
        return 0 if direction == _EPB_DIRECTION_MASK else direction


@dataclass(slots=True)
class PcapngScan:
    """A pcapng walk driven by its consumer (see `CaptureReader.pcapng_scan`).

    The consumer walks Enhanced Packet Blocks in `buf` from `pos` itself while each is
    whole, in this byte order (`epb`), without options, not snap-truncated, and on
    interface `iface` with high timestamp word `hi` (time = `base_ts` + low word *
    `scale_lo`, link type `linktype`). At anything else it stores `pos`, `packets` and
    `time` back and calls `CaptureReader.pcapng_step`, which handles that one block (a
    packet in it lands in `record`) or reads on, and sets `done` at the end.
    """

    buf: bytes
    pos: int
    epb: Callable[[bytes, int], tuple[int, ...]]
    packets: int = 0
    time: float = 0.0
    iface: int = -1
    hi: int = -1
    base_ts: float = 0.0
    scale_lo: float = 0.0
    linktype: int = LINKTYPE_UNDEFINED_INTERFACE
    record: PacketRecord | None = None
    done: bool = False
    base: int = 0  # file offset of buf[0]
    snap: int = 0
    state: _PcapngState = field(default_factory=_PcapngState)


class CaptureReader:
    """One capture file, read front to back once. Use as a context manager.

    Opening validates the file header and raises `CaptureError` if the file cannot
    be read at all. `packets()` yields the records; the counters below are final
    once it is exhausted (or closed).
    """

    def __init__(
        self,
        path: Path | str,
        on_chunk: Callable[[], None] | None = None,
        tee: BinaryIO | None = None,
    ) -> None:
        """Open `path` and check its header.

        `on_chunk` is called after each chunk the decoder takes. `tee`, if given, receives
        every byte of the file as it is read and hashed (the evidence copy); `tee_complete`
        says whether it got the whole file.
        """
        self.path = Path(path)
        self._on_chunk = on_chunk
        self._tee = tee
        self._chunks: queue.Queue[bytes | BaseException | None] | None = None
        self._reader: threading.Thread | None = None
        self._stop = threading.Event()
        self._exhausted = False  # the decoder took the end-of-file marker
        self.tee_complete = False
        self.tee_error: OSError | None = None
        self.format = ""
        self.link_types: list[int] = []
        self.interfaces = 0
        self.packets_read = 0
        self.bytes_read = 0  # file bytes read so far (for progress)
        self.file_size = 0
        self.first_time: float | None = None
        self.last_time: float | None = None
        self.snap_truncated = 0
        self.truncated_detail: str | None = None
        self.drops: int | None = None
        self.drop_detail: str | None = None
        self.direction_flags = False
        self._hash = hashlib.sha256()
        self._file: io.FileIO | None = None
        self._head = b""
        try:
            self._file = self.path.open("rb", buffering=0)
            self.file_size = self.path.stat().st_size
            self._head = self._file.read(CHUNK_BYTES)
        except FileNotFoundError:
            self.close()
            raise CaptureError(self.path, "no such file") from None
        except IsADirectoryError:
            self.close()
            raise CaptureError(self.path, "is a directory, not a capture file") from None
        except OSError as err:
            self.close()
            raise CaptureError(self.path, f"cannot be read: {err.strerror or err}") from None
        self.bytes_read = len(self._head)
        try:
            self._check_header()
        except CaptureError:
            self.close()
            raise

    # -- public --------------------------------------------------------------------------

    @property
    def sha256(self) -> str:
        """SHA-256 of the whole file (read to its end if the decoder stopped early)."""
        self._read_to_end()
        return self._hash.hexdigest()

    @property
    def truncated(self) -> bool:
        """The file ends inside a record, or a length field is corrupt."""
        return self.truncated_detail is not None

    def packets(self) -> Iterator[PacketRecord]:
        """Every packet record of the file, in file order."""
        self._start_reader()
        if self.format == "pcap":
            return self._pcap_packets()
        return self._pcapng_packets()

    def close(self) -> None:
        """Release the file (and stop the read-ahead thread where it is)."""
        self._stop_reader()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _start_reader(self) -> None:
        if self._reader is None and self._file is not None:
            self._chunks = queue.Queue(maxsize=READ_AHEAD_CHUNKS)
            self._reader = threading.Thread(
                target=self._read_ahead,
                args=(self._file, self._chunks),
                name="ucx-read-ahead",
                daemon=True,
            )
            self._reader.start()

    def _read_ahead(
        self, file: io.FileIO, chunks: queue.Queue[bytes | BaseException | None]
    ) -> None:
        """Read the rest of the file: hash each chunk, copy it to the tee, hand it over."""
        put, stop = chunks.put, self._stop
        try:
            self._hash.update(self._head)
            self._copy(self._head)
            while not stop.is_set():
                chunk = file.read(CHUNK_BYTES)
                if not chunk:
                    self.tee_complete = self._tee is not None and self.tee_error is None
                    put(None)
                    return
                self._hash.update(chunk)
                self._copy(chunk)
                put(chunk)
        except BaseException as exc:  # handed to the decoder, which raises it
            put(exc)

    def _copy(self, chunk: bytes) -> None:
        if self._tee is not None and self.tee_error is None:
            try:
                self._tee.write(chunk)
            except OSError as exc:  # e.g. disk full: the report copies the file itself
                self.tee_error = exc

    def _next_chunk(self) -> bytes | None:
        """The next chunk from the read-ahead thread, or None at the end of the file."""
        if self._chunks is None or self._exhausted:
            return None
        item = self._chunks.get()
        if item is None:
            self._exhausted = True
            return None
        if isinstance(item, BaseException):
            self._exhausted = True
            raise item
        return item

    def _read_to_end(self) -> None:
        """Let the read-ahead thread finish the file (hash and copy) and wait for it."""
        if self._file is None:
            return
        self._start_reader()
        try:
            while self._next_chunk() is not None:
                pass
        except OSError:
            pass  # already raised to the decoder, or the hash is of what could be read
        self._stop_reader()

    def _stop_reader(self) -> None:
        reader, chunks = self._reader, self._chunks
        if reader is None or chunks is None:
            return
        self._stop.set()
        while reader.is_alive():  # unblock a put() on a full queue
            with contextlib.suppress(queue.Empty):
                chunks.get(timeout=0.05)
        reader.join()
        self._reader = None
        self._chunks = None

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- header --------------------------------------------------------------------------

    def _check_header(self) -> None:
        head = self._head
        if not head:
            raise CaptureError(self.path, "empty file")
        if len(head) < 4:
            raise CaptureError(self.path, "not a pcap or pcapng file (shorter than any header)")
        le_magic = struct.unpack_from("<I", head)[0]
        be_magic = struct.unpack_from(">I", head)[0]
        if le_magic == _SHB:
            self._check_pcapng_header()
            return
        for magic, order in ((le_magic, "<"), (be_magic, ">")):
            if magic in (_PCAP_MICRO, _PCAP_NANO, _PCAP_MODIFIED):
                self._check_pcap_header(magic, order)
                return
        raise CaptureError(self.path, f"not a pcap or pcapng file (starts with 0x{head[:4].hex()})")

    def _check_pcap_header(self, magic: int, order: str) -> None:
        if len(self._head) < _PCAP_HEADER:
            raise CaptureError(self.path, "file ends inside the pcap file header")
        _, major, minor, _, _, _, network = struct.unpack_from(order + "IHHiIII", self._head)
        if major != _PCAP_VERSION_MAJOR:
            raise CaptureError(self.path, f"unsupported pcap version {major}.{minor}")
        self.format = "pcap"
        self.link_types = [network & _PCAP_LINKTYPE_MASK]
        self.interfaces = 1
        self._pcap_order = order
        self._pcap_scale = 1e-9 if magic == _PCAP_NANO else 1e-6
        self._pcap_modified = magic == _PCAP_MODIFIED

    def _check_pcapng_header(self) -> None:
        head = self._head
        if len(head) < _SHB_MIN:
            raise CaptureError(self.path, "file ends inside the pcapng section header")
        order = _byte_order(head, 0)
        if order is None:
            raise CaptureError(self.path, "pcapng section header has no valid byte-order magic")
        major, minor = struct.unpack_from(order + "HH", head, 12)
        if major != _PCAPNG_VERSION_MAJOR:
            raise CaptureError(self.path, f"unsupported pcapng version {major}.{minor}")
        self.format = "pcapng"

    # -- pcap ----------------------------------------------------------------------------

    def _pcap_packets(self) -> Iterator[PacketRecord]:
        """Walk pcap records: a fixed header (time, captured, original length) then the frame."""
        record = struct.Struct(self._pcap_order + ("IIII8x" if self._pcap_modified else "IIII"))
        unpack = record.unpack_from
        hsize = record.size
        scale = self._pcap_scale
        linktype = self.link_types[0]
        buf = self._head
        pos = _PCAP_HEADER
        base = 0  # file offset of buf[0]
        n = 0
        snap = 0
        ts = 0.0
        need = 0  # bytes a partial record still needs beyond the buffer
        try:
            while True:
                end = len(buf)
                while pos + hsize <= end:
                    sec, frac, cap, orig = unpack(buf, pos)
                    off = pos + hsize
                    nxt = off + cap
                    if nxt > end:
                        if cap > MAX_RECORD_BYTES:
                            self.truncated_detail = (
                                f"record {n + 1} at byte {base + pos} claims {cap} captured "
                                "bytes (corrupt length); the rest of the file was not read"
                            )
                            return
                        need = nxt - end
                        break
                    n += 1
                    ts = sec + frac * scale
                    if n == 1:
                        self.first_time = ts
                    if cap < orig:
                        snap += 1
                    yield ts, buf, off, cap, orig, linktype, 0
                    pos = nxt
                self.packets_read = n
                buf, pos, base, more = self._refill(buf, pos, base, need)
                need = 0
                if not more:
                    if pos < len(buf):
                        self.truncated_detail = (
                            f"file ends inside record {n + 1} at byte {base + pos} "
                            f"({len(buf) - pos} bytes of it present)"
                        )
                    return
        finally:
            self.packets_read = n
            self.snap_truncated = snap
            if n:
                self.last_time = ts

    def _refill(self, buf: bytes, pos: int, base: int, need: int) -> tuple[bytes, int, int, bool]:
        """Keep the unread tail of `buf` and append chunks until `need` more bytes are there."""
        chunk = self._next_chunk()
        if chunk is None:
            return buf, pos, base, False
        self._head = b""  # hashed and copied by now, and the decoder is past it
        got = len(chunk)
        new = buf[pos:] + chunk if pos < len(buf) else chunk
        while got < need and (more := self._next_chunk()) is not None:
            got += len(more)
            new += more
        self.bytes_read += got
        if self._on_chunk is not None:
            self._on_chunk()
        return new, 0, base + pos, True

    # -- pcapng --------------------------------------------------------------------------

    def pcapng_scan(self) -> PcapngScan:
        """Start a consumer-driven walk of a pcapng file (the decoder's hot loop).

        `packets()` is the general interface; this one lets a consumer that handles
        millions of packets walk the common blocks inline, without a generator step
        and a record tuple per packet. The counters are final once `done` is set (or
        after `pcapng_finish`).
        """
        if self.format != "pcapng":
            raise ValueError(f"{self.path}: not a pcapng file")
        self._start_reader()
        state = _PcapngState()
        return PcapngScan(self._head, 0, state.structs.epb.unpack_from, state=state)

    def pcapng_step(self, scan: PcapngScan) -> None:
        """Handle the block at `scan.pos` that the consumer did not take, or read on."""
        scan.record = None
        state = scan.state
        buf, pos = scan.buf, scan.pos
        end = len(buf)
        nxt = -1
        if pos + _EPB_HEADER <= end:
            # An EPB the consumer did not take (options, another interface or hour, cut
            # short by the snaplen) is read exactly as `packets()` reads it.
            nxt = self._plain_epb(state, buf, pos, end)
        if nxt < 0 and pos + 8 <= end:
            nxt = self._pcapng_block(state, buf, pos, end, scan.base, scan.packets, scan.time)
        if nxt == -2:
            scan.done = True
            return
        if nxt >= 0:
            record = state.packet
            if record is not None:
                state.packet = None
                scan.record = record
                scan.packets += 1
                scan.time = record[0]
                if scan.packets == 1:
                    self.first_time = record[0]
                if record[3] < record[4]:
                    scan.snap += 1
                self._fast_path_for(scan, buf, pos)
            else:
                scan.iface = -1  # an SHB or IDB may have changed what packets mean
                scan.epb = state.structs.epb.unpack_from
            scan.pos = nxt
            return
        self.packets_read = scan.packets
        scan.buf, scan.pos, scan.base, more = self._refill(buf, pos, scan.base, state.need)
        state.need = 0
        if not more:
            buf, pos = scan.buf, scan.pos
            if pos < len(buf):
                self.truncated_detail = (
                    f"file ends inside block {scan.packets + state.other_blocks + 1} at byte "
                    f"{scan.base + pos} ({len(buf) - pos} bytes of it present; "
                    f"packet {scan.packets} was the last whole one)"
                )
            scan.done = True

    def _plain_epb(self, state: _PcapngState, buf: bytes, pos: int, end: int) -> int:
        """The fast path of `_pcapng_packets` for one block: next offset, or -1 if not taken."""
        btype, blen, iface, hi, lo, cap, orig = state.structs.epb.unpack_from(buf, pos)
        nxt: int = pos + blen
        off = pos + _EPB_HEADER
        rest = nxt - off - cap
        if btype != _EPB or rest < 4 or nxt > end or blen & 3:
            return -1
        direction = 0
        if rest >= 8:
            direction = state.epb_options(buf, off + cap + (-cap & 3), nxt - 4)
        try:
            linktype, scale_hi, scale_lo, toff = state.by_if[iface]
        except IndexError:
            linktype, scale_hi, scale_lo, toff = _UNDEFINED_INTERFACE
        state.packet = (
            hi * scale_hi + toff + lo * scale_lo,
            buf,
            off,
            cap,
            orig,
            linktype,
            direction,
        )
        return nxt

    def _fast_path_for(self, scan: PcapngScan, buf: bytes, pos: int) -> None:
        """After an EPB: let the consumer take the next ones of its interface and hour."""
        state = scan.state
        st = state.structs
        btype = st.block.unpack_from(buf, pos)[0]
        if btype != _EPB:
            scan.iface = -1
            return
        _, _, iface, hi, _, _, _ = st.epb.unpack_from(buf, pos)
        if iface >= len(state.by_if):
            scan.iface = -1
            return
        linktype, scale_hi, scale_lo, toff = state.by_if[iface]
        scan.iface, scan.hi, scan.linktype = iface, hi, linktype
        scan.base_ts = hi * scale_hi + toff
        scan.scale_lo = scale_lo
        scan.epb = st.epb.unpack_from

    def pcapng_finish(self, scan: PcapngScan) -> None:
        """Final counters of a walk (also when the consumer stopped early)."""
        self.packets_read = scan.packets
        self.snap_truncated = scan.snap
        self.direction_flags = scan.state.flags_seen
        if scan.packets:
            self.last_time = scan.time
        self._set_drops(scan.state.isb_drops, scan.state.packet_drops)

    def _pcapng_packets(self) -> Iterator[PacketRecord]:  # noqa: C901, PLR0912, PLR0915 (hot loop)
        """Walk pcapng blocks; yield packets from EPB, SPB and PB, read IDB, ISB and SHB."""
        state = _PcapngState()
        buf = self._head
        pos = 0
        base = 0
        n = 0  # packets
        snap = 0
        ts = 0.0
        epb_type, epb_header = _EPB, _EPB_HEADER  # locals: this loop runs per packet
        undefined_if = _UNDEFINED_INTERFACE
        # The interface and high timestamp word of the previous EPB, and what they give.
        cur_if, cur_hi, base_ts, scale_lo, linktype = -1, -1, 0.0, 0.0, 0
        try:
            while True:
                end = len(buf)
                epb_unpack = state.structs.epb.unpack_from
                by_if = state.by_if
                while pos + 8 <= end:
                    # The common case first: whole, sound EPBs, one unpack each. Their
                    # trailing length is not compared (that costs 15% of reading); a
                    # corrupt length surfaces at the next block, whose header then fails
                    # the checks of the general path.
                    while pos + epb_header <= end:
                        btype, blen, iface, hi, lo, cap, orig = epb_unpack(buf, pos)
                        nxt = pos + blen
                        off = pos + epb_header
                        rest = nxt - off - cap  # padding, options, trailing length
                        if btype != epb_type or rest < 4 or nxt > end or blen & 3:
                            break
                        direction = 0
                        if rest >= 8:  # more than padding and the trailer: options
                            opts = off + cap + (-cap & 3)
                            direction = state.epb_options(buf, opts, nxt - 4)
                        if iface != cur_if or hi != cur_hi:
                            # A new interface, or the high timestamp word moved on (every
                            # 71 minutes at microseconds): recompute what packets share.
                            try:
                                linktype, scale_hi, scale_lo, toff = by_if[iface]
                            except IndexError:
                                linktype, scale_hi, scale_lo, toff = undefined_if
                            cur_if, cur_hi = iface, hi
                            base_ts = hi * scale_hi + toff
                            if not n:
                                self.first_time = base_ts + lo * scale_lo
                        # Float arithmetic instead of ((hi << 32) | lo) / units: no
                        # big-int division per packet, sub-microsecond exact.
                        ts = base_ts + lo * scale_lo
                        n += 1
                        if cap < orig:
                            snap += 1
                        yield ts, buf, off, cap, orig, linktype, direction
                        pos = nxt
                    if pos + 8 > end:
                        break
                    nxt = self._pcapng_block(state, buf, pos, end, base, n, ts)
                    if nxt < 0:
                        break
                    record = state.packet
                    if record is not None:
                        state.packet = None
                        ts = record[0]
                        n += 1
                        if n == 1:
                            self.first_time = ts
                        if record[3] < record[4]:
                            snap += 1
                        yield record
                    pos = nxt
                    epb_unpack = state.structs.epb.unpack_from  # an SHB may change them
                    by_if = state.by_if
                    cur_if = -1
                if self.truncated_detail is not None:
                    return
                self.packets_read = n
                buf, pos, base, more = self._refill(buf, pos, base, state.need)
                state.need = 0
                if not more:
                    if pos < len(buf):
                        self.truncated_detail = (
                            f"file ends inside block {n + state.other_blocks + 1} at byte "
                            f"{base + pos} ({len(buf) - pos} bytes of it present; "
                            f"packet {n} was the last whole one)"
                        )
                    return
        finally:
            self.packets_read = n
            self.snap_truncated = snap
            self.direction_flags = state.flags_seen
            if n:
                self.last_time = ts
            self._set_drops(state.isb_drops, state.packet_drops)

    def _pcapng_block(  # noqa: C901 (hot loop: one branch per block type)
        self, state: _PcapngState, buf: bytes, pos: int, end: int, base: int, n: int, ts: float
    ) -> int:
        """Handle one block the fast path did not take; return where the next one starts.

        A packet goes to state.packet. Returns -1 when the block is not all in `buf`
        (state.need says how many more bytes) and -2 when the file cannot be read on
        (truncated_detail says why).
        """
        number = n + state.other_blocks + 1  # this block's number in the file
        where = f"block {number} at byte {base + pos}"
        st = state.structs
        btype, blen = st.block.unpack_from(buf, pos)
        if btype == _SHB:
            if pos + 12 > end:
                state.need = pos + 12 - end
                return -1
            order = _byte_order(buf, pos)
            if order is None:
                self.truncated_detail = (
                    f"{where}: section header without a valid byte-order magic; "
                    "the rest of the file was not read"
                )
                return -2
            st = _LITTLE if order == "<" else _BIG
            _, blen = st.block.unpack_from(buf, pos)
        if blen < _BLOCK_MIN or blen % 4 or blen > MAX_RECORD_BYTES:
            self.truncated_detail = (
                f"{where} has an invalid length ({blen}); the rest of the file was not read"
            )
            return -2
        nxt: int = pos + blen
        if nxt > end:
            state.need = nxt - end
            return -1
        tail = nxt - 4
        if st.u32.unpack_from(buf, tail)[0] != blen:
            self.truncated_detail = (
                f"{where}: leading and trailing lengths differ; the rest of the file was not read"
            )
            return -2
        if btype in (_EPB, _PB, _SPB):
            packet = self._packet_block(state, btype, buf, pos, blen, ts)
            if packet is None:
                self.truncated_detail = (
                    f"{where}: packet data longer than the block; the rest of the file was not read"
                )
                return -2
            state.packet = packet
            return nxt
        state.other_blocks += 1
        if btype == _IDB:
            itf = _read_idb(buf, pos, tail, st)
            state.ifaces.append(itf)
            state.by_if.append(_time_scales(itf.linktype, itf.units, itf.offset))
            self.interfaces += 1
            if itf.linktype not in self.link_types:
                self.link_types.append(itf.linktype)
        elif btype == _ISB:
            iface = st.u32.unpack_from(buf, pos + 8)[0]
            ifdrop, osdrop = _isb_options(buf, pos + 20, tail, st)
            if ifdrop is not None or osdrop is not None:
                name = state.ifaces[iface].name if iface < len(state.ifaces) else ""
                key = (state.section, iface)
                old = state.isb_drops.get(key, (None, None, name))
                # ISB counters are cumulative: the latest block supersedes.
                state.isb_drops[key] = (
                    ifdrop if ifdrop is not None else old[0],
                    osdrop if osdrop is not None else old[1],
                    name,
                )
        elif btype == _SHB:
            major = st.u16.unpack_from(buf, pos + 12)[0]
            if major != _PCAPNG_VERSION_MAJOR:
                self.truncated_detail = (
                    f"{where}: section of unsupported pcapng version {major}; "
                    "the rest of the file was not read"
                )
                return -2
            if number > 1:
                state.section += 1
            state.structs = st
            state.ifaces = []
            state.by_if = []
        return nxt

    def _packet_block(
        self, state: _PcapngState, btype: int, buf: bytes, pos: int, blen: int, ts: float
    ) -> PacketRecord | None:
        """The packet of an EPB, obsolete PB or SPB; None if its data overruns the block."""
        st = state.structs
        tail = pos + blen - 4
        direction = 0
        if btype == _SPB:
            # §4.4: no interface id (always the first) and no timestamp: the previous
            # packet's time stands in for it.
            (orig,) = st.u32.unpack_from(buf, pos + 8)
            off = pos + 12
            cap = min(orig, blen - 16)
            linktype = LINKTYPE_UNDEFINED_INTERFACE
            if state.ifaces:
                linktype = state.ifaces[0].linktype
                if state.ifaces[0].snaplen:
                    cap = min(cap, state.ifaces[0].snaplen)
            return ts, buf, off, cap, orig, linktype, 0
        if blen < _EPB_MIN:
            return None
        if btype == _EPB:
            _, _, iface, hi, lo, cap, orig = st.epb.unpack_from(buf, pos)
        else:
            iface, drops, hi, lo, cap, orig = st.pb.unpack_from(buf, pos + 8)
            if drops != _PB_DROPS_UNKNOWN:
                state.packet_drops = (state.packet_drops or 0) + drops
        off = pos + _EPB_HEADER  # the obsolete PB has the same layout
        if off + cap > tail:
            return None
        if btype == _EPB and off + cap + (-cap & 3) < tail:
            direction = state.epb_options(buf, off + cap + (-cap & 3), tail)
        if iface < len(state.ifaces):
            itf = state.ifaces[iface]
            return (
                ((hi << 32) | lo) / itf.units + itf.offset,
                buf,
                off,
                cap,
                orig,
                itf.linktype,
                direction,
            )
        return (
            ((hi << 32) | lo) / _DEFAULT_TS_UNITS,
            buf,
            off,
            cap,
            orig,
            LINKTYPE_UNDEFINED_INTERFACE,
            direction,
        )

    def _set_drops(
        self,
        isb_drops: dict[tuple[int, int], tuple[int | None, int | None, str]],
        packet_drops: int | None,
    ) -> None:
        parts: list[str] = []
        total: int | None = None
        for (section, iface), (ifdrop, osdrop, name) in sorted(isb_drops.items()):
            label = f"interface {iface}" + (f" ({name})" if name else "")
            if section:
                label += f" of section {section + 1}"
            count = (ifdrop or 0) + (osdrop or 0)
            total = (total or 0) + count
            detail = []
            if ifdrop is not None:
                detail.append(f"{ifdrop} dropped by the interface")
            if osdrop is not None:
                detail.append(f"{osdrop} by the operating system")
            parts.append(f"{label}: {', '.join(detail)}")
        if packet_drops is not None:
            total = (total or 0) + packet_drops
            parts.append(f"{packet_drops} reported by packet blocks")
        self.drops = total
        self.drop_detail = "; ".join(parts) if parts else None


def _time_scales(linktype: int, units: int, offset: int) -> tuple[int, float, float, float]:
    """What the EPB fast path needs of an interface to turn (high, low) into seconds."""
    return linktype, 2**32 / units, 1 / units, float(offset)


_UNDEFINED_INTERFACE = _time_scales(LINKTYPE_UNDEFINED_INTERFACE, _DEFAULT_TS_UNITS, 0)


def _byte_order(buf: bytes, pos: int) -> str | None:
    """ "<" or ">" from a section header's byte-order magic at pos+8, or None if invalid."""
    magic = buf[pos + 8 : pos + 12]
    if magic == b"\x4d\x3c\x2b\x1a":
        return "<"
    if magic == b"\x1a\x2b\x3c\x4d":
        return ">"
    return None


def _options(buf: bytes, pos: int, end: int, st: _Structs) -> Iterator[tuple[int, int, int]]:
    """(code, value offset, value length) for each option until opt_endofopt or `end`."""
    unpack = st.option.unpack_from
    while pos + 4 <= end:
        code, length = unpack(buf, pos)
        if code == _OPT_END:
            return
        value = pos + 4
        if value + length > end:
            return  # a damaged option list: keep what was read
        yield code, value, length
        pos = value + length + (-length & 3)


def _epb_options(buf: bytes, pos: int, end: int, st: _Structs) -> tuple[int | None, int | None]:
    """(epb_flags, epb_dropcount) if present."""
    flags: int | None = None
    drops: int | None = None
    for code, value, length in _options(buf, pos, end, st):
        if code == _EPB_FLAGS and length == 4:
            flags = st.u32.unpack_from(buf, value)[0]
        elif code == _EPB_DROPCOUNT and length == 8:
            drops = st.u64.unpack_from(buf, value)[0]
    return flags, drops


def _isb_options(buf: bytes, pos: int, end: int, st: _Structs) -> tuple[int | None, int | None]:
    """(isb_ifdrop, isb_osdrop) if present."""
    ifdrop: int | None = None
    osdrop: int | None = None
    for code, value, length in _options(buf, pos, end, st):
        if code == _ISB_IFDROP and length == 8:
            ifdrop = st.u64.unpack_from(buf, value)[0]
        elif code == _ISB_OSDROP and length == 8:
            osdrop = st.u64.unpack_from(buf, value)[0]
    return ifdrop, osdrop


def _read_idb(buf: bytes, pos: int, end: int, st: _Structs) -> _Interface:
    """An Interface Description Block: link type, snaplen, if_tsresol, if_tsoffset, if_name."""
    linktype, _, snaplen = st.idb.unpack_from(buf, pos + 8)
    units = _DEFAULT_TS_UNITS
    offset = 0
    name = ""
    for code, value, length in _options(buf, pos + 16, end, st):
        if code == _IF_TSRESOL and length >= 1:
            res = buf[value]
            # §4.2: MSB clear: negative power of 10; MSB set: negative power of 2.
            units = 2 ** (res & 0x7F) if res & 0x80 else 10**res
        elif code == _IF_TSOFFSET and length == 8:
            offset = st.i64.unpack_from(buf, value)[0]
        elif code == _IF_NAME and length:
            name = buf[value : value + length].decode("utf-8", "replace").rstrip("\0")
    return _Interface(linktype, snaplen, units, offset, name)
