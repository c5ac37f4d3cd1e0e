"""Seal a report directory: the DSSE envelope (Ed25519) around an in-toto Statement v1 that
names every file with its SHA-256, and the recognition of a directory this harness sealed
(conformance/report_dirs.py refuses to write anything into one).

The report layer writes the files and asks a `Sealer` (conformance.report.interface) for the
envelope bytes; it never touches a key.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from conformance.digest import ENVELOPE_NAME, FileDigest, open_regular_nofollow
from conformance.sign.dsse import (
    MAX_ENVELOPE_BYTES,
    EnvelopeError,
    SigningKey,
    parse_envelope,
    sign_envelope,
)
from conformance.sign.key_file import raw_fingerprint, raw_public_key_pem
from conformance.sign.statement import StatementError, build_statement, parse_statement


class _PublicKey(Protocol):
    def public_bytes_raw(self) -> bytes: ...


class SealingKey(SigningKey, Protocol):
    """A private key that signs and names its public half (cryptography's Ed25519PrivateKey,
    or sign/system_ed25519.py's)."""

    def public_key(self) -> _PublicKey: ...


class Ed25519Sealer:
    """Seals report directories with one Ed25519 key."""

    def __init__(self, key: SealingKey) -> None:
        self._key = key
        public = key.public_key().public_bytes_raw()
        self.fingerprint = raw_fingerprint(public)
        self.public_key_pem = raw_public_key_pem(public)

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
