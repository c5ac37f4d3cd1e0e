"""The coverage statement as the report shows it: report.json `coverage` and plain sentences.

`coverage_section` turns an `observe.coverage.Coverage` into the JSON object (stable keys,
docs/report.md) whose `statements` are what report.html's "What this window could not see"
and the terminal summary print: one sentence each, for a reader who is no network engineer,
with links to the evidence that shows it (a capture file in the report, a flows.csv row).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from conformance.observe.coverage import (
    CLOCK_JUMP_SECONDS,
    SHORT_WINDOW_SECONDS,
    CaptureCoverage,
    Coverage,
    FlowSet,
    Unread,
    duration_text,
)
from conformance.observe.records import SILENCE_SECONDS
from conformance.report.links import flow_link
from conformance.report.text import iso_utc, one_line, utc_strftime

# Reasons named in one not-understood sentence, the commonest first (report.json has all).
MAX_REASONS_SAID = 3
# Flows named in one sentence (the JSON lists every kept example).
MAX_FLOWS_SAID = 3

WARNING = "warning"  # something the window could not see, or may have missed
INFO = "info"  # context: what was covered, what the file format cannot say


@dataclass(frozen=True, slots=True)
class Statement:
    """One sentence of the coverage statement and the evidence links that show it."""

    topic: str  # window, captures, drops, truncated, snap-length, silence, clock, one-sided,
    # not-understood, payload-not-understood, hidden-names
    severity: str  # WARNING | INFO
    text: str
    evidence: tuple[str, ...] = ()


def coverage_section(coverage: Coverage, capture_paths: Sequence[str | None]) -> dict[str, Any]:
    """report.json's `coverage` object; `capture_paths[i]`: capture i's copy in the report."""
    names = _Names(coverage, capture_paths)
    statements = coverage_statements(coverage, capture_paths)
    return {
        "window": {
            "start": iso_utc(coverage.start) or None,
            "end": iso_utc(coverage.end) or None,
            "span_seconds": coverage.span_seconds,
            "covered_seconds": coverage.seconds,
            "minimum_seconds": coverage.minimum_window_seconds,
            "short": coverage.short,
            "absence_inconclusive": coverage.gates,
        },
        "captures": [_capture(c, names.path(c.capture)) for c in coverage.captures],
        "one_sided_tcp": _flow_set(coverage.one_sided_tcp, names),
        "not_understood": [_unread(u, names) for u in coverage.not_understood],
        "hidden_names": {
            "ech": _flow_set(coverage.hidden.ech, names),
            "quic_without_initial": _flow_set(coverage.hidden.quic_without_initial, names),
            "tls_without_sni": _flow_set(coverage.hidden.tls_without_sni, names),
            "tls_without_hello": _flow_set(coverage.hidden.tls_without_hello, names),
        },
        "thresholds": {
            "silence_seconds": SILENCE_SECONDS,
            "short_window_seconds": SHORT_WINDOW_SECONDS,
        },
        "statements": [
            {"topic": s.topic, "severity": s.severity, "text": s.text, "evidence": list(s.evidence)}
            for s in statements
        ],
    }


def report_warnings(report_dir: Path) -> list[str]:
    """The coverage warnings a written report states (report.json `coverage.statements`).

    Empty when the report has none or cannot be read: the terminal summary is a courtesy,
    the report itself says it all.
    """
    try:
        document = json.loads((report_dir / "report.json").read_bytes())
        statements = document["coverage"]["statements"]
        return [str(s["text"]) for s in statements if s.get("severity") == WARNING]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def coverage_statements(
    coverage: Coverage, capture_paths: Sequence[str | None]
) -> tuple[Statement, ...]:
    """Every sentence of the statement: warnings first, then context, in topic order."""
    names = _Names(coverage, capture_paths)
    said: list[Statement] = [*_window(coverage, names)]
    for capture in coverage.captures:
        said += _capture_statements(capture, names)
    said += _drops_unknown(coverage, names)
    said += _one_sided(coverage.one_sided_tcp, names)
    said += _not_understood(coverage.not_understood, names)
    said += _hidden(coverage, names)
    return tuple(
        sorted(said, key=lambda s: 0 if s.severity == WARNING else 1)  # stable within each
    )


class _Names:
    """How captures and flows are named and linked in the sentences."""

    def __init__(self, coverage: Coverage, capture_paths: Sequence[str | None]) -> None:
        self.paths = capture_paths
        self.many = len(coverage.captures) > 1
        self.sources = {c.capture: c.path for c in coverage.captures}

    def path(self, index: int) -> str | None:
        return self.paths[index] if 0 <= index < len(self.paths) else None

    def capture(self, index: int) -> str:
        """The capture's name in the report ("capture-0.pcapng"), else its source name."""
        path = self.path(index)
        if path is not None:
            return PurePath(path).name
        return PurePath(self.sources.get(index, f"capture #{index}")).name

    def links(self, index: int) -> tuple[str, ...]:
        path = self.path(index)
        return (path,) if path is not None else ()

    def prefix(self, index: int) -> str:
        return f"{self.capture(index)}: " if self.many else ""


