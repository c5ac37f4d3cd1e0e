"""PcapSource hands the user's capture files on as they are (in order, under their report
names, never parsed here), refuses a path it cannot read with one line naming it, and removes
the copies it made without keys when closed."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from conformance.errors import CaptureError
from conformance.evidence.interface import SecretInputs
from conformance.evidence.pcap import PcapSource, capture_evidence_name, check_capture_paths
from conformance.progress import NULL_PROGRESS
from tests.defects import (
    clean_onprem_traffic,
    defect_profile,
    tcp_leak,
    write_pcap,
    write_pcapng,
)
from tests.evidence.secret_captures import capture_with_keys, capture_without_keys

PROFILE = defect_profile()


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the source makes its work directories (watched: nothing may stay behind)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.mark.parametrize(
    ("index", "name", "expected"),
    [
        (0, "site.pcap", "capture-0.pcap"),
        (1, "site.pcapng", "capture-1.pcapng"),
        (2, "SITE.PCAPNG", "capture-2.pcapng"),
        (3, "trace.2026-12-01.cap", "capture-3.cap"),
        (4, "no-extension", "capture-4.pcap"),
    ],
)
def test_capture_evidence_name(index: int, name: str, expected: str) -> None:
    assert capture_evidence_name(index, Path("/captures") / name) == expected


def test_collect_returns_the_files_in_the_order_given(tmp_path: Path, temp_root: Path) -> None:
    second = write_pcap(tmp_path / "z-leak.pcap", tcp_leak())
    first = write_pcapng(tmp_path / "a-clean.pcapng", clean_onprem_traffic())
    source = PcapSource([second, first])
    collected = source.collect(PROFILE, NULL_PROGRESS)
    assert collected.source == "pcap"
    assert collected.captures == (second, first)  # as given, not sorted by name
    assert collected.files == ((second, "capture-0.pcap"), (first, "capture-1.pcapng"))
    assert collected.originals == (second, first)
    assert dict(collected.logs) == {} and collected.notes == ()
    assert collected.capture_loss == {}
    source.close()
    assert second.is_file() and first.is_file()  # the user's files are never removed
    assert list(temp_root.iterdir()) == []  # no keys to remove: no copy was made


def test_collect_never_parses_a_capture(tmp_path: Path) -> None:
    """Decoding is the observe step's: a file that is no capture at all is still a file."""
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture file\n")
    collected = PcapSource([junk]).collect(PROFILE, NULL_PROGRESS)
    assert collected.captures == (junk,) and collected.files == ((junk, "capture-0.pcap"),)


def test_the_secrets_asked_for_travel_with_the_captures(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "a.pcap", clean_onprem_traffic())
    har = tmp_path / "proxy.har"
    request = SecretInputs(hars=(har,), keep_secrets=True)
    collected = PcapSource([capture], request).collect(PROFILE, NULL_PROGRESS)
    assert collected.secrets == request


def test_a_capture_with_keys_is_judged_and_copied_without_them(
    tmp_path: Path, temp_root: Path
) -> None:
    with_keys = capture_with_keys(tmp_path / "keys.pcapng")
    plain = write_pcap(tmp_path / "plain.pcap", clean_onprem_traffic())
    source = PcapSource([plain, with_keys])
    collected = source.collect(PROFILE, NULL_PROGRESS)
    stripped = collected.captures[1]
    assert collected.captures[0] == plain
    assert stripped != with_keys and stripped.is_relative_to(temp_root)
    assert stripped.read_bytes() == capture_without_keys(tmp_path / "ref.pcapng").read_bytes()
    assert collected.files[1] == (stripped, "capture-1.pcapng")
    assert collected.originals == (plain, with_keys)  # the keys are read from these
    source.close()
    assert list(temp_root.iterdir()) == []
    assert with_keys.is_file()
    source.close()  # twice: nothing left to do, no error


def test_kept_secrets_copy_the_capture_as_given(tmp_path: Path, temp_root: Path) -> None:
    with_keys = capture_with_keys(tmp_path / "keys.pcapng")
    source = PcapSource([with_keys], SecretInputs(keep_secrets=True))
    assert source.collect(PROFILE, NULL_PROGRESS).captures == (with_keys,)
    assert list(temp_root.iterdir()) == []


def _one_line_naming(error: pytest.ExceptionInfo[CaptureError], path: Path) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


def test_a_missing_capture_is_refused_naming_it(tmp_path: Path) -> None:
    good = write_pcap(tmp_path / "a.pcap", clean_onprem_traffic())
    missing = tmp_path / "b.pcap"
    with pytest.raises(CaptureError) as error:
        check_capture_paths([good, missing])
    assert _one_line_naming(error, missing) == "no such file"


def test_a_dangling_link_is_a_missing_capture(tmp_path: Path) -> None:
    link = tmp_path / "link.pcap"
    link.symlink_to(tmp_path / "gone.pcap")
    with pytest.raises(CaptureError) as error:
        check_capture_paths([link])
    assert _one_line_naming(error, link) == "no such file"


def test_a_directory_or_fifo_is_not_a_capture(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.pcap"
    os.mkfifo(fifo)  # never opened: it would block
    for path in (tmp_path, fifo):
        with pytest.raises(CaptureError) as error:
            check_capture_paths([path])
        assert _one_line_naming(error, path) == "not a regular file"


def test_a_capture_gone_before_collecting_is_refused(tmp_path: Path) -> None:
    capture = write_pcap(tmp_path / "a.pcap", clean_onprem_traffic())
    source = PcapSource([capture])
    capture.unlink()
    with pytest.raises(CaptureError) as error:
        source.collect(PROFILE, NULL_PROGRESS)
    assert _one_line_naming(error, capture) == "no such file"


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory any user may enter (the test's own tmp_path is its owner's alone)."""
    path = Path(tempfile.mkdtemp(prefix="ucx-evtest-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@contextmanager
def as_another_user() -> Iterator[None]:
    """Run the block as a user who owns nothing here: as root, `nobody` (root reads every
    file whatever its mode); as anyone else, that user already."""
    if os.geteuid() != 0:
        yield
        return
    try:
        nobody = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no `nobody` user to drop root to")
    os.seteuid(nobody)
    try:
        yield
    finally:
        os.seteuid(0)


def test_a_capture_the_user_may_not_read_is_refused_naming_it(shared_dir: Path) -> None:
    locked = write_pcap(shared_dir / "locked.pcap", clean_onprem_traffic())
    locked.chmod(0)
    with as_another_user(), pytest.raises(CaptureError) as error:
        check_capture_paths([locked])
    assert _one_line_naming(error, locked) == "cannot read: Permission denied"


def test_a_capture_in_a_directory_the_user_may_not_enter_is_refused(shared_dir: Path) -> None:
    closed = shared_dir / "closed"
    closed.mkdir(mode=0o700)
    capture = write_pcap(closed / "a.pcap", clean_onprem_traffic())
    closed.chmod(0)
    try:
        with as_another_user(), pytest.raises(CaptureError) as error:
            check_capture_paths([capture])
    finally:
        closed.chmod(0o700)
    _one_line_naming(error, capture)
