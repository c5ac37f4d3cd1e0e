"""`ucx-conformance rejudge`: a signed report's evidence judged again, read only through the
signature, into a new signed report that names its source (interface.md, "After the run")."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.evidence.interface import REPORT_GENERATED
from conformance.report import evidence_dir
from conformance.sign.verify import verify_report


def run_cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def verdicts(report: Path) -> dict[str, str]:
    document = json.loads((report / "report.json").read_text())
    return {c["id"]: c["verdict"] for c in document["controls"]}


@pytest.fixture
def judged(tmp_path: Path, profile_file: Path, leak_capture: Path, sign_key: Path) -> Path:
    report = tmp_path / "first"
    code = run_cli(
        "run", "--profile", profile_file, "--pcap", leak_capture,
        "--report-dir", report, "--sign-key", sign_key,
    )  # fmt: skip
    assert code == 1
    return report


def test_rejudge_with_the_same_profile_gives_the_same_verdicts(
    tmp_path: Path, judged: Path, sign_key: Path
) -> None:
    again = tmp_path / "again"
    code = run_cli(
        "rejudge", judged, "--key", f"{sign_key}.pub", "--report-dir", again,
        "--sign-key", sign_key,
    )  # fmt: skip
    assert code == 1
    assert verdicts(again) == verdicts(judged)
    result = verify_report(again, Path(f"{sign_key}.pub"))
    assert result.ok and result.pinned
    source = json.loads((again / "report.json").read_text())["source_report"]
    envelope = (judged / "report.intoto.json").read_bytes()
    import hashlib

    assert source["envelope_sha256"] == hashlib.sha256(envelope).hexdigest()
    assert source["path"] == str(judged.absolute())

    # the same evidence, kept again (the tables are written anew from the observations)
    def evidence(report: Path) -> set[str]:
        document = json.loads((report / "report.json").read_text())
        return {e["path"] for e in document["evidence"]}

    assert evidence(again) == evidence(judged)


def test_rejudge_with_an_amended_profile_judges_anew(
    tmp_path: Path, judged: Path, sign_key: Path, profile_file: Path
) -> None:
    amended = tmp_path / "amended.yaml"
    # every address is inside the environment now: the leak is on-prem, AG-EGRESS passes
    amended.write_text(
        profile_file.read_text().replace('[192.0.2.0/24, "2001:db8:1::/64"]', '[0.0.0.0/0, "::/0"]')
    )
    again = tmp_path / "again"
    run_cli(
        "rejudge", judged, "--key", f"{sign_key}.pub", "--profile", amended,
        "--report-dir", again, "--sign-key", sign_key,
    )  # fmt: skip
    assert verdicts(judged)["AG-EGRESS"] == "fail"
    assert verdicts(again)["AG-EGRESS"] != "fail"


def test_a_tampered_report_is_refused_naming_the_file(
    tmp_path: Path, judged: Path, sign_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = next((judged / "evidence").glob("capture-0.*"))
    data = bytearray(capture.read_bytes())
    data[-1] ^= 0xFF
    capture.write_bytes(bytes(data))
    again = tmp_path / "again"
    code = run_cli(
        "rejudge", judged, "--key", f"{sign_key}.pub", "--report-dir", again,
        "--sign-key", sign_key,
    )  # fmt: skip
    assert code == 3
    assert capture.name in capsys.readouterr().err
    assert not again.exists()


def test_an_unpinned_report_is_refused_unless_allowed(
    tmp_path: Path, judged: Path, sign_key: Path
) -> None:
    again = tmp_path / "again"
    assert run_cli("rejudge", judged, "--report-dir", again, "--sign-key", sign_key) == 3
    assert not again.exists()
    code = run_cli(
        "rejudge", judged, "--allow-unpinned", "--report-dir", again, "--sign-key", sign_key
    )
    assert code == 1


def test_what_the_report_writes_itself_is_never_judged_as_input() -> None:
    # every file the report's evidence writer names is in the set rejudge makes anew
    written = set(re.findall(r'_path\("([^"]+)"\)', Path(evidence_dir.__file__).read_text()))
    assert written and written <= REPORT_GENERATED


def test_the_reports_own_profile_is_named_where_it_lives_in_that_report(
    tmp_path: Path,
    judged: Path,
    sign_key: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """rejudge judges a copy of the evidence in a temporary directory: the new report and
    any error name the profile in the judged report, never a path that is gone."""
    again = tmp_path / "again"
    args = ("rejudge", judged, "--key", f"{sign_key}.pub", "--sign-key", sign_key)
    assert run_cli(*args, "--report-dir", again) == 1
    shown = str(judged.absolute() / "evidence" / "profile.yaml")
    assert json.loads((again / "report.json").read_text())["profile"]["source"] == shown

    import conformance.run
    from conformance.errors import ProfileError

    def refused(path: Path) -> None:  # a profile an older harness took, this one refuses
        raise ProfileError(path, "window", '"1:30" is read by YAML 1.1 as a base-60 number')

    monkeypatch.setattr(conformance.run, "load_profile", refused)
    capsys.readouterr()
    assert run_cli(*args, "--report-dir", tmp_path / "refused") == 3
    err = capsys.readouterr().err
    assert f"{shown}: window: " in err and "ucx-rejudge-" not in err
