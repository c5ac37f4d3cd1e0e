"""The one verdict type, its ordering, and the exit codes of interface.md."""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum, StrEnum
from typing import assert_never


class Verdict(StrEnum):
    """Outcome of one control (controls.md, "Verdicts")."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not-applicable"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Severity for combining verdicts: fail > error > inconclusive > pass > not-applicable."""
        match self:
            case Verdict.FAIL:
                return 4
            case Verdict.ERROR:
                return 3
            case Verdict.INCONCLUSIVE:
                return 2
            case Verdict.PASS:
                return 1
            case Verdict.NOT_APPLICABLE:
                return 0
            case _:
                assert_never(self)


class ExitCode(IntEnum):
    """Exit status of `ucx-conformance run` and of the pytest suites (interface.md)."""

    PASSED = 0
    FAILED = 1
    INCOMPLETE = 2  # none failed, at least one inconclusive or error (or nothing judged)
    USAGE = 3  # bad usage or bad profile: nothing judged


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe verdict; an empty input proves nothing and is inconclusive."""
    items = list(verdicts)
    if not items:
        return Verdict.INCONCLUSIVE
    return max(items, key=lambda v: v.rank)


def overall(verdicts: Iterable[Verdict]) -> Verdict:
    """Report-level verdict: `pass`, `fail` or `inconclusive` (interface.md report.json).

    `error` counts as inconclusive here; a run where every control is not-applicable,
    or where no control ran, proved nothing and is inconclusive.
    """
    top = worst(verdicts)
    match top:
        case Verdict.FAIL | Verdict.PASS | Verdict.INCONCLUSIVE:
            return top
        case Verdict.ERROR | Verdict.NOT_APPLICABLE:
            return Verdict.INCONCLUSIVE
        case _:
            assert_never(top)


def exit_code(report_verdict: Verdict) -> ExitCode:
    """Map a report-level verdict to the process exit status."""
    match report_verdict:
        case Verdict.PASS:
            return ExitCode.PASSED
        case Verdict.FAIL:
            return ExitCode.FAILED
        case Verdict.INCONCLUSIVE | Verdict.ERROR | Verdict.NOT_APPLICABLE:
            return ExitCode.INCOMPLETE
        case _:
            assert_never(report_verdict)
