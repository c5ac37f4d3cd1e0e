"""The auditor's independent check (bash, jq, base64, OpenSSL 3, sha256sum) agrees with verify."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conformance.report.recipe import FINGERPRINT_RECIPE, VERIFY_RECIPE
from conformance.sign.keys import generate_key
from tests.report.builders import SignedReport

DOCS = Path(__file__).resolve().parents[2] / "docs" / "verify.md"
needs_tools = pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("jq") is None,
    reason="openssl or jq is not installed",
)


def run_recipe(report_dir: Path, pub: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", VERIFY_RECIPE],
        check=False,
        cwd=report_dir,
        env={**os.environ, "PUB": str(pub)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docs_carry_the_recipe_verbatim() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert VERIFY_RECIPE in text
    assert FINGERPRINT_RECIPE in text


@needs_tools
def test_recipe_accepts_a_good_report(report: SignedReport) -> None:
    done = run_recipe(report.report_dir, report.pub_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "report verified" in done.stdout
    # It left nothing behind in the report (an extra file would fail `verify` later).
    assert sorted(p.name for p in report.report_dir.iterdir()) == [
        "evidence", "junit.xml", "report.html", "report.intoto.json", "report.json",
    ]  # fmt: skip


@needs_tools
def test_recipe_rejects_a_wrong_key(report: SignedReport, tmp_path: Path) -> None:
    other = generate_key(tmp_path / "other.pem")
    done = run_recipe(report.report_dir, Path(f"{other}.pub"))
    assert done.returncode != 0
    assert "Signature Verification Failure" in done.stdout + done.stderr


@needs_tools
@pytest.mark.parametrize("name", ["report.json", "evidence/capture-0.pcapng"])
def test_recipe_rejects_a_changed_byte(report: SignedReport, name: str) -> None:
    path = report.report_dir / name
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    assert run_recipe(report.report_dir, report.pub_path).returncode != 0


@needs_tools
def test_recipe_rejects_an_extra_file_and_a_symlink(report: SignedReport) -> None:
    extra = report.report_dir / "evidence" / "extra.txt"
    extra.write_text("x")
    assert run_recipe(report.report_dir, report.pub_path).returncode != 0
    extra.unlink()
    flows = report.report_dir / "evidence" / "flows.csv"
    copy = report.report_dir.parent / "flows.csv"
    shutil.copy(flows, copy)
    flows.unlink()
    flows.symlink_to(copy)
    assert run_recipe(report.report_dir, report.pub_path).returncode != 0


@needs_tools
def test_fingerprint_recipe_matches_the_report(report: SignedReport) -> None:
    command = FINGERPRINT_RECIPE.replace("signer.pub", str(report.pub_path))
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
    assert "sha256:" + done.stdout.split()[0] == report.summary.fingerprint
