"""The pcapng reader (draft-ietf-opsawg-pcapng): blocks of sections, interfaces and packets.

Several sections with their own byte order, several interfaces with their own link type
and timestamp resolution, Enhanced, Simple and obsolete Packet Blocks, epb_flags
directions, and drop counters from Interface Statistics Blocks and epb_dropcount.

Most blocks of a capture are whole Enhanced Packet Blocks; those are walked inline, one
`unpack_from` each. Every other block (and an EPB that is not sound) goes through the
general block step, which checks lengths and reads options; both call the same packet step.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, ClassVar

from conformance.decode import compiled
from conformance.decode.capture_reader import (
    LINKTYPE_UNDEFINED_INTERFACE,
    MAX_RECORD_BYTES,
    CaptureReader,
    PacketRecord,
    PacketStep,
)
from conformance.decode.read_ahead import OnBytes
from conformance.errors import CaptureError

# pcapng block types (§11.1).
_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_PB = 0x00000002  # obsolete Packet Block (Appendix A)
_SPB = 0x00000003
_ISB = 0x00000005
_EPB = 0x00000006
_PCAPNG_VERSION_MAJOR = 1
_SHB_MIN = 28  # type, length, magic, major, minor, section length, trailing length
_EPB_HEADER = 28  # type, length, interface, timestamp (2), captured, original length
_EPB_MIN = 32  # the header and the trailing length
_BLOCK_MIN = 12  # type, length, trailing length
_IDB_MIN = 20  # type, length, link type, reserved, snaplen, trailing length
_ISB_MIN = 24  # type, length, interface, timestamp (2), trailing length
_SPB_MIN = 16  # type, length, original length, trailing length
_BLOCK_HEAD = 8  # type, length
_SHB_HEAD = 12  # type, length, byte-order magic: what says how to read the length

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

    big: bool  # big-endian (for the compiled EPB walk)
    block: struct.Struct  # type, length
    u16: struct.Struct
    u32: struct.Struct
    u64: struct.Struct
    i64: struct.Struct
    epb: struct.Struct  # block type, length, interface, ts high, ts low, captured, original
    pb: struct.Struct  # interface(16), drops(16), ts high, ts low, captured, original
    idb: struct.Struct  # link type, reserved, snaplen
    option: struct.Struct  # code, length

    @classmethod
    def for_order(cls, order: str) -> _Structs:
        return cls(
            big=order == ">",
            block=struct.Struct(order + "II"),
            u16=struct.Struct(order + "H"),
            u32=struct.Struct(order + "I"),
            u64=struct.Struct(order + "Q"),
            i64=struct.Struct(order + "q"),
            epb=struct.Struct(order + "IIIIIII"),
            pb=struct.Struct(order + "HHIIII"),
            idb=struct.Struct(order + "HHI"),
            option=struct.Struct(order + "HH"),
        )


_LITTLE = _Structs.for_order("<")
_BIG = _Structs.for_order(">")


def _time_scales(linktype: int, units: int, offset: int) -> tuple[int, float, float, float]:
    """What the EPB walk needs of an interface to turn (high, low) into seconds."""
    return linktype, 2**32 / units, 1 / units, float(offset)


_UNDEFINED_INTERFACE = _time_scales(LINKTYPE_UNDEFINED_INTERFACE, _DEFAULT_TS_UNITS, 0)
_NO_INTERFACE = (-1, -1, 0.0, 0.0, 0)


@dataclass(slots=True)
class _Section:
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


class PcapngReader(CaptureReader):
    """A pcapng file (see the module docstring)."""

    format: ClassVar[str] = "pcapng"

    def __init__(
        self,
        path: Path,
        file: BinaryIO,
        head: bytes,
        on_chunk: Callable[[], None] | None = None,
        on_bytes: OnBytes | None = None,
    ) -> None:
        """Check the first section header in `head`."""
        if len(head) < _SHB_MIN:
            raise CaptureError(path, "file ends inside the pcapng section header")
        order = _byte_order(head, 0)
        if order is None:
            raise CaptureError(path, "pcapng section header has no valid byte-order magic")
        major, minor = struct.unpack_from(order + "HH", head, 12)
        if major != _PCAPNG_VERSION_MAJOR:
            raise CaptureError(path, f"unsupported pcapng version {major}.{minor}")
        super().__init__(path, file, head, on_chunk, on_bytes)
        self._section = _Section()
        # The interface and high timestamp word of the previous EPB, and what they give:
        # (interface, high word, time of low word 0, seconds per unit, link type).
        self._current: tuple[int, int, float, float, int] = _NO_INTERFACE

    def _records(self, buf: bytes, pos: int, base: int, step: PacketStep) -> int:
        state = self._section
        end = len(buf)
        while True:
            # The common case first: whole, sound EPBs (the EPB walk); then one block of
            # any other kind through the general step, and back.
            pos = _epbs(self, buf, pos, step)
            if pos + _BLOCK_HEAD > end:
                self._need = _BLOCK_HEAD
                return pos
            nxt = self._block(state, buf, pos, end, base, self.packets_read, self.last_time or 0.0)
            if nxt < 0:
                return nxt if nxt == -1 else pos  # -2: _need says what it needs
            self._current = _NO_INTERFACE  # an SHB or IDB may have changed what packets mean
            record = self._packet
            if record is not None:
                self._packet = None
                n = self.packets_read = self.packets_read + 1
                self.last_time = record[0]
                if n == 1:
                    self.first_time = record[0]
                if record[3] < record[4]:
                    self.snap_truncated += 1
                step(*record, n)
            pos = nxt

    _packet: PacketRecord | None = None  # handed from the general block step to the walk

    def _block(
        self, state: _Section, buf: bytes, pos: int, end: int, base: int, n: int, ts: float
    ) -> int:
        """Handle one block the EPB walk did not take; return where the next one starts.

        A packet goes to `_packet`. Returns -2 when the block is not all in `buf` (`_need`
        says how many bytes it needs) and -1 when the file cannot be read on
        (`truncated_detail` says why).
        """
        number = n + state.other_blocks + 1  # this block's number in the file
        where = f"block {number} at byte {base + pos}"
        st = state.structs
        btype, blen = st.block.unpack_from(buf, pos)
        if btype == _SHB:
            if pos + _SHB_HEAD > end:
                self._need = _SHB_HEAD
                return -2
            order = _byte_order(buf, pos)
            if order is None:
                self.truncated_detail = (
                    f"{where}: section header without a valid byte-order magic; "
                    "the rest of the file was not read"
                )
                return -1
            st = _LITTLE if order == "<" else _BIG
            _, blen = st.block.unpack_from(buf, pos)
        if blen < _BLOCK_MIN or blen % 4 or blen > MAX_RECORD_BYTES:
            self.truncated_detail = (
                f"{where} has an invalid length ({blen}); the rest of the file was not read"
            )
            return -1
        nxt: int = pos + blen
        if nxt > end:
            self._need = blen
            return -2
        tail = nxt - 4
        if st.u32.unpack_from(buf, tail)[0] != blen:
            self.truncated_detail = (
                f"{where}: leading and trailing lengths differ; the rest of the file was not read"
            )
            return -1
        if btype in (_EPB, _PB, _SPB):
            self._packet = self._packet_block(state, btype, buf, pos, blen, ts)
            return nxt
        if btype == _SHB and blen < _SHB_MIN:
            self.truncated_detail = (
                f"{where}: section header shorter than its fields ({blen} bytes); "
                "the rest of the file was not read"
            )
            return -1
        state.other_blocks += 1
        if btype == _IDB:
            itf = _read_idb(buf, pos, tail, st)
            state.ifaces.append(itf)
            state.by_if.append(_time_scales(itf.linktype, itf.units, itf.offset))
            self.interfaces += 1
            if itf.linktype not in self.link_types and itf.linktype >= 0:
                self.link_types.append(itf.linktype)
        elif btype == _ISB:
            _read_isb(state, buf, pos, tail, st)
        elif btype == _SHB:
            major = st.u16.unpack_from(buf, pos + 12)[0]
            if major != _PCAPNG_VERSION_MAJOR:
                self.truncated_detail = (
                    f"{where}: section of unsupported pcapng version {major}; "
                    "the rest of the file was not read"
                )
                return -1
            if number > 1:
                state.section += 1
            state.structs = st
            state.ifaces = []
            state.by_if = []
        return nxt

    def _packet_block(
        self, state: _Section, btype: int, buf: bytes, pos: int, blen: int, ts: float
    ) -> PacketRecord:
        """The packet of an EPB, obsolete PB or SPB.

        Its leading and trailing lengths agree, so the blocks after it can be read whatever
        its inside claims: a block too short for its header is an empty packet (an EPB's or
        PB's on an undescribed interface), and a captured length that runs past the block is cut to
        the bytes the block holds (counted as cut short: the original length is at least
        the claim). Either way the packet is counted, and one bad block does not end the file.
        """
        st = state.structs
        tail = pos + blen - 4
        direction = 0
        if btype == _SPB:
            # §4.4: no interface id (always the first) and no timestamp: the previous
            # packet's time stands in for it.
            off, cap, orig = tail, 0, 0
            if blen >= _SPB_MIN:
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
            return ts, buf, tail, 0, 0, LINKTYPE_UNDEFINED_INTERFACE, 0
        if btype == _EPB:
            _, _, iface, hi, lo, cap, orig = st.epb.unpack_from(buf, pos)
        else:
            iface, drops, hi, lo, cap, orig = st.pb.unpack_from(buf, pos + 8)
            if drops != _PB_DROPS_UNKNOWN:
                state.packet_drops = (state.packet_drops or 0) + drops
        off = pos + _EPB_HEADER  # the obsolete PB has the same layout
        if off + cap > tail:
            orig = max(orig, cap)
            cap = tail - off
        elif btype == _EPB and off + cap + (-cap & 3) < tail:
            direction = state.epb_options(buf, off + cap + (-cap & 3), tail)
        if iface < len(state.ifaces):
            itf = state.ifaces[iface]
            when = ((hi << 32) | lo) / itf.units + itf.offset
            return when, buf, off, cap, orig, itf.linktype, direction
        when = ((hi << 32) | lo) / _DEFAULT_TS_UNITS
        return when, buf, off, cap, orig, LINKTYPE_UNDEFINED_INTERFACE, direction

    def _ends_inside(self, offset: int, present: int) -> str:
        n = self.packets_read
        return (
            f"file ends inside block {n + self._section.other_blocks + 1} at byte {offset} "
            f"({present} bytes of it present; packet {n} was the last whole one)"
        )

    def _finish(self) -> None:
        state = self._section
        self.direction_flags = state.flags_seen
        parts: list[str] = []
        total: int | None = None
        for (section, iface), (ifdrop, osdrop, name) in sorted(state.isb_drops.items()):
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
        if state.packet_drops is not None:
            total = (total or 0) + state.packet_drops
            parts.append(f"{state.packet_drops} reported by packet blocks")
        self.drops = total
        self.drop_detail = "; ".join(parts) if parts else None


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


def _read_isb(state: _Section, buf: bytes, pos: int, end: int, st: _Structs) -> None:
    """An Interface Statistics Block's drop counters, into `state` (none if it is too short)."""
    if end - pos < _ISB_MIN - 4:
        return
    iface = st.u32.unpack_from(buf, pos + 8)[0]
    ifdrop, osdrop = _isb_options(buf, pos + 20, end, st)
    if ifdrop is None and osdrop is None:
        return
    name = state.ifaces[iface].name if iface < len(state.ifaces) else ""
    key = (state.section, iface)
    old = state.isb_drops.get(key, (None, None, name))
    # ISB counters are cumulative: the latest block supersedes.
    state.isb_drops[key] = (
        ifdrop if ifdrop is not None else old[0],
        osdrop if osdrop is not None else old[1],
        name,
    )


def _read_idb(buf: bytes, pos: int, end: int, st: _Structs) -> _Interface:
    """An Interface Description Block: link type, snaplen, if_tsresol, if_tsoffset, if_name.

    A block too short for its fields still numbers an interface (the blocks after it can
    be read: both lengths agree), one no IDB described: its packets are not understood.
    """
    if end - pos < _IDB_MIN - 4:
        return _Interface(LINKTYPE_UNDEFINED_INTERFACE, 0, _DEFAULT_TS_UNITS, 0, "")
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


def _python_epbs(reader: PcapngReader, buf: bytes, pos: int, step: PacketStep) -> int:
    """Walk the whole, sound EPBs of `buf` from `pos`, calling `step` for each packet.

    Returns the offset of the first block that is not one (another kind, not whole, a
    length that does not add up): the general block step takes it. Their trailing length
    is not compared (that costs 15% of reading); a corrupt length surfaces at the next
    block, whose header then fails the general step. The counters and `_current` are the
    reader's.
    """
    state = reader._section
    epb_unpack = state.structs.epb.unpack_from
    by_if = state.by_if
    n = reader.packets_read
    snap = reader.snap_truncated
    ts = reader.last_time or 0.0
    cur_if, cur_hi, base_ts, scale_lo, linktype = reader._current
    end = len(buf)
    epb_type, epb_header = _EPB, _EPB_HEADER  # locals: this loop runs per packet
    try:
        while pos + epb_header <= end:
            btype, blen, iface, hi, lo, cap, orig = epb_unpack(buf, pos)
            nxt = pos + blen
            off = pos + epb_header
            rest = nxt - off - cap  # padding, options, trailing length
            if btype != epb_type or rest < 4 or nxt > end or blen & 3:
                break
            direction = 0
            if rest >= 8:  # more than padding and the trailer: options
                direction = state.epb_options(buf, off + cap + (-cap & 3), nxt - 4)
            if iface != cur_if or hi != cur_hi:
                # A new interface, or the high timestamp word moved on (every 71 minutes
                # at microseconds): recompute what packets share.
                linktype, scale_hi, scale_lo, toff = (
                    by_if[iface] if iface < len(by_if) else _UNDEFINED_INTERFACE
                )
                cur_if, cur_hi = iface, hi
                base_ts = hi * scale_hi + toff
                if not n:
                    reader.first_time = base_ts + lo * scale_lo
            # Float arithmetic instead of ((hi << 32) | lo) / units: no big-int division
            # per packet, sub-microsecond exact.
            ts = base_ts + lo * scale_lo
            n += 1
            if cap < orig:
                snap += 1
            step(ts, buf, off, cap, orig, linktype, direction, n)
            pos = nxt
        return pos
    finally:
        reader.packets_read = n
        reader.snap_truncated = snap
        if n:
            reader.last_time = ts
        reader._current = (cur_if, cur_hi, base_ts, scale_lo, linktype)


_epbs = compiled.walk.epb_run if compiled.walk is not None else _python_epbs
