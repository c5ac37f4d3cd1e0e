"""docs/profile.md starts with "draft, review, check, run": its commands work as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from conformance.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "profile.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_doc_starts_with_draft_review_check_run() -> None:
    headings = re.findall(r"^## (.+)$", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    assert headings[0] == "Draft, review, check, run"


def test_the_documented_commands_run_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "default-key.pem"))
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    commands = [line for line in _blocks("sh")[0].splitlines() if line and not line.startswith("#")]
    assert [shlex.split(c)[:3] for c in commands] == [
        ["ucx-conformance", "profile", "draft"],
        ["ucx-conformance", "profile", "check"],
        ["ucx-conformance", "run", "--profile"],
    ]
    draft, check, run = (shlex.split(c)[1:] for c in commands)
    assert main(draft) == 0
    site = tmp_path / "site.yaml"
    assert yaml.safe_load(site.read_text())["draft"] is True
    # The review, as the comment between the commands says: delete the `draft: true` line.
    site.write_text(site.read_text().replace("draft: true\n", "", 1))
    assert main(check) == 0
    assert capsys.readouterr().out.rstrip().endswith("no warnings")
    assert main([*run, "--report-dir", str(tmp_path / "report")]) == 0


def test_the_schema_command_and_the_editor_line(tmp_path: Path) -> None:
    command = next(b for b in _blocks("sh") if "profile schema" in b).strip()
    out = tmp_path / "profile.schema.json"
    assert main([*shlex.split(command)[1:-1], str(out)]) == 0
    example = next(b for b in _blocks("yaml") if "yaml-language-server" in b)
    assert example.startswith("# yaml-language-server: $schema=profile.schema.json\n")
