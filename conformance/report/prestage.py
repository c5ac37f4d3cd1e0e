"""Copy evidence files for the report while the run is still judging them.

Copying and hashing a large capture is the report's biggest cost (about 1 s for 600 MB
here). The bytes cannot change meaning between judging and signing, so the copy can start
as soon as the file is known: a worker thread copies each file into a hidden sibling of the
report directory (same filesystem, so the report takes it with a rename), while the main
thread decodes. File I/O and SHA-256 release the GIL, so on two cores the copy is nearly
free. The report still compares each copy's hash with the one the decoder computed, so a
file that changed meanwhile is refused exactly as before.

Captures the decoder reads anyway are better copied from what it reads (`start(...,
teed=True)`): the reader shows every chunk it hashed to a copier (`copier`), which writes it
into the copy, so the file is read once, hashed once, and the copy is exactly the bytes
that were judged. A teed copy the reader did not show in full (`done(..., complete=False)`)
or that could not be written (a full disk) is dropped and the report copies the file
itself. Where the kernel can, the copy is made by copy_file_range (between two file systems:
sendfile) and the reader takes the
bytes back from the copy (decode.read_ahead.CopyThrough): the same guarantee for a third of
the CPU of writing each chunk.

When the decoder took every byte back from such a copy, it hashed none of them
(decode/read_ahead.py): the copy is what was decoded, so `done` has the copy hashed, while the
run builds its records, judges and writes its tables, and `take` waits for that digest. It is
the file's SHA-256 in the report; a copy that cannot be read back in full then is an error,
never a fresh copy of a file that may have changed since. The hashing runs in a small child
interpreter (`_CopyHash`): a thread here needs the GIL between two reads, and the run's
compiled steps (the flows' build, the tables) hold it for a quarter of a second at a time
(2M-packet web mix: 1.24-1.59 s for 0.79 s of CPU with 1 MiB reads; 1.03 s with 4 MiB
reads, +4 MiB at the run's peak). Where no child can be started, `take` hashes the copy.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from conformance.decode import read_ahead
from conformance.decode.chunk_pool import chunk_reads
from conformance.digest import copy_hashed, sha256_file

# Chunks (of decode.read_ahead.CHUNK_BYTES) a teed copy's writer may have waiting.
_QUEUED_CHUNKS = 2
# copy_file_range steps: 1 MiB steps cost 2.4x the CPU of 2 MiB and larger ones here.
_KERNEL_COPY_BYTES = 8 << 20
# Linux (and FreeBSD 13+) have copy_file_range; elsewhere the reader writes each chunk.
_KERNEL_COPY = hasattr(os, "copy_file_range")
# Where copy_file_range refuses from the first byte (between two file systems: EXDEV since
# Linux 5.19 and before 5.3; ENOSYS, EOPNOTSUPP), sendfile(2) makes the same copy in the
# kernel (both come down to splicing page-cache pages), so a capture on another disk than
# the report is still read back from its copy (read through the reader, the 2M web mix's
# peak was 65 MiB against 62, and its SHA-256 taken during the walk). macOS's sendfile
# writes only to sockets: refused, and the reader writes the copy.
_SENDFILE = hasattr(os, "sendfile")
# The child that hashes a copy the decoder read back (`_CopyHash`): its own interpreter,
# with no site packages. The copy was just written, so it is in the page cache: the child
# maps it 4 MiB at a time and hashes the cached pages themselves (2M web mix: 0.08 s of
# system time against 0.16-0.26 s for reading it into a buffer, and 2.3 GB less memory
# traffic beside the run; its RSS 16 MiB). Where a window cannot be mapped (a file system
# without mmap) it reads the rest in 1 MiB steps. The size is what it hashed, which the
# parent compares with the size it copied.
_HASHER = """
import hashlib, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NOFOLLOW)
digest, size, step = hashlib.sha256(), 0, 4 << 20
flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
end = os.fstat(fd).st_size
try:
    while size < end:
        with mmap.mmap(fd, min(step, end - size), flags, mmap.PROT_READ, offset=size) as window:
            digest.update(window)
            size += len(window)
except (OSError, ValueError):
    pass
view = memoryview(bytearray(1 << 20))
while count := os.preadv(fd, [view], size):
    digest.update(view[:count])
    size += count
