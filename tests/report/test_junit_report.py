"""junit.xml: well-formed, one testcase per control, counts right, inconclusive never skipped."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from tests.report.builders import SignedReport, results


def suite_of(report: SignedReport) -> ET.Element:
    return ET.parse(report.report_dir / "junit.xml").getroot()


def test_one_suite_one_testcase_per_control(written: SignedReport) -> None:
    suite = suite_of(written)
    assert suite.tag == "testsuite" and suite.get("name") == "ucx-conformance"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [f"{r.control_id} Title of {r.control_id}"
                                              for r in results()]  # fmt: skip
    assert {c.get("classname") for c in cases} == {"ucx.air-gapped"}


def test_counts_match_the_elements(written: SignedReport) -> None:
    suite = suite_of(written)
    cases = suite.findall("testcase")
    assert suite.get("tests") == str(len(cases)) == "6"
    for attribute, tag in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        assert suite.get(attribute) == str(sum(1 for c in cases if c.find(tag) is not None))
    assert (suite.get("failures"), suite.get("errors"), suite.get("skipped")) == ("1", "2", "1")


def test_each_verdict_maps_to_its_element(written: SignedReport) -> None:
    cases = {c.get("name", "").split()[0]: c for c in suite_of(written).findall("testcase")}
    failure = cases["AG-EGRESS"].find("failure")
    assert failure is not None and failure.get("type") == "fail"
    assert "evidence/flows.csv#L3" in (failure.text or "")
    for control, kind in (("AG-CLOUD-NAMES", "inconclusive"), ("AG-PERIMETER", "error")):
        error = cases[control].find("error")
        assert error is not None and error.get("type") == kind
        # Skipped shows green in CI: a control that was not proven must never be skipped.
        assert cases[control].find("skipped") is None
    assert cases["HY-DEST"].find("skipped") is not None
    passed = cases["AG-INGRESS"]
    assert [child.tag for child in passed] == ["properties", "system-out"]


def test_control_characters_from_the_network_keep_it_well_formed(written: SignedReport) -> None:
    cases = {c.get("name", "").split()[0]: c for c in suite_of(written).findall("testcase")}
    error = cases["AG-PERIMETER"].find("error")
    assert error is not None and error.get("message") == "probe crashed: <boom> & \\u0000"
