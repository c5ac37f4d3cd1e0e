"""`ucx-conformance export`: a verified report in the formats other tools read.

interface.py    the Exporter base class and the report facts every format reads
oscal.py        OSCAL 1.1 assessment-results (GRC tools)
sarif.py        SARIF 2.1.0 (GitHub code scanning and other SARIF viewers)
test_result.py  in-toto test-result attestation in a DSSE envelope (policy engines, cosign)
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, assert_never

if TYPE_CHECKING:  # the formats' modules load when one is asked for: `run` needs none
    from conformance.export.interface import Exporter


class ExportFormat(StrEnum):
    """The `--format` values of `export`."""

    OSCAL = "oscal"
    SARIF = "sarif"
    TEST_RESULT = "test-result"

    def to_exporter(self) -> Exporter:
        """The exporter of this format."""
        match self:
            case ExportFormat.OSCAL:
                from conformance.export.oscal import OscalExporter

                return OscalExporter()
            case ExportFormat.SARIF:
                from conformance.export.sarif import SarifExporter

                return SarifExporter()
            case ExportFormat.TEST_RESULT:
                from conformance.export.test_result import TestResultExporter

                return TestResultExporter()
            case _:
                assert_never(self)


FORMAT_NAMES = tuple(f.value for f in ExportFormat)


def exporter(name: str) -> Exporter:
    """The exporter for a `--format` value (ValueError for an unknown one)."""
    return ExportFormat(name).to_exporter()
