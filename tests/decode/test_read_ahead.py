"""decode.read_ahead: chunks in order, the SHA-256 of every byte hashed on its own thread."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
from pathlib import Path

import pytest

from conformance.decode import read_ahead
from conformance.decode.read_ahead import ReadAhead


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("ucx-")}


def _source(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "source.bin"
    path.write_bytes(bytes((i * 7 + i // 251) % 256 for i in range(size)))
    return path


def test_every_chunk_in_order_and_the_hash_of_every_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_ahead, "CHUNK_BYTES", 1000)
    path = _source(tmp_path, 25_321)
    with open(path, "rb", buffering=0) as file:
        reader = ReadAhead(file, file.read(300))
        chunks = []
        while (chunk := reader.next_chunk()) is not None:
            chunks.append(chunk)
        reader.finish()
    assert b"".join(chunks) == path.read_bytes()
    assert reader.complete
    assert reader.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not _threads()


def test_a_hash_that_fails_reaches_the_decoder_and_the_file_is_not_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_ahead, "CHUNK_BYTES", 1000)
    path = _source(tmp_path, 20_000)

    class Failing:
        calls = 0

        def update(self, chunk: bytes) -> None:
            Failing.calls += 1
            if Failing.calls == 3:
                raise MemoryError("no memory for the hash")

        def hexdigest(self) -> str:
            return ""

    with open(path, "rb", buffering=0) as file:
        reader = ReadAhead(file, b"")
        reader._hash = Failing()  # type: ignore[assignment]
        with pytest.raises(MemoryError, match="no memory for the hash"):
            while reader.next_chunk() is not None:
                pass
        reader.close()
    assert not reader.complete
    assert not _threads()


def test_closing_half_way_stops_both_threads_and_is_not_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_ahead, "CHUNK_BYTES", 512)
    path = _source(tmp_path, 200_000)
    with open(path, "rb", buffering=0) as file:
        reader = ReadAhead(file, b"")
        assert reader.next_chunk() == b""  # the head, empty here
        assert reader.next_chunk() is not None
        reader.close()
    assert not reader.complete
    assert not _threads()


def test_without_digest_nothing_is_hashed_and_every_chunk_still_comes(
    tmp_path: Path,
) -> None:
    data = b"x" * 10_000
    reader = ReadAhead(io.BufferedReader(io.BytesIO(data)), b"")
    reader.digest = False
    got = b""
    while (chunk := reader.next_chunk()) is not None:
        got += chunk
    reader.finish()
    assert got == data
    assert reader.complete
    assert reader.sha256 == ""


def test_hash_in_copy_without_a_copying_subscriber_hashes_every_byte_here() -> None:
    data = bytes(range(256)) * 40_000
    shown: list[bytes] = []
    reader = ReadAhead(io.BufferedReader(io.BytesIO(data)), b"", shown.append)
    reader.hash_in_copy = True  # nothing copies the file: no copy can stand for the hash
    assert b"".join(iter(reader.next_chunk, None)) == data
    reader.finish()
    assert not reader.by_copy
    assert reader.sha256 == hashlib.sha256(data).hexdigest()
    assert b"".join(shown) == data


def test_an_interrupt_while_the_decoder_waits_leaves_close_able_to_stop_the_threads(
    tmp_path: Path,
) -> None:
    """Ctrl-C lands in the main thread while the decoder waits for a chunk; cleaning up must
    not wait for ever. (A queue.Queue there could be left with its lock held by the
    interrupted `get`, bpo-29988, and `close` then hung on it: seen once, a run stuck 30
    minutes after SIGINT. The chunks now come by C-level calls only.)"""
    read_end, write_end = os.pipe()
    file = os.fdopen(read_end, "rb", buffering=0)
    lock = threading.Lock()
    open_ends = [write_end]

    def end_of_file() -> None:  # the thread's read() returns (a file's never blocks long)
        with lock:
            while open_ends:
                os.close(open_ends.pop())

    # Python's own handler, whatever this process started with (a job started with `&` in a
    # script has SIGINT ignored, and the signal would then never come).
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    guard = threading.Timer(10, end_of_file)  # should the interrupt not come: the wait ends
    try:
        reader = ReadAhead(file, b"")
        assert reader.next_chunk() == b""  # the head; the thread starts and blocks in read()
        # Sent from another thread, as the kernel may hand a process's SIGINT to any thread.
        timer = threading.Timer(0.2, signal.raise_signal, (signal.SIGINT,))
        guard.start()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            reader.next_chunk()  # waits: nothing was written
        timer.join()
        end_of_file()
        done = threading.Thread(target=reader.close)
        done.start()
        done.join(timeout=10)
        assert not done.is_alive(), "close() did not return"
        assert not _threads()
    finally:
        signal.signal(signal.SIGINT, saved)
        guard.cancel()
        end_of_file()
        file.close()