sys.stdout.write(f"{digest.hexdigest()} {size}")
"""
_DIGEST_LINE = re.compile(rb"[0-9a-f]{64} [0-9]+")


class Prestage:
    """Background copies of evidence files, taken by the report or removed by `close`."""

    def __init__(self, report_dir: Path) -> None:
        self._report_dir = report_dir.absolute()
        self._dir: Path | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: dict[Path, Future[tuple[Path, str, int]]] = {}
        self._tees: dict[Path, Path] = {}  # source -> staged copy the decoder writes
        self._open: dict[Path, _TeedCopy] = {}
        self._teed: dict[Path, tuple[Path, str, int] | _CopyHash] = {}

    def start(self, sources: Sequence[Path], *, teed: bool = False) -> None:
        """Begin copying `sources` into the staging directory.

        Without `teed`, a worker thread copies them (in order, one at a time). With it,
        nothing is copied here: each copy is written from what the decoder reads (`copier`
        / `done`).
        """
        if not sources:
            return
        from conformance.report.lock import hidden_sibling

        self._report_dir.parent.mkdir(parents=True, exist_ok=True)
        # Named before it is made: `close` removes it wherever an interrupt lands.
        self._dir = hidden_sibling(self._report_dir, "prestage", create=False)
        self._dir.mkdir()
        if teed:
            for index, source in enumerate(sources):
                self._tees.setdefault(source.resolve(), self._dir / f"{index}.copy")
            return
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ucx-prestage")
        for index, source in enumerate(sources):
            destination = self._dir / f"{index}.copy"
            self._jobs[source.resolve()] = self._pool.submit(_copy, source, destination)

    def copier(self, source: Path) -> Callable[[bytes], None] | None:
        """Where the reader of `source` shows each chunk it read, in order; None if not staged.

        The copier writes the chunk into the staged copy. It never raises: a write that
        fails (a full disk) leaves the copy incomplete, and `done` drops it.
        """
        key = source.resolve()
        destination = self._tees.pop(key, None)
        if destination is None:
            return None
        copy = self._open[key] = _TeedCopy(destination)
        return copy

    def done(self, source: Path, sha256: str | None, complete: bool) -> None:
        """The reader finished `source`: keep its copy if `complete` (the reader showed every
        byte) and every chunk was written. `sha256` is of every byte; None when the reader
        took every byte back from the copy and hashed none: the copy is hashed here."""
        key = source.resolve()
        copy = self._open.pop(key, None)
        if copy is None:
            return
        copy.close()
        if not complete or copy.error is not None:
            copy.destination.unlink(missing_ok=True)
            return
        if sha256 is None:
            # One hashing child at a time: a serial run of many captures would otherwise
            # start one per file while the next files are read (each ~9 MiB).
            for pending in self._teed.values():
                if isinstance(pending, _CopyHash) and pending.running:
                    pending.settle()
            self._teed[key] = _CopyHash(copy.destination, copy.size)
        else:
            self._teed[key] = (copy.destination, sha256, copy.size)

    def take(self, source: Path) -> tuple[Path, str, int] | None:
        """The staged copy of `source` (path, SHA-256, size), or None: copy it again then.

        Raises OSError when a copy the decoder read back cannot be hashed in full: the
        bytes judged were that copy's, so a new one could not stand for them.
        """
        teed = self._teed.pop(source.resolve(), None)
        if isinstance(teed, _CopyHash):
            return teed.result()
        if teed is not None:
            return teed
        job = self._jobs.pop(source.resolve(), None)
        if job is None:
            return None
        try:
            return job.result()
        except OSError:
            return None  # e.g. the file vanished or is unreadable: the report copies it itself

    def close(self) -> None:
        """Stop (waiting for a copy under way) and remove whatever was not taken."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._jobs.clear()
        for copy in self._open.values():
            copy.close()
        self._open.clear()
        self._tees.clear()
        for teed in self._teed.values():
            if isinstance(teed, _CopyHash):
                teed.stop()
        self._teed.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


