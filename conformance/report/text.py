"""Text helpers every writer shares: UTC timestamps and one-line, control-free strings.

Every capture time is written by `iso_epoch` (ISO 8601, microseconds) or `utc_strftime` (a
strftime pattern). A time datetime cannot show (before year 1, after year 9999, not a
number: a capture's clock can say anything) is written by both in one form, `epoch:` and
the epoch seconds to the microsecond (`epoch:18446744073.709552`, `epoch:-inf`,
`epoch:nan`), never raised: no ISO date starts with `epoch:`, so no reader takes it for one.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

MICROSECONDS = 1_000_000
OUTSIDE_CALENDAR = "epoch:"
# What datetime raises for a time it cannot hold: ValueError (year out of range, NaN),
# OverflowError (infinity, beyond C's time_t), OSError (gmtime's EOVERFLOW).
_UNSHOWABLE = (ValueError, OverflowError, OSError)
# Distinct whole seconds whose text is kept: a table's rows come in time order, so a few
# hundred cover a capture; the bound only keeps a long-running process flat.
SECONDS_KEPT = 4096

# C0 controls and DEL. Network-borne strings (DNS names, HTTP targets) may carry them; a raw
# newline would also break "flow N is line N+1" in the CSV tables.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The same, sparing tab and newline, for text shown in blocks (HTML).
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def one_line(text: str) -> str:
    """`text` with control characters written as `\\xNN`, so it stays on one line."""
    # Printable text holds no control character: most network text is, and the test is
    # far cheaper than a regex pass over it.
    return text if text.isprintable() else _CONTROL.sub(_escape, text)


def visible(text: str) -> str:
    """`text` with control characters other than tab and newline written as `\\xNN`."""
    return _CONTROL_BUT_LINES.sub(_escape, text)


def outside_calendar(seconds: float) -> str:
    """The form of a time datetime cannot show: `epoch:` and its epoch seconds, `%.6f`."""
    return f"{OUTSIDE_CALENDAR}{seconds:.6f}"


def in_calendar(seconds: float) -> bool:
    """Whether epoch `seconds` is a time datetime can show (years 1 to 9999)."""
    try:
        datetime.fromtimestamp(seconds, UTC)
    except _UNSHOWABLE:
        return False
    return True


def utc_strftime(seconds: float, pattern: str) -> str:
    """Epoch `seconds` in UTC by strftime `pattern`, or `outside_calendar` beyond datetime."""
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except _UNSHOWABLE:
        return outside_calendar(seconds)
    return moment.strftime(pattern)


class _SecondTexts(dict[float, str]):
    """Whole epoch second -> `YYYY-MM-DDTHH:MM:SS.` (out of range raises as datetime does).

    A dict subscript rather than an lru_cache call: this runs for every time cell.
    """

    def __missing__(self, whole: float) -> str:
        if len(self) >= SECONDS_KEPT:
            self.clear()
        text = datetime.fromtimestamp(whole, UTC).isoformat(timespec="seconds")[:-6] + "."
        self[whole] = text
        return text


_second_texts = _SecondTexts()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def iso_epoch(seconds: float) -> str:
    """`iso_utc` of epoch seconds: what datetime writes for them, without making a datetime.

    A time datetime cannot show is written `outside_calendar(seconds)`.
    """
    try:
        return _iso_in_calendar(seconds)
    except _UNSHOWABLE:
        return outside_calendar(seconds)


def _iso_in_calendar(seconds: float) -> str:
    """The ISO text of `seconds`; raises as datetime does for a time it cannot hold.

    The evidence tables format tens of thousands of these. The split into whole second and
    microseconds is CPython's own (_PyTime_DoubleToDenominator): modf, the fraction times
    10**6 rounded half to even, a carry into the whole second when that reaches 10**6 (or
    below 0 for times before 1970).
    """
    fraction, whole = math.modf(seconds)
    micros = round(fraction * MICROSECONDS)
    if micros >= MICROSECONDS:
        whole += 1
        micros -= MICROSECONDS
    elif micros < 0:
        whole -= 1
        micros += MICROSECONDS
    return _second_texts[whole] + str(micros).zfill(6) + "Z"


def iso_utc(moment: datetime | float | None) -> str:
    """ISO 8601 in UTC with a `Z` (epoch seconds or an aware datetime); empty for None."""
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        return iso_epoch(moment)
    try:
        text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    except _UNSHOWABLE:  # year 1 or 9999 in a zone whose UTC falls outside them
        return outside_calendar((moment - _EPOCH).total_seconds())
    return text.removesuffix("+00:00") + "Z"