def _when(moment: float) -> str:
    """A time for people: "2023-11-14 22:13:20 UTC" (`epoch:` seconds beyond the calendar)."""
    return utc_strftime(moment, "%Y-%m-%d %H:%M:%S UTC")


def _plural(count: int, noun: str, many: str | None = None) -> str:
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def _rate(per_second: float) -> str:
    if per_second >= 10:
        return f"{per_second:.0f}"
    return f"{per_second:.2g}"


# --- the window --------------------------------------------------------------------------


def _window(coverage: Coverage, names: _Names) -> list[Statement]:
    links = tuple(link for c in coverage.captures for link in names.links(c.capture))
    if coverage.start is None or coverage.end is None:
        return [
            Statement(
                "window",
                WARNING,
                "The captures hold no packet with a time: nothing was seen, so nothing can be"
                " proven absent.",
                links,
            )
        ]
    covered = duration_text(coverage.seconds)
    minimum = coverage.minimum_window_seconds
    when = f"from {_when(coverage.start)} to {_when(coverage.end)}"
    if coverage.gates and minimum is not None:
        said = [
            Statement(
                "window",
                WARNING,
                f"The captures cover only {covered} ({when}), less than the"
                f" {duration_text(minimum)} this deployment's profile asks for"
                " (observation.minimum_window): no promise that something never happens can"
                " be proven on so short a window.",
                links,
            )
        ]
    elif coverage.short:
        said = [
            Statement(
                "window",
                WARNING,
                f"The captures cover only {covered} ({when}), under"
                f" {duration_text(SHORT_WINDOW_SECONDS)}: anything the installation does less"
                " often (a nightly update check, a weekly licence call) would not show. The"
                " profile can require a minimum (observation.minimum_window).",
                links,
            )
        ]
    else:
        said = [Statement("window", INFO, f"The captures cover {covered}, {when}.", links)]
    if coverage.span_seconds - coverage.seconds > SILENCE_SECONDS:
        said.append(
            Statement(
                "window",
                WARNING,
                _uncovered(len(coverage.captures), coverage.span_seconds, covered),
                links,
            )
        )
    return said


# --- per capture: losses and the clock --------------------------------------------------


def _capture_statements(capture: CaptureCoverage, names: _Names) -> list[Statement]:
    index = capture.capture
    name, links = names.capture(index), names.links(index)
    said: list[Statement] = []
    if capture.drops:
        detail = f" ({one_line(capture.drop_detail)})" if capture.drop_detail else ""
        said.append(
            Statement(
                "drops",
                WARNING,
                f"{name}: the capturing interface or kernel dropped"
                f" {_plural(capture.drops, 'packet')}{detail}; they were never seen.",
                links,
            )
        )
    if capture.truncated:
        detail = f" ({one_line(capture.truncated_detail)})" if capture.truncated_detail else ""
        said.append(
            Statement(
                "truncated",
                WARNING,
                f"{name} ends in the middle of a packet{detail}: whatever came after is missing.",
                links,
            )
        )
    if capture.snap_truncated:
        said.append(
            Statement(
                "snap-length",
                WARNING,
                f"{name}: {_plural(capture.snap_truncated, 'packet was', 'packets were')} cut"
                " short when captured (snap length): a name or request in the missing part"
                " was not seen.",
                links,
            )
        )
    said += _silences(capture, name, links)
    if capture.backward_count:
        largest = capture.backward[0]
        jump = largest.seconds >= CLOCK_JUMP_SECONDS
        said.append(
            Statement(
                "clock",
                WARNING if jump else INFO,
                f"{name}: packet times go backwards"
                f" {_plural(capture.backward_count, 'time')} (the largest step"
                f" {duration_text(largest.seconds)}, between packets {largest.before} and"
                f" {largest.after}): "
                + (
                    "the capturing clock was changed or files were joined out of order, so"
                    " times and the window may be wrong."
                    if jump
                    else "packets slightly out of time order, as when a capture merges"
                    " interfaces; the window is not affected."
                ),
                links,
            )
        )
    return said


