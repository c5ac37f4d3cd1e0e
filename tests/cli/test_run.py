"""Exit codes and reports of `ucx-conformance run` and of plain `pytest suites/`."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main, suites_dir
from tests.cli.conftest import AIR_GAPPED_PROFILE


def run_cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


def controls(report_dir: Path) -> dict[str, dict[str, object]]:
    report = json.loads((report_dir / "report.json").read_text())
    return {c["id"]: c for c in report["controls"]}


def test_clean_capture_passes_and_report_verifies(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        profile_file,
        "--pcap",
        clean_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 0, controls(report)
    found = controls(report)
    for control_id in ("AG-EGRESS", "AG-INGRESS", "AG-CLOUD-NAMES", "AG-ONPREM"):
        assert found[control_id]["verdict"] == "pass", found[control_id]
    assert found["AG-PERIMETER"]["verdict"] == "not-applicable"
    assert json.loads((report / "report.json").read_text())["verdict"] == "pass"
    assert run_cli("verify", report, "--key", f"{sign_key}.pub") == 0


def test_a_profile_that_makes_everything_on_prem_is_said_in_the_run_and_the_report(
    tmp_path: Path, clean_capture: Path, sign_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`profile check` warns about 0.0.0.0/0 in the networks; a run under such a profile
    says so too, on the terminal and among the signed report's notes (a pass proves little)."""
    profile = tmp_path / "everything.yaml"
    profile.write_text(AIR_GAPPED_PROFILE.replace("192.0.2.0/24", "0.0.0.0/0"))
    report = tmp_path / "report"
    args = ("run", "--profile", profile, "--pcap", clean_capture, "--report-dir", report)
    assert run_cli(*args, "--sign-key", sign_key) == 0
    said = "profile warning: environment.networks[0]: 0.0.0.0/0 makes every IPv4 address on-prem"
    assert said in " ".join(capsys.readouterr().err.split())
    notes = json.loads((report / "report.json").read_text())["notes"]
    assert any(note.startswith(said) for note in notes)


