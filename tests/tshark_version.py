"""The tshark on this machine, for the tests that compare the harness with it."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

import pytest


@functools.cache
def tshark_version() -> tuple[int, int] | None:
    """(major, minor) of `tshark --version`; None when there is no tshark or it says none."""
    if shutil.which("tshark") is None:
        return None
    out = subprocess.run(
        ["tshark", "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    found = re.search(r"\b(\d+)\.(\d+)\.\d+", out.splitlines()[0] if out else "")
    return (int(found[1]), int(found[2])) if found else None


def needs_tshark(at_least: tuple[int, int] = (0, 0), why: str = "") -> pytest.MarkDecorator:
    """Skip where tshark is missing or older than `at_least` (`why`: what the older one lacks)."""
    version = tshark_version()
    if version is None:
        return pytest.mark.skipif(True, reason="tshark not installed")
    older = version < at_least
    shown = ".".join(map(str, version))
    return pytest.mark.skipif(older, reason=f"tshark {shown} is older than needed: {why}")
