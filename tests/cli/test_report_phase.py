"""What a run holds while its report is written (#17: the report was the run's peak)."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_the_judges_indexes_are_let_go_before_the_report_is_written(
    tmp_path: Path,
    profile_file: Path,
    leak_capture: Path,
    sign_key: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The judges derive their indexes once per run (the profile's memo); by the time the
    report is written nothing of them is held, and the report is the same whole report."""
    from conformance.cli import main
    from conformance.run import Run

    write = Run._write
    held: list[int] = []
    judged: list[int] = []

    def write_and_look(run: Run, *args: object) -> object:
        judged.append(len(run.results))
        held.append(len(run.profile.memo))
        return write(run, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Run, "_write", write_and_look)
    report = tmp_path / "report"
    args = ["run", "--profile", profile_file, "--pcap", leak_capture]
    code = main([str(a) for a in [*args, "--report-dir", report, "--sign-key", sign_key]])
    assert code == 1  # the leak is found: judged on the indexes, then they went
    assert judged and judged[0] > 0
    assert held == [0]
    assert main(["verify", str(report), "--key", f"{sign_key}.pub"]) == 0