def test_a_run_leaves_the_collector_as_it_found_it(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    # Run.observe freezes the observations out of the collector's way; close hands them back
    # (a `watch` makes one run after another in one process).
    frozen, enabled = gc.get_freeze_count(), gc.isenabled()
    report = tmp_path / "report"
    args = ("run", "--profile", profile_file, "--pcap", clean_capture, "--report-dir", report)
    assert run_cli(*args, "--sign-key", sign_key) == 0
    assert (gc.get_freeze_count(), gc.isenabled()) == (frozen, enabled)


def test_leak_fails_with_exit_1_and_finding_points_at_flow(
    tmp_path: Path, profile_file: Path, leak_capture: Path, sign_key: Path
) -> None:
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        profile_file,
        "--pcap",
        leak_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 1
    egress = controls(report)["AG-EGRESS"]
    assert egress["verdict"] == "fail"
    findings = egress["findings"]
    assert isinstance(findings, list)
    leak = next(f for f in findings if f["severity"] == "violation")
    assert "198.51.100.7" in leak["summary"]
    assert str(leak["evidence"]).startswith("evidence/flows.csv#L")
    line = int(str(leak["evidence"]).rsplit("#L", 1)[1])
    row = (report / "evidence" / "flows.csv").read_text().splitlines()[line - 1]
    assert "198.51.100.7" in row


def test_silent_target_is_inconclusive_exit_2(
    tmp_path: Path, profile_file: Path, silent_capture: Path, sign_key: Path
) -> None:
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        profile_file,
        "--pcap",
        silent_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 2
    assert controls(report)["AG-EGRESS"]["verdict"] == "inconclusive"
    junit = ET.parse(report / "junit.xml").getroot()
    case = next(c for c in junit.iter("testcase") if "AG-EGRESS" in c.get("name", ""))
    assert case.find("skipped") is None
    error = case.find("error")
    assert error is not None and error.get("type") == "inconclusive"


def test_bad_profile_exits_3_naming_file_and_key(
    tmp_path: Path, clean_capture: Path, sign_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(AIR_GAPPED_PROFILE.replace("mode: air-gapped", "mode: off"))
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        bad,
        "--pcap",
        clean_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 3
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "mode" in err
    assert not report.exists()


@pytest.mark.parametrize("problem", ["missing", "garbage", "empty"])
def test_unreadable_capture_exits_3(
    tmp_path: Path, profile_file: Path, sign_key: Path, problem: str
) -> None:
    capture = tmp_path / "capture.pcap"
    if problem == "garbage":
        capture.write_bytes(b"this is not a capture file at all" * 10)
    elif problem == "empty":
        capture.write_bytes(b"")
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        profile_file,
        "--pcap",
        capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 3
    assert not report.exists()


def test_usage_errors_exit_3(profile_file: Path, clean_capture: Path) -> None:
    assert run_cli("run", "--pcap", clean_capture) == 3  # no profile
    assert run_cli("run", "--profile", profile_file) == 3  # no evidence
    assert (
        run_cli("run", "--profile", profile_file, "--pcap", clean_capture, "--fault", "ipv6-leak")
        == 3
    )  # faults only in the lab
    assert run_cli("run", "--no-such-option") == 3


def test_world_readable_key_is_refused(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    sign_key.chmod(0o644)
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        profile_file,
        "--pcap",
        clean_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 3
    assert not report.exists()


def test_harness_crash_in_a_judge_is_error_never_pass(
    tmp_path: Path,
    profile_file: Path,
    clean_capture: Path,
    sign_key: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from conformance.judge import controls as registry

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("judge exploded")

    monkeypatch.setitem(registry.JUDGES, "AG-EGRESS", broken)  # type: ignore[index]
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        profile_file,
        "--pcap",
        clean_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 2
    egress = controls(report)["AG-EGRESS"]
    assert egress["verdict"] == "error"
    assert "judge exploded" in str(egress["reason"])


def test_crash_while_reading_evidence_is_error(
    tmp_path: Path,
    profile_file: Path,
    clean_capture: Path,
    sign_key: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import conformance.observe.parallel as observe_step

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(observe_step, "observe_captures", broken)
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        profile_file,
        "--pcap",
        clean_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 2
    found = controls(report)
    assert found["AG-EGRESS"]["verdict"] == "error"
    assert all(c["verdict"] != "pass" for i, c in found.items() if i != "RP-SIGNED")


def test_default_key_is_created_outside_the_report_and_reused(
    tmp_path: Path, profile_file: Path, clean_capture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = Path(os.environ["UCX_CONFORMANCE_KEY"])
    first, second = tmp_path / "r1", tmp_path / "r2"
    assert (
        run_cli("run", "--profile", profile_file, "--pcap", clean_capture, "--report-dir", first)
        == 0
    )
    assert key.exists() and (key.stat().st_mode & 0o077) == 0
    assert str(key) in capsys.readouterr().err
    assert (
        run_cli("run", "--profile", profile_file, "--pcap", clean_capture, "--report-dir", second)
        == 0
    )
    pub = f"{key}.pub"
    assert run_cli("verify", first, "--key", pub) == 0
    assert run_cli("verify", second, "--key", pub) == 0


def test_verify_without_key_checks_integrity_but_is_not_pinned(
    tmp_path: Path,
    profile_file: Path,
    clean_capture: Path,
    sign_key: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = tmp_path / "report"
    run_cli(
        "run",
        "--profile",
        profile_file,
        "--pcap",
        clean_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    capsys.readouterr()
    assert run_cli("verify", report) == 2
    assert "not pinned" in capsys.readouterr().err


def test_verify_fails_after_one_changed_byte(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    report = tmp_path / "report"
    run_cli(
        "run",
        "--profile",
        profile_file,
        "--pcap",
        clean_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    target = report / "report.json"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    assert run_cli("verify", report, "--key", f"{sign_key}.pub") == 1


def _plain_pytest(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(  # noqa: PLW1510 (the exit code is the assertion)
        [sys.executable, "-m", "pytest", str(suites_dir()), *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_plain_pytest_gives_the_same_exit_codes(
    tmp_path: Path,
    profile_file: Path,
    clean_capture: Path,
    leak_capture: Path,
    silent_capture: Path,
    sign_key: Path,
) -> None:
    common = ["--ucx-profile", profile_file, "--ucx-sign-key", sign_key]
    for capture, expected in ((clean_capture, 0), (leak_capture, 1), (silent_capture, 2)):
        done = _plain_pytest(
            *common,
            "--ucx-pcap",
            capture,
            "--ucx-report-dir",
            tmp_path / f"r-{capture.stem}",
            cwd=tmp_path,
        )
        assert done.returncode == expected, done.stdout + done.stderr
    assert (tmp_path / "r-leak" / "report.intoto.json").exists()


@pytest.mark.slow
def test_plain_pytest_no_tests_collected_is_2_not_0(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    done = _plain_pytest(
        "--ucx-profile",
        profile_file,
        "--ucx-pcap",
        clean_capture,
        "--ucx-sign-key",
        sign_key,
        "--ucx-report-dir",
        tmp_path / "r",
        "-k",
        "no_such_test_name",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr


@pytest.mark.slow
def test_plain_pytest_bad_profile_is_3(tmp_path: Path, clean_capture: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmode: air-gapped\nunknown_key: 1\n")
    done = _plain_pytest("--ucx-profile", bad, "--ucx-pcap", clean_capture, cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "bad.yaml" in done.stdout + done.stderr


@pytest.mark.slow
def test_each_front_names_the_options_as_its_user_typed_them(
    tmp_path: Path, profile_file: Path, clean_capture: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A refusal names the option: `--fault` for `run`, `--ucx-fault` for plain pytest."""
    args = ["--profile", profile_file, "--pcap", clean_capture, "--fault", "ipv6-leak"]
    assert run_cli("run", *args) == 3
    said = capsys.readouterr().err
    assert "--fault: fault switches exist only in the lab (--lab, --image)" in said
    assert "--ucx-" not in said
    spelled = [f"--ucx-{a.removeprefix('--')}" if a in args[::2] else a for a in args]
    done = _plain_pytest(*spelled, cwd=tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "--ucx-fault: fault switches exist only in the lab (--ucx-lab, --ucx-image)" in said


def test_keygen_writes_0600_key_and_refuses_overwrite(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    assert run_cli("keygen", key) == 0
    assert (key.stat().st_mode & 0o777) == 0o600
    assert Path(f"{key}.pub").exists()
    assert run_cli("keygen", key) == 3


def test_help_mentions_every_documented_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("run", "verify", "keygen", "lab"):
        assert command in out


def test_run_ignores_pytest_settings_of_the_directory_it_is_given_paths_in(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    # pytest would take the common ancestor of the profile and capture paths as rootdir and
    # read its settings; a customer's project with `addopts = -ra` broke `run` that way.
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "-ra --strict-config -x"\n'
    )
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        profile_file,
        "--pcap",
        clean_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 0, controls(report)


def test_run_refuses_a_draft_profile(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path, capsys: Any
) -> None:
    draft = tmp_path / "draft.yaml"
    draft.write_text(profile_file.read_text() + "\ndraft: true\n")
    report = tmp_path / "report"
    code = run_cli(
        "run",
        "--profile",
        draft,
        "--pcap",
        clean_capture,
        "--report-dir",
        report,
        "--sign-key",
        sign_key,
    )
    assert code == 3
    assert not report.exists()
    err = capsys.readouterr().err
    assert "draft" in err and "remove" in err


def test_version_says_which_decoder_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conformance.decode import compiled

    monkeypatch.setattr(compiled, "STATUS", {"conformance.observe._step": "not built"})
    assert run_cli("--version") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ucx-conformance ")
    assert out[1] == "decoder: pure Python: conformance.observe._step not built"


def test_the_command_line_imports_no_harness_until_a_command_needs_it() -> None:
    # Every command pays for what `import conformance.cli` loads, and so does each worker
    # process reading captures for a run (it imports the command line as its __main__).
    code = (
        "import sys, conformance, conformance.cli\n"
        "print(sorted(m for m in ('conformance.run', 'conformance.profile', 'yaml', 'pytest')"
        " if m in sys.modules))\n"
        "from conformance.profile import load_profile\n"
        "print(conformance.load_profile is load_profile)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:2] == ["[]", "True"]
