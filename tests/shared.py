"""Where the shared specification is: `../shared` beside the checkout, else the copy in fixtures."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL = ROOT.parent / "shared"
COPY = ROOT / "fixtures" / "shared"


def shared_dir() -> Path:
    """The original when it is beside the repository, else the committed copy."""
    return ORIGINAL if (ORIGINAL / "spec" / "controls.md").is_file() else COPY


def shared_text(relative: str) -> str:
    path = shared_dir() / relative
    assert path.is_file(), f"{path} is missing"
    return path.read_text(encoding="utf-8")
