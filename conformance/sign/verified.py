"""A signed report directory read only through verified bytes (for `diff`, `export`, `--baseline`).

`open_verified` runs the whole of `verify_report` first (signature, every file's SHA-256,
nothing extra, report.json agrees with the statement) and refuses an unpinned signer unless
the caller allows it. Afterwards every file is read once more, hashed while it is read, and
compared with the digest in the statement whose signature verified; only bytes that match
are handed out. So nothing is ever parsed that the signature does not cover, even if the
directory changes after the check (a file swapped between verification and reading fails
here, naming it).
"""

from __future__ import annotations

import csv
import hashlib
import io
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from conformance.digest import CHUNK_BYTES, ENVELOPE_NAME, PRIMARY_SUBJECT, open_regular_nofollow
from conformance.errors import VerifyError
from conformance.sign.strict_json import StrictJsonError, loads_object
from conformance.sign.verify import MAX_REPORT_JSON_BYTES, VerifyResult, verify_report

# Files handed out whole (report.json, captures.json, a waiver file) are parsed in memory;
# the bound is verify.py's, so anything verify accepted can be read.
MAX_DOCUMENT_BYTES = MAX_REPORT_JSON_BYTES
# A verified copy stays in memory up to this size and spills to a private temporary file
# beyond it, so a day's flows.csv never has to fit in memory.
SPOOL_BYTES = 32 * 1024 * 1024
# csv's default field limit (128 KiB) is below what a long `answers` cell may hold.
CSV_FIELD_LIMIT = 16 * 1024 * 1024

# report.json `format` values this version reads (report/json_report.py FORMAT_VERSION).
READABLE_FORMATS = (1,)

UNPINNED_HINT = (
    "signer not pinned: give --key PUB (the signer's public key you trust), "
    "or --allow-unpinned to check integrity only"
)


@dataclass(frozen=True)
class VerifiedReport:
    """A report directory whose signature and files verified; reads hand out signed bytes only.

    `pinned`: verified against a key the caller gave; otherwise against the key inside the
    report (integrity, not authorship). `envelope_sha256`: SHA-256 of report.intoto.json's
    bytes, the report's identity for diffs, exports and attestations.
    """

    path: Path
    fingerprint: str
    pinned: bool
    envelope_sha256: str
    subjects: Mapping[str, str]  # relative name -> signed SHA-256
    predicate: Mapping[str, Any]
    _documents: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def has(self, name: str) -> bool:
        """Whether the signed statement names `name` (a relative POSIX path)."""
        return name in self.subjects

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """A read-only copy of file `name` whose bytes hashed to the signed digest.

        The file is read once (no symlink followed), hashed and copied in the same pass;
        the copy is handed out only after the digest matched.
        """
        expected = self.subjects.get(name)
        where = self.path / name
        if expected is None:
            raise VerifyError(where, "not covered by the report's signature")
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as copy:
            digest = hashlib.sha256()
            try:
                with open_regular_nofollow(where) as source:
                    while chunk := source.read(CHUNK_BYTES):
                        digest.update(chunk)
                        copy.write(chunk)
            except OSError as exc:
                raise VerifyError(where, f"cannot read: {exc.strerror or exc}") from exc
            if digest.hexdigest() != expected:
                raise VerifyError(
                    where, f"changed since it was verified (SHA-256 {digest.hexdigest()})"
                )
            copy.seek(0)
            yield copy

    def copy_to(self, name: str, destination: Path) -> None:
        """Copy file `name` to `destination`, hashed while written; a copy whose bytes do not
        match the signed digest is removed and refused (the caller reads only the copy)."""
        expected = self.subjects.get(name)
        where = self.path / name
        if expected is None:
            raise VerifyError(where, "not covered by the report's signature")
        destination.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        try:
            with open_regular_nofollow(where) as source, destination.open("xb") as copy:
                while chunk := source.read(CHUNK_BYTES):
                    digest.update(chunk)
                    copy.write(chunk)
        except OSError as exc:
            destination.unlink(missing_ok=True)
            raise VerifyError(where, f"cannot read: {exc.strerror or exc}") from exc
        if digest.hexdigest() != expected:
            destination.unlink(missing_ok=True)
            raise VerifyError(
                where, f"changed since it was verified (SHA-256 {digest.hexdigest()})"
            )

    def read_bytes(self, name: str) -> bytes:
        """File `name`'s verified bytes (bounded: documents, not captures)."""
        with self.open(name) as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise VerifyError(self.path / name, f"larger than {MAX_DOCUMENT_BYTES} bytes")
        return data

    def json(self, name: str) -> dict[str, Any]:
        """File `name` parsed strictly as a JSON object (cached: it is immutable once verified)."""
        cached = self._documents.get(name)
        if cached is None:
            try:
                cached = loads_object(self.read_bytes(name))
            except StrictJsonError as exc:
                raise VerifyError(self.path / name, f"not a JSON object: {exc}") from exc
            self._documents[name] = cached
        return cached

    def report(self) -> dict[str, Any]:
        """report.json, parsed from its verified bytes: a report of a format this version
        reads (VerifyError otherwise: read as another format, its fields could mean other
        things)."""
        document = self.json(PRIMARY_SUBJECT)
        found = document.get("format")
        if type(found) is not int or found not in READABLE_FORMATS:
            raise VerifyError(
                self.path / PRIMARY_SUBJECT,
                f"format {found!r}: this ucx-conformance reads report format"
                f" {', '.join(map(str, READABLE_FORMATS))} (a newer harness wrote it?)",
            )
        return document

    def rows(self, name: str, required: Sequence[str] = ()) -> Iterator[dict[str, str]]:
        """The rows of CSV file `name` as header -> cell mappings, streamed from a verified copy.

        Every cell is a string (a short row's missing cells are ""; cells beyond the header
        are dropped). A header without one of the `required` columns is a VerifyError: a
        table read without them would look empty, and an empty table proves nothing.
        A file the signature does not cover is an error; call `has` first for optional ones.
        """
        with self.open(name) as handle:
            yield from csv_rows(handle, self.path / name, required)

    def line(self, name: str, number: int) -> str | None:
        """Line `number` (1-based) of text file `name`, without its line ending, or None."""
        if number < 1:
            return None
        with self.open(name) as handle:
            for index, raw in enumerate(handle, start=1):
                if index == number:
                    return raw.decode("utf-8", "replace").rstrip("\r\n")
        return None


