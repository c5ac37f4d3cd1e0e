"""A signed report written once per session; each test works on its own copy."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from tests.report.builders import SignedReport, signed_report


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> SignedReport:
    return signed_report(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def report(pristine: SignedReport, tmp_path: Path) -> SignedReport:
    """A private copy of the pristine report (the key files stay where they are)."""
    copy = tmp_path / "report"
    shutil.copytree(pristine.report_dir, copy, symlinks=True)
    return replace(pristine, report_dir=copy)
