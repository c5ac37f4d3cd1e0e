"""scripts/bootstrap's choice of Python on the machines CI cannot reach (Ubuntu 24.04, 22.04).

The distribution is played by stubs on PATH: `python3` answering as the release's Python,
`apt-cache policy` offering the release's packages, `dpkg-query` saying everything else is
installed, `id -u` a non-root user. Not root, bootstrap stops before touching anything and
names the packages it would install, which is the decision under test. (Debian 12 is proven
for real inside a fresh root filesystem: scripts/fresh-debian.)
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[2]
# Real tools bootstrap uses besides the stubbed ones.
TOOLS = (
    "bash",
    "env",
    "dirname",
    "basename",
    "readlink",
    "sed",
    "grep",
    "cut",
    "sha256sum",
    "ls",
    "cat",
)

PYTHON_STUB = """#!/bin/bash
# A distribution's python3 that is Python {version}, with venv support: {venv}.
case "$*" in
  -V) echo "Python {version}.4" ;;
  *"import ensurepip, venv"*) {venv_exit} ;;
  *"sys.version_info >= "*|*"sys.version_info[1] >= "*) {version_exit} ;;
  *"print("*) echo "{version}" ;;
  *) exit 99 ;;
esac
"""


def _stub(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _bootstrap(
    tmp_path: Path, *, python3: str | None, venv_support: bool, archive: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        real = shutil.which(tool)
        assert real is not None, tool
        (bin_dir / tool).symlink_to(real)
    if python3 is not None:
        minor = int(python3.split(".")[1])
        _stub(
            bin_dir / "python3",
            PYTHON_STUB.format(
                version=python3,
                venv="yes" if venv_support else "no",
                venv_exit="exit 0" if venv_support else "exit 1",
                version_exit="exit 0" if minor >= 11 else "exit 1",
            ),
        )
    _stub(bin_dir / "id", "#!/bin/bash\necho 1000\n")
    _stub(
        bin_dir / "dpkg-query",
        "#!/bin/bash\n"  # -S: the stubs belong to the distribution; -W: everything is installed
        'case "$1" in -S) echo "python3-minimal: $2" ;; *) echo "install ok installed" ;; esac\n',
    )
    offered = " ".join(archive)
    _stub(
        bin_dir / "apt-cache",
        "#!/bin/bash\n"
        f'case " {offered} " in *" $2 "*) echo "  Candidate: 1.0" ;;\n'
        '  *) echo "  Candidate: (none)" ;;\nesac\n',
    )
    _stub(bin_dir / "apt-get", "#!/bin/bash\necho apt-get must not run >&2\nexit 97\n")
    env = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "UCX_VENV": str(tmp_path / "venv"),
    }
    return subprocess.run(
        [str(bin_dir / "bash"), str(CHECKOUT / "scripts" / "bootstrap")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("release", "python3", "venv_support", "archive", "installs"),
    [
        ("ubuntu-24.04", "3.12", False, ("python3-venv",), "python3-venv"),
        ("ubuntu-24.04 with venv", "3.12", True, (), None),
        (
            "ubuntu-22.04",
            "3.10",
            False,
            ("python3.11", "python3.11-venv", "python3-venv"),
            "python3.11 python3.11-venv",
        ),
        ("debian-12-server", "3.11", False, ("python3-venv",), "python3-venv"),
        ("debian-12-minimal", None, False, ("python3", "python3-venv"), "python3 python3-venv"),
    ],
)
def test_bootstrap_picks_a_python_it_can_make_a_venv_with(
    tmp_path: Path,
    release: str,
    python3: str | None,
    venv_support: bool,
    archive: tuple[str, ...],
    installs: str | None,
) -> None:
    done = _bootstrap(tmp_path, python3=python3, venv_support=venv_support, archive=archive)
    assert done.returncode != 0  # the stubs cannot really make an environment
    if installs is None:
        assert "need root" not in done.stderr, done.stderr
        assert "creating" in done.stderr, done.stderr  # went straight to making the venv
    else:
        assert f"bootstrap: need root to install: {installs}" in done.stderr, done.stderr
    assert "apt-get must not run" not in done.stderr


def test_ubuntu_22_04_without_python_3_11_in_the_archive_stops_with_a_clear_message(
    tmp_path: Path,
) -> None:
    done = _bootstrap(tmp_path, python3="3.10", venv_support=True, archive=())
    assert done.returncode == 1
    assert "python3 here is 3.10.4; the harness needs Python 3.11 or newer" in done.stderr
    assert "add-apt-repository universe" in done.stderr
    assert "UCX_PYTHON" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_an_existing_environment_with_an_old_python_is_refused_not_replaced(
    tmp_path: Path,
) -> None:
    old = tmp_path / "venv" / "bin"
    old.mkdir(parents=True)
    _stub(
        old / "python",
        PYTHON_STUB.format(version="3.9", venv="yes", venv_exit="exit 0", version_exit="exit 1"),
    )
    done = _bootstrap(tmp_path, python3="3.12", venv_support=True, archive=())
    assert done.returncode == 1
    assert "the harness needs 3.11+" in done.stderr
    assert (old / "python").exists()


def test_system_python_is_never_installed_into() -> None:
    text = (CHECKOUT / "scripts" / "bootstrap").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "--break-system-packages" not in code
    assert "pip install" not in code.replace('"$py" -m pip install', "")
    assert os.access(CHECKOUT / "scripts" / "bootstrap", os.X_OK)
