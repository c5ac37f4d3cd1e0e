"""report.html: self-contained, escaped, verdicts in colour and words, links into evidence."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from conformance.report.recipe import VERIFY_RECIPE
from tests.report.builders import SignedReport

VOID = {"meta", "br", "hr", "img", "link", "input"}


class Structure(HTMLParser):
    """Collects tags, attributes and text; checks every element is closed in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(report: SignedReport) -> tuple[str, Structure]:
    page = (report.report_dir / "report.html").read_text(encoding="utf-8")
    structure = Structure()
    structure.feed(page)
    structure.close()
    assert structure.stack == []
    return page, structure


def test_well_formed_and_self_contained(written: SignedReport) -> None:
    page, structure = parse(written)
    tags = {tag for tag, _ in structure.tags}
    assert not tags & {"script", "img", "link", "iframe", "object", "embed"}
    for _tag, attrs in structure.tags:
        for name in ("href", "src"):
            value = attrs.get(name)
            assert value is None or not re.match(r"[a-z]+:|//", value), value
    (csp,) = [a for t, a in structure.tags if t == "meta" and a.get("http-equiv")]
    assert csp["http-equiv"] == "Content-Security-Policy"
    assert str(csp["content"]).startswith("default-src 'none'")
    assert "url(" not in page and "@import" not in page


def test_network_strings_are_escaped(written: SignedReport) -> None:
    page, structure = parse(written)
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<img src=x" not in page
    text = "".join(structure.text)
    assert "<img src=x onerror=alert(1)>" in text  # shown, as text
    assert "report-test <site>" in text


def test_header_has_profile_mode_verdict_window_and_signer(written: SignedReport) -> None:
    page, structure = parse(written)
    text = " ".join("".join(structure.text).split())
    assert "air-gapped" in text and "report-test <site>" in text
    assert '<span class="badge big v-fail">FAIL</span>' in page
    assert "2023-11-14T22:13:20.000000Z → 2023-11-14T22:14:20.000000Z" in text
    assert written.summary.fingerprint in text


def test_verdicts_have_words_and_inconclusive_is_not_green(written: SignedReport) -> None:
    page, _ = parse(written)
    for verdict, word in (
        ("pass", "PASS"),
        ("fail", "FAIL"),
        ("inconclusive", "INCONCLUSIVE"),
        ("error", "ERROR"),
        ("not-applicable", "NOT APPLICABLE"),
    ):
        assert f'<span class="badge v-{verdict}">{word}</span>' in page
    green = re.search(r"\.v-pass \{[^}]*background: (#[0-9a-f]+)", page)
    amber = re.search(r"\.v-inconclusive \{([^}]*)\}", page)
    assert green and amber and green.group(1) not in amber.group(1)


def test_controls_show_clauses_reasons_and_evidence_links(written: SignedReport) -> None:
    _page, structure = parse(written)
    hrefs = [attrs.get("href") for tag, attrs in structure.tags if tag == "a"]
    assert "evidence/flows.csv#L3" in hrefs
    assert "evidence/probes.log#L2" in hrefs
    assert "evidence/capture-0.pcapng" in hrefs
    assert "#AG-EGRESS" in hrefs  # summary row to the control
    text = "".join(structure.text)
    assert "No component of the Software initiates or accepts connections." in text
    assert "1 flow leaves the environment" in text


def test_completeness_evidence_hashes_and_how_to_verify(written: SignedReport) -> None:
    _page, structure = parse(written)
    text = "".join(structure.text)
    assert "Completeness" in text and "bad IPv4 header length <5>" in text
    for digest in written.summary.files:
        if digest.path.startswith("evidence/"):
            assert digest.sha256 in text
    assert "ucx-conformance verify REPORT_DIR --key signer.pub" in text
    assert VERIFY_RECIPE in text


def test_control_characters_are_shown_not_passed_on(written: SignedReport) -> None:
    page, _ = parse(written)
    assert "\x1b" not in page and "\x00" not in page
    assert "no DNS seen\\x1b[31m" in page and "probe crashed: &lt;boom&gt; &amp; \\x00" in page
