"""`ucx-conformance diff` on real signed reports: exit codes, formats, refusal of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.cli import main
from tests import defects
from tests.after_run import copy_report
from tests.compare.conftest import Runs


def diff(
    capsys: pytest.CaptureFixture[str], old: Path, new: Path, *extra: str
) -> tuple[int, str, str]:
    code = main(["diff", str(old), str(new), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_fault_that_adds_destinations_is_a_regression(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = diff(
        capsys, runs.clean, runs.leak, "--key", str(runs.lab.pub), "--format", "json"
    )
    assert code == 1
    doc = json.loads(out)
    assert doc["regression"] is True
    new = {d["destination"]: d for d in doc["destinations"]["new"]}
    assert set(new) == {f"{defects.OUTSIDE}:80/tcp", f"{defects.OUTSIDE_NTP}:123/udp"}
    assert new[f"{defects.OUTSIDE}:80/tcp"]["names"] == ["crl.microsoft.com"]
    assert new[f"{defects.OUTSIDE_NTP}:123/udp"]["names"] == []
    assert doc["names"]["new"] == [{"name": "crl.microsoft.com", "via": ["http"]}]
    worse = {v["control"]: (v["old"], v["new"]) for v in doc["verdicts"]["changed"] if v["worse"]}
    assert worse["AG-EGRESS"] == ("pass", "fail")
    assert doc["old"]["report"] == str(runs.clean) and doc["old"]["pinned"] is True
    assert len(doc["old"]["envelope_sha256"]) == 64


def test_two_identical_runs_show_nothing_new(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = diff(capsys, runs.clean, runs.clean_again, "--key", str(runs.lab.pub))
    assert code == 0, out
    assert out.startswith("ucx-conformance diff: nothing new")
    assert "nothing new" in err


def test_the_leak_going_away_is_not_a_regression(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = diff(
        capsys, runs.leak, runs.clean, "--key", str(runs.lab.pub), "--format", "json"
    )
    assert code == 0
    doc = json.loads(out)
    assert len(doc["destinations"]["vanished"]) == 2 and not doc["destinations"]["new"]
    assert [n["name"] for n in doc["names"]["vanished"]] == ["crl.microsoft.com"]
    assert all(not v["worse"] for v in doc["verdicts"]["changed"])


def test_markdown_fits_a_pull_request_comment(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = diff(
        capsys, runs.clean, runs.leak, "--key", str(runs.lab.pub), "--format", "markdown"
    )
    assert code == 1
    assert out.startswith("### ❌ ucx-conformance: regression: 2 new destinations, 1 new name")
    assert "#### What is new" in out and "#### What got weaker" in out
    assert f"| `{defects.OUTSIDE}:80/tcp` | `crl.microsoft.com` | 1 |\n" in out
    assert "| `AG-EGRESS` | pass | fail |" in out
    code, out, _ = diff(
        capsys, runs.leak, runs.clean, "--key", str(runs.lab.pub), "--format", "markdown"
    )
    assert code == 0 and "#### What vanished" in out and out.startswith("### ✅")


def test_text_lists_each_section(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = diff(capsys, runs.clean, runs.leak, "--key", str(runs.lab.pub))
    assert "new destinations (2):" in out
    assert f"  {defects.OUTSIDE}:80/tcp  crl.microsoft.com  (1 flow)" in out
    assert "AG-EGRESS: pass -> fail (worse)" in out


def test_unpinned_input_is_refused_unless_allowed(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = diff(capsys, runs.clean, runs.leak)
    assert code == 3 and not out
    assert "signer not pinned" in err and str(runs.clean) in err
    code, _, err = diff(capsys, runs.clean, runs.leak, "--allow-unpinned")
    assert code == 1
    assert err.count("checked for integrity only") == 2


def test_a_tampered_report_is_refused_naming_the_file(
    runs: Runs, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    tampered = copy_report(runs.leak, tmp_path / "tampered")
    flows = tampered / "evidence" / "flows.csv"
    # Hide the leak from the table: the diff must not read it, it must refuse.
    flows.write_text("".join(flows.read_text().splitlines(keepends=True)[:-2]))
    code, out, err = diff(capsys, runs.clean, tampered, "--key", str(runs.lab.pub))
    assert code == 3 and not out
    assert "flows.csv" in err and "SHA-256" in err


def test_bad_usage_is_exit_3(runs: Runs, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(runs.clean)]) == 3
    assert main(["diff", str(runs.clean), str(runs.leak), "--format", "html"]) == 3
    code, _, err = diff(capsys, runs.clean, runs.lab.root / "absent", "--key", str(runs.lab.pub))
    assert code == 3 and "not a directory" in err
