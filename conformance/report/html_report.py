"""report.html: the report for people, one self-contained file that works offline and prints.

Order of the page: first one screen a non-engineer can read (the verdict in a sentence,
what was promised and what was seen, who signed it), then what the window could not see
(coverage, decision 11), the comparison with a baseline and the waivers when there are
any, each control in detail, the flows the findings cite rendered as tables (so an
evidence link opens something readable, not a raw CSV), completeness, the evidence files
with their hashes, and how to verify the signature.

Inline CSS only (report.css), no script, no fonts, no external links (a
Content-Security-Policy says so to the browser). Every string is escaped: summaries, names
and facts come from the network. Each verdict has a colour and its word; inconclusive is
amber, never green.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from html import escape
from importlib import resources
from typing import Any, assert_never

from conformance.judge.result import Severity
from conformance.report.coverage_statement import WARNING
from conformance.report.json_report import jsonable
from conformance.report.links import FLOWS_CSV
from conformance.report.recipe import FINGERPRINT_RECIPE, VERIFY_RECIPE
from conformance.report.text import iso_utc, visible
from conformance.report.view import (
    CaptureView,
    CitedFlow,
    ControlView,
    FindingView,
    ReportView,
    WaiverMark,
    WaiverUseView,
)
from conformance.verdict import Verdict

# Content-Security-Policy: nothing may load or run; only the inline stylesheet applies.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
# Rows of a findings table before the rest is only counted (report.json has them all).
MAX_FINDINGS_SHOWN = 200
# Characters of a reason shown in the one-screen summary (the control's card has it whole).
SUMMARY_REASON_CHARS = 220
# Distinct things seen listed per control in the one-screen summary.
SUMMARY_ITEMS = 3

_WORDS = {
    Verdict.PASS: "PASS",
    Verdict.FAIL: "FAIL",
    Verdict.INCONCLUSIVE: "INCONCLUSIVE",
    Verdict.ERROR: "ERROR",
    Verdict.NOT_APPLICABLE: "NOT APPLICABLE",
}

# What each deployment mode promises, in one sentence a non-engineer can check against.
_MODE_PROMISE = {
    "air-gapped": "The UCX installation works entirely inside the customer's own network: it "
    "neither opens nor accepts any connection to Imagicle's or anyone else's cloud.",
    "hybrid": "The UCX installation reaches only Imagicle's documented cloud endpoints, only "
    "for the services the customer activated, and only over TLS; nothing reaches in.",
}


@cache
def _css() -> str:
    return resources.files("conformance.report").joinpath("report.css").read_text("utf-8")


def _e(value: object) -> str:
    # Control characters (a terminal escape, a NUL from the wire) are shown, not passed on.
    return escape(visible(str(value)), quote=True)


def _badge(verdict: Verdict, *, big: bool = False) -> str:
    size = " big" if big else ""
    return f'<span class="badge{size} v-{verdict.value}">{_e(_WORDS[verdict])}</span>'


def _link(href: str, text: str | None = None) -> str:
    # Every href is a path this report wrote under evidence/ (never a network-borne string).
    return (
        f'<a class="ev" href="{_e(href)}"><code>{_e(text if text is not None else href)}</code></a>'
    )


def _anchor(target: str, text: str) -> str:
    """A link inside this page (#flow-9, #waiver-1, #AG-EGRESS)."""
    return f'<a href="#{_e(target)}">{_e(text)}</a>'


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _human(key: object) -> str:
    """A fact's key for people: "inside_flows" -> "inside flows"."""
    return str(key).replace("_", " ")


def _fact_value(value: object) -> str:
    plain = jsonable(value)
    return plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False)


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _cell(value: object) -> str:
    """A table cell: a list of plain values reads as a comma-separated list."""
    if isinstance(value, list | tuple) and all(_scalar(v) for v in value):
        return ", ".join(str(v) for v in value)
    return _fact_value(value)


