"""One signed report per module for the writers' tests (they only read it)."""

from __future__ import annotations

import pytest

from tests.report.builders import SignedReport, signed_report


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> SignedReport:
    return signed_report(tmp_path_factory.mktemp("written"))
