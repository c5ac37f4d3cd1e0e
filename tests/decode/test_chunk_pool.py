"""decode/chunk_pool.py: chunks read into bytes objects used again, never one held elsewhere."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.decode import chunk_pool, read_ahead
from conformance.decode.capture_file import open_capture
from conformance.decode.chunk_pool import POOL_KEEP, ChunkReads, FreshReads, chunk_reads
from conformance.report import prestage
from conformance.report.prestage import Prestage
from tests.capture_files import write_pcap
from tests.compiled_paths import COMPILED_CHUNKS, pure_python

SIZE = 4096
DATA = random.Random(7).randbytes(SIZE * 5 + 123)

needs_compiled = pytest.mark.skipif(not COMPILED_CHUNKS, reason="the compiled pool is not built")


@pytest.fixture
def fd(tmp_path: Path) -> Iterator[int]:
    path = tmp_path / "data"
    path.write_bytes(DATA)
    handle = os.open(path, os.O_RDONLY)
    yield handle
    os.close(handle)


def _pools() -> list[ChunkReads]:
    pools: list[ChunkReads] = [FreshReads()]
    if COMPILED_CHUNKS:
        pools.append(chunk_reads(SIZE))
    return pools


@pytest.mark.parametrize("pool", _pools(), ids=lambda p: type(p).__name__)
def test_every_read_is_the_bytes_at_its_offset(fd: int, pool: ChunkReads) -> None:
    for offset in (0, SIZE, 3 * SIZE + 5, 5 * SIZE, 5 * SIZE + 100, len(DATA), len(DATA) + 9):
        for size in (SIZE, 17, SIZE + 1):
            chunk = pool.pread(fd, size, offset)
            assert type(chunk) is bytes
            assert chunk == DATA[offset : offset + size], (offset, size)
    pool.clear()


@needs_compiled
def test_a_chunk_nobody_holds_is_filled_again_and_its_hash_forgotten(fd: int) -> None:
    pool = chunk_reads(SIZE)
    first = pool.pread(fd, SIZE, 0)
    kept_id, stale = id(first), hash(first)
    del first  # the pool's reference is the only one left
    again = pool.pread(fd, SIZE, SIZE)
    assert id(again) == kept_id  # the same object, refilled
    assert again == DATA[SIZE : 2 * SIZE]
    assert hash(again) == hash(DATA[SIZE : 2 * SIZE]) != stale


@needs_compiled
def test_a_chunk_held_elsewhere_is_never_touched(fd: int) -> None:
    pool = chunk_reads(SIZE)
    held = [pool.pread(fd, SIZE, n * SIZE) for n in range(POOL_KEEP + 2)]
    assert len({id(chunk) for chunk in held}) == len(held)
    for n, chunk in enumerate(held):
        assert chunk == DATA[n * SIZE : (n + 1) * SIZE]
    assert pool.held == POOL_KEEP  # what is past `keep` was made fresh, not kept
    view = memoryview(held[0])  # a view holds its chunk too
    del held
    for _ in range(POOL_KEEP):
        pool.pread(fd, SIZE, 4 * SIZE)
    assert view == DATA[:SIZE]
    pool.clear()
    assert pool.held == 0


@needs_compiled
def test_the_short_last_chunk_is_a_copy_and_the_pool_chunk_stays_free(fd: int) -> None:
    pool = chunk_reads(SIZE)
    tail = pool.pread(fd, SIZE, 5 * SIZE)
    assert tail == DATA[5 * SIZE :] and len(tail) == 123
    assert pool.held == 1
    whole = pool.pread(fd, SIZE, 0)
    assert whole == DATA[:SIZE]
    assert pool.held == 1  # the chunk the short read used, free again, took this one


@needs_compiled
def test_a_failed_read_raises_oserror() -> None:
    with pytest.raises(OSError):
        chunk_reads(SIZE).pread(-1, SIZE, 0)


def test_without_the_compiled_module_every_read_is_fresh() -> None:
    with pure_python():
        assert isinstance(chunk_reads(SIZE), FreshReads)
    assert isinstance(chunk_reads(SIZE), FreshReads) is (chunk_pool._COMPILED is None)


class _Counted:
    """A pool that remembers how many chunks it ever kept."""

    def __init__(self, pool: ChunkReads) -> None:
        self.pool, self.most, self.reads = pool, 0, 0

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        chunk = self.pool.pread(fd, size, offset)
        self.reads += 1
        self.most = max(self.most, getattr(self.pool, "held", 0))
        return chunk

    def clear(self) -> None:
        self.pool.clear()


@needs_compiled
def test_a_walk_read_back_from_the_report_copy_keeps_three_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report's copy hands the reader its chunks (report/prestage.py); the walk lets go of
    each before taking the next (decode/capture_reader.py): three are ever alive, and every
    frame is read as written."""
    monkeypatch.setattr(read_ahead, "CHUNK_BYTES", 1024)
    counted: list[_Counted] = []

    def reads(size: int) -> ChunkReads:
        counted.append(_Counted(chunk_reads(size)))
        return counted[-1]

    monkeypatch.setattr(prestage, "chunk_reads", reads)
    frames = [bytes([i % 251]) * (60 + i % 400) for i in range(400)]
    source = write_pcap(tmp_path / "c.pcap", frames)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    seen: list[bytes] = []
    with open_capture(source, on_bytes=stage.copier(source)) as reader:
        reader.walk(lambda ts, buf, off, cap, *rest: seen.append(buf[off : off + cap]))
    stage.close()
    assert seen == frames
    (pool,) = counted
    assert pool.reads > 50  # the chunks came back from the copy
    assert pool.most == 3