def _fact_table(value: object) -> str | None:
    """A fact that is a table (per endpoint, per connection) as an HTML table, else None.

    Table-shaped: a mapping of mappings (row label -> columns) or a list of mappings.
    """
    rows: list[tuple[str | None, Mapping[str, object]]]
    if isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()):
        rows = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        rows = [(None, v) for v in value]
    else:
        return None
    columns: list[str] = []
    for _, row in rows:
        columns += [str(c) for c in row if str(c) not in columns]
    labelled = rows[0][0] is not None
    head = ("<th></th>" if labelled else "") + "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + (f"<th>{_e(label)}</th>" if label is not None else "")
        + "".join(f"<td>{_e(_cell(row[c])) if c in row else ''}</td>" for c in columns)
        + "</tr>"
        for label, row in rows
    )
    return f'<table class="facts inner"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _fact_html(value: object) -> str:
    """One fact's value: a table when it is table-shaped, a key/value table for a flat
    mapping, a list of lines for a list of plain values, else the text."""
    table = _fact_table(value)
    if table is not None:
        return table
    if isinstance(value, Mapping) and value and all(_scalar(v) for v in value.values()):
        rows = "".join(
            f"<tr><th>{_e(_human(k))}</th><td>{_e(_fact_value(v))}</td></tr>"
            for k, v in value.items()
        )
        return f'<table class="inner kv"><tbody>{rows}</tbody></table>'
    if isinstance(value, list | tuple) and all(_scalar(v) for v in value):
        if len(value) == 1:
            return _e(value[0])
        if any(len(str(v)) > 40 for v in value):  # sentences read better one a line
            return "<ul>" + "".join(f"<li>{_e(v)}</li>" for v in value) + "</ul>"
    return _e(_cell(value))


def _facts(facts: Mapping[str, object]) -> str:
    if not facts:
        return ""
    rows = "".join(
        f"<dt>{_e(_human(k))}</dt><dd>{_fact_html(v)}</dd>"
        for k, v in sorted(facts.items(), key=lambda i: str(i[0]))
    )
    return f'<dl class="meta">{rows}</dl>'


def _severity(severity: Severity) -> str:
    match severity:
        case Severity.VIOLATION | Severity.WARNING | Severity.INFO:
            return f'<span class="sev sev-{severity.value}">{_e(severity.value)}</span>'
        case _:
            assert_never(severity)


def _waiver_note(mark: WaiverMark) -> str:
    return (
        f'<div class="waiver-note"><span class="badge waived">WAIVED</span> '
        f"{_e(mark.justification)} <span class='muted'>— approved by "
        f"<strong>{_e(mark.approved_by)}</strong>, expires <strong>{_e(mark.expires)}</strong> "
        f"({_anchor(f'waiver-{mark.number}', f'waiver #{mark.number}')})</span></div>"
    )


def _packets_text(numbers: Sequence[int]) -> str:
    if not numbers:
        return ""
    shown = ", ".join(str(n) for n in numbers[:12])
    return shown + (f" … ({len(numbers)} listed)" if len(numbers) > 12 else "")


def _evidence_cell(finding: FindingView) -> str:
    parts: list[str] = []
    if finding.flow_id is not None:
        parts.append(
            _anchor(f"flow-{finding.flow_id}", f"flow {finding.flow_id}")
            + f" <span class='muted small'>(raw: {_link(finding.links[0], 'flows.csv row')})</span>"
            if finding.links
            else _anchor(f"flow-{finding.flow_id}", f"flow {finding.flow_id}")
        )
        others = finding.links[1:]
    else:
        others = finding.links
    parts += [_link(link) for link in others]
    if finding.packets is not None:
        where = (
            _link(finding.packets.capture)
            if finding.packets.capture is not None
            else _e(f"capture #{finding.packets.capture_index} (not copied)")
        )
        parts.append(f"packets {_e(_packets_text(finding.packets.numbers))} in {where}")
        if finding.display_filter:
            # for that capture only: packet numbers are per file
            parts.append(
                "<span class='small muted'>Wireshark/tshark display filter for that file:</span>"
                f" <code class='filter'>{_e(finding.display_filter)}</code>"
            )
    return "<br>".join(parts) or '<span class="muted">none</span>'


