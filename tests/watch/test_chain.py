"""verify-chain: a good chain verifies; a period deleted, swapped, edited, replaced or missing at
the end fails with exit 1, naming the period."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conformance.cli import main
from tests.after_run import copy_report
from tests.watch.feed import (
    BASE,
    Feed,
    clean,
    leak,
    make_feed,
    verify_chain,
    watch_options,
    watching,
)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Feed, Path]:
    """Four periods: clean, leak, clean, clean."""
    feed = make_feed(tmp_path_factory.mktemp("chain"))
    root = feed.lab.root.parent / "chain"
    for i, builder in enumerate((clean, leak, clean, clean)):
        feed.put(builder, BASE + 10 * i + 0.5)
    with watching(watch_options(feed, root)) as watch:
        watch.poll(BASE + 41.5)
    return feed, root


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("."))


@pytest.fixture
def copy(chain: tuple[Feed, Path], tmp_path: Path) -> Path:
    return copy_report(chain[1], tmp_path / "copy")


def failures(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err


def test_a_good_chain_verifies(
    chain: tuple[Feed, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    feed, root = chain
    assert verify_chain(root, feed.lab.key) == 0
    out = capsys.readouterr()
    assert "chain ok: 4 periods" in out.err
    assert "198.51.100.7:80/tcp" in out.out  # the leak period's new destination


def test_a_deleted_period_is_named(
    chain: tuple[Feed, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = names(copy)[1]
    shutil.rmtree(copy / gone)
    assert verify_chain(copy, chain[0].lab.key) == 1
    assert f"names previous period {gone}" in failures(capsys)


def test_a_deleted_newest_period_is_found_by_the_watch_state(
    chain: tuple[Feed, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = names(copy)[-1]
    shutil.rmtree(copy / gone)
    assert verify_chain(copy, chain[0].lab.key) == 1
    assert f"period {gone}: the watch's state names it as the newest" in failures(capsys)


def test_swapped_periods_are_named(
    chain: tuple[Feed, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = names(copy)[1:3]
    (copy / a).rename(copy / "swap")
    (copy / b).rename(copy / a)
    (copy / "swap").rename(copy / b)
    assert verify_chain(copy, chain[0].lab.key) == 1
    err = failures(capsys)
    assert f"period {a}: the directory holds the report of period {b}" in err


def test_an_edited_period_is_named(
    chain: tuple[Feed, Path], copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edited = names(copy)[1]
    report = copy / edited / "report.json"
    document = json.loads(report.read_text())
    document["verdict"] = "pass"
    report.write_text(json.dumps(document))
    assert verify_chain(copy, chain[0].lab.key) == 1
    assert f"period {edited}: altered" in failures(capsys)


def test_a_period_replaced_by_another_signed_report_is_named(
    chain: tuple[Feed, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second watch, same key, same periods, clean where the first saw the leak: its period
    report verifies on its own, but the next period of the real chain names another one."""
    feed, root = chain
    other = tmp_path / "other"
    other_feed = make_feed(tmp_path / "o")
    for i in range(2):
        other_feed.put(clean, BASE + 10 * i + 0.5)
    options = watch_options(other_feed, other)
    from dataclasses import replace

    with watching(replace(options, sign_key=feed.lab.key, profile=feed.lab.profile)) as watch:
        watch.poll(BASE + 21.5)
    copy = copy_report(root, tmp_path / "copy")
    replaced = names(copy)[1]
    shutil.rmtree(copy / replaced)
    shutil.copytree(other / replaced, copy / replaced)
    assert verify_chain(copy, feed.lab.key) == 1
    assert f"period {replaced}: replaced" in failures(capsys)


def test_another_signer_is_refused(
    chain: tuple[Feed, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keygen", str(tmp_path / "other.pem")]) == 0
    assert verify_chain(chain[1], tmp_path / "other.pem") == 1
    assert "altered" in failures(capsys)


def test_without_a_key_it_refuses_unless_allowed(
    chain: tuple[Feed, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify-chain", str(chain[1])]) == 3
    assert "signer not pinned" in failures(capsys)
    assert main(["verify-chain", str(chain[1]), "--allow-unpinned"]) == 2


def test_a_directory_without_periods_is_bad_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify-chain", str(tmp_path)]) == 3
    assert "holds no period report" in failures(capsys)
