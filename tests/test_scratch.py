"""Scratch directories name their owner; a dead owner's are removed, nothing else is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.scratch import owner_tag, remove_stale_scratch, scratch_dir


def _dead_pid() -> int:
    """A pid that was just used and is gone (reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_scratch_directory_is_private_and_names_its_kind_and_owner(tmp_path: Path) -> None:
    made = scratch_dir("pcap", tmp_path)
    assert made.parent == tmp_path and made.is_dir()
    assert made.name.startswith(f"ucx-pcap-{owner_tag()}-")
    assert made.stat().st_mode & 0o777 == 0o700
    assert scratch_dir("pcap", tmp_path) != made


@pytest.mark.parametrize("kind", ["", "two-words", "Upper", "../up"])
def test_a_kind_that_would_blur_the_name_is_refused(tmp_path: Path, kind: str) -> None:
    with pytest.raises(ValueError, match="lower-case word"):
        scratch_dir(kind, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_only_a_dead_owners_scratch_is_removed(tmp_path: Path) -> None:
    mine = scratch_dir("lab", tmp_path)
    (mine / "log").write_text("in use")
    dead = tmp_path / f"ucx-image-{_dead_pid()}-12345-abc123"
    (dead / "rootfs" / "etc").mkdir(parents=True)
    (dead / "rootfs" / "etc" / "hosts").write_text("x")
    reused = tmp_path / f"ucx-host-{os.getpid()}-1-abc123"  # this pid, another start: reused
    reused.mkdir()
    untouched = [
        tmp_path / f"ucx-remote-{_dead_pid()}",  # no owner tag: not ours to judge
        tmp_path / f"other-pcap-{_dead_pid()}-1-abc",
        tmp_path / f"ucx-two-words-{_dead_pid()}-1-abc",
    ]
    for path in untouched:
        path.mkdir()
    a_file = tmp_path / f"ucx-pcap-{_dead_pid()}-1-abc123"  # a file by that name: not a dir
    a_file.write_text("")
    link = tmp_path / f"ucx-pcap-{_dead_pid()}-1-def456"  # a link: never followed
    link.symlink_to(mine)

    removed = remove_stale_scratch(tmp_path)

    assert sorted(removed) == sorted([dead, reused])
    assert not dead.exists() and not reused.exists()
    assert (mine / "log").read_text() == "in use"
    assert all(path.is_dir() for path in untouched)
    assert a_file.is_file() and link.is_symlink()


def test_a_missing_root_removes_nothing(tmp_path: Path) -> None:
    assert remove_stale_scratch(tmp_path / "none") == []