def _finding_row(finding: FindingView) -> str:
    what = _e(finding.summary)
    facts = {k: v for k, v in finding.facts.items()}
    if facts:
        what += "".join(
            f"<br><span class='muted small'>{_e(_human(k))}:</span> {_e(v)}"
            for k, v in sorted(facts.items())
        )
    if finding.waiver is not None:
        what += _waiver_note(finding.waiver)
    waived = ' class="is-waived"' if finding.waiver is not None else ""
    return (
        f"<tr{waived}><td>{_severity(finding.severity)}</td><td>{what}</td>"
        f"<td>{_evidence_cell(finding)}</td></tr>"
    )


def _findings(control: ControlView) -> str:
    if not control.findings:
        return ""
    shown = control.findings[:MAX_FINDINGS_SHOWN]
    rows = "".join(_finding_row(f) for f in shown)
    more = (
        f"<p class='muted'>{len(control.findings) - len(shown)} more in report.json.</p>"
        if len(control.findings) > len(shown)
        else ""
    )
    waived = f", {control.waived} waived" if control.waived else ""
    return (
        f"<h4>Findings ({len(control.findings)}{waived})</h4>"
        "<table class='findings'><thead><tr><th>Severity</th><th>What was found</th>"
        f"<th>Evidence</th></tr></thead><tbody>{rows}</tbody></table>{more}"
    )


def _control(control: ControlView) -> str:
    clauses = "".join(
        f"<blockquote>{_e(line)}</blockquote>"
        for line in control.clause_text.splitlines()
        if line.strip()
    )
    before = ""
    if control.verdict_before_waivers is not None:
        before = (
            f"<p><strong>Without waivers:</strong> {_badge(control.verdict_before_waivers)}"
            " (the judge's verdict; the waivers below changed it)</p>"
        )
    facts = f"<h4>Facts</h4>{_facts(control.facts)}" if control.facts else ""
    return (
        f'<article class="control c-{control.verdict.value}" id="{_e(control.id)}">'
        f"<h3>{_badge(control.verdict)} {_e(control.id)}: {_e(control.title)}</h3>"
        f"<p><strong>Promise:</strong> {_e(control.promise)}</p>"
        f"<p><strong>Why this verdict:</strong> {_e(control.reason)}</p>{before}"
        f"<p><strong>Contract clauses:</strong> {_e(control.clause)}</p>{clauses}"
        f"{_findings(control)}{facts}</article>"
    )


# --- the one-screen summary ------------------------------------------------------------------


def _duration(seconds: float) -> str:
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{seconds:.1f} s"


def _lead(view: ReportView) -> str:
    applicable = [c for c in view.controls if c.verdict is not Verdict.NOT_APPLICABLE]
    failed = [c for c in applicable if c.verdict is Verdict.FAIL]
    unproven = [c for c in applicable if c.verdict in (Verdict.INCONCLUSIVE, Verdict.ERROR)]
    if failed:
        return (
            f"{_plural(len(failed), 'promise')} of {len(applicable)} broken: "
            + ", ".join(c.title.lower() for c in failed)
            + "."
        )
    if view.verdict is Verdict.PASS:
        return f"Every promise that applies ({len(applicable)}) was kept, on this evidence."
    if unproven:
        return (
            f"Nothing was found broken, but {_plural(len(unproven), 'promise')} of "
            f"{len(applicable)} could not be proven on this evidence."
        )
    return "Nothing could be proven: no control applied or ran."


def _hero(view: ReportView) -> str:
    window = view.window
    if window:
        captured = (
            f"{_e(iso_utc(window[0]))} → {_e(iso_utc(window[1]))} "
            f"<span class='muted'>({_e(_duration(window[1] - window[0]))})</span>"
        )
    else:
        captured = '<span class="muted">no packet times</span>'
    packets = sum(c.summary.packets for c in view.captures)
    promise = _MODE_PROMISE.get(view.profile_mode, "")
    return (
        f'<header class="hero h-{view.verdict.value}">'
        f"<h1>UCX conformance report {_badge(view.verdict, big=True)}</h1>"
        f'<p class="lead">{_e(_lead(view))}</p>'
        '<dl class="meta">'
        f"<dt>Deployment</dt><dd>{_e(view.profile_name)}</dd>"
        f"<dt>Mode</dt><dd><strong>{_e(view.profile_mode)}</strong>"
        + (f" — {_e(promise)}" if promise else "")
        + "</dd>"
        f"<dt>Traffic observed</dt><dd>{captured}; {_plural(packets, 'packet')} in "
        f"{_plural(len(view.captures), 'capture')}</dd>"
        + _period(view)
        + f"<dt>Profile file</dt><dd><code>{_e(view.profile_source)}</code>"
        f" (copy: {_link('evidence/profile.yaml')})</dd>"
        f"<dt>Run</dt><dd>{_e(iso_utc(view.started))} → {_e(iso_utc(view.finished))}"
        f" by ucx-conformance {_e(view.harness_version)}</dd>"
        f'<dt>Signed by</dt><dd><code class="hash">{_e(view.fingerprint)}</code> '
        f"<span class='muted small'>(the signer's key fingerprint; "
        f"{_anchor('verify', 'how to check it')})</span></dd>"
        "</dl></header>"
    )


