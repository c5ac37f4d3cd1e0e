"""The committed copy of the shared specification matches the original, where it is present."""

from __future__ import annotations

import pytest

from tests.shared import COPY, ORIGINAL

FILES = sorted(
    str(path.relative_to(COPY))
    for part in ("spec", "seeds")
    for path in (COPY / part).rglob("*")
    if path.is_file()
)


@pytest.mark.parametrize("relative", FILES)
def test_copy_is_up_to_date(relative: str) -> None:
    if not (ORIGINAL / "spec").is_dir():
        pytest.skip("no ../shared beside this checkout: the committed copy is all there is")
    assert (COPY / relative).read_bytes() == (ORIGINAL / relative).read_bytes(), (
        f"fixtures/shared/{relative} differs from ../shared/{relative}: "
        "cp -r ../shared/spec ../shared/seeds fixtures/shared/"
    )


def test_every_original_file_is_copied() -> None:
    if not (ORIGINAL / "spec").is_dir():
        pytest.skip("no ../shared beside this checkout")
    originals = {
        str(p.relative_to(ORIGINAL))
        for d in ("spec", "seeds")
        for p in (ORIGINAL / d).rglob("*")
        if p.is_file()
    }
    copied = {str(p.relative_to(COPY)) for p in COPY.rglob("*") if p.is_file()}
    assert originals <= copied
