"""Read a small file the user names (a profile, a waiver file): a regular file, once, bounded.

Opened without blocking and checked before reading: a FIFO with no writer would block
forever, a device may never end, and a pipe gives its bytes once (what was judged must be
what the report signs).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn


def read_user_file(path: Path, limit: int, what: str, fail: Callable[[str], NoReturn]) -> bytes:
    """At most `limit` bytes of the regular file `path`, else `fail(problem)`; `what` names
    the kind of file in the problem ("a profile file")."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        fail("no such file")
    except IsADirectoryError:
        fail(f"is a directory, not {what}")
    except OSError as exc:
        fail(f"cannot read: {exc.strerror or exc}")
    mode = os.fstat(descriptor).st_mode
    if not stat.S_ISREG(mode):
        os.close(descriptor)
        if stat.S_ISDIR(mode):
            fail(f"is a directory, not {what}")
        fail(f"is {_file_kind(mode)}, not a regular file; write it to a file")
    with os.fdopen(descriptor, "rb") as handle:
        try:
            return handle.read(limit + 1)
        except OSError as exc:
            fail(f"cannot read: {exc.strerror or exc}")


def _file_kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"
