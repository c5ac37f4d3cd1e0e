"""The diff document as text (terminal), JSON (machines) or Markdown (a pull-request comment).

Names, SNIs and hosts come from the network: in Markdown they are always code spans with
backticks and table pipes neutralised, so a hostile name cannot add links or break a table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.report.text import one_line

FORMATS = ("text", "json", "markdown")
# A pull-request comment stays readable; everything is in the JSON and the reports.
MAX_MARKDOWN_ROWS = 50


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def headline(doc: Mapping[str, Any]) -> str:
    """One line: "regression: 1 new destination, 1 worse verdict" or "nothing new"."""
    new_dest = [d for d in doc["destinations"]["new"] if not d.get("known_name")]
    weaker = [t for t in doc["tls"]["changed"] if t["weaker"]]
    worse = [v for v in doc["verdicts"]["changed"] if v["worse"]]
    parts = [
        _count(len(new_dest), "new destination") if new_dest else "",
        _count(len(doc["names"]["new"]), "new name") if doc["names"]["new"] else "",
        _count(len(weaker), "weaker TLS endpoint") if weaker else "",
        _count(len(worse), "worse verdict") if worse else "",
    ]
    parts = [p for p in parts if p]
    if doc["regression"]:
        return "regression: " + ", ".join(parts)
    return "nothing new"


def _who(side: Mapping[str, Any]) -> str:
    where = side.get("report") or "this report"
    digest = side.get("envelope_sha256")
    short = f", envelope sha256:{digest[:12]}…" if digest else ""
    return (
        f"{where} (profile {side.get('profile')}, verdict {side.get('verdict')},"
        f" finished {side.get('finished')}{short})"
    )


def _dest_line(d: Mapping[str, Any]) -> str:
    names = ", ".join(d["names"]) or "no name maps to it"
    moved = "; same name, new address" if d.get("known_name") else ""
    return one_line(f"{d['destination']}  {names}  ({_count(d['flows'], 'flow')}{moved})")


def render_text(doc: Mapping[str, Any]) -> str:
    """For a terminal: headline, both reports, then each section that has entries."""
    lines = [
        f"ucx-conformance diff: {headline(doc)}",
        f"old: {_who(doc['old'])}",
        f"new: {_who(doc['new'])}",
    ]

    def section(title: str, items: Sequence[str]) -> None:
        if items:
            lines.append(f"{title} ({len(items)}):")
            lines.extend(f"  {one_line(item)}" for item in items)

    section("regressions", doc["regressions"])
    section("new destinations", [_dest_line(d) for d in doc["destinations"]["new"]])
    section("vanished destinations", [_dest_line(d) for d in doc["destinations"]["vanished"]])
    section("new names", [f"{n['name']} ({', '.join(n['via'])})" for n in doc["names"]["new"]])
    section("vanished names", [n["name"] for n in doc["names"]["vanished"]])
    section(
        "TLS changes",
        [
            f"{t['endpoint']}: {'/'.join(t['old']['versions'])} -> {'/'.join(t['new']['versions'])}"
            + (f" (weaker: {'; '.join(t['weaker'])})" if t["weaker"] else "")
            for t in doc["tls"]["changed"]
        ],
    )
    section(
        "verdict changes",
        [
            f"{v['control']}: {v['old'] or 'not judged'} -> {v['new'] or 'not judged'}"
            + (" (worse)" if v["worse"] else "")
            for v in doc["verdicts"]["changed"]
        ],
    )
    section("notes", doc["notes"])
    return "\n".join(lines) + "\n"


def render_json(doc: Mapping[str, Any]) -> str:
    """The document itself, keys sorted, for scripts."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _code(text: object) -> str:
    """A Markdown code span that no network-borne text can break out of."""
    clean = one_line(str(text)).replace("`", "'").replace("|", "\\|")
    return f"`{clean}`" if clean else ""


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    shown = rows[:MAX_MARKDOWN_ROWS]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(row) + " |" for row in shown]
    if len(rows) > len(shown):
        out.append(f"\n… and {len(rows) - len(shown)} more (see `diff --format json`)")
    return [*out, ""]


def _dest_table(items: Sequence[Mapping[str, Any]]) -> list[str]:
    moved = any(d.get("known_name") for d in items)
    head = ["Destination", "Names", "Flows", *(["Note"] if moved else [])]
    rows = []
    for d in items:
        row = [
            _code(d["destination"]),
            ", ".join(_code(n) for n in d["names"]) or "_no name maps to it_",
            str(d["flows"]),
        ]
        if moved:
            row.append("same name, new address" if d.get("known_name") else "")
        rows.append(row)
    return _table(head, rows)


def render_markdown(doc: Mapping[str, Any]) -> str:
    """A pull-request comment: what is new, what vanished, what got weaker."""
    mark = "❌" if doc["regression"] else "✅"
    old, new = doc["old"], doc["new"]
    out = [
        f"### {mark} ucx-conformance: {headline(doc)}",
        "",
        f"Baseline: {_code(old.get('profile'))} **{old.get('verdict')}**"
        f" ({old.get('finished')}) → this run: **{new.get('verdict')}** ({new.get('finished')})",
        "",
    ]
    new_names = doc["names"]["new"]
    if doc["destinations"]["new"] or new_names:
        out += ["#### What is new", ""]
        if doc["destinations"]["new"]:
            out += _dest_table(doc["destinations"]["new"])
        if new_names:
            rows = [[_code(n["name"]), ", ".join(n["via"])] for n in new_names]
            out += _table(["Name sought", "Via"], rows)
    gone_names = doc["names"]["vanished"]
    if doc["destinations"]["vanished"] or gone_names:
        out += ["#### What vanished", ""]
        if doc["destinations"]["vanished"]:
            out += _dest_table(doc["destinations"]["vanished"])
        if gone_names:
            out += _table(["Name no longer sought"], [[_code(n["name"])] for n in gone_names])
    weaker = [t for t in doc["tls"]["changed"] if t["weaker"]]
    worse = [v for v in doc["verdicts"]["changed"] if v["worse"]]
    if weaker or worse:
        out += ["#### What got weaker", ""]
        if weaker:
            rows = [
                [
                    _code(t["endpoint"]),
                    _code("/".join(t["old"]["versions"])),
                    _code("/".join(t["new"]["versions"])),
                    "; ".join(_code(w) for w in t["weaker"]),
                ]
                for t in weaker
            ]
            out += _table(["TLS endpoint", "Before", "Now", "Why"], rows)
        if worse:
            rows = [
                [_code(v["control"]), v["old"] or "not judged", v["new"] or "not judged"]
                for v in worse
            ]
            out += _table(["Control", "Before", "Now"], rows)
    better = [v for v in doc["verdicts"]["changed"] if not v["worse"]]
    if better:
        out += ["#### Other verdict changes", ""]
        out += _table(
            ["Control", "Before", "Now"],
            [
                [_code(v["control"]), v["old"] or "not judged", v["new"] or "not judged"]
                for v in better
            ],
        )
    if doc["notes"]:
        out += [f"> {one_line(n)}" for n in doc["notes"]] + [""]
    return "\n".join(out).rstrip() + "\n"


def render(doc: Mapping[str, Any], fmt: str) -> str:
    """The diff in `fmt` (one of FORMATS)."""
    if fmt == "json":
        return render_json(doc)
    if fmt == "markdown":
        return render_markdown(doc)
    return render_text(doc)
