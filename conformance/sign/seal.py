"""Seal a report directory: the DSSE envelope (Ed25519) around an in-toto Statement v1 that
names every file with its SHA-256, the recognition of a directory this harness sealed, and
the refusal to write anything into one (`refuse_inside_report`).

The report layer writes the files and asks a `Sealer` (conformance.report.interface) for the
envelope bytes; it never touches a key.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.digest import ENVELOPE_NAME, FileDigest, open_regular_nofollow
from conformance.errors import ConformanceError
from conformance.sign.dsse import EnvelopeError, parse_envelope, sign_envelope
from conformance.sign.keys import fingerprint, public_key_pem
from conformance.sign.statement import StatementError, build_statement, parse_statement
from conformance.sign.verify import MAX_ENVELOPE_BYTES


class Ed25519Sealer:
    """Seals report directories with one Ed25519 key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.fingerprint = fingerprint(key.public_key())
        self.public_key_pem = public_key_pem(key.public_key())

    def envelope(self, files: Iterable[FileDigest], predicate: Mapping[str, Any]) -> bytes:
        """The signed envelope naming exactly `files` (the statement's bytes are signed as is)."""
        return sign_envelope(build_statement(files, predicate), self._key, self.fingerprint)

    def sealed_files(self, directory: Path) -> set[str] | None:
        """The files a previous report of ours at `directory` holds, or None if it is not one.

        The statement is read without verifying its signature: it only decides whether
        replacing the directory could destroy anything but a report this tool wrote.
        """
        return sealed_files(directory)


def sealed_files(directory: Path) -> set[str] | None:
    """See `Ed25519Sealer.sealed_files` (no key needed to recognise a report)."""
    try:
        with open_regular_nofollow(directory / ENVELOPE_NAME) as handle:
            data = handle.read(MAX_ENVELOPE_BYTES + 1)
        statement = parse_statement(parse_envelope(data).payload)
    except (OSError, EnvelopeError, StatementError):
        return None
    present: set[str] = set()
    for root, dirs, files in os.walk(directory, followlinks=False):
        base = Path(root)
        rel = base.relative_to(directory).as_posix()
        prefix = "" if rel == "." else rel + "/"
        if any((base / d).is_symlink() for d in dirs):
            return None
        present.update(prefix + name for name in files)
    present.discard(ENVELOPE_NAME)
    return present if present <= set(statement.subjects) else None


def enclosing_report(path: Path) -> Path | None:
    """The signed report directory that `path` is, or lies inside, or None.

    A directory holding a regular `report.intoto.json` counts (signed or not: either way a
    file added inside it makes `verify` fail). Symlinks are resolved first: a link into a
    report is inside it.
    """
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop: judge the path as written
        resolved = path.absolute()
    for directory in (resolved, *resolved.parents):
        try:
            if stat.S_ISREG(os.lstat(directory / ENVELOPE_NAME).st_mode):
                return directory
        except OSError:
            continue
    return None


def refuse_inside_report(path: Path, what: str) -> None:
    """ConformanceError when writing `path` would add a file to a signed report directory
    (every later `verify` of it would fail on the extra file). `what` names the option."""
    report = enclosing_report(path.parent)
    if report is not None:
        raise ConformanceError(
            f"{what} {path}: inside the signed report {report}; a file added there makes it"
            " fail verification (choose a path outside it)"
        )