@needs_compiled
def test_the_plain_path_reads_a_regular_file_into_reused_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No kernel copy (no report, or one the kernel cannot copy into): the reader's own
    reads come from the pool too, whose chunks the hash and the copy may still hold."""
    monkeypatch.setattr(read_ahead, "CHUNK_BYTES", SIZE)
    counted: list[_Counted] = []

    def reads(size: int, keep: int) -> ChunkReads:
        counted.append(_Counted(chunk_reads(size, keep)))
        return counted[-1]

    monkeypatch.setattr(read_ahead, "chunk_reads", reads)
    path = tmp_path / "data"
    path.write_bytes(DATA)
    shown: list[bytes] = []
    with path.open("rb", buffering=0) as file:
        reader = read_ahead.ReadAhead(file, file.read(100), shown.append)
        got = b"".join(iter(reader.next_chunk, None))
        reader.finish()
    assert got == DATA and b"".join(shown) == DATA
    assert reader.complete and reader.sha256 == hashlib.sha256(DATA).hexdigest()
    (pool,) = counted
    assert pool.reads == 7  # five whole chunks, the short one, the end
    # `shown` holds every chunk, so none could be refilled: a chunk for each of the six
    # reads (the short last one is copied out of its chunk), fewer than the pool's limit
    assert pool.most == 6 < read_ahead._PLAIN_POOL_KEEP


def test_a_pipe_is_read_as_it_comes(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, DATA[:3000])
    os.close(write_end)
    with os.fdopen(read_end, "rb", buffering=0) as file:
        reader = read_ahead.ReadAhead(file, b"")
        got = b"".join(iter(reader.next_chunk, None))
        reader.finish()
    assert got == DATA[:3000]


def test_a_file_the_reader_cannot_ask_fails_the_read_instead_of_hanging(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(DATA)
    file = path.open("rb", buffering=0)
    reader = read_ahead.ReadAhead(file, file.read(100))
    os.close(file.fileno())  # gone under the reader: fstat and read both fail
    outcome: list[BaseException | bytes | None] = []

    def take() -> None:
        try:
            outcome.append(reader.next_chunk())  # the head
            outcome.append(reader.next_chunk())
        except OSError as exc:
            outcome.append(exc)

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    taker.join(timeout=10)
    assert not taker.is_alive(), "the decoder waited for ever"
    assert outcome[0] == DATA[:100] and isinstance(outcome[1], OSError)
    reader.close()
    with contextlib.suppress(OSError):
        file.close()