def _period(view: ReportView) -> str:
    """`watch`: which period this report covers and the period before it in the chain."""
    period = view.period
    if period is None:
        return ""
    if period.previous_period is None:
        previous = "the first period of its chain"
    else:
        previous = (
            f"follows period {_e(period.previous_period)} (envelope SHA-256 "
            f'<code class="hash">{_e(period.previous_envelope_sha256 or "")}</code>)'
        )
    gaps = sum(b - a for a, b in period.gaps)
    unseen = f"; {_e(_duration(gaps))} not seen (notes)" if period.gaps else ""
    return (
        f"<dt>Period</dt><dd>{_e(period.period)}: {_e(iso_utc(period.start))} → "
        f"{_e(iso_utc(period.end))}{unseen}; {previous} "
        "<span class='muted small'>(<code>ucx-conformance verify-chain</code> walks the chain)"
        "</span></dd>"
    )


def _evidence_name(link: str) -> str:
    """How an evidence link reads: "capture-0.pcapng", "flow 12"."""
    path, _, fragment = link.partition("#")
    if path == FLOWS_CSV and fragment.startswith("L") and fragment[1:].isdigit():
        return f"flow {int(fragment[1:]) - 1}"
    return path.rsplit("/", 1)[-1]


def _coverage(view: ReportView) -> str:
    """ "What this window could not see" (decision 11), right below the hero: one sentence per
    line, warnings first, each with links to the evidence that shows it."""
    if view.coverage is None:
        return ""
    statements = view.coverage_statements
    warnings = [s for s in statements if s.severity == WARNING]
    items = "".join(
        f'<li class="cov-{_e(s.severity)}">{_e(s.text)}'
        + (
            " <span class='small muted'>("
            + ", ".join(_link(link, _evidence_name(link)) for link in s.evidence)
            + ")</span>"
            if s.evidence
            else ""
        )
        + "</li>"
        for s in statements
    )
    clear = (
        ""
        if warnings
        else "<p class='ok'>Nothing found: no loss, pause, one-sided traffic or hidden name in"
        " these captures, and the window is long enough.</p>"
    )
    return (
        f'<section class="coverage{"" if warnings else " clear"}" id="coverage">'
        f"<h2>What this window could not see</h2>{clear}<ul>{items}</ul>"
        "<p class='small muted'>Every count, with packet numbers, is in report.json"
        f" <code>coverage</code>; the captures' accounting is under"
        f" {_anchor('completeness', 'Completeness')}.</p></section>"
    )


def _seen(control: ControlView, flows: Mapping[int, CitedFlow]) -> str:
    """What was seen, in plain words, for the summary table."""
    violations = [f for f in control.findings if f.severity is Severity.VIOLATION]
    if control.verdict is Verdict.FAIL and violations:
        # The same destination in many flows reads as one item with its count.
        seen: dict[tuple[str, str], int] = {}
        for finding in violations:
            flow = flows.get(finding.flow_id) if finding.flow_id is not None else None
            label = finding.facts.get("looks_like") or finding.facts.get("names") or ""
            if flow is not None:
                port = flow.row["responder_port"]
                text = f"{flow.row['responder']}:{port}/{flow.row['transport']}"
                if finding.facts.get("name"):
                    text = f"{finding.facts['name']} via {text}"
            else:
                text = finding.summary
            notes = [f"({label})"] if label else []
            if finding.waiver is not None:
                notes.append("(waived)")
            key = (text, " ".join(notes))
            seen[key] = seen.get(key, 0) + 1
        items = [
            _e(text)
            + (f" <span class='muted'>{_e(note)}</span>" if note else "")
            + (f" ({count} flows)" if count > 1 else "")
            for (text, note), count in list(seen.items())[:SUMMARY_ITEMS]
        ]
        more = len(seen) - len(items)
        tail = f" and {more} more" if more > 0 else ""
        return f"{_plural(len(violations), 'violation')}: " + "; ".join(items) + tail
    reason = control.reason
    if len(reason) > SUMMARY_REASON_CHARS:
        reason = reason[: SUMMARY_REASON_CHARS - 1].rstrip() + "…"
    waived = f" ({control.waived} waived)" if control.waived else ""
    return _e(reason) + waived


