"""`watch` refuses what a user can fix with one line and exit 3, before judging anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.cli import main
from tests.watch.feed import make_feed, watching


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--profile": "missing.yaml"}, "missing.yaml"),
        ({"--capture-dir": "nowhere"}, "not a directory"),
        ({"--period": "soon"}, "--period 'soon'"),
        ({"--period": "0.5s"}, "at least 1 s"),
        ({"--executor": "threads"}, "--executor threads"),
        ({"--sign-key": "no-such-key.pem"}, "no-such-key.pem"),
        ({"--report-root": "captures/chain"}, "must not be inside --capture-dir"),
    ],
)
def test_bad_usage_is_one_line_and_exit_3(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, str],
    message: str,
) -> None:
    feed = make_feed(tmp_path)
    monkeypatch.chdir(tmp_path)
    options = {
        "--profile": str(feed.lab.profile),
        "--capture-dir": str(feed.directory),
        "--report-root": str(tmp_path / "chain"),
        "--sign-key": str(feed.lab.key),
        **change,
    }
    argv = ["watch", *(item for pair in options.items() for item in pair)]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "chain" / ".watch" / "captures").exists() or not any(
        (tmp_path / "chain" / ".watch" / "captures").iterdir()
    )


def test_a_second_watch_on_the_same_report_root_is_refused(tmp_path: Path) -> None:
    """Another process holds the report root: the second watch says who, exit 3."""
    import subprocess
    import sys

    from tests.watch.feed import watch_options

    feed = make_feed(tmp_path)
    with watching(watch_options(feed, tmp_path / "chain")):
        argv = [sys.executable, "-m", "conformance.cli", "watch"]
        argv += ["--profile", str(feed.lab.profile), "--capture-dir", str(feed.directory)]
        argv += ["--report-root", str(tmp_path / "chain"), "--sign-key", str(feed.lab.key)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert ".watch" in done.stderr