def _drops_unknown(coverage: Coverage, names: _Names) -> list[Statement]:
    unknown = [c.capture for c in coverage.captures if c.drops is None and c.packets]
    if not unknown:
        return []
    files = ", ".join(names.capture(i) for i in unknown)
    return [
        Statement(
            "drops",
            INFO,
            f"{files}: {'the file does' if len(unknown) == 1 else 'these files do'} not record"
            " whether packets were dropped while capturing (pcap files, and pcapng files"
            " without interface statistics, do not), so such losses cannot be ruled out.",
            tuple(link for i in unknown for link in names.links(i)),
        )
    ]


def _silences(capture: CaptureCoverage, name: str, links: tuple[str, ...]) -> list[Statement]:
    if not capture.silence_count:
        return []
    rate = _rate(capture.packets_per_second)
    busy = [s for s in capture.silences if s.busy]
    said = []
    if busy:
        first = busy[0]
        open_text = (
            f" and {_plural(first.open_flows, 'connection was', 'connections were')} open across it"
            if first.open_flows
            else ""
        )
        more = f" ({len(busy)} such silences among the longest)" if len(busy) > 1 else ""
        said.append(
            Statement(
                "silence",
                WARNING,
                f"{name}: no packet at all for {duration_text(first.seconds)} between packets"
                f" {first.before} and {first.after} (from {_when(first.start)}), although the"
                f" capture averaged {rate} packets a second{open_text}: the capture may have"
                f" paused{more}.",
                links,
            )
        )
    quiet = [s for s in capture.silences if not s.busy]
    if quiet and len(quiet) == len(capture.silences):
        longest = quiet[0]
        said.append(
            Statement(
                "silence",
                INFO,
                f"{name}: the link was silent for more than {duration_text(SILENCE_SECONDS)}"
                f" {_plural(capture.silence_count, 'time')} (the longest"
                f" {duration_text(longest.seconds)}, between packets {longest.before} and"
                f" {longest.after}); at this capture's average of {rate} packets a second that"
                " may simply be a quiet link.",
                links,
            )
        )
    return said


# --- flows --------------------------------------------------------------------------------


def _flows_text(flows: FlowSet, names: _Names) -> str:
    shown = flows.examples[:MAX_FLOWS_SAID]
    if not shown:
        return ""
    listed = ", ".join(
        f"flow {e.flow_id}" + (f" in {names.capture(e.capture)}" if names.many else "")
        for e in shown
    )
    return f" For example {listed}."


def _flow_links(flows: FlowSet) -> tuple[str, ...]:
    return tuple(flow_link(e.flow_id) for e in flows.examples[:MAX_FLOWS_SAID])


def _theirs(flows: FlowSet) -> str:
    if flows.target is None:
        return ""
    return (
        f" ({flows.target} of them the target's)"
        if flows.count != 1
        else (" (the target's)" if flows.target else " (not the target's)")
    )


def _one_sided(flows: FlowSet, names: _Names) -> list[Statement]:
    if not flows.count:
        return []
    return [
        Statement(
            "one-sided",
            WARNING,
            f"{_plural(flows.count, 'TCP connection was', 'TCP connections were')} seen in one"
            f" direction only{_theirs(flows)}, although"
            f" {'its' if flows.count == 1 else 'their'} packets acknowledge traffic from"
            " the other side: the capture may miss one direction of traffic (asymmetric"
            f" routing, a one-way mirror or tap).{_flows_text(flows, names)}",
            _flow_links(flows),
        )
    ]


def _hidden(coverage: Coverage, names: _Names) -> list[Statement]:
    hidden = coverage.hidden
    said = []
    for flows, kind, text in (
        (
            hidden.ech,
            "TLS connection",
            "used Encrypted ClientHello: the server name they really asked for is hidden;"
            " only a public name shows",
        ),
        (
            hidden.quic_without_initial,
            "UDP flow",
            "{look} like QUIC (HTTP/3), but no readable opening packet of theirs was seen: the"
            " server names they used are unknown",
        ),
        (
            hidden.tls_without_sni,
            "TLS connection",
            "sent no server name (SNI): only the address says where they went",
        ),
        (
            hidden.tls_without_hello,
            "connection",
            "carried TLS, but the opening message that names the server is not in the"
            " capture (they began before it, or it could not be read)",
        ),
    ):
        if not flows.count:
            continue
        verb = text.format(look="looks" if flows.count == 1 else "look")
        said.append(
            Statement(
                "hidden-names",
                WARNING,
                f"{_plural(flows.count, kind)}{_theirs(flows)} {verb}.{_flows_text(flows, names)}",
                _flow_links(flows),
            )
        )
    return said


