"""Read one file front to back on a thread: hash every byte, show each chunk to a subscriber.

The decoder takes the chunks in order (`next_chunk`). The thread reads them ahead, hands
each one first to the subscriber, if any (`on_bytes`: e.g. the report's copy of the
capture, report.prestage), and then to the decoder and to a second thread that hashes them
(SHA-256 of the whole file, `sha256`), so what the subscriber got is exactly the bytes that
were hashed and decoded, in the same pass. File I/O and SHA-256 release the GIL. SHA-256
has a thread of its own because it is the dearest of the three (about 0.4 s of a 600 MB
capture, where reading it costs 0.1 s and decoding an RTP capture's headers 0.2 s): read,
copied and hashed on one thread, the decoder waited for its chunks most of the time.

The thread reads a plain file's chunks into a few bytes objects it reuses once nobody
holds them (decode/chunk_pool.py), so the walk allocates no chunk after the first few.

A subscriber is called on the reading thread, in file order, and must not raise (one that
can fail, such as a copy on a full disk, keeps its own error). `complete` says whether every
byte of the file was read (and so hashed and shown to the subscriber).

A subscriber that makes a copy can take the file's bytes itself (`CopyThrough`): it copies
them in the kernel (copy_file_range: no user-space write, about a third of write()'s CPU
here) and hands back what it copied, read from the copy, so the bytes hashed and decoded are
still exactly the copy's. Where the kernel cannot copy the file, the subscriber says so and
the thread reads and shows the chunks as above.

When the decoder takes every byte back from such a copy, the copy itself is the record of
what was decoded, so its SHA-256 can wait until after the walk (`hash_in_copy`, which the
builder sets for a file the page cache can keep: observe.builder.copy_stays_cached): then
nothing is hashed here, `by_copy` says so, and the copy's owner hashes the copy on a core
the walk no longer needs (report.prestage). On two cores, copying, hashing and decoding a
large capture together made the walk wait for its chunks: the 2M-packet web mix walked in
1.45 s with the hash, 1.0 s without it. A copy that stops part way (a full disk) then ends
the read with an error: the bytes decoded so far were hashed nowhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import queue
import stat
import threading
from collections.abc import Callable
from typing import BinaryIO, Protocol, TypeVar, runtime_checkable

from conformance.decode.chunk_pool import ChunkReads, FreshReads, chunk_reads

# Large enough that read() calls and the reading thread's GIL hand-overs vanish in the
# per-packet cost, small enough that the few in flight keep memory flat. The thread takes
# the GIL a few times per chunk, each time waiting for the decoder's switch interval: with
# 1 MiB chunks the decoder of a 600 MB capture waited ~0.25 s for its chunks, with 4 MiB
# ~0.04 s (peak +11 MiB; 8 MiB: +40 MiB for ~0.04 s more).
CHUNK_BYTES = 4 << 20
# Chunks the reading thread may hold ready (read, hashed, shown) for the decoder, besides
# the one it is reading: with 4 MiB chunks one is enough (the decoder of a 600 MB capture
# waited ~0.01 s for chunks with 1, 2 or 3; each one more is +4 MiB at the peak).
READ_AHEAD_CHUNKS = 1
# Chunks read but not yet hashed that the hashing thread may have waiting: it is the slowest
# of the three, so the reader runs ahead of it by this many and then waits (4 MiB each).
HASH_AHEAD_CHUNKS = 1

# Chunks the plain path (no kernel copy) may have alive at once, each reused once free
# (decode/chunk_pool.py): being read, ready, walked, waiting for and being hashed, and
# waiting for and being written by a copying subscriber (report.prestage: two queued).
_PLAIN_POOL_KEEP = READ_AHEAD_CHUNKS + HASH_AHEAD_CHUNKS + 6

OnBytes = Callable[[bytes], None]
_T = TypeVar("_T")
# How long the decoder waits for a chunk before it looks for a signal and waits again.
_WAIT_S = 0.1


@runtime_checkable
class CopyThrough(Protocol):
    """A subscriber that copies the file's bytes itself and hands them back (see above)."""

    def __call__(self, chunk: bytes) -> None: ...

    def copy_through(self, source: int, offset: int, size: int) -> bytes | None:
        """Copy the bytes of file descriptor `source` from `offset` into the copy (at the same
        offset) and return up to `size` of them as read back from it (empty at the end of the
        file); None if it cannot: then the caller reads from `offset` and shows each chunk."""
        ...


