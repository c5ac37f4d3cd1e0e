"""report.html for auditors: one-screen summary, rendered evidence, waivers, baseline, slots."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from conformance.digest import FileDigest
from conformance.report.html_report import render_html
from conformance.report.view import ReportView, build_view
from tests.report.builders import SignedReport, fake_lookup, make_run
from tests.report.test_html_report import Structure, parse


def view_of(tmp_path: Path) -> ReportView:
    run = make_run(tmp_path)
    evidence = (FileDigest("evidence/probes.log", "0" * 64, 10),)
    return build_view(run, fake_lookup, evidence, ("evidence/capture-0.pcapng",), "sha256:ab")


def page_of(view: ReportView) -> tuple[str, Structure]:
    page = render_html(view).decode()
    structure = Structure()
    structure.feed(page)
    structure.close()
    assert structure.stack == []
    return page, structure


def text_of(structure: Structure) -> str:
    return " ".join("".join(structure.text).split())


def test_first_screen_says_verdict_promises_seen_and_signer(written: SignedReport) -> None:
    page, structure = parse(written)
    text = text_of(structure)
    hero = page[: page.index("</header>")]
    assert "1 promise of 5 broken: title of ag-egress." in " ".join(hero.split())
    assert "works entirely inside the customer&#x27;s own network" in hero
    assert written.summary.fingerprint in hero
    start = page.index('id="summary"')
    summary = page[start : page.index("</section>", start)]
    assert "What was promised, what was seen" in summary
    assert "The promise of AG-EGRESS." in summary
    # What was seen for a failed control: where its violation went, not a raw key.
    assert "1 violation: 198.51.100.7:443/tcp" in " ".join(summary.split())
    assert "Not applicable to this deployment (1)" in summary
    assert "HY-DEST" in summary
    assert "promise" in text


def test_findings_link_to_the_rendered_flow_and_its_raw_row(written: SignedReport) -> None:
    page, structure = parse(written)
    hrefs = [attrs.get("href") for tag, attrs in structure.tags if tag == "a"]
    ids = {attrs.get("id") for _tag, attrs in structure.tags}
    assert "#flow-2" in hrefs and "flow-2" in ids  # in-page: the flow rendered as a table row
    assert "evidence/flows.csv#L3" in hrefs  # the raw CSV row, still linked
    row = page[page.index("id='flow-2'") : page.index("</tr>", page.index("id='flow-2'"))]
    assert "192.0.2.10:50002" in row and "198.51.100.7:443" in row
    assert "frame.number in {20 21}" in row  # its packets, as a Wireshark filter
    assert "cited by" in row and 'href="#AG-EGRESS"' in row


def test_every_control_id_is_an_anchor(written: SignedReport) -> None:
    _page, structure = parse(written)
    ids = {attrs.get("id") for _tag, attrs in structure.tags}
    for control in ("AG-EGRESS", "AG-INGRESS", "AG-CLOUD-NAMES", "HY-DEST", "AG-PERIMETER"):
        assert control in ids


def test_prints_without_scripts(written: SignedReport) -> None:
    page, _ = parse(written)
    assert "@media print" in page and "<script" not in page


def test_display_filter_is_shown_with_the_packets_and_their_file(tmp_path: Path) -> None:
    page, _ = page_of(view_of(tmp_path))
    flat = " ".join(page.split())
    assert (
        'packets 20, 21, 22 in <a class="ev" href="evidence/capture-0.pcapng">'
        "<code>evidence/capture-0.pcapng</code></a>"
        "<br><span class='small muted'>Wireshark/tshark display filter for that file:</span>"
        " <code class='filter'>frame.number in {20..22} &amp;&amp; ((ip.addr#1 == 192.0.2.10"
        " &amp;&amp; ip.addr#1 == 198.51.100.7) || (icmp &amp;&amp; ip.addr#2 == 192.0.2.10"
        " &amp;&amp; ip.addr#2 == 198.51.100.7)) &amp;&amp; ((tcp.port#1 == 50002 &amp;&amp;"
        " tcp.port#1 == 443) || ip.flags.mf#1 == 1 || ip.frag_offset#1 &gt; 0)</code>" in flat
    )


def test_coverage_sits_right_below_the_verdict_with_linked_sentences(tmp_path: Path) -> None:
    page, _ = page_of(view_of(tmp_path))
    assert page.index("</header>") < page.index('id="coverage"') < page.index('id="summary"')
    start = page.index('id="coverage"')
    block = " ".join(page[start : page.index("</section>", start)].split())
    assert "What this window could not see" in block
    # the 60-second window of builders.observations_for, without a profile minimum
    assert (
        "The captures cover only 1 min (from 2023-11-14 22:13:20 UTC to 2023-11-14 22:14:20"
        " UTC), under 1 h: anything the installation does less often" in block
    )
    assert (
        "1 frame could not be read at all: bad IPv4 header length &lt;5&gt;: 1, e.g. packet 33."
        ' <span class=\'small muted\'>(<a class="ev" href="evidence/capture-0.pcapng">'
        "<code>capture-0.pcapng</code></a>)</span>" in block
    )
    assert "nightly update check" in block.split("</li>")[0]  # warnings first


def test_no_observations_no_coverage_block(tmp_path: Path) -> None:
    view = dataclasses.replace(view_of(tmp_path), coverage=None, coverage_statements=())
    page, _ = page_of(view)
    assert 'id="coverage"' not in page


@pytest.mark.parametrize("regression", [True, False])
def test_baseline_section(tmp_path: Path, regression: bool) -> None:
    doc = {
        "old": {
            "report": "reports/yesterday",
            "verdict": "pass",
            "finished": "x",
            "envelope_sha256": "e" * 64,
            "pinned": True,
        },
        "new": {"report": None},
        "regression": regression,
        "regressions": ["new destination 198.51.100.7:443/tcp (x)"] if regression else [],
        "destinations": {
            "new": [
                {
                    "destination": "198.51.100.7:443/tcp",
                    "names": ["<x>"],
                    "flows": 1,
                    "known_name": not regression,
                }
            ],
            "vanished": [],
        },
        "names": {"new": [], "vanished": []},
        "tls": {"changed": [], "new": [], "vanished": []},
        "verdicts": {
            "changed": [{"control": "AG-EGRESS", "old": "pass", "new": "fail", "worse": True}]
            if regression
            else []
        },
        "notes": [],
    }
    page, _ = page_of(dataclasses.replace(view_of(tmp_path), baseline=doc))
    section = page[page.index('id="baseline"') :]
    assert "Compared with the baseline" in section and "reports/yesterday" in section
    assert "&lt;x&gt;" in section and "<x>" not in section
    if regression:
        assert "regression: 1 new destination, 1 worse verdict" in section
        assert "worse" in section
    else:
        assert "nothing new" in section and "same name, new address" in section
