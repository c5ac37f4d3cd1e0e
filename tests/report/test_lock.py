"""The report directory lock and the removal of siblings that dead runs left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.errors import ConformanceError
from conformance.report.lock import (
    acquire,
    hidden_sibling,
    hold,
    lock_path,
    remove_stale_siblings,
)
from conformance.scratch import owner_alive, owner_tag


def _dead_pid() -> int:
    """A pid that was just used and is gone (reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_file_names_the_holder_and_is_removed_on_release(tmp_path: Path) -> None:
    report = tmp_path / "r"
    lock = acquire(report)
    text = lock_path(report).read_text()
    assert text.startswith(f"pid {os.getpid()} on ")
    lock.release()
    lock.release()  # twice is harmless
    assert not lock_path(report).exists()


def test_the_same_process_may_take_its_own_lock_again(tmp_path: Path) -> None:
    report = tmp_path / "r"
    with hold(report), hold(report):  # a run, then the report writer inside it
        assert lock_path(report).exists()
    assert not lock_path(report).exists()


def test_another_process_is_refused_while_held(tmp_path: Path) -> None:
    report = tmp_path / "r"
    code = (
        "import sys; from pathlib import Path; from conformance.report.lock import acquire\n"
        "from conformance.errors import ConformanceError\n"
        "try:\n    acquire(Path(sys.argv[1]))\n"
        "except ConformanceError as exc:\n    print(exc); sys.exit(3)\n"
    )
    with hold(report):
        done = subprocess.run(
            [sys.executable, "-c", code, str(report)], check=False, capture_output=True, text=True
        )
    assert done.returncode == 3, done.stderr
    assert f"another run is writing this report directory (pid {os.getpid()} on " in done.stdout


def test_a_lock_file_left_by_a_dead_holder_does_not_block(tmp_path: Path) -> None:
    report = tmp_path / "r"
    lock_path(report).write_text("pid 1 on elsewhere, started long ago\n")  # not locked
    with hold(report):
        assert lock_path(report).read_text().startswith(f"pid {os.getpid()} ")


def test_parent_directories_are_created(tmp_path: Path) -> None:
    with hold(tmp_path / "a" / "b" / "r"):
        assert (tmp_path / "a" / "b").is_dir()


def test_a_parent_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ConformanceError, match="cannot write a report here"):
        acquire(tmp_path / "f" / "r")


def test_siblings_carry_their_owner_and_only_dead_owners_lose_them(tmp_path: Path) -> None:
    report = tmp_path / "r"
    mine = hidden_sibling(report, "partial", create=True)
    assert f".r.partial-{owner_tag()}-" in mine.name
    dead = _dead_pid()
    stale = [
        tmp_path / f".r.partial-{dead}-12345-0a1b2c3d",
        tmp_path / f".r.prestage-{dead}-12345-0a1b2c3d",
        tmp_path / f".r.old-{dead}-12345-0a1b2c3d",
    ]
    for path in stale:
        path.mkdir()
        (path / "file").write_text("half a report")
    reused = tmp_path / f".r.partial-{os.getpid()}-1-0a1b2c3d"  # our pid, another start time
    reused.mkdir()
    others = [
        tmp_path / ".r.partial-0a1b2c3d",  # an older harness's name: owner unknown, kept
        tmp_path / f".other.partial-{dead}-12345-0a1b2c3d",  # another report's
        tmp_path / "r-notes",
    ]
    for path in others:
        path.mkdir()
    removed = remove_stale_siblings(report)
    assert sorted(removed) == sorted([*stale, reused])
    assert mine.exists()
    assert all(path.exists() for path in others)


def test_owner_alive() -> None:
    pid, start = (int(part) for part in owner_tag().split("-"))
    assert owner_alive(pid, start)
    assert not owner_alive(pid, start + 1)  # the pid was reused by a later process
    assert not owner_alive(_dead_pid(), 1)