def _promises(view: ReportView) -> str:
    flows = {f.flow_id: f for f in view.cited_flows}
    applicable = [c for c in view.controls if c.verdict is not Verdict.NOT_APPLICABLE]
    rows = "".join(
        f"<tr><td>{_e(c.promise)}<br><span class='small'>{_anchor(c.id, c.id)} · "
        f"<span class='muted'>{_e(c.clause)}</span></span></td>"
        f"<td>{_badge(c.verdict)}</td><td>{_seen(c, flows)}</td></tr>"
        for c in applicable
    )
    skipped = [c for c in view.controls if c.verdict is Verdict.NOT_APPLICABLE]
    skipped_html = (
        f"<p class='muted small'>Not applicable to this deployment "
        f"({len(skipped)}): " + ", ".join(_anchor(c.id, c.id) for c in skipped) + "</p>"
        if skipped
        else ""
    )
    counts = " ".join(
        f"{_badge(verdict)} {count}" for verdict, count in view.counts.items() if count
    )
    return (
        '<section id="summary"><h2>What was promised, what was seen</h2>'
        f"<p>{counts or 'no controls judged'}</p>"
        "<table><thead><tr><th>Promise</th><th>Verdict</th><th>What was seen</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{skipped_html}</section>"
    )


# --- baseline, waivers -----------------------------------------------------------------------


def _dest_rows(items: Sequence[Mapping[str, Any]]) -> str:
    return "".join(
        f"<tr><td><code>{_e(d.get('destination'))}</code></td>"
        f"<td>{_e(', '.join(map(str, d.get('names') or ())) or '—')}</td>"
        f"<td class='num'>{_e(d.get('flows'))}</td>"
        f"<td>{'same name, new address' if d.get('known_name') else ''}</td></tr>"
        for d in items
    )


