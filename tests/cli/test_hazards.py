"""Run-level hazards, tried with real processes: concurrent runs, unwritable directories,
signals to the pid, leftovers of killed runs, bad key paths, empty options, piped output."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from conformance.decode.compiled import PURE_PYTHON_ENV
from conformance.report.lock import acquire, hidden_sibling
from conformance.sign.system_ed25519 import system_key

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# A capture that takes a few seconds to judge (pure-Python decoder, ~2 s on CI's machine):
# time to act while a run is under way. At 300k packets a run on a fast machine ended
# before the signal sent half a second into judging.
BUSY_PACKETS = 1_000_000
WAIT = 60.0  # seconds: far beyond any step here; a hang fails the test instead of the suite


def harness(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "conformance", *map(str, args)]


def run_harness(
    *args: str | Path, timeout: float = WAIT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        harness(*args), check=False, capture_output=True, text=True, timeout=timeout, env=env
    )


def siblings(report_dir: Path) -> list[str]:
    """Hidden names beside REPORT_DIR that belong to it (lock, partial, prestage, old)."""
    return sorted(p.name for p in report_dir.parent.glob(f".{report_dir.name}.*"))


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(profile, capture) for a run that is still judging a few seconds after it started."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import gen_capture
        import run_benchmark
    finally:
        sys.path.remove(str(BENCHMARKS))
    work = tmp_path_factory.mktemp("busy")
    capture = work / "busy.pcapng"
    gen_capture.generate(BUSY_PACKETS, capture, "pcapng", seed=3, cloud_share=0.0)
    profile = work / "busy.yaml"
    profile.write_text(run_benchmark.profile_yaml(False))
    return profile, capture


def start_busy_run(
    busy: tuple[Path, Path], report: Path, key: Path, *, ignore_sigint: bool = False
) -> subprocess.Popen[str]:
    """A run on the busy capture; `ignore_sigint`: as a shell starts `cmd &` in a script."""
    profile, capture = busy

    def ignore() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(
        harness(
            "run",
            "--profile",
            profile,
            "--pcap",
            capture,
            "--report-dir",
            report,
            "--sign-key",
            key,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore if ignore_sigint else None,  # noqa: PLW1509 (a test's own child)
        # The pure-Python decoder: where the compiled one is built (scripts/bootstrap, where
        # gcc is) the whole run would end before a signal sent half a second in.
        env={**os.environ, PURE_PYTHON_ENV: "1"},
    )
    # Observing has begun once its scratch directory is beside the report directory (after
    # the capture's copy began to be staged there).
    wait_for(
        lambda: proc.poll() is not None or any(".observe-" in n for n in siblings(report)),
        "the run to start observing",
    )
    assert proc.poll() is None, proc.communicate()
    return proc


def small_run(
    report: Path, profile: Path, capture: Path, key: Path
) -> subprocess.CompletedProcess[str]:
    return run_harness(
        "run", "--profile", profile, "--pcap", capture, "--report-dir", report, "--sign-key", key
    )


# --- one run per report directory -----------------------------------------------------------


def test_a_second_run_into_a_held_directory_is_refused_at_once_naming_the_holder(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    report = tmp_path / "report"
    lock = acquire(report)  # this test process is "the other run"
    try:
        started = time.monotonic()
        done = small_run(report, profile_file, clean_capture, sign_key)
        elapsed = time.monotonic() - started
    finally:
        lock.release()
    assert done.returncode == 3, done.stderr
    assert lines(done.stderr) == [
        line for line in lines(done.stderr) if "another run is writing" in line
    ]
    assert f"pid {os.getpid()} on " in done.stderr
    assert "Traceback" not in done.stderr
    assert not report.exists()
    assert elapsed < WAIT / 2  # refused, not waited for
    assert siblings(report) == []  # the holder removed its lock file when it let go


def test_two_real_runs_into_one_directory_never_mix_their_reports(
    tmp_path: Path,
    busy: tuple[Path, Path],
    profile_file: Path,
    clean_capture: Path,
    sign_key: Path,
) -> None:
    report = tmp_path / "report"
    first = start_busy_run(busy, report, sign_key)  # holds the lock while it judges
    os.kill(first.pid, signal.SIGSTOP)  # keep it mid-run however fast this machine is
    try:
        second = small_run(report, profile_file, clean_capture, sign_key)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=WAIT)
    assert second.returncode == 3, second.stderr
    assert f"pid {first.pid} on " in second.stderr
    assert "signed report" not in second.stderr
    assert first.returncode in (0, 1, 2), err
    assert out.strip() == str(report)
    # The directory holds the first run's report, and it verifies.
    data = json.loads((report / "report.json").read_text())
    assert data["profile"]["name"] == "benchmark-synthetic-ucx"
    verify = run_harness("verify", report, "--key", f"{sign_key}.pub")
    assert verify.returncode == 0, verify.stderr
    assert siblings(report) == []
    # Once it is done, the directory is free again.
    third = small_run(report, profile_file, clean_capture, sign_key)
    assert third.returncode == 0, third.stderr
    assert json.loads((report / "report.json").read_text())["profile"]["name"] == "cli-test-site"


# --- report directories that cannot be written ----------------------------------------------


def _without_root_override(argv: Sequence[str]) -> list[str]:
    """As root, drop the capability that ignores file modes (setpriv, util-linux)."""
    if os.geteuid() != 0:
        return list(argv)
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *argv]


def test_unwritable_report_directory_is_exit_3_in_one_line_before_judging(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    locked = tmp_path / "read-only"
    locked.mkdir(mode=0o555)
    report = locked / "report"
    argv = harness(
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
    try:
        done = subprocess.run(
            _without_root_override(argv), check=False, capture_output=True, text=True, timeout=WAIT
        )
    finally:
        locked.chmod(0o755)
    assert done.returncode == 3, done.stderr
    assert lines(done.stderr) == [
        f"ucx-conformance: {report}: cannot write a report here (Permission denied);"
        " choose another --report-dir"
    ]
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("where", ["under-a-file", "in-proc"])
def test_impossible_report_directory_is_exit_3_in_one_line(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path, where: str
) -> None:
    if where == "under-a-file":
        (tmp_path / "file").write_text("x")
        report = tmp_path / "file" / "report"
    else:
        report = Path("/proc/self/report")
    done = small_run(report, profile_file, clean_capture, sign_key)
    assert done.returncode == 3, done.stderr
    assert len(lines(done.stderr)) == 1, done.stderr
    assert f"{report}: cannot write a report here" in done.stderr
    assert "Traceback" not in done.stderr


def test_empty_report_dir_is_bad_usage(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    done = subprocess.run(
        harness(
            "run",
            "--profile",
            profile_file,
            "--pcap",
            clean_capture,
            "--report-dir",
            "",
            "--sign-key",
            sign_key,
        ),
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stderr
    assert 'the report directory is "" (empty)' in done.stderr
    assert len(lines(done.stderr)) == 1
    assert not (tmp_path / "reports").exists()


# --- signals and hard kills -----------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.5])
def test_sigint_to_the_pid_stops_the_run_like_ctrl_c(
    tmp_path: Path, busy: tuple[Path, Path], sign_key: Path, delay: float
) -> None:
    report = tmp_path / "report"
    # Started as `cmd &` from a script starts it: with SIGINT ignored.
    proc = start_busy_run(busy, report, sign_key, ignore_sigint=True)
    time.sleep(delay)  # at once lands while the run is still making its staging directory
    os.kill(proc.pid, signal.SIGINT)  # the process only, not its group
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 2, err
    assert "interrupted: no report" in err
    assert "Traceback" not in err
    assert out == ""
    assert not report.exists()
    assert siblings(report) == []


def test_leftovers_of_a_killed_run_are_removed_by_the_next_run(
    tmp_path: Path,
    busy: tuple[Path, Path],
    profile_file: Path,
    clean_capture: Path,
    sign_key: Path,
) -> None:
    report = tmp_path / "report"
    proc = start_busy_run(busy, report, sign_key)
    proc.kill()
    proc.communicate(timeout=WAIT)
    left = siblings(report)
    # what SIGKILL leaves behind: the staged copy and the observation's scratch (nothing of
    # the run is left elsewhere, such as the system's temporary directory)
    assert any(".prestage-" in name for name in left), left
    assert any(".observe-" in name for name in left), left
    # A sibling whose owner still runs (this test process) must survive the clean-up.
    alive = hidden_sibling(report, "partial", create=True)
    done = small_run(report, profile_file, clean_capture, sign_key)
    assert done.returncode == 0, done.stderr
    assert siblings(report) == [alive.name]
    alive.rmdir()


def test_what_a_killed_process_left_in_the_temporary_directory_goes_with_the_next_run(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    """Sources work in the system's temporary directory (captures with secrets blanked, an
    image's files, the lab's logs): what a SIGKILL left there goes with the next run."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from conformance.scratch import scratch_dir; import sys, time;"
            " (scratch_dir('pcap') / 'copy.pcap').write_bytes(b'x'); print(flush=True);"
            " time.sleep(60)",
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "\n"
    left = [p.name for p in temp.iterdir()]
    assert len(left) == 1 and left[0].startswith(f"ucx-pcap-{holder.pid}-"), left
    holder.kill()
    holder.communicate(timeout=WAIT)
    done = run_harness(
        "run", "--profile", profile_file, "--pcap", clean_capture,
        "--report-dir", tmp_path / "report", "--sign-key", sign_key,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(temp.iterdir()) == []


def test_running_out_of_memory_is_every_control_in_error_saying_what_to_do(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    """A MemoryError says nothing itself: the run says it was memory, and what to do, and
    still writes its signed report (exit 2: no control can pass)."""
    # The observation raises it, as a capture with tens of millions of flows would (a real
    # one needs gigabytes: the run is made to hit it where that would happen).
    script = (
        "import sys\n"
        "import conformance.run as run\n"
        "def observe_evidence(*args, **kwargs):\n"
        "    raise MemoryError()\n"
        "run.observe_evidence = observe_evidence\n"
        "from conformance.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    report = tmp_path / "report"
    done = subprocess.run(
        [
            sys.executable, "-c", script, "run", "--profile", str(profile_file),
            "--pcap", str(clean_capture), "--report-dir", str(report),
            "--sign-key", str(sign_key),
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    results = json.loads((report / "report.json").read_text())["controls"]
    judged = [r for r in results if r["id"] != "RP-SIGNED"]  # the report itself is signed
    assert judged and all(r["verdict"] in ("error", "not-applicable") for r in judged), judged
    errors = [r for r in results if r["verdict"] == "error"]
    assert errors and all("out of memory" in r["reason"] for r in errors)
    assert all("editcap -c" in r["reason"] for r in errors)
    assert "MemoryError: \n" not in done.stdout + done.stderr  # never the bare exception


# --- verify: the key path -------------------------------------------------------------------


@pytest.fixture
def signed_report(tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path) -> Path:
    report = tmp_path / "report"
    assert small_run(report, profile_file, clean_capture, sign_key).returncode == 0
    return report


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_verify_key_that_is_not_a_regular_file_is_exit_3_in_one_line(
    tmp_path: Path, signed_report: Path, kind: str
) -> None:
    key = tmp_path / f"key-{kind}"
    if kind == "fifo":
        os.mkfifo(key)  # would block a plain open() forever
    else:
        key.mkdir()
    done = run_harness("verify", signed_report, "--key", key, timeout=20)
    assert done.returncode == 3, done.stderr
    what = "a named pipe" if kind == "fifo" else "a directory"
    assert lines(done.stderr) == [f"ucx-conformance: {key}: is {what}, not a key file"]


def test_verify_key_with_a_second_pem_block_is_exit_3(
    tmp_path: Path, signed_report: Path, sign_key: Path
) -> None:
    from conformance.sign.keys import generate_key

    other = generate_key(tmp_path / "other" / "k.pem")
    doubled = tmp_path / "doubled.pub"
    doubled.write_bytes(Path(f"{sign_key}.pub").read_bytes() + Path(f"{other}.pub").read_bytes())
    done = run_harness("verify", signed_report, "--key", doubled)
    assert done.returncode == 3, done.stderr
    assert "holds 2 PEM blocks" in done.stderr


# --- plain pytest without a profile ---------------------------------------------------------


def test_pytest_on_the_suites_without_a_profile_is_bad_usage(tmp_path: Path) -> None:
    from conformance.resources import suites_dir

    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(suites_dir()), "-p", "no:cacheprovider"],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "nothing was judged: give --ucx-profile PROFILE" in done.stdout + done.stderr


def test_pytest_on_other_tests_with_the_plugin_loaded_is_untouched(tmp_path: Path) -> None:
    (tmp_path / "test_other.py").write_text("def test_ok():\n    assert True\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "conformance.plugin",
            "-p",
            "no:cacheprovider",
            "test_other.py",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=tmp_path,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},  # only ours, loaded once
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- piped output ---------------------------------------------------------------------------


def test_piped_summary_keeps_whole_reasons(
    tmp_path: Path, profile_file: Path, leak_capture: Path, sign_key: Path
) -> None:
    report = tmp_path / "report"
    done = small_run(report, profile_file, leak_capture, sign_key)  # stderr is a pipe here
    assert done.returncode == 1, done.stderr
    reasons = {
        c["id"]: c["reason"] for c in json.loads((report / "report.json").read_text())["controls"]
    }
    assert max(len(reason) for reason in reasons.values()) > 80  # the case that was cut
    printed = done.stderr.splitlines()
    for control_id, reason in reasons.items():
        assert any(
            line.startswith(control_id + " ") and line.endswith(reason) for line in printed
        ), (control_id, reason)
    assert "…" not in done.stderr


# --- what is loaded while the captures are read ----------------------------------------------

_SPY = """
import sys
from conformance.observe import builder

observe = builder.observe_captures


def spy(*args, **kwargs):
    loaded = sorted(
        name for name in ("_pytest", "pytest", "conformance.judge.controls",
                          "conformance.report.assemble", "conformance.report.view",
                          "rich.progress", "rich.table", "multiprocessing",
                          "conformance.content.own_evidence", "conformance.content.logs")
        if name in sys.modules
    )
    print("loaded while observing:", loaded, file=sys.stderr)
    return observe(*args, **kwargs)


builder.observe_captures = spy
from conformance.cli import main

code = main()
print("cryptography loaded:", any(m.startswith("cryptography") for m in sys.modules),
      file=sys.stderr)
sys.exit(code)
"""


def test_a_run_of_captures_observes_them_before_pytest_and_the_judges_load(
    tmp_path: Path, profile_file: Path, clean_capture: Path, sign_key: Path
) -> None:
    """#17: pytest, the judges and the report load into the memory the walk let go, not on
    top of its peak (the CLI prepares the run and observes first, then hands it to the
    plugin); what a run of one capture without key logs never uses (a process pool, the
    decryption and content readers, a progress bar off a terminal) is not loaded at all;
    the run ends as any other, its report signed, by the system's libcrypto where it signs
    Ed25519 (`cryptography`, 11 MiB, never loaded: sign/system_ed25519.py)."""
    report = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-c", _SPY, "run", "--profile", str(profile_file), "--pcap",
         str(clean_capture), "--report-dir", str(report), "--sign-key", str(sign_key)],
        check=False, capture_output=True, text=True, timeout=WAIT, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "loaded while observing: []" in done.stderr
    assert (report / "report.intoto.json").is_file()
    assert siblings(report) == []
    if system_key(bytes(32)) is not None:
        assert "cryptography loaded: False" in done.stderr
    verified = run_harness("verify", report, "--key", f"{sign_key}.pub")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_progress_bar_is_drawn_only_at_a_terminal() -> None:
    """rich draws its transient bar only at a terminal that can redraw a line (not a dumb
    one); elsewhere the run does not load rich.progress at all (3 MiB of a run's peak,
    #17), and such a terminal still gets its bar."""
    from rich.console import Console

    from conformance.cli import _RichProgress

    for terminal, term in ((False, "xterm"), (True, "dumb"), (True, "xterm")):
        out = io.StringIO()
        console = Console(file=out, force_terminal=terminal, width=80, _environ={"TERM": term})
        progress = _RichProgress(console)
        progress.start("reading", 10)
        progress.advance(5, "half")
        drawn = terminal and term != "dumb"
        assert (progress._bar is not None) is drawn
        progress.finish()
        assert progress._bar is None
        assert ("reading" in out.getvalue()) is drawn


@pytest.mark.parametrize(("capture", "status"), [("clean_capture", 2), ("leak_capture", 1)])
def test_a_signal_after_the_seal_says_the_report_is_whole(
    tmp_path: Path,
    profile_file: Path,
    sign_key: Path,
    capture: str,
    status: int,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SIGTERM while the run tears down, its report already sealed (a CI job's timeout):
    the report stays and is named; the exit status keeps a failure it records."""
    from conformance.cli import main
    from conformance.run import Run

    close = Run.close
    interrupted: list[bool] = []

    def close_then_signal(run: Run) -> None:
        close(run)
        if not interrupted:
            interrupted.append(True)
            raise KeyboardInterrupt("signal 15")  # what cli._terminate raises

    monkeypatch.setattr(Run, "close", close_then_signal)
    report = tmp_path / "report"
    args = ["run", "--profile", profile_file, "--pcap", request.getfixturevalue(capture)]
    code = main([str(a) for a in [*args, "--report-dir", report, "--sign-key", sign_key]])
    out, err = capsys.readouterr()
    assert interrupted
    assert code == status, err
    assert "interrupted after the report was sealed" in err
    assert "no report written" not in err
    assert out.strip() == str(report)
    assert main(["verify", str(report), "--key", f"{sign_key}.pub"]) == 0


def test_a_signal_before_the_seal_still_says_no_report(
    tmp_path: Path,
    profile_file: Path,
    clean_capture: Path,
    sign_key: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from conformance.cli import main
    from conformance.run import Run

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(Run, "_write", interrupted)
    report = tmp_path / "report"
    args = ["run", "--profile", profile_file, "--pcap", clean_capture]
    code = main([str(a) for a in [*args, "--report-dir", report, "--sign-key", sign_key]])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "interrupted" in err and "no report" in err
    assert "sealed" not in err
    assert out == ""
    assert not report.exists()
