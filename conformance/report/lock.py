"""One run per report directory: an exclusive lock from before judging until the report is in place.

The lock is `flock(2)` on `.<name>.lock` beside REPORT_DIR (the directory itself may not exist
yet, and is replaced by a rename at the end). The file names its holder (pid, host, start) so
a second run is refused at once with a message that says who holds it. The kernel drops the
lock when its holder dies, however it dies, so a lock file left by a killed run never blocks;
the holder removes the file when it lets go (after checking, when taking it, that the file it
locked is still the one at that name).

Taking the lock also proves the directory can be written (a probe directory is made and
removed), so an unwritable or impossible REPORT_DIR is one line before anything is judged.

Hidden siblings (`.partial`, `.prestage`, `.old`, see report.assemble; `.observe`, the files
the observation derives, run.py) carry their owner's pid
and process start time in their names (`owner_tag`). While holding the lock, the ones whose
owner is gone (a run killed with SIGKILL, a power cut) are removed; a live owner's never are.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from conformance.errors import ConformanceError
from conformance.scratch import owner_alive, owner_tag

# Kinds of hidden sibling a run makes next to REPORT_DIR (report.assemble, report.prestage,
# run.py's observation scratch).
SIBLING_KINDS: Final = ("partial", "prestage", "old", "probe", "observe")
# The holder line is a few dozen bytes; more is not ours.
_MAX_HOLDER_BYTES: Final = 4096
_SIBLING: Final = re.compile(
    r"\.(?P<name>.+)\.(?P<kind>" + "|".join(SIBLING_KINDS) + r")-(?P<pid>[0-9]+)-(?P<start>[0-9]+)"
    r"-[0-9a-f]+",
    re.ASCII,
)


def remove_stale_siblings(target: Path) -> list[Path]:
    """Remove hidden siblings of `target` whose owner is gone; return what was removed.

    Only names made by this harness with an owner tag are considered; anything else in the
    parent directory is left alone.
    """
    removed: list[Path] = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        found = _SIBLING.fullmatch(entry.name)
        if found is None or found["name"] != target.name:
            continue
        if owner_alive(int(found["pid"]), int(found["start"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
        if not os.path.lexists(entry):
            removed.append(entry)
    return removed


def lock_path(target: Path) -> Path:
    """The lock file of REPORT_DIR `target`: `.<name>.lock` beside it."""
    return target.with_name(f".{target.name}.lock")


def _unusable(target: Path, exc: OSError) -> ConformanceError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        reason = "a parent is not a directory"
    return ConformanceError(
        f"{target}: cannot write a report here ({reason}); choose another --report-dir"
    )


@dataclass
class _Held:
    fd: int
    path: Path
    count: int = 1


# This process's locks: a run holds its directory, and writing the report inside that run
# takes the same lock again (flock would refuse a second open file of the same process).
_HELD: dict[Path, _Held] = {}
_HELD_GUARD = threading.Lock()


class ReportLock:
    """A held report-directory lock; `release()` once (more calls do nothing)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        with _HELD_GUARD:
            held = _HELD.get(self.target)
            if held is None:
                return
            held.count -= 1
            if held.count > 0:
                return
            del _HELD[self.target]
            # Unlink while still holding it: a waiter that opened the old file sees it is
            # gone (acquire compares inodes) and starts again.
            with contextlib.suppress(OSError):
                held.path.unlink()
            os.close(held.fd)


def acquire(report_dir: Path) -> ReportLock:
    """Lock REPORT_DIR for this process, or raise ConformanceError naming the holder.

    Creates missing parents, checks that the parent can take the report's hidden siblings,
    and removes the siblings dead runs left behind.
    """
    target = report_dir.absolute()
    with _HELD_GUARD:
        held = _HELD.get(target)
        if held is not None:
            held.count += 1
            return ReportLock(target)
        path = lock_path(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = _lock_file(target, path)
        except OSError as exc:
            raise _unusable(target, exc) from exc
        _HELD[target] = _Held(fd, path)
    lock = ReportLock(target)
    try:
        _probe(target)
        remove_stale_siblings(target)
    except BaseException:
        lock.release()
        raise
    return lock


@contextlib.contextmanager
def hold(report_dir: Path) -> Iterator[ReportLock]:
    """`acquire` for a `with` block."""
    lock = acquire(report_dir)
    try:
        yield lock
    finally:
        lock.release()


def _lock_file(target: Path, path: Path) -> int:
    """Open, flock and label `path`; the descriptor stays open while the lock is held."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    while True:
        fd = os.open(path, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ConformanceError(
                f"{target}: another run is writing this report directory ({holder});"
                " wait for it or choose another --report-dir"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed it after we opened it: take the new one
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, line.encode(), 0)
    return fd


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, _MAX_HOLDER_BYTES, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text.splitlines()[0] if text else "holder not yet named"


def _probe(target: Path) -> None:
    """Make and remove a hidden sibling: the report needs exactly that (assemble, prestage)."""
    probe = hidden_sibling(target, "probe", create=False)
    try:
        probe.mkdir()
    except OSError as exc:
        raise _unusable(target, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            probe.rmdir()


# Tries at a random sibling name before giving up (collisions need a concurrent writer).
_NAME_ATTEMPTS = 16


def hidden_sibling(target: Path, kind: str, *, create: bool) -> Path:
    """A fresh hidden sibling `.<name>.<kind>-<owner>-<random>` (a directory if `create`).

    `<owner>` is this process (report.lock.owner_tag): a later run removes the sibling only
    once that process is gone.
    """
    owner = owner_tag()
    for _ in range(_NAME_ATTEMPTS):
        candidate = target.with_name(f".{target.name}.{kind}-{owner}-{secrets.token_hex(4)}")
        if create:
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            return candidate
        if not os.path.lexists(candidate):
            return candidate
    raise ConformanceError(f"{target.parent}: cannot find a free name for a {kind} directory")
