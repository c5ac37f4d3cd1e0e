"""Writes the files of an unfinished report directory and remembers each one's SHA-256.

Every byte is hashed as it is written (or copied), so the statement signs the bytes this
process produced, not a later re-read of the disk. Files are created exclusively: nothing is
written twice, and the final check that the directory holds exactly the recorded files
catches any writer that bypassed the ledger.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from conformance.digest import (
    CHUNK_BYTES,
    FileDigest,
    HashingWriter,
    copy_hashed,
    unsafe_name_reason,
)


class ReportLedger:
    """The files written under `root`, by relative POSIX name, in the order written."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, FileDigest] = {}

    def _target(self, name: str) -> Path:
        reason = unsafe_name_reason(name)
        if reason:
            raise ValueError(f"report file name {name!r}: {reason}")
        if name in self._files:
            raise ValueError(f"report file {name!r} written twice")
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _record(self, name: str, sha256: str, size: int) -> FileDigest:
        digest = FileDigest(path=name, sha256=sha256, size=size)
        self._files[name] = digest
        return digest

    def write_bytes(self, name: str, data: bytes) -> FileDigest:
        """Write `data` as file `name`; the digest is of exactly these bytes."""
        path = self._target(name)
        with HashingWriter(path.open("xb")) as writer:
            writer.write(data)
        return self._record(name, writer.hexdigest(), writer.size)

    def copy_file(self, source: Path, name: str) -> FileDigest:
        """Copy `source` in as `name`, hashing in the same pass (never whole in memory)."""
        sha256, size = copy_hashed(source, self._target(name))
        return self._record(name, sha256, size)

    def adopt_file(self, staged: Path, sha256: str, size: int, name: str) -> FileDigest:
        """Move a file copied and hashed earlier (report.prestage) in as `name`."""
        target = self._target(name)
        if os.path.lexists(target):
            raise FileExistsError(f"{target}: already written")
        os.rename(staged, target)
        return self._record(name, sha256, size)

    @contextmanager
    def open_text(self, name: str) -> Iterator[TextIO]:
        """Stream UTF-8 text into `name` (newline="" as the csv module wants).

        Undecodable input (lone surrogates from network bytes) is written escaped rather
        than failing the report.
        """
        path = self._target(name)
        writer = HashingWriter(path.open("xb"))
        text = io.TextIOWrapper(
            io.BufferedWriter(writer, CHUNK_BYTES),
            encoding="utf-8",
            errors="backslashreplace",
            newline="",
        )
        try:
            yield text
        finally:
            text.close()
        self._record(name, writer.hexdigest(), writer.size)

    def files(self) -> tuple[FileDigest, ...]:
        """Every file written, in writing order."""
        return tuple(self._files.values())

    def under(self, prefix: str) -> tuple[FileDigest, ...]:
        """The files whose names start with `prefix` (e.g. "evidence/"), sorted by name."""
        return tuple(
            sorted(
                (f for f in self._files.values() if f.path.startswith(prefix)), key=lambda f: f.path
            )
        )

    def check_exact(self) -> None:
        """Raise if the directory holds anything the ledger did not write (or lacks a file)."""
        present: set[str] = set()
        for root, _dirs, files in os.walk(self.root, followlinks=False):
            rel = Path(root).relative_to(self.root).as_posix()
            prefix = "" if rel == "." else rel + "/"
            present.update(prefix + name for name in files)
        expected = set(self._files)
        if present != expected:
            raise RuntimeError(
                f"report directory {self.root} differs from what was written: "
                f"unexpected {sorted(present - expected)}, missing {sorted(expected - present)}"
            )
