"""`verify-chain R`: every period report of a watch verified, and the chain between them walked.

1. Every directory of R named like a period (`20240501T000000Z`) is verified whole, as
   `verify` does (signature, every file's SHA-256, nothing extra), against the pinned key.
   One that does not verify is an altered period; an entry named like a period that is a
   symlink or not a directory is a problem too (it is no period this chain can vouch for).
2. Its signed statement's `period` must name the directory's own period (a renamed or
   swapped directory holds another period's report), and the periods, by start, must be
   numbered 0, 1, 2... with no hole between one's end and the next's start.
3. Each period names the previous one's id and envelope SHA-256: a period deleted, replaced
   by another report, or moved out of order breaks that link, and the problem names it.
4. The newest period is compared with the watch's state (R/.watch/state.json) when there is
   one, so even the last period cannot vanish unseen while the watch runs (a state file
   that is there but unreadable is a problem, not skipped); the head digest is printed for
   the auditor to write down.

Every field read from a report is checked for its type: a signed report with a field of
another shape is a problem named for its period, never a crash.

The history lists each period with its verdict, the controls that did not pass and the
destinations the target reached that the previous period's report did not show (a period
without any capture is skipped for that comparison: it saw nothing).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from conformance.compare.baseline import snapshot_of
from conformance.digest import open_regular_nofollow
from conformance.errors import VerifyError
from conformance.sign.verified import VerifiedReport, open_verified
from conformance.watch.state import STATE_DIR, STATE_FILE

PERIOD_NAME: Final = re.compile(r"\d{8}T\d{6}(\.\d{6})?Z")
# Destinations named per period in the table; the count is always exact.
MAX_NEW_SHOWN: Final = 5
# Period start and end times written by the report (json_report.period_document), compared
# as text: one watch writes them all the same way.
# The watch's state is a few kilobytes per period; far more is not a state file.
MAX_STATE_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PeriodRow:
    """One period of the history."""

    period: str
    index: int | None
    verdict: str
    not_passed: tuple[str, ...]  # "AG-EGRESS fail"
    new_destinations: tuple[str, ...]
    gaps: int
    envelope_sha256: str | None


@dataclass
class ChainResult:
    """The history and every problem found (an empty `problems` is a good chain)."""

    rows: list[PeriodRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    head: str | None = None  # the newest period's envelope SHA-256
    pinned: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.rows)


def verify_chain(root: Path, key: Path | None, *, allow_unpinned: bool = False) -> ChainResult:
    """Verify every period report under `root` and the chain between them (steps above).

    VerifyError when `root` holds no period at all or the signer is not pinned (and
    `allow_unpinned` is false): nothing could be checked.
    """
    if not root.is_dir():
        raise VerifyError(root, "not a directory")
    names, odd = _period_entries(root)
    if not names:
        raise VerifyError(root, "holds no period report (directories named like 20240501T000000Z)")
    if key is None and not allow_unpinned:
        open_verified(root / names[0], None)  # raises with the unpinned hint
    result = ChainResult(pinned=key is not None, problems=odd)
    previous: tuple[str, dict[str, Any], VerifiedReport] | None = None
    previous_destinations: set[tuple[str, int | None, str]] | None = None
    for position, name in enumerate(names):
        # 1. the report verifies
        try:
            report = open_verified(root / name, key, allow_unpinned=allow_unpinned)
        except VerifyError as exc:
            result.problems.append(f"period {name}: altered: {exc}")
            result.rows.append(PeriodRow(name, None, "unverified", (), (), 0, None))
            previous = None
            continue
        period = report.predicate.get("period")
        if not isinstance(period, dict):
            result.problems.append(f"period {name}: not a watch period report (no `period`)")
            previous = None
            continue
        # 2. it is this directory's period, in its place
        if period.get("id") != name:
            result.problems.append(
                f"period {name}: the directory holds the report of period {period.get('id')}"
                " (renamed or swapped)"
            )
        index = period.get("index")
        if index != position and not result.problems:
            result.problems.append(
                f"period {name}: numbered {index}, but it is period {position} of the chain"
                " (a period before it is missing, or the chain was reordered)"
            )
        # 3. it names the previous period
        _check_link(name, period, previous, result)
        try:
            document = report.report()
            snapshot = snapshot_of(report)
        except VerifyError as exc:
            result.problems.append(f"period {name}: unreadable: {exc}")
            result.rows.append(PeriodRow(name, None, "unreadable", (), (), 0, None))
            previous = None
            continue
        destinations = set(snapshot.destinations)
        new = (
            sorted(snapshot.destinations[k].text for k in destinations - previous_destinations)
            if previous_destinations is not None
            else []
        )
        result.rows.append(
            PeriodRow(
                period=name,
                index=index if isinstance(index, int) else None,
                verdict=str(document.get("verdict")),
                not_passed=_not_passed(document),
                new_destinations=tuple(new),
                gaps=len(_list(_mapping(document.get("period")).get("gaps"))),
                envelope_sha256=report.envelope_sha256,
            )
        )
        previous = (name, period, report)
        if document.get("judged_by"):
            # A period without captures saw nothing: the next is compared with the last that did.
            previous_destinations = destinations
    # 4. the newest period is the watch's head
    last = result.rows[-1]
    result.head = last.envelope_sha256
    _check_head(root, last, result)
    return result


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _not_passed(document: dict[str, Any]) -> tuple[str, ...]:
    """ "AG-EGRESS fail" for each control that did not pass (an unreadable one counts)."""
    controls = document.get("controls")
    if not isinstance(controls, list):
        return ("controls unreadable",)
    shown = []
    for control in controls:
        entry = _mapping(control)
        if entry.get("verdict") not in ("pass", "not-applicable"):
            shown.append(f"{entry.get('id')} {entry.get('verdict')}")
    return tuple(shown)


def _period_entries(root: Path) -> tuple[list[str], list[str]]:
    """The period directories of `root`, and a problem for each entry named like a period
    that is a symlink or not a directory (never followed: it could point anywhere)."""
    names: list[str] = []
    odd: list[str] = []
    for entry in os.scandir(root):
        if not PERIOD_NAME.fullmatch(entry.name):
            continue
        if entry.is_symlink():
            odd.append(f"period {entry.name}: is a symlink, not a period directory")
        elif not entry.is_dir(follow_symlinks=False):
            odd.append(f"period {entry.name}: is not a directory")
        else:
            names.append(entry.name)
    return sorted(names), sorted(odd)


def _check_link(
    name: str,
    period: dict[str, Any],
    previous: tuple[str, dict[str, Any], VerifiedReport] | None,
    result: ChainResult,
) -> None:
    named = period.get("previous")
    if named is not None and not isinstance(named, dict):
        result.problems.append(f"period {name}: its link to the previous period is unreadable")
        return
    if previous is None:
        if period.get("index") == 0 and named is None:
            return
        if named is None:
            result.problems.append(f"period {name}: names no previous period but is not first")
            return
        result.problems.append(
            f"period {name}: names previous period {named.get('period')}, which is missing"
            " or does not verify"
        )
        return
    before_name, before, before_report = previous
    if named is None:
        result.problems.append(
            f"period {name}: names no previous period, but {before_name} comes before it"
        )
        return
    if named.get("period") != before_name:
        result.problems.append(
            f"period {name}: names previous period {named.get('period')}, but the period"
            f" before it is {before_name} (period {named.get('period')} missing or moved)"
        )
    elif named.get("envelopeSha256") != before_report.envelope_sha256:
        result.problems.append(
            f"period {before_name}: replaced: period {name} names envelope"
            f" {named.get('envelopeSha256')}, the report there has {before_report.envelope_sha256}"
        )
    if before.get("end") != period.get("start"):
        result.problems.append(
            f"period {name}: starts at {period.get('start')}, but period {before_name}"
            f" ended at {before.get('end')} (a period between them is missing)"
        )


def _check_head(root: Path, last: PeriodRow, result: ChainResult) -> None:
    path = root / STATE_DIR / STATE_FILE
    try:
        os.lstat(path)
    except FileNotFoundError:
        return  # no watch state beside the reports (an archive): the printed head is the anchor
    except OSError:
        pass  # there, but not even its type can be read: reported below
    try:
        with open_regular_nofollow(path) as handle:
            data = handle.read(MAX_STATE_BYTES + 1)
        if len(data) > MAX_STATE_BYTES:
            raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
        document = json.loads(data)
        if not isinstance(document, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError, RecursionError) as exc:
        # An OSError without strerror is open_regular_nofollow's "not a regular file".
        what = (exc.strerror or "not a regular file") if isinstance(exc, OSError) else str(exc)
        result.problems.append(
            f"{path}: the watch's state is unreadable ({what}), so the newest period cannot be"
            " checked against it (remove the file only if this is an archive)"
        )
        return
    head = document.get("head")
    if not isinstance(head, dict):
        return
    if head.get("period") != last.period or head.get("envelope_sha256") != last.envelope_sha256:
        result.problems.append(
            f"period {head.get('period')}: the watch's state names it as the newest period"
            f" (envelope {head.get('envelope_sha256')}), the newest report here is {last.period}"
            " (the newest period is missing or replaced)"
        )


def history_table(result: ChainResult) -> list[list[str]]:
    """The history as rows of text: period, verdict, not passed, new destinations, gaps."""
    rows = []
    for row in result.rows:
        shown = list(row.new_destinations[:MAX_NEW_SHOWN])
        if len(row.new_destinations) > MAX_NEW_SHOWN:
            shown.append(f"+{len(row.new_destinations) - MAX_NEW_SHOWN} more")
        rows.append(
            [
                row.period,
                row.verdict,
                ", ".join(row.not_passed) or "-",
                ", ".join(shown) or "-",
                str(row.gaps),
            ]
        )
    return rows


def chain_document(result: ChainResult) -> dict[str, Any]:
    """The result as JSON (`verify-chain --format json`)."""
    return {
        "ok": result.ok,
        "pinned": result.pinned,
        "head": result.head,
        "problems": result.problems,
        "periods": [
            {
                "period": r.period,
                "index": r.index,
                "verdict": r.verdict,
                "not_passed": list(r.not_passed),
                "new_destinations": list(r.new_destinations),
                "gaps": r.gaps,
                "envelope_sha256": r.envelope_sha256,
            }
            for r in result.rows
        ],
    }
