"""write_report: the directory's files, atomic replacement, no half report on failure."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest

from conformance.errors import CaptureError, ConformanceError
from conformance.report import assemble
from conformance.report.assemble import check_report_dir, write_report
from conformance.sign.keys import generate_key, load_private_key
from conformance.sign.seal import Ed25519Sealer, sealed_files
from conformance.sign.verify import verify_report
from conformance.verdict import Verdict
from tests.report.builders import REPORT_FILES, fake_lookup, make_run, signed_report


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def key_for(tmp_path: Path) -> Path:
    return generate_key(tmp_path / "keys" / "signer.pem")


def test_writes_every_file_and_verifies(tmp_path: Path) -> None:
    report = signed_report(tmp_path)
    files = sorted(
        p.relative_to(report.report_dir).as_posix()
        for p in report.report_dir.rglob("*")
        if p.is_file()
    )
    assert files == sorted((*REPORT_FILES, "report.intoto.json"))
    assert report.summary.verdict is Verdict.FAIL
    assert report.summary.counts[Verdict.INCONCLUSIVE] == 1
    assert verify_report(report.report_dir, report.pub_path).trusted
    # Nothing but the report beside the inputs: no partial or old directory left.
    assert listing(tmp_path) == ["inputs", "keys", "report"]


def test_summary_hashes_are_the_files_on_disk(tmp_path: Path) -> None:
    report = signed_report(tmp_path)
    for digest in report.summary.files:
        data = (report.report_dir / digest.path).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (digest.sha256, digest.size)


def test_captures_and_profile_are_copied_byte_for_byte(tmp_path: Path) -> None:
    report = signed_report(tmp_path)
    capture = tmp_path / "inputs" / "leak.pcapng"
    assert (report.report_dir / "evidence" / "capture-0.pcapng").read_bytes() == (
        capture.read_bytes()
    )
    profile = (report.report_dir / "evidence" / "profile.yaml").read_bytes()
    assert profile == (tmp_path / "inputs" / "site.yaml").read_bytes()


def test_same_run_same_key_gives_identical_report_json(tmp_path: Path) -> None:
    key = load_private_key(key_for(tmp_path))
    run = make_run(tmp_path)
    write_report(tmp_path / "a", run, Ed25519Sealer(key), fake_lookup)
    write_report(tmp_path / "b", run, Ed25519Sealer(key), fake_lookup)
    for name in ("report.json", "junit.xml", "evidence/flows.csv", "evidence/captures.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


class ExplodedError(Exception):
    pass


def _exploding_html(*_args: object) -> bytes:
    raise ExplodedError("disk on fire while writing report.html")


def test_failure_while_writing_leaves_no_report_and_no_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = load_private_key(key_for(tmp_path))
    run = make_run(tmp_path)
    monkeypatch.setattr(assemble, "render_html", _exploding_html)
    with pytest.raises(ExplodedError):
        write_report(tmp_path / "out" / "report", run, Ed25519Sealer(key), fake_lookup)
    assert listing(tmp_path / "out") == []


def test_interrupt_keeps_the_previous_report_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = signed_report(tmp_path)
    before = {p: p.read_bytes() for p in report.report_dir.rglob("*") if p.is_file()}

    def interrupted(*_args: object) -> bytes:
        raise KeyboardInterrupt

    monkeypatch.setattr(assemble, "render_html", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(
            report.report_dir, make_run(tmp_path), Ed25519Sealer(report.key()), fake_lookup
        )
    assert {p: p.read_bytes() for p in report.report_dir.rglob("*") if p.is_file()} == before
    assert listing(tmp_path) == ["inputs", "keys", "report"]
    assert verify_report(report.report_dir, report.pub_path).trusted


def test_previous_report_is_replaced_at_the_end(tmp_path: Path) -> None:
    report = signed_report(tmp_path)
    old_json = (report.report_dir / "report.json").read_bytes()
    run = replace(make_run(tmp_path), profile_name="second run")
    write_report(report.report_dir, run, Ed25519Sealer(report.key()), fake_lookup)
    new = json.loads((report.report_dir / "report.json").read_bytes())
    assert new["profile"]["name"] == "second run"
    assert (report.report_dir / "report.json").read_bytes() != old_json
    assert verify_report(report.report_dir, report.pub_path).trusted
    assert listing(tmp_path) == ["inputs", "keys", "report"]


def test_empty_existing_directory_is_used(tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    key = load_private_key(key_for(tmp_path))
    write_report(tmp_path / "report", make_run(tmp_path), Ed25519Sealer(key), fake_lookup)
    assert verify_report(tmp_path / "report").ok


def test_foreign_directory_is_refused_and_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "report"
    target.mkdir()
    (target / "thesis.tex").write_text("years of work")
    key = load_private_key(key_for(tmp_path))
    with pytest.raises(ConformanceError, match="not a previous ucx-conformance report"):
        write_report(target, make_run(tmp_path), Ed25519Sealer(key), fake_lookup)
    assert listing(target) == ["thesis.tex"]
    assert not any(p.name.startswith(".report.") for p in tmp_path.iterdir())


def test_previous_report_with_a_file_added_is_refused(tmp_path: Path) -> None:
    report = signed_report(tmp_path)
    (report.report_dir / "evidence" / "my-notes.txt").write_text("mine")
    with pytest.raises(ConformanceError, match="refusing to replace"):
        write_report(
            report.report_dir, make_run(tmp_path), Ed25519Sealer(report.key()), fake_lookup
        )
    assert (report.report_dir / "evidence" / "my-notes.txt").read_text() == "mine"


def test_file_or_symlink_at_the_report_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ConformanceError, match="not a directory"):
        check_report_dir(tmp_path / "file", sealed_files)
    with pytest.raises(ConformanceError, match="symlink"):
        check_report_dir(tmp_path / "link", sealed_files)


def test_report_dir_inside_a_signed_report_is_refused(tmp_path: Path) -> None:
    """Whichever command or plugin option names it (`pytest suites/ --ucx-report-dir` too),
    a new report inside a signed one would make that one fail verification."""
    report = signed_report(tmp_path)
    with pytest.raises(ConformanceError, match="inside the signed report"):
        check_report_dir(report.report_dir / "evidence" / "again", sealed_files)
    check_report_dir(report.report_dir, sealed_files)  # replacing it where it stands: taken


def test_the_profile_signed_is_the_one_judged(tmp_path: Path) -> None:
    """evidence/profile.yaml holds the bytes the run loaded, not the file read again (it may
    have been edited since, or been a pipe that gives nothing the second time)."""
    run = replace(make_run(tmp_path), profile_bytes=b"name: as judged\n")
    run.profile_source.write_text("name: edited while the run judged\n")
    key = load_private_key(key_for(tmp_path))
    write_report(tmp_path / "report", run, Ed25519Sealer(key), fake_lookup)
    copy = tmp_path / "report" / "evidence" / "profile.yaml"
    assert copy.read_bytes() == b"name: as judged\n"


def test_capture_changed_after_judging_stops_the_report(tmp_path: Path) -> None:
    key = load_private_key(key_for(tmp_path))
    run = make_run(tmp_path)
    capture = tmp_path / "inputs" / "leak.pcapng"
    with capture.open("r+b") as handle:
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))  # the stand-in is random: 0x00 may be there
    with pytest.raises(CaptureError, match="changed after it was judged"):
        write_report(tmp_path / "report", run, Ed25519Sealer(key), fake_lookup)
    assert listing(tmp_path) == ["inputs", "keys"]


def test_report_without_observations_is_written_and_not_complete(tmp_path: Path) -> None:
    report = signed_report(tmp_path, observations=False)
    document = json.loads((report.report_dir / "report.json").read_bytes())
    assert document["completeness"] == {"complete": False, "captures": []}
    assert any("not decoded" in note for note in document["notes"])
    flows = (report.report_dir / "evidence" / "flows.csv").read_text()
    assert flows.count("\n") == 1  # the header only
    assert verify_report(report.report_dir, report.pub_path).trusted


def test_run_refuses_naive_times_and_unsafe_or_reserved_names(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    with pytest.raises(ValueError, match="timezone-aware"):
        replace(run, started=datetime(2024, 1, 1))
    for name in ("../escape", "/abs", "flows.csv", "a//b", "my capture.pcap", "x#1.log"):
        with pytest.raises(ValueError, match="evidence_files"):
            replace(run, evidence_files=((tmp_path / "inputs" / "probes.log", name),))
    with pytest.raises(ValueError, match="duplicate"):
        replace(run, evidence_files=run.evidence_files + run.evidence_files[:1])


def test_a_capture_not_among_the_evidence_files_is_cited_by_index(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run = replace(run, evidence_files=run.evidence_files[1:])
    key = load_private_key(key_for(tmp_path))
    write_report(tmp_path / "report", run, Ed25519Sealer(key), fake_lookup)
    document = json.loads((tmp_path / "report" / "report.json").read_bytes())
    packets = document["controls"][0]["findings"][0]["packets"]
    assert packets == {"capture": None, "capture_index": 0, "numbers": [20, 21, 22]}
    assert "#0" in (tmp_path / "report" / "evidence" / "flows.csv").read_text()


def test_large_capture_is_streamed_not_read_into_memory(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with (inputs / "leak.pcapng").open("wb") as handle:
        for _ in range(64):
            handle.write(chunk)
    run = make_run(tmp_path)
    key = load_private_key(key_for(tmp_path))
    tracemalloc.start()
    try:
        report = write_report(tmp_path / "report", run, Ed25519Sealer(key), fake_lookup)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.report_dir / "evidence" / "capture-0.pcapng").stat().st_size == 64 << 20
    assert peak < 8 << 20, f"peak Python allocation {peak} bytes for a 64 MiB capture"
