"""Temporary directories that name their owner process, and the removal of a dead owner's.

A run's sources and commands work in private directories of the system's temporary directory
(captures with their secrets blanked, an image's exported files, the lab's logs, a report
being judged again). Each is removed when its owner closes; a process killed with SIGKILL
closes nothing. So every such directory is named `ucx-<kind>-<pid>-<start ticks>-<random>`
(`scratch_dir`), and each run begins by removing the ones whose process is gone
(`remove_stale_scratch`); a live owner's are never touched, nor any name this module did not
make. The same owner tag names the hidden siblings of a report directory (report.lock).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["owner_alive", "owner_tag", "remove_stale_scratch", "scratch_dir"]

# `kind` is a short lower-case word (its own hyphens would make the name ambiguous).
_KIND: Final = re.compile(r"[a-z]+", re.ASCII)
_SCRATCH: Final = re.compile(
    r"ucx-(?P<kind>[a-z]+)-(?P<pid>[0-9]+)-(?P<start>[0-9]+)-[a-z0-9_]+", re.ASCII
)


def _start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count from the last ")".
    fields = text.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def owner_tag() -> str:
    """`<pid>-<start ticks>` of this process: put in a name to say whose it is."""
    pid = os.getpid()
    return f"{pid}-{_start_ticks(pid) or 0}"


def owner_alive(pid: int, start: int) -> bool:
    """Whether the process that made a name tagged `pid-start` still runs (pid reuse aside)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    ticks = _start_ticks(pid)
    return ticks is None or start in (0, ticks)


def scratch_dir(kind: str, root: Path | None = None) -> Path:
    """A new private directory `ucx-<kind>-<owner>-<random>` in `root` (the system's
    temporary directory by default). The caller removes it when done."""
    if not _KIND.fullmatch(kind):
        raise ValueError(f"a scratch kind is a lower-case word, not {kind!r}")
    return Path(tempfile.mkdtemp(prefix=f"ucx-{kind}-{owner_tag()}-", dir=root))


def remove_stale_scratch(root: Path | None = None) -> list[Path]:
    """Remove the scratch directories in `root` whose owner is gone; return what was removed.

    Only directories named by `scratch_dir` and owned by this user are considered (another
    user's cannot be removed, and are theirs to clean); nothing else is looked into.
    """
    where = root if root is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(where.iterdir())
    except OSError:
        return removed
    for entry in entries:
        found = _SCRATCH.fullmatch(entry.name)
        if found is None:
            continue
        try:
            info = entry.lstat()
        except OSError:
            continue
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            continue
        if owner_alive(int(found["pid"]), int(found["start"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        if not os.path.lexists(entry):
            removed.append(entry)
    return removed
