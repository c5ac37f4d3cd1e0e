"""junit.xml: one testcase per control, so CI shows the verdicts.

Inconclusive and error are `<error>`, never `<skipped/>`: CI systems show skipped as green,
and a control that was not proven must not look passed. Only not-applicable is skipped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC
from typing import assert_never

from conformance.report.view import ControlView, FindingView, ReportView
from conformance.verdict import Verdict

SUITE_NAME = "ucx-conformance"
# Characters XML 1.0 cannot carry at all (C0 controls but tab/LF/CR, surrogates, U+FFFE/F).
# ElementTree would write them and produce a file no parser accepts.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` with characters XML cannot hold written as `\\uXXXX`."""
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _finding_line(finding: FindingView) -> str:
    where = f" ({finding.evidence})" if finding.evidence else ""
    waived = ""
    if finding.waiver is not None:
        mark = finding.waiver
        waived = (
            f" [waived #{mark.number}: {mark.justification}; approved by {mark.approved_by},"
            f" expires {mark.expires}]"
        )
    return f"[{finding.severity.value}] {finding.summary}{where}{waived}"


def _body(control: ControlView) -> str:
    lines = [f"{control.id}: {control.reason}", f"clause: {control.clause}"]
    lines += [_finding_line(f) for f in control.findings]
    return xml_text("\n".join(lines))


def _testcase(suite: ET.Element, control: ControlView, mode: str) -> str:
    """Add the control's testcase; return the counter it adds to ("" for a pass)."""
    case = ET.SubElement(
        suite,
        "testcase",
        classname=xml_text(f"ucx.{mode}"),
        name=xml_text(f"{control.id} {control.title}"),
        time="0",
    )
    properties = ET.SubElement(case, "properties")
    ET.SubElement(properties, "property", name="verdict", value=control.verdict.value)
    ET.SubElement(properties, "property", name="clause", value=xml_text(control.clause))
    message = xml_text(control.reason)
    counter = ""
    match control.verdict:
        case Verdict.PASS:
            pass
        case Verdict.FAIL:
            element = ET.SubElement(case, "failure", type="fail", message=message)
            element.text = _body(control)
            counter = "failures"
        case Verdict.INCONCLUSIVE | Verdict.ERROR:
            element = ET.SubElement(case, "error", type=control.verdict.value, message=message)
            element.text = _body(control)
            counter = "errors"
        case Verdict.NOT_APPLICABLE:
            ET.SubElement(case, "skipped", message=message)
            counter = "skipped"
        case _:
            assert_never(control.verdict)
    if not counter or counter == "skipped":
        # A failure or error already carries the body; elsewhere it shows warnings and clause.
        out = ET.SubElement(case, "system-out")
        out.text = _body(control)
    return counter


def render_junit(view: ReportView) -> bytes:
    """junit.xml's bytes: one <testsuite name="ucx-conformance">, one testcase per control."""
    suite = ET.Element("testsuite", name=SUITE_NAME)
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("verdict", view.verdict.value),
        ("profile", view.profile_name),
        ("mode", view.profile_mode),
        ("signer", view.fingerprint),
    ):
        ET.SubElement(properties, "property", name=name, value=xml_text(value))
    for control in view.controls:
        counter = _testcase(suite, control, view.profile_mode)
        if counter:
            counts[counter] += 1
    duration = max(0.0, (view.finished - view.started).total_seconds())
    suite.set("tests", str(len(view.controls)))
    for name, count in counts.items():
        suite.set(name, str(count))
    suite.set("time", f"{duration:.3f}")
    # The JUnit schema's timestamp has no zone: UTC, stated once here.
    suite.set("timestamp", view.started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    ET.indent(suite)
    data: bytes = ET.tostring(suite, encoding="utf-8", xml_declaration=True)
    return data + b"\n"