# --- not understood ---------------------------------------------------------------------


def _not_understood(unread: Sequence[Unread], names: _Names) -> list[Statement]:
    said = []
    for level, topic, noun, what in (
        ("frame", "not-understood", "frame", "could not be read at all"),
        (
            "payload",
            "payload-not-understood",
            "packet",
            "had contents that could not be read (a name in them may be unseen)",
        ),
    ):
        records = [u for u in unread if u.level == level]
        if not records:
            continue
        total = sum(u.count for u in records)
        theirs = [u.target for u in records]
        share = ""
        if all(t is not None for t in theirs):
            mine = sum(t for t in theirs if t is not None)
            share = f" ({mine} could be the target's)" if mine else " (none of them the target's)"
        ordered = sorted(records, key=lambda u: -u.count)
        reasons = "; ".join(
            f"{names.prefix(u.capture)}{one_line(u.reason)}: {u.count}"
            + (f", e.g. packet {u.packets[0]}" if u.packets else "")
            for u in ordered[:MAX_REASONS_SAID]
        )
        if len(ordered) > MAX_REASONS_SAID:
            reasons += f"; {_plural(len(ordered) - MAX_REASONS_SAID, 'more reason')}"
        links = tuple(dict.fromkeys(link for u in ordered for link in names.links(u.capture)))
        said.append(
            Statement(
                topic,
                WARNING,
                f"{_plural(total, noun)} {what}{share}: {reasons}.",
                links,
            )
        )
    return said


# --- JSON parts -------------------------------------------------------------------------


def _capture(capture: CaptureCoverage, path: str | None) -> dict[str, Any]:
    return {
        "index": capture.capture,
        "capture": path,
        "source": capture.path,
        "start": iso_utc(capture.start) or None,
        "end": iso_utc(capture.end) or None,
        "seconds": capture.seconds,
        "packets": capture.packets,
        "packets_per_second": capture.packets_per_second,
        "drops": capture.drops,
        "drop_detail": capture.drop_detail,
        "truncated": capture.truncated,
        "truncated_detail": capture.truncated_detail,
        "snap_truncated": capture.snap_truncated,
        "silences": {
            "count": capture.silence_count,
            "seconds": capture.silence_seconds,
            "longest": [
                {
                    "before": s.before,
                    "after": s.after,
                    "start": iso_utc(s.start),
                    "seconds": s.seconds,
                    "expected_packets": s.expected_packets,
                    "open_flows": s.open_flows,
                    "busy": s.busy,
                }
                for s in capture.silences
            ],
        },
        "backward_steps": {
            "count": capture.backward_count,
            "largest": [
                {
                    "before": s.before,
                    "after": s.after,
                    "time": iso_utc(s.time),
                    "seconds": s.seconds,
                }
                for s in capture.backward
            ],
        },
    }


def _flow_set(flows: FlowSet, names: _Names) -> dict[str, Any]:
    return {
        "count": flows.count,
        "target": flows.target,
        "examples": [
            {
                "flow_id": e.flow_id,
                "evidence": flow_link(e.flow_id),
                "capture": names.path(e.capture),
                "capture_index": e.capture,
                "packet": e.packet,
            }
            for e in flows.examples
        ],
    }


def _unread(unread: Unread, names: _Names) -> dict[str, Any]:
    return {
        "capture": names.path(unread.capture),
        "capture_index": unread.capture,
        "level": unread.level,
        "reason": unread.reason,
        "count": unread.count,
        "target": unread.target,
        "packets": list(unread.packets),
    }


def _uncovered(captures: int, span: float, covered: str) -> str:
    """Why the window covers less than it spans: what lies between captures, and silences."""
    quiet = f"no packet for over {duration_text(SILENCE_SECONDS)}"
    if captures == 1:
        return (
            f"The capture spans {duration_text(span)} but covers only {covered}: its silences"
            f" ({quiet}) are not counted."
        )
    return (
        f"The {captures} captures span {duration_text(span)} but cover only {covered}: nothing"
        f" between them was seen, and their silences ({quiet}) are not counted."
    )
