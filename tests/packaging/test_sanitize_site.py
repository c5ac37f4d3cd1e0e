"""scripts/sanitize_site/sitecustomize.py: what keeps scripts/sanitize's runs under the sanitizer.

Every Python process must start with the sanitizer's runtime preloaded (it loads the
instrumented modules), and no other program may (editcap hangs under it). The runtime here
is a library every process already has, so the test needs no sanitizer: what is checked is
who starts with it in LD_PRELOAD.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SITE = Path(__file__).resolve().parents[2] / "scripts" / "sanitize_site"
PRELOAD = "libc.so.6"

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")

# What the process and a program it starts see: the environment the process was started
# with (/proc/self/environ), its own os.environ, and a child program's environment.
_PROBE = """
import json, os, subprocess
started = dict(
    item.split("=", 1) for item in open("/proc/self/environ").read().split("\\0") if "=" in item
)
child = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout.splitlines()
print(json.dumps({
    "started": started.get("LD_PRELOAD"),
    "own": os.environ.get("LD_PRELOAD"),
    "child": [line for line in child if line.startswith("LD_PRELOAD=")],
}))
"""


def _probe(env: dict[str, str]) -> dict[str, object]:
    # Not this process's own (the tests also run under scripts/sanitize itself).
    own = ("LD_PRELOAD", "PYTHONPATH", "UCX_SANITIZE_PRELOAD")
    base = {k: v for k, v in os.environ.items() if k not in own}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={**base, "PYTHONPATH": str(SITE), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    found: dict[str, object] = json.loads(done.stdout)
    return found


def test_a_python_started_without_the_runtime_starts_again_with_it() -> None:
    seen = _probe({"UCX_SANITIZE_PRELOAD": PRELOAD})
    assert seen == {"started": PRELOAD, "own": None, "child": []}


def test_a_python_started_with_it_keeps_it_and_its_programs_do_not_get_it() -> None:
    seen = _probe({"UCX_SANITIZE_PRELOAD": PRELOAD, "LD_PRELOAD": PRELOAD})
    assert seen == {"started": PRELOAD, "own": None, "child": []}


def test_outside_a_sanitizer_run_nothing_changes() -> None:
    assert _probe({}) == {"started": None, "own": None, "child": []}
    seen = _probe({"LD_PRELOAD": PRELOAD})
    assert seen == {"started": PRELOAD, "own": PRELOAD, "child": [f"LD_PRELOAD={PRELOAD}"]}