def csv_rows(handle: IO[bytes], where: Path, required: Sequence[str]) -> Iterator[dict[str, str]]:
    """The rows of the CSV table in `handle` (see `VerifiedReport.rows`); errors name `where`."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    text = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="")
    try:
        reader = csv.DictReader(text, restval="")
        header = reader.fieldnames or []
        missing = [column for column in required if column not in header]
        if missing:
            raise VerifyError(where, f"no column {missing[0]!r} in its header row")
        for row in reader:
            row.pop(None, None)  # cells beyond the header
            yield row
    except csv.Error as exc:
        raise VerifyError(where, f"not a CSV table: {exc}") from exc
    finally:
        text.detach()


def _first_problem(result: VerifyResult, report_dir: Path) -> VerifyError:
    first = result.problems[0]
    more = len(result.problems) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''}; run verify)" if more else ""
    return VerifyError(first.path or report_dir, first.problem + suffix)


def open_verified(
    report_dir: Path, key_path: Path | None, *, allow_unpinned: bool = False
) -> VerifiedReport:
    """Verify `report_dir` (against `key_path` when given) and return its verified reader.

    Raises VerifyError naming the offending file when the report does not verify, or when
    no key pins the signer and `allow_unpinned` is false; SigningKeyError for a bad key file.
    """
    if key_path is None and not allow_unpinned:
        raise VerifyError(report_dir, UNPINNED_HINT)
    result = verify_report(report_dir, key_path)
    if not result.ok:
        raise _first_problem(result, report_dir)
    if result.statement is None:  # verify_report sets it whenever the signature verified
        raise VerifyError(report_dir / ENVELOPE_NAME, "no verified statement")
    return VerifiedReport(
        path=report_dir,
        fingerprint=result.fingerprint,
        pinned=result.pinned,
        envelope_sha256=result.envelope_sha256,
        subjects=dict(result.statement.subjects),
        predicate=result.statement.predicate,
    )
