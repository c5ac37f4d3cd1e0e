"""Where a report directory lies: inside a signed report or not.

A file added inside a signed report directory makes every later `verify` of it fail, so
every command that writes (a new report, an export, a key, a watch's reports) refuses a
path inside one. Below the report and sign layers, so every writer can ask.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
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


def check_report_dir(report_dir: Path, sealed_files: Callable[[Path], object | None]) -> None:
    """Refuse a REPORT_DIR this run may not take: call it early, before judging.

    Accepted: absent, an empty directory, or a previous report of ours (`sealed_files`
    names its files: conformance.sign.seal.sealed_files), never inside another signed
    report (a file added there makes that one fail verification), whichever command or
    plugin option named it.
    """
    refuse_inside_report(report_dir, "report directory")
    if report_dir.is_symlink():
        raise ConformanceError(f"{report_dir}: is a symlink; give the directory itself")
    if not report_dir.exists():
        return
    if not report_dir.is_dir():
        raise ConformanceError(f"{report_dir}: exists and is not a directory")
    if not any(report_dir.iterdir()):
        return
    if sealed_files(report_dir) is None:
        raise ConformanceError(
            f"{report_dir}: not empty and not a previous ucx-conformance report; "
            "refusing to replace it (choose another --report-dir)"
        )
