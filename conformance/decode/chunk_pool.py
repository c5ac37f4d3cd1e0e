"""The read-ahead's chunks read into the same few bytes objects, each once nobody holds it.

Made fresh for every read, a 4 MiB chunk is glibc's to place: the first ones are mappings of
their own, the later ones come from the reading thread's heap once glibc has raised its
mmap threshold, and what that heap keeps free at the walk's end stays resident for the rest
of the run (the 2M-packet RTP capture peaked at 55-56 MiB against 48-50, depending on the
order in which the last chunks were freed). The compiled pool (decode/_chunks.pyx) reads
each chunk into one of a few bytes objects only the pool still holds, so the walk allocates
its chunks once, touches no fresh pages after the first few, and lets go of them all at the
file's end. A chunk somebody still holds (a packet record kept, a copy being written) is
never touched: the pool reads into a fresh one. Without the compiled modules every read is
fresh (os.pread), as before.
"""

from __future__ import annotations

import os
from typing import Protocol

from conformance.decode import compiled

# Chunks alive at once on the path of a copy the kernel makes (report/prestage.py): the one
# being read, one ready and the one the decoder walks (decode/capture_reader.py lets go of
# it before taking the next), and one for slack. The plain path keeps more
# (decode/read_ahead.py: its hash and the report's copy hold chunks too).
POOL_KEEP = 4

_COMPILED = compiled.load(compiled.MODULES[7])


class ChunkReads(Protocol):
    """Reads of a file's chunks of one size."""

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        """`size` bytes of `fd` from `offset` (fewer at the file's end)."""
        ...

    def clear(self) -> None:
        """Let go of the chunks kept for reuse."""
        ...


class FreshReads:
    """Every chunk a new bytes object (the pure-Python path)."""

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        """`size` bytes of `fd` from `offset` (fewer at the file's end)."""
        return os.pread(fd, size, offset)

    def clear(self) -> None:
        """Nothing is kept."""


def chunk_reads(size: int, keep: int = POOL_KEEP) -> ChunkReads:
    """Reads of `size`-byte chunks, at most `keep` of them kept for reuse: pooled where the
    compiled module is there."""
    if _COMPILED is None:
        return FreshReads()
    pool: ChunkReads = _COMPILED.ChunkPool(size, keep)
    return pool
