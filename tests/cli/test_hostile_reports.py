"""Hostile input to the commands people use after a run: verify, diff, export, rejudge,
keygen and waivers. Each input is a real signed report (a real run of the CLI), altered and,
where the attack needs a valid signature, sealed again with the signer's own key: what a
careless or hostile signer could hand an auditor. Every case ends in a one-line error with
exit 3 (or a clean result), never a traceback, and nothing the user had is damaged.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.digest import ENVELOPE_NAME, FileDigest
from conformance.sign.dsse import parse_envelope
from conformance.sign.keys import load_private_key
from conformance.sign.seal import Ed25519Sealer
from conformance.sign.verify import verify_report
from tests import defects
from tests.after_run import Lab, copy_report, make_lab, tcp_and_udp_leak


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Lab:
    """A lab with two real reports: `clean` and `leak` (two flows to outside hosts)."""
    lab = make_lab(tmp_path_factory.mktemp("hostile"))
    env = os.environ.copy()
    os.environ["UCX_CONFORMANCE_KEY"] = str(lab.root / "default-key" / "signing-key.pem")
    try:
        assert lab.run("clean", defects.clean_onprem_traffic())[0] == 0
        assert lab.run("leak", tcp_and_udp_leak())[0] == 1
    finally:
        os.environ.clear()
        os.environ.update(env)
    return lab


def reseal(report: Path, key: Path, change: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Seal `report` again with `key` after `change` edited its report.json (a signer who
    signs whatever is there); report.json's evidence list follows the files as they are."""
    document = json.loads((report / "report.json").read_text())
    if change is not None:
        change(document)
    evidence = []
    for path in sorted((report / "evidence").iterdir()):
        data = path.read_bytes()
        evidence.append(
            {
                "path": f"evidence/{path.name}",
                "sha256": hashlib.sha256(data).hexdigest(),
                "bytes": len(data),
            }
        )
    document["evidence"] = evidence
    (report / "report.json").write_text(json.dumps(document))
    files = []
    for path in sorted(report.rglob("*")):
        name = path.relative_to(report).as_posix()
        if path.is_file() and name != ENVELOPE_NAME:
            data = path.read_bytes()
            files.append(FileDigest(name, hashlib.sha256(data).hexdigest(), len(data)))
    old = parse_envelope((report / ENVELOPE_NAME).read_bytes()).payload
    predicate = json.loads(old)["predicate"]
    predicate["verdict"] = document.get("verdict")
    (report / ENVELOPE_NAME).write_bytes(
        Ed25519Sealer(load_private_key(key)).envelope(files, predicate)
    )