class _TeedCopy:
    """A staged copy written chunk by chunk from what the decoder reads.

    The writes happen on a thread of their own: the reading thread goes on to hash the next
    chunk while the kernel takes this one (on two cores, reading, hashing and copying a large
    capture together took longer than decoding it). At most `_QUEUED_CHUNKS` wait.

    Where the kernel copies the file itself (`copy_through`), only the head the opener read
    goes through that thread; the rest is copied by copy_file_range (or sendfile, through a
    descriptor of its own: the thread writes the head at the handle's position) at the same
    offsets.
    """

    def __init__(self, destination: Path) -> None:
        self.destination = destination
        self.error: OSError | ValueError | None = None
        self._written = 0  # by the writer thread
        self._handle = destination.open("xb+", buffering=0)
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUED_CHUNKS)
        self._thread: threading.Thread | None = threading.Thread(
            target=self._run, name="ucx-evidence-copy", daemon=True
        )
        self._thread.start()
        self._kernel = True  # copy_file_range (or sendfile) still usable for this file
        self._sendfile = -1  # the descriptor sendfile writes through, once it took over
        self._start = -1  # where the kernel's copy starts (-1: not yet asked)
        self._copied = 0  # and where it ends
        self._returned = 0  # bytes copy_through handed back (on the reader's thread)
        self._source_end = False
        # The read-back's chunks (decode/chunk_pool.py), of the size the reader asks for.
        self._reads = chunk_reads(read_ahead.CHUNK_BYTES)

    @property
    def size(self) -> int:
        """Bytes in the copy (read once the copy is closed)."""
        return self._written + self._returned

    def __call__(self, chunk: bytes) -> None:
        """Queue `chunk` for the copy (on the reader's thread); never raises."""
        self._chunks.put(chunk)

    def copy_through(self, source: int, offset: int, size: int) -> bytes | None:
        """decode.read_ahead.CopyThrough: copy in the kernel ahead of `offset` (in steps of
        `_KERNEL_COPY_BYTES`), return the next `size` bytes read back from the copy."""
        if not self._kernel or self.error is not None or not _KERNEL_COPY:
            return None
        if self._start < 0:
            self._start = self._copied = offset
        try:
            while self._copied < offset + size and not self._source_end:
                copied = self._kernel_copy(source, self._copied)
                # Some kernels and file systems report 0 before the end of a file
                # (copy_file_range(2) on procfs-like files): the end only if a read agrees.
                if copied == 0 and os.pread(source, 1, self._copied):
                    raise OSError(f"the kernel's copy stopped at {self._copied} before the end")
                self._copied += copied
                self._source_end = copied == 0
            want = min(size, self._copied - offset)
            chunk = self._reads.pread(self._handle.fileno(), want, offset) if want > 0 else b""
            if len(chunk) != max(want, 0):
                raise OSError(f"read {len(chunk)} of {want} bytes back from the copy")
            if not chunk:
                self._reads.clear()  # the end: the last chunks go with the decoder
        except OSError as exc:
            # From here the reader reads and shows chunks; a copy the kernel began is dropped
            # (its next writes would land at the handle's position, not at `offset`).
            self._kernel = False
            self._reads.clear()
            if self._copied > self._start:
                self.error = exc
            return None
        self._returned += len(chunk)
        return chunk

    def _kernel_copy(self, source: int, at: int) -> int:
        """Copy up to `_KERNEL_COPY_BYTES` of `source` from `at` into the copy at `at`."""
        if self._sendfile < 0:
            try:
                return os.copy_file_range(source, self._handle.fileno(), _KERNEL_COPY_BYTES, at, at)
            except OSError:
                if at != self._start or not _SENDFILE:
                    raise  # part way: the caller drops the copy, as before
                self._sendfile = os.open(self.destination, os.O_WRONLY | os.O_CLOEXEC)
        os.lseek(self._sendfile, at, os.SEEK_SET)
        return os.sendfile(self._sendfile, source, at, _KERNEL_COPY_BYTES)

    def _run(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            if self.error is not None:
                continue  # drained, not written: the copy is dropped
            try:
                view = memoryview(chunk)
                while view:
                    written = self._handle.write(view)
                    view = view[written or 0 :]
                self._written += len(chunk)
            except (OSError, ValueError) as exc:  # e.g. disk full: the report copies the file
                self.error = exc

    def close(self) -> None:
        """Wait for every queued chunk to be written, then close the file."""
        self._reads.clear()
        if self._thread is not None:
            self._chunks.put(None)
            self._thread.join()
            self._thread = None
        if self._sendfile >= 0:
            os.close(self._sendfile)
            self._sendfile = -1
        self._handle.close()


class _CopyHash:
    """The SHA-256 of a staged copy, taken by a child interpreter (see the module docstring)."""

    def __init__(self, destination: Path, size: int) -> None:
        self.destination = destination
        self.size = size
        self._outcome: tuple[Path, str, int] | OSError | None = None
        self._child: subprocess.Popen[bytes] | None = None
        if not sys.executable or getattr(sys, "frozen", False):
            return  # no interpreter to start (an embedded or frozen one): `settle` hashes
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _HASHER, str(destination)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # a Ctrl-C's traceback there says nothing new
            )
        except OSError:
            self._child = None  # no interpreter to start: `settle` hashes the copy here

    @property
    def running(self) -> bool:
        """The child may still be hashing (not waited for yet)."""
        return self._child is not None

    def result(self) -> tuple[Path, str, int]:
        """(copy, SHA-256, size); OSError if the copy does not hold exactly `size` bytes."""
        outcome = self._outcome if self._outcome is not None else self.settle()
        if isinstance(outcome, OSError):
            raise outcome
        return outcome

    def settle(self) -> tuple[Path, str, int] | OSError:
        """Wait for the digest (or hash the copy here, without a child) and keep it."""
        child = self._child
        try:
            if child is None:
                sha256, size = sha256_file(self.destination, follow_symlinks=False)
            else:
                try:
                    out, _ = child.communicate()
                finally:  # interrupted while waiting: the child goes too
                    self.stop()
                words = out.decode("ascii", "replace").split()
                if child.returncode != 0 or len(words) != 2 or not _DIGEST_LINE.fullmatch(out):
                    raise OSError(f"{self.destination}: the copy could not be hashed")
                sha256, size = words[0], int(words[1])
            if size != self.size:
                raise OSError(
                    f"{self.destination}: {size} bytes read back from a copy of {self.size}"
                )
            self._outcome = (self.destination, sha256, size)
        except OSError as exc:
            self._outcome = exc
        return self._outcome

    def stop(self) -> None:
        """End the child, if it runs, and reap it."""
        child, self._child = self._child, None
        if child is not None:
            child.kill()  # nothing if it has ended
            child.wait()
            if child.stdout is not None:
                child.stdout.close()


def _copy(source: Path, destination: Path) -> tuple[Path, str, int]:
    sha256, size = copy_hashed(source, destination)
    return destination, sha256, size
