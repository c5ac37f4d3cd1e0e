"""The reference image as the lab's target, end to end through the Docker engine.

Needs a running engine and the reference image (scripts/test starts both before the tests:
scripts/docker-up, fixtures/image/build-reference-image). Without them these tests fail with
the reason, unless UCX_SKIP_DOCKER=1 says this machine has no engine on purpose.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.container.image import REPOSITORY

pytestmark = [pytest.mark.lab, pytest.mark.docker]
PROFILES = Path(__file__).resolve().parents[2] / "fixtures" / "profiles"
IMAGE = f"{REPOSITORY}:latest"


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def engine() -> None:
    if os.environ.get("UCX_SKIP_DOCKER") == "1":
        pytest.skip("UCX_SKIP_DOCKER=1: no Docker engine on this machine by choice")
    from conformance.evidence.docker import docker_client

    client = docker_client()  # fails with what to do when no engine answers
    try:
        client.images.get(IMAGE)
    except Exception as exc:
        pytest.fail(f"{IMAGE} missing ({exc}): run fixtures/image/build-reference-image")


def _short(tmp_path: Path, name: str, window: str = "5s") -> Path:
    text = (PROFILES / f"{name}.yaml").read_text()
    lines = [
        f"window: {window}" if line.startswith("window:") else line for line in text.splitlines()
    ]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _ours(owner: int | None = None) -> list[str]:
    """What a run of the harness left in the engine: containers, networks, volumes.

    `owner`: only that process's (other runs may share this engine); None: any run's.
    """
    label = f"label=ucx-conformance.owner={owner}" if owner else "label=ucx-conformance.run"
    return [
        *_docker("ps", "-a", "-q", "--filter", label).split(),
        *_docker("network", "ls", "-q", "--filter", label).split(),
        *_docker("volume", "ls", "-q", "--filter", label).split(),
    ]


@pytest.fixture
def clean_engine(engine: None) -> Iterator[list[int]]:
    """The pids of the runs a test starts; afterwards none may have left anything."""
    owners: list[int] = []
    yield owners
    for owner in owners:
        assert _ours(owner) == [], "the run left Docker objects behind"


def run_image(
    tmp_path: Path, owners: list[int], profile: str, *faults: str
) -> tuple[int, dict[str, str]]:
    report = tmp_path / "report"
    args = [
        sys.executable,
        "-m",
        "conformance.cli",
        "run",
        "--image",
        IMAGE,
        "--profile",
        str(_short(tmp_path, profile)),
        "--report-dir",
        str(report),
        "--sign-key",
        str(tmp_path / "key.pem"),
    ]
    for fault in faults:
        args += ["--fault", fault]
    subprocess.run(
        [sys.executable, "-m", "conformance.cli", "keygen", str(tmp_path / "key.pem")],
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    owners.append(proc.pid)
    _, err = proc.communicate(timeout=300)
    assert (report / "report.json").exists(), err.decode(errors="replace")[-2000:]
    data = json.loads((report / "report.json").read_text())
    return proc.returncode, {c["id"]: c["verdict"] for c in data["controls"]}


def test_air_gapped_image_passes(tmp_path: Path, clean_engine: list[int]) -> None:
    code, verdicts = run_image(tmp_path, clean_engine, "lab-air-gapped")
    assert code == 0, verdicts
    for control in ("AG-EGRESS", "AG-INGRESS", "AG-CLOUD-NAMES", "AG-ONPREM", "AG-PERIMETER"):
        assert verdicts[control] == "pass", (control, verdicts)


def test_air_gapped_image_with_two_faults_fails_their_controls(
    tmp_path: Path, clean_engine: list[int]
) -> None:
    code, verdicts = run_image(
        tmp_path, clean_engine, "lab-air-gapped", "phone-home-dns", "ntp-public"
    )
    assert code == 1
    assert verdicts["AG-CLOUD-NAMES"] == "fail" and verdicts["AG-EGRESS"] == "fail", verdicts
    assert verdicts["AG-INGRESS"] == "pass" and verdicts["AG-ONPREM"] == "pass", verdicts


def test_hybrid_image_passes(tmp_path: Path, clean_engine: list[int]) -> None:
    code, verdicts = run_image(tmp_path, clean_engine, "lab-hybrid")
    for control in ("HY-DEST", "HY-TLS", "HY-CERT", "HY-ENDPOINT", "HY-INGRESS"):
        assert verdicts[control] == "pass", (control, verdicts)
    assert code == 0, verdicts


def test_hybrid_image_with_two_faults_fails_their_controls(
    tmp_path: Path, clean_engine: list[int]
) -> None:
    code, verdicts = run_image(
        tmp_path, clean_engine, "lab-hybrid", "undocumented-endpoint", "no-sni"
    )
    assert code == 1
    assert verdicts["HY-DEST"] == "fail" and verdicts["HY-TLS"] == "fail", verdicts
    assert verdicts["HY-INGRESS"] == "pass", verdicts


@pytest.mark.parametrize(
    ("sig", "delay"),
    [
        (signal.SIGINT, 3.0),  # inside the window
        (signal.SIGTERM, 3.0),
        (signal.SIGTERM, 0.0),  # as soon as the container exists, before the lab is up
    ],
)
def test_interrupted_run_leaves_nothing(
    tmp_path: Path, engine: None, sig: signal.Signals, delay: float
) -> None:
    report = tmp_path / "report"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conformance.cli",
            "run",
            "--image",
            IMAGE,
            "--profile",
            str(_short(tmp_path, "lab-air-gapped", "20s")),
            "--report-dir",
            str(report),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not _docker("ps", "-q", "--filter", f"label=ucx-conformance.owner={proc.pid}").split():
        assert proc.poll() is None and time.monotonic() < deadline, "the container never started"
        time.sleep(0.2)
    time.sleep(delay)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not report.exists(), "an interrupted run must not leave a report"
    assert _ours(proc.pid) == []