class ReadAhead:
    """The chunks of one open file, read, hashed and shown to `on_bytes` ahead of the decoder.

    `head` is what the opener already read from the start of the file (hashed and shown
    like every other chunk); the thread starts with the first `next_chunk` call.
    """

    def __init__(self, file: BinaryIO, head: bytes, on_bytes: OnBytes | None = None) -> None:
        self._file = file
        self._head = head
        self._on_bytes = on_bytes
        self._hash = hashlib.sha256()
        # The decoder's side is the main thread, where Ctrl-C and SIGTERM land as
        # KeyboardInterrupt at any bytecode: queue.Queue's Python lock can be left held by
        # one (bpo-29988: taken in `with`, interrupted before its body), and the cleanup's
        # next put or get waits on it for ever (seen: a run hung after SIGINT). So the
        # chunks come through a SimpleQueue (its get is one C call), the reading thread
        # waits for a token before each chunk (handed back, by another C call, as the
        # decoder takes one), and stopping is a flag.
        self._chunks: queue.SimpleQueue[bytes | BaseException | None] | None = None
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._hashed_all = False  # the hashing thread hashed every chunk read
        self._hash_error: BaseException | None = None
        self._stopped = False
        self._exhausted = False  # the decoder took the end-of-file marker
        self._head_taken = False
        self.complete = False  # every byte read, hashed and shown
        # False: no SHA-256 (a second reader of a file another one hashes: capture_parts)
        self.digest = True
        # The subscriber's copy may stand for the hash (see the module docstring), and did:
        self.hash_in_copy = False
        self.by_copy = False

    @property
    def sha256(self) -> str:
        """SHA-256 of every byte read (the whole file once `finish` returned with `complete`);
        empty without `digest`, and when the subscriber's copy holds every byte (`by_copy`)."""
        return self._hash.hexdigest() if self.digest and not self.by_copy else ""

    def next_chunk(self) -> bytes | None:
        """The next chunk of the file, or None at its end. Raises what reading raised."""
        if not self._head_taken:
            self._head_taken = True
            self._start()
            return self._head
        if self._chunks is None or self._exhausted:
            return None
        item = _wait_for(self._chunks)
        self._tokens.put(None)  # the reading thread may read one more
        if item is None:
            self._exhausted = True
            return None
        if isinstance(item, BaseException):
            self._exhausted = True
            raise item
        return item

    def finish(self) -> None:
        """Let the thread read, hash and show the rest of the file, and wait for it."""
        self._start()
        self._head_taken = True
        # An OSError was raised to the decoder already; the hash is of what could be read.
        with contextlib.suppress(OSError):
            while self.next_chunk() is not None:
                pass
        self.close()

    def close(self) -> None:
        """Stop the thread where it is (the file stays open: its owner closes it)."""
        thread = self._thread
        if thread is None or self._chunks is None:
            return
        self._stopped = True
        self._tokens.put(None)  # a thread waiting for room to read sees the stop
        thread.join()
        self._thread = None
        self._chunks = None

    def _start(self) -> None:
        if self._thread is None and not self._stopped:
            self._chunks = queue.SimpleQueue()
            # One chunk read ahead and READ_AHEAD_CHUNKS more ready, as before the tokens.
            for _ in range(READ_AHEAD_CHUNKS + 1):
                self._tokens.put(None)
            self._thread = threading.Thread(
                target=self._run, args=(self._chunks,), name="ucx-read-ahead", daemon=True
            )
            self._thread.start()

    def _run(self, chunks: queue.SimpleQueue[bytes | BaseException | None]) -> None:
        put, room = chunks.put, self._tokens.get
        read, pool = self._plain_reads()
        show = self._on_bytes
        hashing: queue.Queue[bytes | None] = queue.Queue(maxsize=HASH_AHEAD_CHUNKS)
        hasher = threading.Thread(
            target=self._hash_chunks, args=(hashing,), name="ucx-sha256", daemon=True
        )
        hasher.start()
        update = hashing.put
        through = self._through()
        # Until the kernel's first copy answers, whether the copy will hold every byte.
        by_copy = through is not None and self.hash_in_copy and self.digest
        offset = start = len(self._head)
        ended: BaseException | None = None
        try:
            if not by_copy:
                update(self._head)
            if show is not None:
                show(self._head)
            while True:
                room()  # a token: the decoder took a chunk (or `close` stops this thread)
                if self._stopped:
                    break
                chunk = through(offset, CHUNK_BYTES) if through is not None else None
                if chunk is None:
                    if through is not None and offset != start:  # the kernel stopped copying
                        if by_copy:
                            raise OSError(
                                f"the copy of this capture stopped at byte {offset}, and "
                                "what was decoded before it was to be hashed from that copy"
                            )
                        self._file.seek(offset)
                    elif by_copy:  # no kernel copy at all: hashed here, as without one
                        by_copy = False
                        update(self._head)
                    through = None
                    chunk = read(offset)
                    if chunk and show is not None:
                        show(chunk)
                if not chunk:
                    break
                offset += len(chunk)
                if not by_copy:
                    update(chunk)
                put(chunk)
            self.by_copy = by_copy
        except BaseException as exc:  # handed to the decoder, which raises it
            ended = exc
        finally:
            # The hash is whole (and `complete` true) only once the hashing thread took
            # every chunk read: the end of the file is told after it is done.
            hashing.put(None)
            hasher.join()
            pool.clear()  # chunks still walked or written live on with their holders
        ended = ended or self._hash_error
        if ended is not None:
            put(ended)
        elif not self._stopped:
            self.complete = self._hashed_all
            put(None)

    def _plain_reads(self) -> tuple[Callable[[int], bytes], ChunkReads]:
        """The next chunk from an offset, read from the file, and the pool it is read into:
        reused chunks where the file is a regular one (read by this thread: no copying
        subscriber, or one the kernel cannot copy for), else read() as it comes (a pipe, a
        device). Never raises: a file that cannot be asked is read(), which raises to the
        decoder."""
        file = self._file
        try:
            regular = isinstance(file, io.FileIO) and stat.S_ISREG(os.fstat(file.fileno()).st_mode)
        except (OSError, ValueError):  # closed, or not a descriptor at all
            regular = False
        if not regular:
            return (lambda offset: file.read(CHUNK_BYTES)), FreshReads()
        pool, fd = chunk_reads(CHUNK_BYTES, _PLAIN_POOL_KEEP), file.fileno()
        return (lambda offset: pool.pread(fd, CHUNK_BYTES, offset)), pool

    def _hash_chunks(self, hashing: queue.Queue[bytes | None]) -> None:
        """The hashing thread: SHA-256 of every chunk, in order, until None."""
        update = self._hash.update if self.digest else _unhashed
        while (chunk := hashing.get()) is not None:
            if self._hash_error is None:  # after a failure, only drained: the reader never waits
                try:
                    update(chunk)
                except BaseException as exc:  # the reader hands it to the decoder
                    self._hash_error = exc
        self._hashed_all = self._hash_error is None

    def _through(self) -> Callable[[int, int], bytes | None] | None:
        """The subscriber's kernel copy of this file from an offset, if it makes one."""
        show, file = self._on_bytes, self._file
        # Only a plain file's descriptor holds exactly the bytes read() returns.
        if not isinstance(show, CopyThrough) or not isinstance(file, io.FileIO):
            return None
        copy_through, source = show.copy_through, file.fileno()
        return lambda offset, size: copy_through(source, offset, size)


def _wait_for(chunks: queue.SimpleQueue[_T]) -> _T:
    """The next item, waited for in short spans: a signal the kernel handed to another
    thread interrupts no wait here, and Python raises it (KeyboardInterrupt) only between
    two, so a wait without end would keep Ctrl-C from the run until the next chunk came."""
    while True:
        try:
            return chunks.get(timeout=_WAIT_S)
        except queue.Empty:
            continue


def _unhashed(chunk: bytes) -> None:
    """The hash update of a reader without `digest`."""