def _baseline(view: ReportView) -> str:
    doc = view.baseline
    if not doc:
        return ""
    from conformance.report.diff_render import headline

    old = doc.get("old") or {}
    regression = bool(doc.get("regression"))
    state = "bad" if regression else "ok"
    parts = [
        '<section id="baseline"><h2>Compared with the baseline</h2>',
        f"<p class='{state}'>{_e(headline(doc))}</p>",
        f"<p class='small'>Baseline: <code>{_e(old.get('report'))}</code>, verdict "
        f"{_e(old.get('verdict'))}, finished {_e(old.get('finished'))}, envelope SHA-256 "
        f"<code class='hash'>{_e(old.get('envelope_sha256'))}</code>"
        f"{'' if old.get('pinned') else ' (signer not pinned)'}</p>",
    ]
    head = "<tr><th>Destination</th><th>Names</th><th class='num'>Flows</th><th></th></tr>"
    for title, items in (
        ("New destinations", doc["destinations"]["new"]),
        ("Vanished destinations", doc["destinations"]["vanished"]),
    ):
        if items:
            parts.append(
                f"<h3>{title}</h3><table><thead>{head}</thead>"
                f"<tbody>{_dest_rows(items)}</tbody></table>"
            )
    for title, names in (("New names sought", doc["names"]["new"]),
                         ("Names no longer sought", doc["names"]["vanished"])):  # fmt: skip
        if names:
            rows = "".join(
                f"<tr><td><code>{_e(n['name'])}</code></td><td>{_e(', '.join(n['via']))}</td></tr>"
                for n in names
            )
            parts.append(f"<h3>{title}</h3><table><tbody>{rows}</tbody></table>")
    if doc["tls"]["changed"]:
        rows = "".join(
            f"<tr><td><code>{_e(t['endpoint'])}</code></td>"
            f"<td>{_e(', '.join(t['old']['versions']))}</td>"
            f"<td>{_e(', '.join(t['new']['versions']))}</td>"
            f"<td class='bad'>{_e('; '.join(t['weaker']) or '-')}</td></tr>"
            for t in doc["tls"]["changed"]
        )
        parts.append(
            "<h3>TLS changes</h3><table><thead><tr><th>Endpoint</th><th>Before</th><th>Now</th>"
            f"<th>Weaker</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    if doc["verdicts"]["changed"]:
        rows = "".join(
            f"<tr><td>{_anchor(v['control'], v['control'])}</td><td>{_e(v['old'] or 'not judged')}"
            f"</td><td>{_e(v['new'] or 'not judged')}</td>"
            f"<td>{'<span class=bad>worse</span>' if v['worse'] else ''}</td></tr>"
            for v in doc["verdicts"]["changed"]
        )
        parts.append(
            "<h3>Verdict changes</h3><table><thead><tr><th>Control</th><th>Before</th>"
            f"<th>Now</th><th></th></tr></thead><tbody>{rows}</tbody></table>"
        )
    parts += [f"<p class='muted'>{_e(n)}</p>" for n in doc.get("notes") or ()]
    parts.append("</section>")
    return "".join(parts)


_WAIVER_STATES = {
    "applied": "applied",
    "expired": "<span class='bad'>expired: waives nothing</span>",
    "unmatched": "<span class='bad'>matches no finding (stale)</span>",
    "no-control": "<span class='bad'>control not judged in this run</span>",
}


def _waiver_row(use: WaiverUseView) -> str:
    state = _WAIVER_STATES.get(use.state, _e(use.state))
    if use.state == "applied":
        state += f" ({_plural(use.findings, 'finding')})"
    return (
        f"<tr id='waiver-{use.mark.number}'><td>{_link(use.mark.link, f'#{use.mark.number}')}</td>"
        f"<td>{_anchor(use.control, use.control)}<br><span class='small'>{_e(use.match)}</span>"
        f"</td><td>{_e(use.mark.justification)}</td><td>{_e(use.mark.approved_by)}</td>"
        f"<td>{_e(use.mark.expires)}</td><td>{state}</td></tr>"
    )


def _waivers(view: ReportView) -> str:
    if view.waivers is None:
        return ""
    rows = "".join(_waiver_row(use) for use in view.waivers)
    return (
        '<section id="waivers"><h2>Waivers</h2>'
        "<p>Approved exceptions applied to this run (the waiver file is signed evidence: "
        f"{_link('evidence/waivers.yaml')}). A waived finding is still shown; a waiver never "
        "turns an unproven control into a pass.</p>"
        "<table><thead><tr><th>Waiver</th><th>Control and match</th><th>Justification</th>"
        "<th>Approved by</th><th>Expires</th><th>In this run</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


# --- cited flows, completeness, evidence, verification -----------------------------------------


def _endpoint(address: str, port: str, transport: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}" if transport in ("tcp", "udp") else address


def _flow_row(flow: CitedFlow, cited_by: Sequence[str]) -> str:
    row = flow.row
    transport = row["transport"]
    ends = (
        f"<code>{_e(_endpoint(row['initiator'], row['initiator_port'], transport))}</code> → "
        f"<code>{_e(_endpoint(row['responder'], row['responder_port'], transport))}</code> "
        f"{_e(transport)}"
    )
    state = (
        ", ".join(
            word
            for word, on in (
                ("handshake seen", row["handshake_seen"] == "true"),
                ("answered", row["answered"] == "true"),
                ("accepted", row["accepted"] == "true"),
                ("rejected", row["rejected"] == "true"),
            )
            if on
        )
        or "no answer"
    )
    sample = row["sample_packets"].split()
    capture = _link(flow.capture) if flow.capture else _e(row["capture"])
    packets = (
        f"{_e(row['packets_out'])} out / {_e(row['packets_in'])} in "
        f"({_e(row['bytes_out'])} / {_e(row['bytes_in'])} bytes)<br>"
        f"<span class='small'>packets {_e(row['first_packet'])} to {_e(row['last_packet'])} in "
        f"{capture}; in Wireshark: <code>frame.number in {{{_e(' '.join(sample))}}}</code></span>"
    )
    payload = f"payload out: {row['payload_out']}, in: {row['payload_in']}"
    related = "".join(f"<li>{_e(line)}</li>" for line in flow.related)
    seen = _e(payload) + (f"<ul class='related'>{related}</ul>" if related else "")
    return (
        f"<tr id='flow-{flow.flow_id}'><td>flow {flow.flow_id}<br>"
        f"<span class='small'>{_link(flow.link, 'raw row')}<br>cited by "
        + ", ".join(_anchor(c, c) for c in cited_by)
        + "</span></td>"
        f"<td>{ends}<br><span class='small muted'>{_e(state)}; direction by "
        f"{_e(row['initiator_basis'])}</span></td>"
        f"<td class='small'>{_e(row['first_time'])}<br>{_e(row['last_time'])}</td>"
        f"<td>{packets}</td><td class='small'>{seen}</td></tr>"
    )


def _flows(view: ReportView) -> str:
    if not view.cited_flows:
        return ""
    cited_by: dict[int, list[str]] = {}
    for control in view.controls:
        for finding in control.findings:
            if finding.flow_id is not None:
                names = cited_by.setdefault(finding.flow_id, [])
                if control.id not in names:
                    names.append(control.id)
    rows = "".join(_flow_row(f, cited_by.get(f.flow_id, [])) for f in view.cited_flows)
    return (
        '<section class="flows" id="flows"><h2>The flows the findings cite</h2>'
        "<p>Each row is the flow's line of <code>evidence/flows.csv</code> (the raw row is "
        "linked), with the names that point at it and where its packets are in the capture.</p>"
        "<table><thead><tr><th>Flow</th><th>From → to</th><th>First / last packet</th>"
        f"<th>Packets</th><th>Seen on it</th></tr></thead><tbody>{rows}</tbody></table>"
        "</section>"
    )


def _number(value: int | None, *, unknown: str = "unknown") -> str:
    if value is None:
        return f'<span class="muted">{_e(unknown)}</span>'
    return f'<span class="bad">{value}</span>' if value else "0"


def _capture_row(capture: CaptureView) -> str:
    summary = capture.summary
    name = _link(capture.evidence) if capture.evidence else _e(f"#{capture.index}")
    truncated = (
        f'<span class="bad">yes</span> {_e(summary.truncated_detail or "")}'
        if summary.truncated_file
        else "no"
    )
    complete = '<span class="ok">yes</span>' if summary.complete else '<span class="bad">no</span>'
    drops = _number(summary.drops, unknown="not recorded")
    if summary.drop_detail:
        drops += f" {_e(summary.drop_detail)}"
    return (
        f"<tr><td>{name}<br><span class='muted'>{_e(summary.path)}</span></td>"
        f"<td>{_e(summary.format)}</td><td class='num'>{summary.packets}</td><td>{drops}</td>"
        f"<td>{truncated}</td><td>{_number(summary.snap_truncated)}</td>"
        f"<td>{_number(summary.malformed)}</td><td>{complete}</td></tr>"
    )


def _completeness(view: ReportView) -> str:
    overall = (
        '<p class="ok">Complete: no known loss in any capture.</p>'
        if view.complete
        else '<p class="bad">Not complete: some evidence is missing or damaged; '
        "controls without a violation cannot pass on it.</p>"
    )
    rows = "".join(_capture_row(c) for c in view.captures)
    table = (
        "<table><thead><tr><th>Capture</th><th>Format</th><th class='num'>Packets</th>"
        "<th>Drops</th><th>File truncated</th><th>Snap-truncated packets</th><th>Malformed</th>"
        f"<th>Complete</th></tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else '<p class="muted">No capture was decoded.</p>'
    )
    counted = "".join(
        f"<tr><td>#{c.index}</td><td>{what}</td><td>{_e(n.reason)}</td><td>{n.count}</td>"
        f"<td>{_e(', '.join(str(f) for f in n.frames))}</td></tr>"
        for c in view.captures
        for what, records in (
            ("frame", c.summary.not_understood),
            ("payload", c.summary.payload_not_understood),
        )
        for n in records
    )
    anomalies_html = (
        "<h3>Not understood (decision 10)</h3><table><thead><tr><th>Capture</th><th>Level</th>"
        "<th>Reason</th><th>Count</th><th>Packets (first)</th></tr></thead>"
        f"<tbody>{counted}</tbody></table>"
        if counted
        else ""
    )
    notes = _list(view.notes)
    notes_html = f"<h3>Notes</h3>{notes}" if view.notes else ""
    return (
        f'<section id="completeness"><h2>Completeness</h2>{overall}{table}{anomalies_html}'
        f"{notes_html}</section>"
    )


def _list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def _evidence(view: ReportView) -> str:
    rows = "".join(
        f"<tr><td>{_link(f.path)}</td><td class='num'>{f.size}</td>"
        f'<td><code class="hash">{_e(f.sha256)}</code></td></tr>'
        for f in view.evidence
    )
    tools = "".join(
        f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>"
        for k, v in view.tool_versions.items()
    )
    return (
        '<section id="evidence"><h2>Evidence files</h2><table><thead><tr><th>File</th>'
        "<th class='num'>Bytes</th><th>SHA-256</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
        "<h3>Tool versions</h3><table><tbody>"
        f"{tools}</tbody></table></section>"
    )


def _how_to_verify(view: ReportView) -> str:
    return (
        '<section class="verify" id="verify"><h2>How to verify this report</h2>'
        "<p><code>report.intoto.json</code> is a DSSE envelope (Ed25519) around an in-toto "
        "Statement v1 naming every other file of this directory with its SHA-256. Verify it "
        "against the signer's public key <em>you</em> hold; the key inside the report proves "
        "only that the files belong together, not who wrote them.</p>"
        "<pre>ucx-conformance verify REPORT_DIR --key signer.pub</pre>"
        f"<p>The signer's fingerprint is <code class='hash'>{_e(view.fingerprint)}</code>; "
        "compute it from a public key file with</p>"
        f"<pre>{_e(FINGERPRINT_RECIPE)}</pre>"
        "<p>Without this tool (bash, jq, base64, OpenSSL 3, sha256sum), inside the report "
        "directory:</p>"
        f"<pre>PUB=/path/to/signer.pub bash &lt;&lt;'EOF'\n{_e(VERIFY_RECIPE)}EOF</pre>"
        "</section>"
    )


def _not_applicable(controls: Sequence[ControlView]) -> str:
    """Controls the deployment makes moot: one compact row each (their cards say nothing)."""
    if not controls:
        return ""
    rows = "".join(
        f'<tr id="{_e(c.id)}"><td>{_badge(c.verdict)}</td><td><strong>{_e(c.id)}</strong>: '
        f"{_e(c.title)}<br><span class='small muted'>{_e(c.clause)}</span></td>"
        f"<td>{_e(c.reason)}</td></tr>"
        for c in controls
    )
    return (
        f"<h3>Not applicable to this deployment ({len(controls)})</h3>"
        "<table><thead><tr><th>Verdict</th><th>Control</th><th>Why</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def render_html(view: ReportView) -> bytes:
    """report.html's bytes."""
    moot = [c for c in view.controls if c.verdict is Verdict.NOT_APPLICABLE]
    controls = "".join(
        _control(c) for c in view.controls if c.verdict is not Verdict.NOT_APPLICABLE
    )
    controls += _not_applicable(moot)
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(f'UCX conformance: {view.profile_name} ({view.verdict.value})')}</title>"
        f"<style>{_css()}</style></head><body><main>"
        f"{_hero(view)}{_coverage(view)}{_promises(view)}{_baseline(view)}{_waivers(view)}"
        f'<section class="controls" id="controls"><h2>Each promise in detail</h2>'
        f"{controls or '<p>No controls.</p>'}</section>"
        f"{_flows(view)}{_completeness(view)}{_evidence(view)}{_how_to_verify(view)}"
        "</main></body></html>\n"
    )
    # A lone surrogate from undecodable network bytes becomes a character reference.
    return page.encode("utf-8", "xmlcharrefreplace")
