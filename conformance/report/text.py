"""Text helpers every writer shares: UTC timestamps and one-line, control-free strings."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

MICROSECONDS = 1_000_000
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


def iso_epoch(seconds: float) -> str:
    """`iso_utc` of epoch seconds: what datetime writes for them, without making a datetime.

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
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.removesuffix("+00:00") + "Z"
