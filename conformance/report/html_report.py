"""report.html: the report for people, one self-contained file that works offline.

Inline CSS only, no script, no fonts, no external links (a Content-Security-Policy says so
to the browser). Every string is escaped: summaries, names and facts come from the network.
Each verdict has a colour and its word; inconclusive is amber, never green.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from html import escape
from typing import assert_never

from conformance.judge.model import Severity
from conformance.report.json_report import jsonable
from conformance.report.text import iso_utc, visible
from conformance.report.view import CaptureView, ControlView, FindingView, ReportView
from conformance.sign.recipe import FINGERPRINT_RECIPE, VERIFY_RECIPE
from conformance.verdict import Verdict

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #1f2328; background: #f6f8fa; }
main { max-width: 72rem; margin: 0 auto; padding: 1.5rem; }
header, section, article { background: #fff; border: 1px solid #d0d7de; border-radius: 6px;
  padding: 1rem 1.25rem; margin-bottom: 1rem; }
h1 { margin: 0 0 .5rem; font-size: 1.6rem; }
h2 { margin: 0 0 .75rem; font-size: 1.25rem; }
h3 { margin: 0 0 .5rem; font-size: 1.1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #d0d7de;
  vertical-align: top; }
th { background: #f6f8fa; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: .85rem; }
.hash { word-break: break-all; }
pre { background: #f6f8fa; padding: .75rem; overflow-x: auto; border-radius: 6px; }
blockquote { margin: .5rem 0; padding: .25rem .75rem; border-left: 4px solid #d0d7de;
  color: #424a53; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
.badge { display: inline-block; padding: .1rem .55rem; border-radius: 1rem; font-weight: 700;
  font-size: .8rem; letter-spacing: .03em; border: 2px solid; white-space: nowrap; }
.badge.big { font-size: 1.1rem; padding: .2rem .9rem; }
.v-pass { color: #fff; background: #1a7f37; border-color: #1a7f37; }
.v-fail { color: #fff; background: #cf222e; border-color: #cf222e; }
.v-inconclusive { color: #4d2d00; background: #fff8c5; border-color: #bf8700; }
.v-error { color: #fff; background: #8250df; border-color: #8250df; }
.v-not-applicable { color: #424a53; background: #eaeef2; border-color: #8c959f; }
article.control { border-left-width: 6px; }
article.c-pass { border-left-color: #1a7f37; }
article.c-fail { border-left-color: #cf222e; }
article.c-inconclusive { border-left-color: #bf8700; }
article.c-error { border-left-color: #8250df; }
article.c-not-applicable { border-left-color: #8c959f; }
.sev { font-weight: 700; text-transform: uppercase; font-size: .75rem; }
.sev-violation { color: #cf222e; }
.sev-warning { color: #9a6700; }
.sev-info { color: #57606a; }
ul.findings { padding-left: 1.2rem; }
ul.findings li { margin-bottom: .4rem; }
.bad { color: #cf222e; font-weight: 600; }
.ok { color: #1a7f37; font-weight: 600; }
.muted { color: #57606a; }
"""

# Content-Security-Policy: nothing may load or run; only the inline stylesheet applies.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_WORDS = {
    Verdict.PASS: "PASS",
    Verdict.FAIL: "FAIL",
    Verdict.INCONCLUSIVE: "INCONCLUSIVE",
    Verdict.ERROR: "ERROR",
    Verdict.NOT_APPLICABLE: "NOT APPLICABLE",
}


def _e(value: object) -> str:
    # Control characters (a terminal escape, a NUL from the wire) are shown, not passed on.
    return escape(visible(str(value)), quote=True)


def _badge(verdict: Verdict, *, big: bool = False) -> str:
    size = " big" if big else ""
    return f'<span class="badge{size} v-{verdict.value}">{_e(_WORDS[verdict])}</span>'


def _link(href: str, text: str | None = None) -> str:
    # Every href is a path this report wrote under evidence/ (never a network-borne string).
    return f'<a href="{_e(href)}"><code>{_e(text if text is not None else href)}</code></a>'


def _fact_value(value: object) -> str:
    plain = jsonable(value)
    return plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False)


def _cell(value: object) -> str:
    """A table cell: a list of plain values reads as a comma-separated list."""
    if isinstance(value, list | tuple) and all(isinstance(v, str | int | float) for v in value):
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
    return f'<table class="facts"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _facts(facts: Mapping[str, object]) -> str:
    if not facts:
        return ""
    rows = "".join(
        f"<dt>{_e(k)}</dt><dd>{_fact_table(v) or _e(_fact_value(v))}</dd>"
        for k, v in sorted(facts.items(), key=lambda i: str(i[0]))
    )
    return f'<dl class="meta">{rows}</dl>'


def _severity(severity: Severity) -> str:
    match severity:
        case Severity.VIOLATION | Severity.WARNING | Severity.INFO:
            return f'<span class="sev sev-{severity.value}">{_e(severity.value)}</span>'
        case _:
            assert_never(severity)


