"""Files of a report directory: streaming SHA-256 (hash while copying or writing, never a
whole file in memory), opening without following links, and the names a signed statement may
give them. Below every layer: the report writes these files, the signer names them."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

# Large enough that per-call overhead vanishes (512 MiB hash + copy in about a second),
# small enough that memory stays flat however large a capture is.
CHUNK_BYTES = 1 << 20


# A signed report directory's layout: the envelope signs every other file, report.json first.
ENVELOPE_NAME = "report.intoto.json"
PRIMARY_SUBJECT = "report.json"


def unsafe_name_reason(name: str) -> str | None:
    """Why `name` is not a safe subject name (relative POSIX path inside the directory), or None."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return "not a relative POSIX path"
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "contains an empty, '.' or '..' component"
    if name == ENVELOPE_NAME:
        return "names the envelope itself"
    if PurePosixPath(name).as_posix() != name:
        return "not in normal form"
    return None


@dataclass(frozen=True, slots=True)
class FileDigest:
    """One file of a report directory: its relative POSIX path, SHA-256 (hex) and size."""

    path: str
    sha256: str
    size: int


def _pump(source: io.FileIO, sink: BinaryIO | None) -> tuple[str, int]:
    """Read `source` to its end in fixed chunks, hashing and optionally writing each one."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK_BYTES)
    view = memoryview(buffer)
    size = 0
    while True:
        count = source.readinto(view)
        if not count:
            break
        chunk = view[:count]
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)
        size += count
    return digest.hexdigest(), size


def open_regular_nofollow(path: Path) -> io.FileIO:
    """Open `path` for reading, refusing a symlink or anything that is not a regular file.

    The check is made on the opened descriptor, so the file cannot be swapped between
    the check and the read. O_NONBLOCK keeps a FIFO planted in its place from blocking the
    open (it has no effect on reading a regular file).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(f"{path}: not a regular file")
        return os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def sha256_file(path: Path, *, follow_symlinks: bool = True) -> tuple[str, int]:
    """SHA-256 (hex) and size of a file, read in chunks.

    With `follow_symlinks=False` a symlink raises OSError (ELOOP) instead of being read.
    """
    if follow_symlinks:
        with path.open("rb", buffering=0) as source:
            return _pump(source, None)
    with open_regular_nofollow(path) as source:
        return _pump(source, None)


def copy_hashed(source: Path, destination: Path) -> tuple[str, int]:
    """Copy `source` to a new file `destination` and hash it in the same pass.

    The destination must not exist (exclusive create). The hash is of the bytes written,
    which are the bytes the statement later names.
    """
    with source.open("rb", buffering=0) as src, destination.open("xb") as dst:
        return _pump(src, dst)


class HashingWriter(io.RawIOBase):
    """A write-only raw stream that hashes what passes through it to an underlying file.

    Wrap it in `io.TextIOWrapper(io.BufferedWriter(...))` to stream text (CSV) to disk while
    hashing exactly the encoded bytes that reach the file.
    """

    def __init__(self, sink: BinaryIO) -> None:
        super().__init__()
        self._sink = sink
        self._digest = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data).cast("B")
        written = self._sink.write(view)
        if written is None or written != len(view):
            # A short write would make the hash disagree with the file; the sink is a
            # buffered file object, which never writes short.
            raise OSError(f"short write to {getattr(self._sink, 'name', 'file')}")
        self._digest.update(view)
        self.size += written
        return written

    def close(self) -> None:
        if not self.closed:
            try:
                self._sink.close()
            finally:
                super().close()

    def hexdigest(self) -> str:
        """SHA-256 (hex) of everything written so far."""
        return self._digest.hexdigest()
