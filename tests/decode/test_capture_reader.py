"""The pcap/pcapng reader: formats, byte orders, interfaces, drops, damage."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import struct
import types
from pathlib import Path

import pytest

from conformance.decode import read_ahead
from conformance.decode.capture_file import open_capture
from conformance.decode.capture_reader import (
    LINKTYPE_UNDEFINED_INTERFACE,
    CaptureReader,
    PacketRecord,
)
from conformance.errors import CaptureError
from tests.capture_files import (
    INBOUND,
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    OUTBOUND,
    Epb,
    Interface,
    Isb,
    ObsoletePb,
    RawBlock,
    Spb,
    cut_tail,
    pcapng_section,
    write_bytes,
    write_pcap,
    write_pcapng,
)
from tests.compiled_paths import COMPILED_WALK, pure_python

FRAMES = [bytes([i]) * (20 + i) for i in range(1, 6)]


Packets = list[tuple[float, bytes, int, int, int]]
# Chunk sizes that cut every file header, block header and record somewhere.
TINY_CHUNKS = (5, 13, 64)


def read_all(path: Path) -> tuple[CaptureReader, Packets]:
    """(reader, [(time, frame, original length, link type, direction)]).

    The file is also walked as the decoder walks it (`walk_all`: one step per packet,
    numbered), which must see exactly the same packets and end with the same counters;
    and again in tiny chunks, so that every header, block and record straddles chunks.
    """
    out = []
    with open_capture(path) as reader:
        rec: PacketRecord
        for rec in reader.packets():
            ts, buf, off, cap, orig, lt, direction = rec
            out.append((ts, buf[off : off + cap], orig, lt, direction))
        reader.sha256  # noqa: B018 - finish hashing before the reader closes
    walker, walked = walk_all(path)
    assert walked == out
    assert _counters(walker) == _counters(reader)
    default = read_ahead.CHUNK_BYTES
    for size in TINY_CHUNKS:
        read_ahead.CHUNK_BYTES = size
        try:
            walker, walked = walk_all(path)
        finally:
            read_ahead.CHUNK_BYTES = default
        assert walked == out, size
        assert _counters(walker) == _counters(reader), size
    if COMPILED_WALK:
        with pure_python():
            walker, walked = walk_all(path)
        assert walked == out, "compiled and pure-Python walks disagree"
        assert _counters(walker) == _counters(reader)
    return reader, out


def _counters(reader: CaptureReader) -> tuple[object, ...]:
    return (
        reader.packets_read,
        reader.first_time,
        reader.last_time,
        reader.snap_truncated,
        reader.truncated_detail,
        reader.drops,
        reader.drop_detail,
        reader.direction_flags,
        reader.interfaces,
        reader.link_types,
        reader.sha256,
    )


def walk_all(path: Path) -> tuple[CaptureReader, Packets]:
    """Walk a file with a per-packet step, as observe.ingest does; numbers must run 1, 2, ..."""
    out: Packets = []
    numbers: list[int] = []

    def step(
        ts: float, buf: bytes, off: int, cap: int, orig: int, lt: int, dirf: int, n: int
    ) -> None:
        out.append((ts, buf[off : off + cap], orig, lt, dirf))
        numbers.append(n)

    with open_capture(path) as reader:
        reader.walk(step)
        reader.sha256  # noqa: B018
    assert numbers == list(range(1, len(out) + 1))
    return reader, out


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_byte_orders_and_resolutions(
    tmp_path: Path, big_endian: bool, nanosecond: bool
) -> None:
    times = [1_700_000_000.123456, 1_700_000_001.5, 1_700_000_002.000001]
    path = write_pcap(
        tmp_path / "a.pcap",
        list(zip(times, FRAMES[:3], strict=True)),
        big_endian=big_endian,
        nanosecond=nanosecond,
    )
    reader, packets = read_all(path)
    assert reader.format == "pcap"
    assert reader.link_types == [LINKTYPE_ETHERNET]
    assert [p[1] for p in packets] == FRAMES[:3]
    assert [p[0] for p in packets] == pytest.approx(times, abs=1e-6)
    assert reader.packets_read == 3
    assert reader.first_time == pytest.approx(times[0])
    assert reader.last_time == pytest.approx(times[-1])
    assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert reader.bytes_read == path.stat().st_size
    assert not reader.truncated
    assert reader.drops is None


def test_pcap_nanoseconds_keep_precision(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "ns.pcap", [(1_700_000_000.000000123, b"x" * 20)], nanosecond=True)
    _, packets = read_all(path)
    assert packets[0][0] == pytest.approx(1_700_000_000.000000123, abs=1e-7)


def test_pcap_snaplen_cut_packets_are_counted(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "snap.pcap", [b"a" * 100, b"b" * 30], snaplen=64)
    reader, packets = read_all(path)
    assert reader.snap_truncated == 1
    assert packets[0][1] == b"a" * 64
    assert packets[0][2] == 100  # original length kept


def test_records_across_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_ahead, "CHUNK_BYTES", 1000)
    frames = [bytes([i % 251]) * (60 + i % 700) for i in range(300)]
    frames.append(b"J" * 5000)  # one record longer than a whole chunk
    path = write_pcap(tmp_path / "many.pcap", frames)
    reader, packets = read_all(path)
    assert [p[1] for p in packets] == frames
    assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("compiled", [False, True] if COMPILED_WALK else [False])
def test_the_walk_holds_no_chunk_when_it_takes_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: bool
) -> None:
    """Taking a chunk lets the read-ahead read one more: the walked one must be let go by
    then, or four chunks are alive at once (a 4 MiB step at the 2M-packet peak)."""
    monkeypatch.setattr(read_ahead, "CHUNK_BYTES", 1000)
    frames = [bytes([i % 251]) * (60 + i % 500) for i in range(300)]
    path = write_pcap(tmp_path / "many.pcap", frames)
    held: list[int] = []
    with contextlib.ExitStack() as stack:
        if not compiled:
            stack.enter_context(pure_python())
        reader = stack.enter_context(open_capture(path))
        source = reader._source
        take, given = source.next_chunk, []

        def next_chunk() -> bytes | None:
            if given:  # the hashing thread may still hold it; the walk (a generator) not
                holders = gc.get_referrers(given[-1])
                held.append(sum(isinstance(h, types.GeneratorType) for h in holders))
            chunk = take()
            given.append(chunk)
            return chunk

        monkeypatch.setattr(source, "next_chunk", next_chunk)
        reader.walk(lambda *record: None)
    assert len(held) > 50
    assert set(held) == {0}, held


def test_pcap_ending_inside_a_record_is_read_to_the_last_whole_one(tmp_path: Path) -> None:
    path = cut_tail(write_pcap(tmp_path / "cut.pcap", FRAMES), 3)
    reader, packets = read_all(path)
    assert len(packets) == 4
    assert reader.truncated
    size = path.stat().st_size
    offset = 24 + sum(16 + len(f) for f in FRAMES[:4])
    assert reader.truncated_detail == (
        f"file ends inside record 5 at byte {offset} ({size - offset} bytes of it present)"
    )


def test_pcap_corrupt_length_stops_reading(tmp_path: Path) -> None:
    data = bytearray(write_pcap(tmp_path / "x.pcap", FRAMES).read_bytes())
    second = 24 + 16 + len(FRAMES[0])
    struct.pack_into("<I", data, second + 8, 0x7FFFFFFF)  # captured length of record 2
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(data))
    reader, packets = read_all(path)
    assert len(packets) == 1
    assert reader.truncated_detail is not None
    assert f"record 2 at byte {second}" in reader.truncated_detail


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "empty file"),
        (b"this is not a capture file at all" * 3, "not a pcap or pcapng file"),
        (b"\x01\x02", "not a pcap or pcapng file"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 3, 0, 0, 0, 65535, 1), "unsupported pcap version 3.0"),
        (struct.pack("<IHH", 0xA1B2C3D4, 2, 4), "file ends inside the pcap file header"),
    ],
)
def test_unreadable_files_raise_capture_error(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    with pytest.raises(CaptureError) as err:
        open_capture(path)
    assert problem in err.value.problem
    assert err.value.path == str(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        open_capture(tmp_path / "nope.pcap")
    with pytest.raises(CaptureError, match="directory"):
        open_capture(tmp_path)


def test_pcapng_unsupported_version(tmp_path: Path) -> None:
    data = bytearray(pcapng_section([FRAMES[0]]))
    struct.pack_into("<H", data, 12, 2)  # major version 2
    path = tmp_path / "v2.pcapng"
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureError, match="unsupported pcapng version 2"):
        open_capture(path)


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_interfaces_with_their_own_link_types_and_resolutions(
    tmp_path: Path, big_endian: bool
) -> None:
    path = write_pcapng(
        tmp_path / "multi.pcapng",
        [
            Epb(FRAMES[0], time=1_700_000_000.25, interface=0),
            Epb(FRAMES[1], time=1_700_000_000.000000001, interface=1),
            Epb(FRAMES[2], time=1_700_000_002.0, interface=2),
        ],
        interfaces=[
            Interface(LINKTYPE_ETHERNET),
            Interface(LINKTYPE_RAW, tsresol=9),
            Interface(LINKTYPE_LINUX_SLL, tsresol=0x80 | 10),  # 2^-10 s
        ],
        big_endian=big_endian,
    )
    reader, packets = read_all(path)
    assert reader.format == "pcapng"
    assert reader.interfaces == 3
    assert reader.link_types == [LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL]
    assert [p[3] for p in packets] == [LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL]
    assert [p[1] for p in packets] == FRAMES[:3]
    assert packets[0][0] == pytest.approx(1_700_000_000.25)
    assert packets[1][0] == pytest.approx(1_700_000_000.000000001, abs=1e-7)
    assert packets[2][0] == pytest.approx(1_700_000_002.0, abs=1e-3)
    assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_pcapng_sections_with_different_byte_orders(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "sections.pcapng",
        pcapng_section([FRAMES[0]], [Interface(LINKTYPE_ETHERNET)]),
        pcapng_section([FRAMES[1], FRAMES[2]], [Interface(LINKTYPE_RAW)], big_endian=True),
    )
    reader, packets = read_all(path)
    assert [p[1] for p in packets] == FRAMES[:3]
    assert [p[3] for p in packets] == [LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_RAW]
    assert reader.interfaces == 2


def test_interface_ids_restart_in_each_section(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "restart.pcapng",
        pcapng_section([Epb(FRAMES[0], interface=1)], [Interface(1), Interface(101)]),
        pcapng_section([Epb(FRAMES[1], interface=1)], [Interface(1)]),
    )
    _, packets = read_all(path)
    assert [p[3] for p in packets] == [LINKTYPE_RAW, LINKTYPE_UNDEFINED_INTERFACE]


def test_epb_direction_flags_and_dropcount(tmp_path: Path) -> None:
    path = write_pcapng(
        tmp_path / "flags.pcapng",
        [
            Epb(FRAMES[0], flags=INBOUND),
            Epb(FRAMES[1], flags=OUTBOUND | 0x1E0, dropcount=4),  # other flag bits ignored
            Epb(FRAMES[2]),
            Epb(FRAMES[3], dropcount=1),
        ],
    )
    reader, packets = read_all(path)
    assert [p[4] for p in packets] == [1, 2, 0, 0]
    assert reader.direction_flags
    assert reader.drops == 5
    assert reader.drop_detail == "5 reported by packet blocks"


def test_isb_drop_counters_latest_block_wins(tmp_path: Path) -> None:
    path = write_pcapng(
        tmp_path / "isb.pcapng",
        [
            FRAMES[0],
            Isb(0, ifdrop=1, osdrop=2),
            Epb(FRAMES[1], interface=1),
            Isb(0, ifdrop=3, osdrop=4),  # cumulative: supersedes the first
            Isb(1, osdrop=10),
        ],
        interfaces=[Interface(1, name="eth0"), Interface(1)],
    )
    reader, packets = read_all(path)
    assert len(packets) == 2
    assert reader.drops == 3 + 4 + 10
    assert reader.drop_detail == (
        "interface 0 (eth0): 3 dropped by the interface, 4 by the operating system; "
        "interface 1: 10 by the operating system"
    )
    assert not reader.direction_flags


def test_isb_without_counters_leaves_drops_unknown(tmp_path: Path) -> None:
    path = write_pcapng(tmp_path / "isb0.pcapng", [FRAMES[0], Isb(0)])
    reader, _ = read_all(path)
    assert reader.drops is None
    assert reader.drop_detail is None


def test_isb_zero_drops_are_known(tmp_path: Path) -> None:
    path = write_pcapng(tmp_path / "isb-zero.pcapng", [FRAMES[0], Isb(0, ifdrop=0, osdrop=0)])
    reader, _ = read_all(path)
    assert reader.drops == 0


def test_simple_and_obsolete_packet_blocks_and_unknown_blocks(tmp_path: Path) -> None:
    path = write_pcapng(
        tmp_path / "blocks.pcapng",
        [
            Epb(FRAMES[0], time=1_700_000_005.0),
            RawBlock(0x00000BAD, b"custom block body"),
            Spb(FRAMES[1]),
            ObsoletePb(FRAMES[2], time=1_700_000_006.0, drops=2),
            ObsoletePb(FRAMES[3], time=1_700_000_007.0),  # 0xFFFF: unknown, not counted
        ],
        interfaces=[Interface(LINKTYPE_RAW, snaplen=21)],
    )
    reader, packets = read_all(path)
    assert [p[1] for p in packets] == [FRAMES[0], FRAMES[1][:21], FRAMES[2], FRAMES[3]]
    assert packets[1][0] == pytest.approx(1_700_000_005.0)  # SPB: previous packet's time
    assert packets[1][2] == len(FRAMES[1])
    assert reader.snap_truncated == 1
    assert reader.drops == 2
    assert all(p[3] == LINKTYPE_RAW for p in packets)


def test_pcapng_ending_inside_a_block(tmp_path: Path) -> None:
    path = cut_tail(write_pcapng(tmp_path / "cut.pcapng", FRAMES), 10)
    reader, packets = read_all(path)
    assert len(packets) == 4
    assert reader.truncated
    assert reader.truncated_detail is not None
    assert reader.truncated_detail.startswith("file ends inside block 7 at byte ")
    assert "packet 4 was the last whole one" in reader.truncated_detail


def test_pcapng_mismatched_trailing_length_stops_reading(tmp_path: Path) -> None:
    data = bytearray(
        write_pcapng(tmp_path / "x.pcapng", [FRAMES[0], Isb(0), FRAMES[1]]).read_bytes()
    )
    isb_start = 48 + struct.unpack_from("<I", data, 48 + 4)[0]  # after SHB(28), IDB(20), EPB
    isb_len = struct.unpack_from("<I", data, isb_start + 4)[0]
    struct.pack_into("<I", data, isb_start + isb_len - 4, isb_len + 4)
    path = tmp_path / "mismatch.pcapng"
    path.write_bytes(bytes(data))
    reader, packets = read_all(path)
    assert len(packets) == 1
    assert reader.truncated_detail is not None
    assert "block 4 at byte" in reader.truncated_detail
    assert "leading and trailing lengths differ" in reader.truncated_detail


def test_pcapng_corrupt_block_length_is_caught_at_the_next_block(tmp_path: Path) -> None:
    data = bytearray(write_pcapng(tmp_path / "x.pcapng", FRAMES[:3]).read_bytes())
    epb2_start = 48 + struct.unpack_from("<I", data, 48 + 4)[0]
    epb2 = struct.unpack_from("<I", data, epb2_start + 4)[0]
    struct.pack_into("<I", data, epb2_start + 4, epb2 + 8)  # runs 8 bytes into the next block
    path = tmp_path / "corrupt-length.pcapng"
    path.write_bytes(bytes(data))
    reader, packets = read_all(path)
    assert len(packets) == 2
    assert reader.truncated  # the misplaced next "block" is flagged, whatever it claims


def test_pcapng_with_only_headers_has_no_packets(tmp_path: Path) -> None:
    path = write_pcapng(tmp_path / "empty.pcapng", [])
    reader, packets = read_all(path)
    assert packets == []
    assert reader.first_time is None
    assert not reader.truncated


def test_modified_pcap_records(tmp_path: Path) -> None:
    # Kuznetzov's patched libpcap: 8 more bytes (ifindex, protocol, pkt_type) per record.
    out = [struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1)]
    for i, frame in enumerate(FRAMES[:2]):
        out.append(struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)))
        out.append(bytes(8) + frame)
    path = tmp_path / "modified.pcap"
    path.write_bytes(b"".join(out))
    reader, packets = read_all(path)
    assert [p[1] for p in packets] == FRAMES[:2]
    assert not reader.truncated


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_blocks_across_chunk_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, big_endian: bool
) -> None:
    monkeypatch.setattr(read_ahead, "CHUNK_BYTES", 1000)
    records: list[Epb | Isb] = []
    for i in range(300):
        frame = bytes([i % 251]) * (60 + i % 700)
        flags = INBOUND if i % 7 == 0 else None
        records.append(Epb(frame, time=1_700_000_000 + i * 900.0, interface=i % 2, flags=flags))
    records.append(Epb(b"J" * 5000, interface=1))  # one block longer than a whole chunk
    records.append(Isb(0, ifdrop=0))
    path = write_pcapng(
        tmp_path / "many.pcapng",
        records,
        [Interface(LINKTYPE_ETHERNET), Interface(LINKTYPE_RAW, tsresol=9)],
        big_endian=big_endian,
    )
    reader, packets = read_all(path)  # both walks, compared
    assert [p[1] for p in packets] == [r.data for r in records if isinstance(r, Epb)]
    assert reader.drops == 0


@pytest.mark.parametrize("name", ["ok.pcapng", "ok.pcap"])
def test_the_subscriber_is_shown_every_byte_that_was_hashed(tmp_path: Path, name: str) -> None:
    frames = [bytes([i % 251]) * (60 + i) for i in range(400)]
    writer = write_pcapng if name.endswith("ng") else write_pcap
    path = writer(tmp_path / name, frames)
    shown: list[bytes] = []
    with open_capture(path, on_bytes=shown.append) as reader:
        assert sum(1 for _ in reader.packets()) == 400
        digest = reader.sha256
    assert reader.complete
    assert b"".join(shown) == path.read_bytes()
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_decoder_stopping_early_still_hashes_and_shows_the_whole_file(tmp_path: Path) -> None:
    data = bytearray(
        write_pcapng(tmp_path / "x.pcapng", [FRAMES[0], Isb(0), FRAMES[1]]).read_bytes()
    )
    isb_start = 48 + struct.unpack_from("<I", data, 48 + 4)[0]
    isb_len = struct.unpack_from("<I", data, isb_start + 4)[0]
    struct.pack_into("<I", data, isb_start + isb_len - 4, isb_len + 4)  # reading stops here
    path = tmp_path / "mismatch.pcapng"
    path.write_bytes(bytes(data))
    shown: list[bytes] = []
    with open_capture(path, on_bytes=shown.append) as reader:
        assert len(list(reader.packets())) == 1
        assert reader.sha256 == hashlib.sha256(bytes(data)).hexdigest()
    assert reader.truncated and reader.complete
    assert b"".join(shown) == bytes(data)


def test_closing_before_the_end_leaves_the_subscriber_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_ahead, "CHUNK_BYTES", 1000)
    path = write_pcapng(tmp_path / "big.pcapng", [bytes(500)] * 200)
    shown: list[bytes] = []
    with open_capture(path, on_bytes=shown.append) as reader:
        next(iter(reader.packets()))
    assert not reader.complete
    assert len(b"".join(shown)) < path.stat().st_size
