"""Text helpers every writer shares: UTC timestamps and one-line, control-free strings."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# C0 controls and DEL. Network-borne strings (DNS names, HTTP targets) may carry them; a raw
# newline would also break "flow N is line N+1" in the CSV tables.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The same, sparing tab and newline, for text shown in blocks (HTML).
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def one_line(text: str) -> str:
    """`text` with control characters written as `\\xNN`, so it stays on one line."""
    return _CONTROL.sub(_escape, text)


def visible(text: str) -> str:
    """`text` with control characters other than tab and newline written as `\\xNN`."""
    return _CONTROL_BUT_LINES.sub(_escape, text)


def iso_utc(moment: datetime | float | None) -> str:
    """ISO 8601 in UTC with a `Z` (epoch seconds or an aware datetime); empty for None."""
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        # Already UTC: the evidence tables format tens of thousands of these.
        return datetime.fromtimestamp(moment, UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.removesuffix("+00:00") + "Z"