def _finding(finding: FindingView) -> str:
    parts = [f"{_severity(finding.severity)} {_e(finding.summary)}"]
    if finding.links:
        parts.append("evidence: " + ", ".join(_link(link) for link in finding.links))
    if finding.packets is not None:
        numbers = ", ".join(str(n) for n in finding.packets.numbers)
        if finding.packets.capture is not None:
            where = _link(finding.packets.capture)
        else:
            where = _e(f"capture #{finding.packets.capture_index} (not copied)")
        parts.append(f"packets {_e(numbers)} in {where}")
    return f"<li>{'<br>'.join(parts)}{_facts(finding.facts)}</li>"


def _control(control: ControlView) -> str:
    clauses = "".join(
        f"<blockquote>{_e(line)}</blockquote>"
        for line in control.clause_text.splitlines()
        if line.strip()
    )
    findings = ""
    if control.findings:
        items = "".join(_finding(f) for f in control.findings)
        findings = f'<h4>Findings ({len(control.findings)})</h4><ul class="findings">{items}</ul>'
    facts = f"<h4>Facts</h4>{_facts(control.facts)}" if control.facts else ""
    return (
        f'<article class="control c-{control.verdict.value}" id="{_e(control.id)}">'
        f"<h3>{_badge(control.verdict)} {_e(control.id)}: {_e(control.title)}</h3>"
        f"<p><strong>Reason:</strong> {_e(control.reason)}</p>"
        f"<p><strong>Promise:</strong> {_e(control.promise)}</p>"
        f"<p><strong>Contract clauses:</strong> {_e(control.clause)}</p>{clauses}"
        f"{findings}{facts}</article>"
    )


def _header(view: ReportView) -> str:
    window = view.window
    captured = (
        f"{_e(iso_utc(window[0]))} → {_e(iso_utc(window[1]))}"
        if window
        else '<span class="muted">no packet times</span>'
    )
    return (
        f"<header><h1>UCX conformance report {_badge(view.verdict, big=True)}</h1>"
        '<dl class="meta">'
        f"<dt>Profile</dt><dd>{_e(view.profile_name)}</dd>"
        f"<dt>Mode</dt><dd>{_e(view.profile_mode)}</dd>"
        f"<dt>Profile file</dt><dd><code>{_e(view.profile_source)}</code>"
        f" (copy: {_link('evidence/profile.yaml')})</dd>"
        f"<dt>Traffic captured</dt><dd>{captured}</dd>"
        f"<dt>Run</dt><dd>{_e(iso_utc(view.started))} → {_e(iso_utc(view.finished))}</dd>"
        f"<dt>Harness</dt><dd>ucx-conformance {_e(view.harness_version)}</dd>"
        f'<dt>Signer</dt><dd><code class="hash">{_e(view.fingerprint)}</code></dd>'
        "</dl></header>"
    )


def _summary(view: ReportView) -> str:
    counts = " ".join(
        f"{_badge(verdict)} {count}" for verdict, count in view.counts.items() if count
    )
    rows = "".join(
        f'<tr><td><a href="#{_e(c.id)}">{_e(c.id)}</a></td><td>{_e(c.title)}</td>'
        f"<td>{_badge(c.verdict)}</td><td>{_e(c.clause)}</td><td>{len(c.findings)}</td></tr>"
        for c in view.controls
    )
    return (
        f"<section><h2>Summary</h2><p>{counts or 'no controls judged'}</p>"
        "<table><thead><tr><th>Control</th><th>Title</th><th>Verdict</th><th>Clauses</th>"
        f"<th>Findings</th></tr></thead><tbody>{rows}</tbody></table></section>"
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
        f"<td>{_e(summary.format)}</td><td>{summary.packets}</td><td>{drops}</td>"
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
        "<table><thead><tr><th>Capture</th><th>Format</th><th>Packets</th><th>Drops</th>"
        "<th>File truncated</th><th>Snap-truncated packets</th><th>Malformed</th>"
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
    return f"<section><h2>Completeness</h2>{overall}{table}{anomalies_html}{notes_html}</section>"


def _list(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>"


def _evidence(view: ReportView) -> str:
    rows = "".join(
        f"<tr><td>{_link(f.path)}</td><td>{f.size}</td>"
        f'<td><code class="hash">{_e(f.sha256)}</code></td></tr>'
        for f in view.evidence
    )
    tools = "".join(
        f"<tr><td>{_e(k)}</td><td><code>{_e(v)}</code></td></tr>"
        for k, v in view.tool_versions.items()
    )
    return (
        "<section><h2>Evidence</h2><table><thead><tr><th>File</th><th>Bytes</th><th>SHA-256</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
        "<h3>Tool versions</h3><table><tbody>"
        f"{tools}</tbody></table></section>"
    )


def _how_to_verify(view: ReportView) -> str:
    return (
        "<section><h2>How to verify this report</h2>"
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


def render_html(view: ReportView) -> bytes:
    """report.html's bytes."""
    controls = "".join(_control(c) for c in view.controls)
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(f'UCX conformance: {view.profile_name} ({view.verdict.value})')}</title>"
        f"<style>{_CSS}</style></head><body><main>"
        f"{_header(view)}{_summary(view)}"
        f"<section><h2>Controls</h2>{controls or '<p>No controls.</p>'}</section>"
        f"{_completeness(view)}{_evidence(view)}{_how_to_verify(view)}"
        "</main></body></html>\n"
    )
    # A lone surrogate from undecodable network bytes becomes a character reference.
    return page.encode("utf-8", "xmlcharrefreplace")
