"""Where a report directory lies: inside a signed report or not.

A file added inside a signed report directory makes every later `verify` of it fail, so
every command that writes (a new report, an export, a key, a watch's reports) refuses a
path inside one. Below the report and sign layers, so every writer can ask.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from conformance.digest import ENVELOPE_NAME
from conformance.errors import ConformanceError


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
