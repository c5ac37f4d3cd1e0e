"""Decision 11 end to end: the profile's minimum window gates absence claims, the report states
what the window could not see, the terminal repeats its warnings, and the report verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cli import main
from tests.cli.conftest import AIR_GAPPED_PROFILE


def _run(profile: Path, capture: Path, report: Path, key: Path) -> int:
    args = ["run", "--profile", profile, "--pcap", capture, "--report-dir", report]
    return main([str(a) for a in [*args, "--sign-key", key]])


def _report(report: Path) -> dict[str, object]:
    document = json.loads((report / "report.json").read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture
def windowed_profile(tmp_path: Path) -> Path:
    path = tmp_path / "windowed.yaml"
    path.write_text(AIR_GAPPED_PROFILE + "observation:\n  minimum_window: 1h\n")
    return path


def test_window_under_the_minimum_is_inconclusive_and_said_everywhere(
    tmp_path: Path,
    windowed_profile: Path,
    clean_capture: Path,
    sign_key: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = tmp_path / "report"
    assert _run(windowed_profile, clean_capture, report, sign_key) == 2
    document = _report(report)
    egress = next(c for c in document["controls"] if c["id"] == "AG-EGRESS")  # type: ignore[attr-defined]
    assert egress["verdict"] == "inconclusive"
    assert egress["reason"] == (
        "the captures cover 30 ms, less than the profile's minimum window of 1 h"
        " (observation.minimum_window): absence is not proven"
    )
    window = document["coverage"]["window"]  # type: ignore[index]
    assert window["minimum_seconds"] == 3600 and window["absence_inconclusive"] is True
    err = capsys.readouterr().err
    assert "not seen: The captures cover only 30 ms" in " ".join(err.split())
    page = (report / "report.html").read_text()
    assert "What this window could not see" in page
    assert "less than the 1 h this deployment" in page
    assert main(["verify", str(report), "--key", f"{sign_key}.pub"]) == 0


def test_a_leak_in_a_window_under_the_minimum_still_fails(
    tmp_path: Path, windowed_profile: Path, leak_capture: Path, sign_key: Path
) -> None:
    report = tmp_path / "report"
    assert _run(windowed_profile, leak_capture, report, sign_key) == 1
    egress = next(c for c in _report(report)["controls"] if c["id"] == "AG-EGRESS")  # type: ignore[attr-defined]
    assert egress["verdict"] == "fail"


def test_without_a_minimum_a_short_window_only_warns(
    tmp_path: Path,
    profile_file: Path,
    clean_capture: Path,
    sign_key: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = tmp_path / "report"
    assert _run(profile_file, clean_capture, report, sign_key) == 0
    window = _report(report)["coverage"]["window"]  # type: ignore[index]
    assert window["short"] is True and window["absence_inconclusive"] is False
    err = " ".join(capsys.readouterr().err.split())
    assert "not seen: The captures cover only 30 ms" in err and "under 1 h" in err
    assert main(["verify", str(report), "--key", f"{sign_key}.pub"]) == 0
