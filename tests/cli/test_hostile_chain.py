"""Hostile input to `verify-chain` and `watch`: a watch's real chain of period reports,
altered, or resealed by its own signer with fields of another shape. Every case is a named
problem (exit 1) or bad usage (exit 3), never a traceback, and nothing is added to a
signed report.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import main
from conformance.digest import FileDigest
from conformance.sign.dsse import parse_envelope
from conformance.sign.verify import verify_report
from tests.after_run import copy_report
from tests.cli.test_hostile_reports import reseal
from tests.watch.feed import BASE, Feed, clean, leak, make_feed, watch_options, watching

SECOND = "20270115T080010Z"  # the chain's periods: ...080000Z, ...080010Z, ...080020Z


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Feed, Path]:
    """Three periods: clean, leak, clean."""
    env = os.environ.copy()
    feed = make_feed(tmp_path_factory.mktemp("chain"))
    os.environ["UCX_CONFORMANCE_KEY"] = str(feed.lab.root / "default-key" / "signing-key.pem")
    try:
        root = feed.lab.root.parent / "chain"
        for i, builder in enumerate((clean, leak, clean)):
            feed.put(builder, BASE + 10 * i + 0.5)
        with watching(watch_options(feed, root)) as watch:
            watch.poll(BASE + 31.5)
    finally:
        os.environ.clear()
        os.environ.update(env)
    assert sorted(p.name for p in root.iterdir() if p.name[0] != ".")[1] == SECOND
    return feed, root


@pytest.fixture
def copy(chain: tuple[Feed, Path], tmp_path: Path) -> Path:
    return copy_report(chain[1], tmp_path / "copy")


def verify_chain(chain: tuple[Feed, Path], root: Path) -> int:
    return main(["verify-chain", str(root), "--key", f"{chain[0].lab.key}.pub"])


def problems(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def period_of(report: Path) -> dict[str, Any]:
    payload = parse_envelope((report / "report.intoto.json").read_bytes()).payload
    period: dict[str, Any] = json.loads(payload)["predicate"]["period"]
    return period


@pytest.mark.parametrize(
    "change",
    [
        {"controls": "not a list"},
        {"controls": [1, 2]},
        {"period": "not an object"},
        {"period": {"gaps": 5}},
    ],
)
def test_a_period_with_fields_of_another_shape_is_no_crash(
    chain: tuple[Feed, Path],
    copy: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, Any],
) -> None:
    """Before: AttributeError or TypeError reading the history row of the period."""
    reseal(copy / SECOND, chain[0].lab.key, lambda document: document.update(change))
    assert verify_chain(chain, copy) == 1  # resealed: the next period's link names other bytes
    assert f"period {SECOND}: replaced" in problems(capsys)


def test_a_link_of_another_shape_is_a_named_problem(
    chain: tuple[Feed, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: AttributeError on `previous` given as a string instead of an object."""
    from conformance.sign.keys import load_private_key
    from conformance.sign.seal import Ed25519Sealer
    from conformance.sign.statement import parse_statement

    report = copy / SECOND
    envelope = parse_envelope((report / "report.intoto.json").read_bytes())
    statement = parse_statement(envelope.payload)
    predicate = dict(statement.predicate)
    predicate["period"] = {**period_of(report), "previous": "20270115T080000Z"}
    files = [_digest(name, digest, report) for name, digest in sorted(statement.subjects.items())]
    sealer = Ed25519Sealer(load_private_key(chain[0].lab.key))
    (report / "report.intoto.json").write_bytes(sealer.envelope(files, predicate))
    assert verify_chain(chain, copy) == 1
    assert f"period {SECOND}: its link to the previous period is unreadable" in problems(capsys)


def _digest(name: str, digest: str, report: Path) -> FileDigest:
    return FileDigest(name, digest, (report / name).stat().st_size)


def test_an_unreadable_watch_state_is_a_problem_not_skipped(
    chain: tuple[Feed, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: garbage in .watch/state.json was skipped, so the newest period could be
    deleted with it and the chain still said ok."""
    newest = sorted(p for p in copy.iterdir() if not p.name.startswith("."))[-1]
    for path in sorted(newest.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    newest.rmdir()
    (copy / ".watch" / "state.json").write_text("garbage")
    assert verify_chain(chain, copy) == 1
    assert "state.json: the watch's state is unreadable" in problems(capsys)


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_an_entry_named_like_a_period_that_is_no_directory_is_a_problem(
    chain: tuple[Feed, Path],
    copy: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
) -> None:
    """Before: a symlinked period was followed out of R, a file named like one ignored."""
    if kind == "symlink":
        outside = tmp_path / "outside"
        (copy / SECOND).rename(outside)
        (copy / SECOND).symlink_to(outside)
        name, what = SECOND, "is a symlink"
    else:
        name, what = "20270115T080030Z", "is not a directory"
        (copy / name).write_text("not a period\n")
    assert verify_chain(chain, copy) == 1
    assert f"period {name}: {what}" in problems(capsys)


@pytest.mark.parametrize("where", ["", "evidence/x"])
def test_watch_refuses_a_report_root_in_a_signed_report(
    chain: tuple[Feed, Path], tmp_path: Path, where: str
) -> None:
    """Before: the watch created .watch/ inside the report, which then failed `verify`."""
    from conformance.errors import ConformanceError
    from conformance.watch.watcher import Watch

    feed, root = chain
    report = copy_report(root / SECOND, tmp_path / "report")
    watch = Watch(watch_options(feed, report / where if where else report))
    try:
        with pytest.raises(ConformanceError, match="inside the signed report"):
            watch.start()
    finally:
        watch.close()
    assert verify_report(report, Path(f"{feed.lab.key}.pub")).ok
