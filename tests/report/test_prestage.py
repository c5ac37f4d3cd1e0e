"""Evidence copies made while the run judges: taken by the report, or removed."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import pytest

from conformance.decode.read_ahead import ReadAhead
from conformance.report import prestage
from conformance.report.prestage import Prestage


def test_copies_in_the_background_and_hands_over_hash_and_size(tmp_path: Path) -> None:
    source = tmp_path / "c.pcapng"
    source.write_bytes(b"x" * 3_000_000)
    stage = Prestage(tmp_path / "report")
    stage.start([source])
    staged = stage.take(source)
    assert staged is not None
    path, sha256, size = staged
    assert path.read_bytes() == source.read_bytes()
    assert sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert size == 3_000_000
    assert path.parent.name.startswith(".report.prestage-")
    assert stage.take(source) is None  # taken once
    stage.close()
    assert not path.parent.exists()


def test_close_removes_copies_nobody_took(tmp_path: Path) -> None:
    source = tmp_path / "c.pcap"
    source.write_bytes(b"y" * 1000)
    stage = Prestage(tmp_path / "report")
    stage.start([source])
    stage.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c.pcap"]


def test_a_vanished_source_falls_back_to_the_reports_own_copy(tmp_path: Path) -> None:
    stage = Prestage(tmp_path / "report")
    missing = tmp_path / "gone.pcap"
    stage.start([missing])
    assert stage.take(missing) is None
    stage.close()


def test_a_copy_written_from_what_the_decoder_read_is_taken_when_complete(tmp_path: Path) -> None:
    source = tmp_path / "c.pcapng"
    source.write_bytes(b"z" * 5000)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    copier = stage.copier(source)
    assert copier is not None
    assert stage.copier(source) is None  # one copy per source
    data = source.read_bytes()
    copier(data[:1000])
    copier(data[1000:])
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    stage.done(source, digest, complete=True)
    staged = stage.take(source)
    assert staged is not None
    path, sha256, size = staged
    assert (path.read_bytes(), sha256, size) == (source.read_bytes(), digest, 5000)
    stage.close()


def test_an_incomplete_copy_is_dropped(tmp_path: Path) -> None:
    source = tmp_path / "c.pcapng"
    source.write_bytes(b"z" * 5000)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    copier = stage.copier(source)
    assert copier is not None
    copier(b"z" * 100)
    stage.done(source, "", complete=False)
    assert stage.take(source) is None  # the report copies the file itself
    stage.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c.pcapng"]


def test_a_copy_that_could_not_be_written_is_dropped(tmp_path: Path) -> None:
    source = tmp_path / "c.pcapng"
    source.write_bytes(b"z" * 5000)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    copier = stage.copier(source)
    assert copier is not None
    copy = stage._open[source.resolve()]
    copy._handle.close()
    with Path("/dev/full").open("wb", buffering=0) as full:  # writes fail: ENOSPC
        copy._handle = full
        copier(source.read_bytes())  # never raises
    stage.done(source, hashlib.sha256(source.read_bytes()).hexdigest(), complete=True)
    assert stage.take(source) is None  # the report copies the file itself
    stage.close()


# -- the kernel's copy (copy_file_range), read back by the decoder's reader --------------------


def _read_through(
    stage: Prestage, source: Path, *, in_copy: bool = False
) -> tuple[bytes, str, bool]:
    """Read `source` as the decoder does (head by the opener, the rest by ReadAhead) with the
    stage's copier; what the decoder got, its SHA-256 and whether it read every byte.
    `in_copy`: the copy may stand for the hash, as the builder lets it (observe.builder)."""
    copier = stage.copier(source)
    assert copier is not None
    with source.open("rb", buffering=0) as file:
        reader = ReadAhead(file, file.read(1000), copier)
        reader.hash_in_copy = in_copy
        got = b"".join(iter(reader.next_chunk, None))
        reader.finish()
    stage.done(source, None if reader.by_copy else reader.sha256, reader.complete)
    return got, reader.sha256, reader.complete


def _capture_like(tmp_path: Path, size: int = 20_000_000) -> Path:
    source = tmp_path / "c.pcapng"
    source.write_bytes(random.Random(7).randbytes(size))
    return source


def test_the_kernel_copies_the_file_and_the_decoder_reads_the_copy(tmp_path: Path) -> None:
    source = _capture_like(tmp_path)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    calls: list[int] = []
    real = os.copy_file_range

    def counted(*args: int) -> int:
        calls.append(args[2])
        return real(*args)

    with mock.patch.object(os, "copy_file_range", counted):
        got, sha256, complete = _read_through(stage, source)
    data = source.read_bytes()
    assert (got, sha256, complete) == (data, hashlib.sha256(data).hexdigest(), True)
    assert len(calls) >= 3  # 20 MB in 8 MiB steps, then the end
    staged = stage.take(source)
    assert staged is not None
    assert (staged[0].read_bytes(), staged[1], staged[2]) == (data, sha256, len(data))
    stage.close()


@pytest.mark.parametrize(
    "refusal",
    [
        OSError(errno.EXDEV, "cross-device"),  # kernels before 5.3 across file systems
        OSError(errno.ENOSYS, "no such call"),
        OSError(errno.EINVAL, "not a regular file"),
    ],
)
def test_where_the_kernel_refuses_the_reader_writes_the_copy(
    tmp_path: Path, refusal: OSError
) -> None:
    source = _capture_like(tmp_path, 3_000_000)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    with (
        mock.patch.object(os, "copy_file_range", side_effect=refusal),
        mock.patch.object(os, "sendfile", side_effect=refusal),
    ):
        got, sha256, _ = _read_through(stage, source)
    data = source.read_bytes()
    assert got == data
    staged = stage.take(source)
    assert staged is not None
    assert (staged[0].read_bytes(), staged[1]) == (data, sha256)
    stage.close()


@pytest.mark.parametrize("errno_", [errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP])
def test_between_two_file_systems_sendfile_makes_the_copy_the_decoder_reads(
    tmp_path: Path, errno_: int
) -> None:
    """copy_file_range refuses from the first byte (another file system): sendfile copies in
    the kernel instead, and the copy still stands for the hash."""
    source = _capture_like(tmp_path)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    sent: list[int] = []
    real = os.sendfile

    def counted(out: int, in_: int, offset: int, count: int) -> int:
        sent.append(offset)
        return real(out, in_, offset, count)

    with (
        mock.patch.object(os, "copy_file_range", side_effect=OSError(errno_, "refused")),
        mock.patch.object(os, "sendfile", counted),
    ):
        got, sha256, complete = _read_through(stage, source, in_copy=True)
    data = source.read_bytes()
    assert (got, sha256, complete) == (data, "", True)  # by the copy: hashed after the walk
    assert sent[0] == 1000 and len(sent) >= 3  # from the head on, in 8 MiB steps
    staged = stage.take(source)
    assert staged is not None
    assert (staged[0].read_bytes(), staged[1], staged[2]) == (
        data,
        hashlib.sha256(data).hexdigest(),
        len(data),
    )
    stage.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c.pcapng"]


def test_the_descriptor_sendfile_writes_through_is_closed_however_the_copy_ends(
    tmp_path: Path,
) -> None:
    """sendfile takes over, then stops part way (a full disk): the copy is dropped, and
    neither it nor its second descriptor outlives `close`."""
    source = _capture_like(tmp_path)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    before = set(os.listdir("/proc/self/fd"))
    real, calls = os.sendfile, []

    def full_after_one(out: int, in_: int, offset: int, count: int) -> int:
        calls.append(offset)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "no space left")
        return real(out, in_, offset, count)

    with (
        mock.patch.object(os, "copy_file_range", side_effect=OSError(errno.EXDEV, "x")),
        mock.patch.object(os, "sendfile", full_after_one),
    ):
        got, sha256, complete = _read_through(stage, source)
    data = source.read_bytes()
    assert (got, complete) == (data, True)  # read on from the file, hashed here
    assert sha256 == hashlib.sha256(data).hexdigest()
    assert stage.take(source) is None  # the copy the kernel began is dropped
    stage.close()
    assert set(os.listdir("/proc/self/fd")) <= before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pcapng"]


def test_without_copy_file_range_the_reader_writes_the_copy(tmp_path: Path) -> None:
    source = _capture_like(tmp_path, 3_000_000)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    # macOS: the module finds no os.copy_file_range (calling it would raise AttributeError)
    with (
        mock.patch.object(prestage, "_KERNEL_COPY", False),
        mock.patch.object(os, "copy_file_range", side_effect=AttributeError),
    ):
        got, sha256, _ = _read_through(stage, source)
    data = source.read_bytes()
    assert got == data
    staged = stage.take(source)
    assert staged is not None
    assert (staged[0].read_bytes(), staged[1]) == (data, sha256)
    stage.close()


def test_a_kernel_that_reports_the_end_too_early_is_not_believed(tmp_path: Path) -> None:
    source = _capture_like(tmp_path, 3_000_000)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    with mock.patch.object(os, "copy_file_range", return_value=0):
        got, sha256, complete = _read_through(stage, source)
    data = source.read_bytes()
    assert (got, complete) == (data, True)  # every byte decoded, none lost at a false end
    staged = stage.take(source)
    assert staged is not None
    assert (staged[0].read_bytes(), staged[1]) == (data, sha256)
    stage.close()


def _kernel_copy_failing_second() -> Callable[..., int]:
    """copy_file_range that copies once, then finds the disk full, then copies again."""
    real = os.copy_file_range
    calls: list[int] = []

    def fails_second(*args: int) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    return fails_second


def test_a_kernel_copy_that_fails_midway_is_dropped_and_the_file_still_read(
    tmp_path: Path,
) -> None:
    source = _capture_like(tmp_path)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    fails_second = _kernel_copy_failing_second()
    with mock.patch.object(os, "copy_file_range", fails_second):
        got, sha256, complete = _read_through(stage, source)
    data = source.read_bytes()
    assert (got, sha256, complete) == (data, hashlib.sha256(data).hexdigest(), True)
    assert stage.take(source) is None  # the report copies the file itself
    stage.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c.pcapng"]


def test_only_a_plain_file_is_copied_by_the_kernel(tmp_path: Path) -> None:
    source = _capture_like(tmp_path, 3_000_000)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    copier = stage.copier(source)
    assert copier is not None
    data = source.read_bytes()
    with mock.patch.object(os, "copy_file_range") as kernel:
        reader = ReadAhead(io.BufferedReader(io.BytesIO(data)), b"", copier)
        assert b"".join(iter(reader.next_chunk, None)) == data
        reader.finish()
    kernel.assert_not_called()
    stage.done(source, reader.sha256, reader.complete)
    staged = stage.take(source)
    assert staged is not None
    assert staged[0].read_bytes() == data
    stage.close()


# -- the copy hashed after the walk: the decoder read every byte back from it -----------------


def test_a_copy_the_decoder_read_back_is_hashed_after_the_walk(tmp_path: Path) -> None:
    source = _capture_like(tmp_path)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    got, sha256, complete = _read_through(stage, source, in_copy=True)
    data = source.read_bytes()
    assert (got, sha256, complete) == (data, "", True)  # nothing hashed during the walk
    staged = stage.take(source)
    assert staged is not None
    assert staged[0].read_bytes() == data
    assert staged[1:] == (hashlib.sha256(data).hexdigest(), len(data))
    stage.close()


def test_a_source_changed_after_the_walk_leaves_the_copy_judged_and_its_digest(
    tmp_path: Path,
) -> None:
    source = _capture_like(tmp_path, 3_000_000)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    got, _, _ = _read_through(stage, source, in_copy=True)
    with source.open("r+b") as handle:  # edited once the decoder has read it
        handle.write(b"\xff" * 100)
    staged = stage.take(source)
    assert staged is not None
    assert staged[0].read_bytes() == got  # the report signs the bytes that were judged
    assert staged[1] == hashlib.sha256(got).hexdigest()
    stage.close()


def test_where_the_kernel_refuses_the_reader_hashes_as_before(tmp_path: Path) -> None:
    source = _capture_like(tmp_path, 3_000_000)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    with (
        mock.patch.object(os, "copy_file_range", side_effect=OSError(errno.EXDEV, "x")),
        mock.patch.object(os, "sendfile", side_effect=OSError(errno.EINVAL, "x")),
    ):
        got, sha256, _ = _read_through(stage, source, in_copy=True)
    data = source.read_bytes()
    assert (got, sha256) == (data, hashlib.sha256(data).hexdigest())
    staged = stage.take(source)
    assert staged is not None
    assert (staged[0].read_bytes(), staged[1]) == (data, sha256)
    stage.close()


def test_a_copy_read_back_that_stops_midway_fails_the_read(tmp_path: Path) -> None:
    """What was decoded before the copy stopped was hashed nowhere: no digest can be given."""
    source = _capture_like(tmp_path)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    fails_second = _kernel_copy_failing_second()
    copier = stage.copier(source)
    assert copier is not None
    with (
        mock.patch.object(os, "copy_file_range", fails_second),
        source.open("rb", buffering=0) as file,
    ):
        reader = ReadAhead(file, file.read(1000), copier)
        reader.hash_in_copy = True
        with pytest.raises(OSError, match="the copy of this capture stopped at byte"):
            while reader.next_chunk() is not None:
                pass
        reader.finish()
    assert not reader.complete
    stage.done(source, reader.sha256, reader.complete)
    assert stage.take(source) is None
    stage.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c.pcapng"]


def _staged_by_copy(tmp_path: Path) -> tuple[Prestage, Path, bytes]:
    source = _capture_like(tmp_path, 3_000_000)
    stage = Prestage(tmp_path / "report")
    stage.start([source], teed=True)
    _read_through(stage, source, in_copy=True)
    return stage, source, source.read_bytes()


@pytest.mark.parametrize(
    ("executable", "frozen"), [("no-python", False), ("", False), (sys.executable, True)]
)
def test_without_an_interpreter_to_start_the_copy_is_hashed_when_taken(
    tmp_path: Path, executable: str, frozen: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A frozen application's executable (PyInstaller marks `sys.frozen`) would take the
    # child's arguments as its own: no child is started for it either.
    monkeypatch.setattr(sys, "frozen", frozen, raising=False)
    path = executable if executable in ("", sys.executable) else str(tmp_path / executable)
    with mock.patch.object(sys, "executable", path):
        stage, source, data = _staged_by_copy(tmp_path)
    (pending,) = stage._teed.values()
    assert isinstance(pending, prestage._CopyHash)
    assert not pending.running
    staged = stage.take(source)
    assert staged is not None
    assert staged[1:] == (hashlib.sha256(data).hexdigest(), len(data))
    stage.close()


@pytest.mark.parametrize(
    ("hasher", "problem"),
    [
        ("raise SystemExit(3)", "could not be hashed"),
        (
            "import sys; sys.stdout.write('0' * 64 + ' 12')",
            "12 bytes read back from a copy of 3000000",
        ),
        ("import sys; sys.stdout.write('ab 12')", "could not be hashed"),  # not a digest
        ("import sys; sys.stdout.write('nonsense')", "could not be hashed"),
    ],
)
def test_a_copy_that_cannot_be_hashed_in_full_is_an_error_not_a_fresh_copy(
    tmp_path: Path, hasher: str, problem: str
) -> None:
    with mock.patch.object(prestage, "_HASHER", hasher):
        stage, source, _ = _staged_by_copy(tmp_path)
    with pytest.raises(OSError, match=problem):
        stage.take(source)
    stage.close()


_NO_MMAP = (
    "import mmap\n"
    "def _refused(*args, **kwargs):\n"
    "    raise OSError(19, 'no mmap here')\n"
    "mmap.mmap = _refused\n"
)


def _child_digest(path: Path, prelude: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + prestage._HASHER, str(path)],
        capture_output=True,
        check=True,
    )
    return done.stdout.decode()


@pytest.mark.parametrize("size", [0, 1, (4 << 20) - 1, 4 << 20, (4 << 20) + 1, 9 << 20])
@pytest.mark.parametrize("mapped", [True, False])
def test_the_hashing_child_hashes_every_byte_mapped_or_read(
    tmp_path: Path, size: int, mapped: bool
) -> None:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "copy"
    path.write_bytes(data)
    answer = _child_digest(path, "" if mapped else _NO_MMAP)
    assert answer == f"{hashlib.sha256(data).hexdigest()} {size}"
    assert prestage._DIGEST_LINE.fullmatch(answer.encode())


def test_a_window_that_cannot_be_mapped_is_read_from_where_the_mapping_stopped(
    tmp_path: Path,
) -> None:
    data = random.Random(5).randbytes((9 << 20) + 7)
    path = tmp_path / "copy"
    path.write_bytes(data)
    second_refused = (
        "import mmap\n_real, _calls = mmap.mmap, []\n"
        "def _once(*args, **kwargs):\n"
        "    _calls.append(1)\n"
        "    if len(_calls) == 2:\n"
        "        raise OSError(12, 'no room to map')\n"
        "    return _real(*args, **kwargs)\n"
        "mmap.mmap = _once\n"
    )
    answer = _child_digest(path, second_refused)
    assert answer == f"{hashlib.sha256(data).hexdigest()} {len(data)}"


def test_close_ends_and_reaps_a_hashing_child(tmp_path: Path) -> None:
    with mock.patch.object(prestage, "_HASHER", "import time; time.sleep(60)"):
        stage, _, _ = _staged_by_copy(tmp_path)
    (pending,) = stage._teed.values()
    assert isinstance(pending, prestage._CopyHash)
    child = pending._child
    assert child is not None and child.poll() is None
    stage.close()
    assert child.returncode is not None  # killed and waited for: no process left behind
    assert [p.name for p in tmp_path.iterdir()] == ["c.pcapng"]


def test_an_interrupt_while_waiting_for_the_digest_ends_the_child(tmp_path: Path) -> None:
    with mock.patch.object(prestage, "_HASHER", "import time; time.sleep(60)"):
        stage, source, _ = _staged_by_copy(tmp_path)
    (pending,) = stage._teed.values()
    assert isinstance(pending, prestage._CopyHash)
    child = pending._child
    assert child is not None
    with (
        mock.patch.object(subprocess.Popen, "communicate", side_effect=KeyboardInterrupt),
        pytest.raises(KeyboardInterrupt),
    ):
        stage.take(source)
    assert child.returncode is not None  # killed and waited for, though `take` let go of it
    stage.close()


def test_one_hashing_child_at_a_time_and_every_digest_kept(tmp_path: Path) -> None:
    sources = []
    for i in range(3):
        source = tmp_path / f"c{i}.pcapng"
        source.write_bytes(random.Random(i).randbytes(2_000_000 + i))
        sources.append(source)
    stage = Prestage(tmp_path / "report")
    stage.start(sources, teed=True)
    for source in sources:  # as a serial run reads them, one after another
        _read_through(stage, source, in_copy=True)
        running = [p for p in stage._teed.values() if isinstance(p, prestage._CopyHash)]
        assert sum(p.running for p in running) <= 1
    for source in sources:
        staged = stage.take(source)
        assert staged is not None
        assert staged[1:] == (
            hashlib.sha256(source.read_bytes()).hexdigest(),
            source.stat().st_size,
        )
    stage.close()
