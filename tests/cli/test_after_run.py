"""run --waivers / --baseline and export, through the CLI as users call them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main, suites_dir
from conformance.sign.verify import verify_report
from tests import defects
from tests.after_run import (
    UDP_LEAK,
    Lab,
    controls,
    copy_report,
    make_lab,
    report_json,
    tcp_and_udp_leak,
)

WAIVE_NTP = f"""\
- control: AG-EGRESS
  match: {{destination: "{UDP_LEAK}"}}
  justification: NTP to the ISP until the on-prem server is commissioned (CHG-1234)
  approved_by: Jane Roe, CISO
  expires: 2099-12-31
- control: AG-CLOUD-NAMES
  justification: an exception that lapsed
  approved_by: John Doe
  expires: 2020-01-01
- control: AG-INGRESS
  match: {{destination: "192.0.2.200"}}
  justification: stale
  approved_by: John Doe
  expires: 2099-12-31
"""


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return make_lab(tmp_path / "lab")


def test_run_with_waivers_marks_signs_and_shows_them(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    waivers = lab.root / "waivers.yaml"
    waivers.write_text(WAIVE_NTP)
    code, report = lab.run("leak", tcp_and_udp_leak(), "--waivers", waivers)
    err = capsys.readouterr().err
    assert code == 1  # the unwaived CRL fetch still fails AG-EGRESS
    found = controls(report)
    egress = found["AG-EGRESS"]
    assert egress["verdict"] == "fail" and egress["verdict_before_waivers"] is None
    waived = [f for f in egress["findings"] if f["waived"]]
    assert len(waived) == 1 and "203.0.113.123:123 udp" in waived[0]["summary"]
    assert waived[0]["waived"] == {
        "waiver": 1,
        "justification": "NTP to the ISP until the on-prem server is commissioned (CHG-1234)",
        "approved_by": "Jane Roe, CISO",
        "expires": "2099-12-31",
        "evidence": "evidence/waivers.yaml#L1",
    }
    expired = found["AG-CLOUD-NAMES"]["findings"][-1]
    assert expired["severity"] == "warning" and "expired 2020-01-01" in expired["summary"]
    assert expired["evidence"] == "evidence/waivers.yaml#L6"
    stale = found["AG-INGRESS"]["findings"][-1]
    assert "matches no finding" in stale["summary"]
    assert found["AG-INGRESS"]["verdict"] == "pass"  # a warning does not change a verdict
    states = [e["state"] for e in report_json(report)["waivers"]["entries"]]
    assert states == ["applied", "expired", "unmatched"]
    # The waiver file is signed evidence, byte for byte.
    assert (report / "evidence" / "waivers.yaml").read_bytes() == waivers.read_bytes()
    assert verify_report(report, lab.pub).trusted
    html = (report / "report.html").read_text()
    assert "WAIVED" in html and "Jane Roe, CISO" in html and "CHG-1234" in html
    junit = (report / "junit.xml").read_text()
    assert "[waived #1: NTP to the ISP" in junit and "approved by Jane Roe, CISO" in junit
    assert "(1 waived)" in err
    assert "waiver #2 (AG-CLOUD-NAMES, every finding): expired" in err
    assert "waiver #3 (AG-INGRESS, destination 192.0.2.200): unmatched" in err


def test_bad_waiver_file_is_exit_3_before_anything_is_judged(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    waivers = lab.root / "waivers.yaml"
    waivers.write_text(WAIVE_NTP.replace("AG-CLOUD-NAMES", "AG-CLOUD-NAME"))
    code, report = lab.run("leak", tcp_and_udp_leak(), "--waivers", waivers)
    err = capsys.readouterr().err
    assert code == 3 and not report.exists()
    line = f"{waivers}: [1].control: unknown control 'AG-CLOUD-NAME'"
    assert line in " ".join(err.split())


def test_run_with_baseline_puts_the_diff_into_the_report(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    _, old = lab.run("old", defects.clean_onprem_traffic())
    code, new = lab.run("new", tcp_and_udp_leak(), "--baseline", old)
    err = capsys.readouterr().err
    assert code == 1
    baseline = report_json(new)["baseline"]
    assert baseline["regression"] is True
    assert {d["destination"] for d in baseline["destinations"]["new"]} == {
        f"{defects.OUTSIDE}:80/tcp",
        UDP_LEAK,
    }
    assert baseline["old"]["report"] == str(old)
    assert baseline["new"]["report"] is None
    assert "baseline: regression: 2 new destinations" in err
    html = (new / "report.html").read_text()
    assert "Compared with the baseline" in html and f"{defects.OUTSIDE}:80/tcp" in html
    # The same diff `diff` computes from the two finished reports.
    main(["diff", str(old), str(new), "--key", str(lab.pub), "--format", "json"])
    later = json.loads(capsys.readouterr().out)
    for key in ("destinations", "names", "tls", "verdicts", "regressions"):
        assert later[key] == baseline[key], key


def test_baseline_that_does_not_verify_is_exit_3(
    lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, old = lab.run("old", defects.clean_onprem_traffic())
    tampered = copy_report(old, tmp_path / "tampered")
    (tampered / "evidence" / "dns.csv").write_text("capture,packet\n")
    code, new = lab.run("new", defects.clean_onprem_traffic(), "--baseline", tampered)
    err = " ".join(capsys.readouterr().err.split())
    assert code == 3 and not new.exists()
    assert "dns.csv" in err and "SHA-256" in err


def test_baseline_signed_by_another_key_needs_baseline_key(
    lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other = make_lab(tmp_path / "other")
    _, old = other.run("old", defects.clean_onprem_traffic())
    code, _ = lab.run("new", defects.clean_onprem_traffic(), "--baseline", old)
    assert code == 3 and "signature does not match" in capsys.readouterr().err
    code, new = lab.run(
        "new2", defects.clean_onprem_traffic(), "--baseline", old, "--baseline-key", other.pub
    )
    assert code == 0 and report_json(new)["baseline"]["regression"] is False


@pytest.mark.parametrize("fmt", ["oscal", "sarif", "test-result"])
def test_export_writes_each_format(lab: Lab, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    _, report = lab.run("leak", tcp_and_udp_leak())
    out = lab.root / f"{fmt}.json"
    code = main(
        [
            "export",
            str(report),
            "--format",
            fmt,
            "--key",
            str(lab.pub),
            "--sign-key",
            str(lab.key),
            "-o",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    document = json.loads(out.read_text())
    expected_key = {"oscal": "assessment-results", "sarif": "runs", "test-result": "payload"}
    assert expected_key[fmt] in document
    # Never overwrites a file.
    again = main(["export", str(report), "--format", fmt, "--key", str(lab.pub), "-o", str(out)])
    assert again == 3 and "exists" in capsys.readouterr().err


def test_export_to_stdout_and_default_signing_key(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    _, report = lab.run("clean", defects.clean_onprem_traffic())
    capsys.readouterr()
    assert main(["export", str(report), "--format", "test-result", "--key", str(lab.pub)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["payloadType"] == "application/vnd.in-toto+json"
    assert "created signing key" in captured.err  # the isolated default key, as `run` does


def test_export_refuses_unverified_or_unpinned_input(
    lab: Lab, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, report = lab.run("clean", defects.clean_onprem_traffic())
    capsys.readouterr()
    assert main(["export", str(report), "--format", "sarif"]) == 3
    assert "signer not pinned" in capsys.readouterr().err
    tampered = copy_report(report, tmp_path / "tampered")
    (tampered / "report.json").write_text("{}")
    assert main(["export", str(tampered), "--format", "oscal", "--key", str(lab.pub)]) == 3
    err = " ".join(capsys.readouterr().err.split())
    assert "report.json" in err and "SHA-256" in err
    assert main(["export", str(report), "--format", "pdf", "--key", str(lab.pub)]) == 3


def test_plain_pytest_takes_the_same_options(lab: Lab, tmp_path: Path) -> None:
    waivers = lab.root / "waivers.yaml"
    waivers.write_text(WAIVE_NTP)
    _, old = lab.run("old", defects.clean_onprem_traffic())
    capture = lab.capture("leak", tcp_and_udp_leak())
    report = tmp_path / "pytest-report"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(suites_dir()),
            "-p",
            "no:cacheprovider",
            "-q",
            "--ucx-profile",
            str(lab.profile),
            "--ucx-pcap",
            str(capture),
            "--ucx-report-dir",
            str(report),
            "--ucx-sign-key",
            str(lab.key),
            "--ucx-waivers",
            str(waivers),
            "--ucx-baseline",
            str(old),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "waiver warning: waiver #2" in completed.stdout
    assert "baseline: regression" in completed.stdout
    document = report_json(report)
    assert document["baseline"]["regression"] and document["waivers"]["entries"]
