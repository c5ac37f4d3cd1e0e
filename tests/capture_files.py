"""Write small pcap and pcapng files for tests (no scapy needed, no network touched).

Frames are plain bytes: build them with scapy (`bytes(Ether(src=..., dst=...) / IP(...))`)
or by hand. Typical use:

    write_pcap(tmp_path / "a.pcap", [frame1, (1700000000.5, frame2)])
    write_pcapng(
        tmp_path / "b.pcapng",
        [Epb(frame1, interface=0, flags=OUTBOUND), Epb(frame2, interface=1), Isb(0, ifdrop=3)],
        interfaces=[Interface(LINKTYPE_ETHERNET), Interface(LINKTYPE_RAW)],
    )
    cut_tail(path, 5)  # the file now ends inside its last record

Several pcapng sections: `write_bytes(path, pcapng_section(...), pcapng_section(...))`.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

START = 1_700_000_000.0  # time of the first packet when none is given
STEP = 0.001  # seconds between packets when none is given

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

INBOUND = 1  # epb_flags direction bits
OUTBOUND = 2

Frame = bytes | tuple[float, bytes]


def _timed(packets: Sequence[Frame]) -> list[tuple[float, bytes]]:
    out = []
    for i, item in enumerate(packets):
        out.append(item if isinstance(item, tuple) else (START + i * STEP, item))
    return out


def pcap_bytes(
    packets: Sequence[Frame],
    linktype: int = LINKTYPE_ETHERNET,
    big_endian: bool = False,
    nanosecond: bool = False,
    snaplen: int = 262144,
) -> bytes:
    """A whole pcap file. Frames longer than `snaplen` are cut (captured < original)."""
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    scale = 1_000_000_000 if nanosecond else 1_000_000
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for time, frame in _timed(packets):
        units = round(time * scale)
        sec, frac = divmod(units, scale)
        data = frame[:snaplen]
        out.append(struct.pack(order + "IIII", sec, frac, len(data), len(frame)))
        out.append(data)
    return b"".join(out)


def write_pcap(
    path: Path,
    packets: Sequence[Frame],
    linktype: int = LINKTYPE_ETHERNET,
    big_endian: bool = False,
    nanosecond: bool = False,
    snaplen: int = 262144,
) -> Path:
    """Write a pcap file; each packet is a frame or (epoch seconds, frame)."""
    path.write_bytes(
        pcap_bytes(packets, linktype, big_endian=big_endian, nanosecond=nanosecond, snaplen=snaplen)
    )
    return path


@dataclass(frozen=True)
class Interface:
    """A pcapng Interface Description Block. tsresol: if_tsresol byte (6 = µs, 9 = ns)."""

    linktype: int = LINKTYPE_ETHERNET
    snaplen: int = 0
    tsresol: int | None = None
    name: str | None = None


@dataclass(frozen=True)
class Epb:
    """An Enhanced Packet Block, with optional epb_flags and epb_dropcount options."""

    data: bytes
    time: float | None = None
    interface: int = 0
    flags: int | None = None  # bits 0-1: INBOUND / OUTBOUND
    dropcount: int | None = None
    origlen: int | None = None  # defaults to len(data)


@dataclass(frozen=True)
class Spb:
    """A Simple Packet Block (interface 0, no timestamp)."""

    data: bytes
    origlen: int | None = None


@dataclass(frozen=True)
class ObsoletePb:
    """The obsolete Packet Block (type 2) with its drops counter."""

    data: bytes
    time: float | None = None
    interface: int = 0
    drops: int = 0xFFFF


@dataclass(frozen=True)
class Isb:
    """An Interface Statistics Block with isb_ifdrop / isb_osdrop."""

    interface: int = 0
    ifdrop: int | None = None
    osdrop: int | None = None
    time: float | None = None


@dataclass(frozen=True)
class RawBlock:
    """Any other block, written as given (to test that readers skip it)."""

    block_type: int
    body: bytes = b""


Record = bytes | Epb | Spb | ObsoletePb | Isb | RawBlock


def _units(resol: int | None) -> int:
    if resol is None:
        return 1_000_000
    return int(2 ** (resol & 0x7F)) if resol & 0x80 else 10**resol


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) & 3)


@dataclass(frozen=True)
class _Blocks:
    """pcapng block encoding in one byte order, for one section's interfaces."""

    order: str
    interfaces: Sequence[Interface]

    def block(self, btype: int, body: bytes) -> bytes:
        body = _pad(body)
        length = len(body) + 12
        o = self.order
        return struct.pack(o + "II", btype, length) + body + struct.pack(o + "I", length)

    def option(self, code: int, value: bytes) -> bytes:
        return struct.pack(self.order + "HH", code, len(value)) + _pad(value)

    def options(self, opts: list[bytes]) -> bytes:
        return b"".join(opts) + (struct.pack(self.order + "HH", 0, 0) if opts else b"")

    def stamp(self, time: float, iface: int) -> bytes:
        interfaces = self.interfaces
        units = _units(interfaces[iface].tsresol if iface < len(interfaces) else None)
        value = round(time * units)
        return struct.pack(self.order + "II", value >> 32, value & 0xFFFFFFFF)

    def interface(self, itf: Interface) -> bytes:
        opts = []
        if itf.name is not None:
            opts.append(self.option(2, itf.name.encode()))
        if itf.tsresol is not None:
            opts.append(self.option(9, bytes([itf.tsresol])))
        body = struct.pack(self.order + "HHI", itf.linktype, 0, itf.snaplen) + self.options(opts)
        return self.block(1, body)

    def epb(self, rec: Epb, default_time: float) -> bytes:
        o = self.order
        opts = []
        if rec.flags is not None:
            opts.append(self.option(2, struct.pack(o + "I", rec.flags)))
        if rec.dropcount is not None:
            opts.append(self.option(4, struct.pack(o + "Q", rec.dropcount)))
        t = default_time if rec.time is None else rec.time
        orig = len(rec.data) if rec.origlen is None else rec.origlen
        body = (
            struct.pack(o + "I", rec.interface)
            + self.stamp(t, rec.interface)
            + struct.pack(o + "II", len(rec.data), orig)
            + _pad(rec.data)
            + self.options(opts)
        )
        return self.block(6, body)

    def isb(self, rec: Isb, default_time: float) -> bytes:
        o = self.order
        opts = []
        if rec.ifdrop is not None:
            opts.append(self.option(5, struct.pack(o + "Q", rec.ifdrop)))
        if rec.osdrop is not None:
            opts.append(self.option(7, struct.pack(o + "Q", rec.osdrop)))
        t = default_time if rec.time is None else rec.time
        body = struct.pack(o + "I", rec.interface) + self.stamp(t, rec.interface)
        return self.block(5, body + self.options(opts))

    def record(self, rec: Record, default_time: float) -> bytes:
        o = self.order
        if isinstance(rec, bytes):
            rec = Epb(rec)
        if isinstance(rec, Epb):
            return self.epb(rec, default_time)
        if isinstance(rec, Spb):
            orig = len(rec.data) if rec.origlen is None else rec.origlen
            return self.block(3, struct.pack(o + "I", orig) + rec.data)
        if isinstance(rec, ObsoletePb):
            t = default_time if rec.time is None else rec.time
            body = (
                struct.pack(o + "HH", rec.interface, rec.drops)
                + self.stamp(t, rec.interface)
                + struct.pack(o + "II", len(rec.data), len(rec.data))
                + rec.data
            )
            return self.block(2, body)
        if isinstance(rec, Isb):
            return self.isb(rec, default_time)
        return self.block(rec.block_type, rec.body)


def pcapng_section(
    records: Sequence[Record],
    interfaces: Sequence[Interface] = (Interface(),),
    *,
    big_endian: bool = False,
) -> bytes:
    """One pcapng section: SHB, the IDBs, then the records (bytes become EPBs on if 0)."""
    blocks = _Blocks(">" if big_endian else "<", interfaces)
    out = [blocks.block(0x0A0D0D0A, struct.pack(blocks.order + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    out.extend(blocks.interface(itf) for itf in interfaces)
    out.extend(blocks.record(rec, START + i * STEP) for i, rec in enumerate(records))
    return b"".join(out)


def write_pcapng(
    path: Path,
    records: Sequence[Record],
    interfaces: Sequence[Interface] = (Interface(),),
    *,
    big_endian: bool = False,
) -> Path:
    """Write a one-section pcapng file."""
    path.write_bytes(pcapng_section(records, interfaces, big_endian=big_endian))
    return path


def write_bytes(path: Path, *parts: bytes) -> Path:
    """Write the parts one after another (e.g. several pcapng sections)."""
    path.write_bytes(b"".join(parts))
    return path


def cut_tail(path: Path, nbytes: int) -> Path:
    """Drop the last `nbytes` of the file, so it ends inside its last record."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - nbytes])
    return path
