"""Three signed reports of real runs, made once per module: clean, clean again, two leaks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import defects
from tests.after_run import Lab, make_lab, tcp_and_udp_leak


@dataclass(frozen=True, slots=True)
class Runs:
    lab: Lab
    clean: Path
    clean_again: Path
    leak: Path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    lab = make_lab(tmp_path_factory.mktemp("runs"))
    codes = {}
    codes["clean"], clean = lab.run("clean", defects.clean_onprem_traffic())
    codes["again"], again = lab.run("clean-again", defects.clean_onprem_traffic())
    codes["leak"], leak = lab.run("leak", tcp_and_udp_leak())
    assert codes == {"clean": 0, "again": 0, "leak": 1}
    return Runs(lab, clean, again, leak)


@pytest.fixture(autouse=True)
def _isolated_default_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Never let a test create or reuse a key in the real home directory."""
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "default-key" / "signing-key.pem"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    yield
