"""The lab comes up fast and leaves nothing behind, however its run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.errors import LabError
from conformance.lab import list_faults, run_lab
from conformance.lab.netns import clean_stale
from tests.lab.conftest import lab_profile, leftovers, own_namespaces, run_id_of

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[2]
STARTUP_BUDGET = 10.0  # seconds from nothing to a target running under capture, and back
CHILD_START_TIMEOUT = 30.0


def test_lab_starts_and_stops_within_budget(tmp_path: Path) -> None:
    profile = lab_profile("lab-air-gapped", window=0.5, probes={"perimeter": False})
    began = time.monotonic()
    run = run_lab(profile, [], tmp_path)
    took = time.monotonic() - began
    assert took < STARTUP_BUDGET, run.notes
    up = next(n for n in run.notes if n.startswith("lab up in"))
    assert float(up.split()[3]) < STARTUP_BUDGET
    assert leftovers(tmp_path) == []


def test_normal_run_leaves_nothing_and_returns_evidence(tmp_path: Path) -> None:
    run = run_lab(lab_profile("lab-air-gapped", window=2.0), [], tmp_path)
    assert leftovers(tmp_path) == []
    assert run.captures[0].stat().st_size > 0
    names = {name for _, name in run.evidence_files}
    assert {"lab/topology.json", "lab/target.jsonl", "lab/perimeter.json", "probes.jsonl"} <= names
    assert run.probe_log is not None
    assert all(path.is_relative_to(tmp_path) for path, _ in run.evidence_files)


class _BoomError(Exception):
    pass


class _ExplodingProgress:
    def start(self, step: str, total: float | None) -> None:
        pass

    def advance(self, done: float, detail: str = "") -> None:
        if done > 1.0:
            raise _BoomError("inside the window")

    def finish(self) -> None:
        pass


def test_exception_inside_the_window_tears_down(tmp_path: Path) -> None:
    with pytest.raises(_BoomError):
        run_lab(lab_profile("lab-air-gapped", window=30.0), [], tmp_path, _ExplodingProgress())
    assert leftovers(tmp_path) == []


def _child(workdir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "lab" / "lab_child.py"), str(workdir)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + CHILD_START_TIMEOUT
    line = ""
    while time.monotonic() < deadline and "WINDOW" not in line:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            pytest.fail(
                f"lab child died before its window: {proc.stderr.read() if proc.stderr else ''}"
            )
    return proc


def test_sigint_to_a_running_lab_tears_down(tmp_path: Path) -> None:
    proc = _child(tmp_path)
    assert own_namespaces(tmp_path), "the lab should be up"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert "interrupted by SIGINT" in err
    assert leftovers(tmp_path) == []


def test_sigkill_leaves_state_that_the_next_start_cleans(tmp_path: Path) -> None:
    first = tmp_path / "killed"
    proc = _child(first)
    proc.kill()
    proc.communicate(timeout=30)
    assert own_namespaces(first), "a SIGKILLed lab cannot clean up after itself"
    assert leftovers(first), "its services outlive it until the next start"
    second = tmp_path / "next"
    run = run_lab(
        lab_profile("lab-air-gapped", window=0.5, probes={"perimeter": False}), [], second
    )
    assert any("cleaned stale lab" in note for note in run.notes), run.notes
    assert leftovers(first) == []
    assert leftovers(second) == []
    killed = run_id_of(first)
    assert killed is not None
    assert not any(killed in note for note in clean_stale())


def test_unknown_fault_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(LabError) as raised:
        run_lab(lab_profile("lab-air-gapped"), ["no-such-fault"], tmp_path)
    for name, _ in list_faults():
        assert name in str(raised.value)
    assert not any(tmp_path.iterdir()), "nothing is started for a bad fault"