def hostile(lab: Lab, tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    report = copy_report(lab.root / "leak", tmp_path / "hostile")
    reseal(report, lab.key, change)
    return report


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


# --- diff ------------------------------------------------------------------------------------


def test_diff_reads_a_table_with_short_and_long_rows(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a short row's missing cells were None and `diff` died in AttributeError."""
    report = copy_report(lab.root / "leak", tmp_path / "rows")
    with (report / "evidence" / "dns.csv").open("a") as table:
        table.write("x,1\n" + ",".join("abcdefghijklmnopqrstuvwxyz") + "\n")
    reseal(report, lab.key)
    assert main(["diff", str(lab.root / "clean"), str(report), "--key", str(lab.pub)]) == 1
    assert "regression" in capsys.readouterr().err


def test_diff_refuses_a_table_without_its_columns(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a flows.csv of other bytes read as "no flows", hiding the leak (nothing new)."""
    report = copy_report(lab.root / "leak", tmp_path / "columns")
    (report / "evidence" / "flows.csv").write_bytes(b"\xff\xfe\x00not a table\n")
    reseal(report, lab.key)
    assert main(["diff", str(lab.root / "clean"), str(report), "--key", str(lab.pub)]) == 3
    err = one_line_error(capsys)
    assert "evidence/flows.csv: no column 'flow_id'" in err


def test_diff_survives_a_deeply_nested_profile_copy(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: RecursionError from the YAML parser, a traceback of thousands of lines."""
    report = copy_report(lab.root / "leak", tmp_path / "deep")
    (report / "evidence" / "profile.yaml").write_text("[" * 50_000 + "]" * 50_000)
    reseal(report, lab.key)
    assert main(["diff", str(lab.root / "clean"), str(report), "--key", str(lab.pub)]) == 1
    assert "Traceback" not in capsys.readouterr().err


def _surrogates(document: dict[str, Any]) -> None:
    document["profile"]["name"] = "site-\udcff"
    control = document["controls"][0]
    control["reason"] = "reason \ud800"
    control["findings"][0]["summary"] = "summary \udcfe"
    control["findings"][0]["facts"] = {"names": "name-\udcfd.example"}
    document["controls"].append({"id": "AG-\udcff", "verdict": "fail", "findings": []})


@pytest.mark.parametrize("fmt", ["text", "json", "markdown"])
def test_diff_writes_lone_surrogates_escaped(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    """report.json writes undecodable bytes as lone-surrogate escapes; before, `diff` died
    in UnicodeEncodeError printing them."""
    report = hostile(lab, tmp_path, _surrogates)
    args = ["diff", str(lab.root / "clean"), str(report), "--key", str(lab.pub)]
    assert main([*args, "--format", fmt]) == 1
    out = capsys.readouterr()
    assert "\\udcff" in out.out


# --- export ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["oscal", "sarif", "test-result"])
def test_export_writes_lone_surrogates_escaped(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    report = hostile(lab, tmp_path, _surrogates)
    output = tmp_path / f"{fmt}.json"
    args = ["export", str(report), "--format", fmt, "--key", str(lab.pub), "-o", str(output)]
    assert main([*args, "--sign-key", str(lab.key)]) == 0
    json.loads(output.read_bytes())  # valid JSON, the surrogates escaped


@pytest.mark.parametrize("command", ["export", "diff"])
def test_a_report_of_another_format_is_refused(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """Before: a report.json of format 2 was read as if it were format 1."""
    report = hostile(lab, tmp_path, lambda d: d.update(format=2))
    args = (
        ["export", str(report), "--format", "sarif"]
        if command == "export"
        else ["diff", str(lab.root / "clean"), str(report)]
    )
    assert main([*args, "--key", str(lab.pub)]) == 3
    assert "report.json: format 2: this ucx-conformance reads report format 1" in (
        one_line_error(capsys)
    )


@pytest.mark.parametrize("inside", ["sarif.json", "evidence/sarif.json"])
def test_export_refuses_to_write_into_a_signed_report(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], inside: str
) -> None:
    """Before: the export landed in the report, which then failed `verify` (extra file)."""
    report = copy_report(lab.root / "leak", tmp_path / "r")
    args = ["export", str(report), "--format", "sarif", "--key", str(lab.pub)]
    assert main([*args, "-o", str(report / inside)]) == 3
    assert "inside the signed report" in one_line_error(capsys)
    assert verify_report(report, lab.pub).ok


def test_export_never_leaves_a_half_written_file(lab: Lab, tmp_path: Path) -> None:
    """A write that fails part way (here: a file-size limit) leaves nothing under the name.
    Before: the first bytes stayed behind as a truncated export."""
    output = tmp_path / "out" / "oscal.json"
    output.parent.mkdir()
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "from conformance.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = ["export", str(lab.root / "leak"), "--format", "oscal", "--key", str(lab.pub)]
    done = subprocess.run(
        [sys.executable, "-c", script, *args, "-o", str(output)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert list(output.parent.iterdir()) == []


def test_export_to_a_new_file_writes_it_whole(lab: Lab, tmp_path: Path) -> None:
    output = tmp_path / "sarif.json"
    args = ["export", str(lab.root / "leak"), "--format", "sarif", "--key", str(lab.pub)]
    assert main([*args, "-o", str(output)]) == 0
    assert json.loads(output.read_text())["version"] == "2.1.0"
    assert [p.name for p in tmp_path.iterdir()] == ["sarif.json"]
    assert main([*args, "-o", str(output)]) == 3  # never overwritten


# --- rejudge and run -------------------------------------------------------------------------


def test_rejudge_refuses_to_replace_the_report_it_judges(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the source report was replaced by its rejudged copy (the original lost)."""
    report = copy_report(lab.root / "leak", tmp_path / "r")
    before = (report / ENVELOPE_NAME).read_bytes()
    args = ["rejudge", str(report), "--key", str(lab.pub), "--sign-key", str(lab.key)]
    assert main([*args, "--report-dir", f"{report}/"]) == 3
    assert "is the report being judged again" in one_line_error(capsys)
    assert (report / ENVELOPE_NAME).read_bytes() == before


@pytest.mark.parametrize("command", ["run", "rejudge"])
def test_a_new_report_inside_a_signed_report_is_refused(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """Before: the new report was written into the old one, which then failed `verify`."""
    report = copy_report(lab.root / "clean", tmp_path / "old")
    target = report / "evidence" / "new"
    if command == "run":
        args = ["run", "--profile", str(lab.profile), "--pcap", str(lab.root / "leak.pcap")]
    else:
        args = ["rejudge", str(lab.root / "leak"), "--key", str(lab.pub)]
    assert main([*args, "--report-dir", str(target), "--sign-key", str(lab.key)]) == 3
    assert "inside the signed report" in one_line_error(capsys)
    assert verify_report(report, lab.pub).ok


def test_rejudge_of_a_report_without_its_profile_names_the_report(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the error named a deleted temporary directory's profile.yaml."""
    report = copy_report(lab.root / "leak", tmp_path / "r")
    (report / "evidence" / "profile.yaml").unlink()
    reseal(report, lab.key)
    args = ["rejudge", str(report), "--key", str(lab.pub), "--sign-key", str(lab.key)]
    assert main([*args, "--report-dir", str(tmp_path / "new")]) == 3
    assert f"{report}: holds no evidence/profile.yaml" in one_line_error(capsys)


# --- verify: text is printed as written ------------------------------------------------------


def test_a_path_with_emoji_codes_is_printed_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: rich printed ":x:" in a path or a profile's text as an emoji."""
    missing = tmp_path / ":x:" / ":warning:"
    assert main(["verify", str(missing)]) == 1
    assert f"{missing}: not a directory" in capsys.readouterr().err


# --- keygen ----------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["", ".", "keys/", "passwd/k.pem", "a" * 300])
def test_keygen_refuses_bad_names_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    """Before: ValueError, FileExistsError or ENAMETOOLONG tracebacks."""
    (tmp_path / "passwd").write_text("a file, not a directory\n")
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert main(["keygen", given]) == 3
    finally:
        os.chdir(cwd)
    one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["passwd"]


def test_keygen_refuses_a_key_inside_a_signed_report(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = copy_report(lab.root / "clean", tmp_path / "r")
    assert main(["keygen", str(report / "signer.pem")]) == 3
    assert "inside the signed report" in one_line_error(capsys)
    assert verify_report(report, lab.pub).ok


# --- waivers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expires", ["9999-12-31", '"9999-12-31T23:00:00-05:00"', '"0001-01-01T00:00:00+05:00"']
)
def test_a_waiver_expiring_out_of_range_is_bad_usage(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], expires: str
) -> None:
    """Before: OverflowError, an INTERNALERROR traceback of forty lines."""
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(
        f"- {{control: AG-EGRESS, justification: x, approved_by: y, expires: {expires}}}\n"
    )
    code, report = lab.run("waived", tcp_and_udp_leak(), "--waivers", waivers)
    assert code == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err and "INTERNALERROR" not in err
    assert f"{waivers}: [0].expires: " in err and "out of range" in err
    assert not report.exists()


def test_the_reports_attacked_here_are_untouched(lab: Lab) -> None:
    for name in ("clean", "leak"):
        assert verify_report(lab.root / name, lab.pub).ok
