"""The wheel is the harness: built, installed into a fresh virtual environment outside the
checkout, it lists the faults, judges a bundled sample and (root) runs the lab.

The tests run offline (scripts/test: an empty network namespace), so the new environment
cannot download the harness's dependencies: it borrows them from the running environment
through a `.pth` line (site-packages directories only; the `.pth` files in them, such as an
editable install's pointer to the checkout, are not processed). The harness itself, its
suites and its fixtures come from the wheel alone, which the tests check. scripts/fresh-debian
installs the same wheel with its dependencies from the package index, as pipx would.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from conformance.resources import captures_dir, fixtures_dir, profiles_dir

CHECKOUT = Path(__file__).resolve().parents[2]
WAIT = 300.0  # seconds: a lab run is ~40 s; a hang fails the test, not the suite


def _timed(label: str, started: float) -> None:
    print(f"{label}: {time.monotonic() - started:.1f} s")  # shown with -s / --durations


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout (hatchling, no network, no build isolation)."""
    if not (CHECKOUT / "pyproject.toml").exists():
        pytest.fail("not a checkout: the wheel is built from the source tree")
    try:
        import hatchling  # noqa: F401
    except ImportError:
        pytest.fail("hatchling is missing: install the dev extras (scripts/bootstrap does)")
    out = tmp_path_factory.mktemp("wheel")
    started = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(out),
            str(CHECKOUT),
        ],
        check=True,
        timeout=WAIT,
    )
    _timed("wheel build", started)
    (built,) = out.glob("ucx_conformance-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment outside the checkout with the wheel installed."""
    root = tmp_path_factory.mktemp("venv") / "env"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            str(wheel),
        ],
        check=True,
        timeout=WAIT,
    )
    purelib = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    borrowed = [p for p in (*site.getsitepackages(), sysconfig.get_paths()["purelib"]) if p]
    (purelib / "zz_borrowed_dependencies.pth").write_text("\n".join(dict.fromkeys(borrowed)) + "\n")
    _timed("venv and install", started)
    return root


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["UCX_CONFORMANCE_KEY"] = str(tmp / "default-key.pem")
    env["HOME"] = str(tmp)
    return env


def _run(venv: Path, tmp: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """`ucx-conformance ARGS` of the new environment, from a directory outside the checkout."""
    return subprocess.run(
        [str(venv / "bin" / "ucx-conformance"), *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=tmp,
        env=_env(tmp),
    )


def _packaged(venv: Path, tmp: Path) -> dict[str, Path]:
    """`python -m conformance.resources` of the new environment: where its content is."""
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "conformance.resources"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp,
        env=_env(tmp),
    )
    return {
        name: Path(path)
        for name, path in (line.split("\t") for line in done.stdout.split("\n") if line)
    }


def test_the_wheel_carries_the_runtime_content(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    needed = [
        "conformance/_suites/test_air_gapped.py",
        "conformance/_suites/pytest.ini",
        "conformance/_fixtures/lab/target/ucx_target.py",
        "conformance/_fixtures/lab/target/faults.json",
        "conformance/_fixtures/lab/standins/standins.py",
        "conformance/_fixtures/lab/labproto.py",
        "conformance/_fixtures/profiles/lab-air-gapped.yaml",
        "conformance/_fixtures/captures/sample-air-gapped.pcapng",
        "conformance/__main__.py",
        "conformance/resources.py",
        "conformance/profile/profile.schema.json",  # `profile schema` reads it from the package
    ]
    assert [n for n in needed if n not in names] == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # Every profile, capture and lab file of the checkout is in it.
    for sub in ("lab", "profiles", "captures"):
        for path in (CHECKOUT / "fixtures" / sub).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                rel = path.relative_to(CHECKOUT / "fixtures").as_posix()
                assert f"conformance/_fixtures/{rel}" in names, rel


def test_installed_harness_comes_from_the_wheel(venv: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import conformance; print(conformance.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    assert Path(done.stdout.strip()).is_relative_to(venv)
    places = _packaged(venv, tmp_path)
    assert all(path.is_relative_to(venv) for path in places.values()), places
    assert places["fixtures"] != fixtures_dir()  # not the checkout's


def test_lab_faults_and_python_dash_m(venv: Path, tmp_path: Path) -> None:
    done = _run(venv, tmp_path, "lab", "faults")
    assert done.returncode == 0, done.stderr
    names = [line.split("\t")[0] for line in done.stdout.splitlines()]
    assert "phone-home-dns" in names
    module = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "conformance", "--version"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path),
    )
    assert module.returncode == 0, module.stderr
    assert module.stdout.startswith("ucx-conformance ")


@pytest.mark.parametrize(
    ("sample", "expected"), [("sample-air-gapped", 0), ("sample-air-gapped-leak", 1)]
)
def test_run_on_a_bundled_sample(venv: Path, tmp_path: Path, sample: str, expected: int) -> None:
    places = _packaged(venv, tmp_path)
    keygen = _run(venv, tmp_path, "keygen", tmp_path / "keys" / "signer.pem")
    assert keygen.returncode == 0, keygen.stderr
    started = time.monotonic()
    done = _run(
        venv,
        tmp_path,
        "run",
        "--profile",
        places["profiles"] / "sample-air-gapped.yaml",
        "--pcap",
        places["captures"] / f"{sample}.pcapng",
        "--report-dir",
        tmp_path / "report",
        "--sign-key",
        tmp_path / "keys" / "signer.pem",
    )
    _timed(f"run --pcap {sample}", started)
    assert done.returncode == expected, done.stderr
    assert done.stdout.strip() == str(tmp_path / "report")
    verify = _run(
        venv, tmp_path, "verify", tmp_path / "report", "--key", tmp_path / "keys" / "signer.pem.pub"
    )
    assert verify.returncode == 0, verify.stderr
    # The same bytes as the checkout's sample.
    assert (places["captures"] / f"{sample}.pcapng").read_bytes() == (
        captures_dir() / f"{sample}.pcapng"
    ).read_bytes()
    assert (places["profiles"] / "sample-air-gapped.yaml").read_bytes() == (
        profiles_dir() / "sample-air-gapped.yaml"
    ).read_bytes()


@pytest.mark.lab
def test_run_lab_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("the lab needs root and iproute2 (scripts/test runs the lab tests as root)")
    started = time.monotonic()
    done = _run(venv, tmp_path, "run", "--lab", "--report-dir", tmp_path / "report")
    _timed("run --lab", started)
    assert done.returncode == 0, done.stderr
    verify = _run(
        venv, tmp_path, "verify", tmp_path / "report", "--key", tmp_path / "default-key.pem.pub"
    )
    assert verify.returncode == 0, verify.stderr
