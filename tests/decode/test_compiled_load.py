"""Which compiled module is loaded: never one built from an older source in a checkout."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance import run
from conformance.decode import compiled


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A checkout-shaped tree on sys.path: hatch_build.py, pkg/sub/_fast.py and its .pyx.

    The .py stands in for the extension module: `load` judges by the module file found,
    whatever its suffix.
    """
    (tmp_path / "hatch_build.py").write_text("")
    sub = tmp_path / "ucxfakepkg" / "sub"
    sub.mkdir(parents=True)
    (tmp_path / "ucxfakepkg" / "__init__.py").write_text("")
    (sub / "__init__.py").write_text("")
    (sub / "_fast.py").write_text("BUILT = True\n")
    (sub / "_fast.pyx").write_text("# source\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(compiled.PURE_PYTHON_ENV, raising=False)
    monkeypatch.setattr(compiled, "STATUS", {})
    yield sub
    for name in [m for m in sys.modules if m.startswith("ucxfakepkg")]:
        del sys.modules[name]


def _age(path: Path, seconds: float) -> None:
    st = path.stat()
    os.utime(path, (st.st_atime - seconds, st.st_mtime - seconds))


def test_a_module_newer_than_its_source_is_loaded(checkout: Path) -> None:
    _age(checkout / "_fast.pyx", 10)
    module = compiled.load("ucxfakepkg.sub._fast")
    assert module is not None and module.BUILT


@pytest.mark.parametrize("source", [".pyx", ".pxd"])
def test_a_module_older_than_its_source_is_not_loaded(checkout: Path, source: str) -> None:
    (checkout / f"_fast{source}").write_text("# edited\n")
    _age(checkout / "_fast.py", 10)
    assert compiled.load("ucxfakepkg.sub._fast") is None
    assert compiled.describe() == "pure Python: ucxfakepkg.sub._fast built from an older source"


def test_a_module_older_than_a_declaration_it_may_cimport_is_not_loaded(checkout: Path) -> None:
    _age(checkout / "_fast.pyx", 60)
    other = checkout.parent / "other"
    other.mkdir()
    (other / "_decl.pxd").write_text("# edited declarations\n")
    _age(checkout / "_fast.py", 10)
    assert compiled.load("ucxfakepkg.sub._fast") is None


def test_outside_a_checkout_install_times_do_not_count(checkout: Path) -> None:
    (checkout.parent.parent / "hatch_build.py").unlink()
    _age(checkout / "_fast.py", 10)
    assert compiled.load("ucxfakepkg.sub._fast") is not None


def test_pure_python_asked_for(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(compiled.PURE_PYTHON_ENV, "1")
    _age(checkout / "_fast.pyx", 10)
    assert compiled.load("ucxfakepkg.sub._fast") is None


def test_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "STATUS", {})
    monkeypatch.delenv(compiled.PURE_PYTHON_ENV, raising=False)
    assert compiled.load("conformance.decode._no_such_module") is None
    assert compiled.describe() == "pure Python: conformance.decode._no_such_module not built"


def test_the_report_says_which_code_ran(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _age(checkout / "_fast.pyx", 10)
    compiled.load("ucxfakepkg.sub._fast")
    assert compiled.describe() == "compiled (Cython): ucxfakepkg.sub._fast"
    compiled.load("ucxfakepkg.sub._missing")
    assert compiled.describe() == "partly compiled: ucxfakepkg.sub._missing not built"
    monkeypatch.setenv(compiled.PURE_PYTHON_ENV, "1")
    compiled.load("ucxfakepkg.sub._fast")
    assert compiled.describe().startswith("pure Python: ucxfakepkg.sub._fast switched off by")
    assert run.tool_versions()["decoder"] == compiled.describe()


def test_bootstrap_builds_when_a_module_is_missing_or_stale(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _age(checkout / "_fast.pyx", 10)
    monkeypatch.setattr(compiled, "MODULES", ("ucxfakepkg.sub._fast",))
    assert not compiled.needs_build()
    (checkout / "_fast.pyx").write_text("# edited\n")
    _age(checkout / "_fast.py", 10)
    assert compiled.needs_build()
    _age(checkout / "_fast.pyx", 60)
    assert not compiled.needs_build()
    monkeypatch.setattr(compiled, "MODULES", ("ucxfakepkg.sub._fast", "ucxfakepkg.sub._none"))
    assert compiled.needs_build()
