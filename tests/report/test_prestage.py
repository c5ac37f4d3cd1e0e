"""Evidence copies made while the run judges: taken by the report, or removed."""

from __future__ import annotations

import hashlib
from pathlib import Path

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
