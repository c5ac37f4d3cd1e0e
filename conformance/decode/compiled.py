"""The compiled hot loops (Cython), when they were built and are not switched off.

The record walks of the readers (`walk`: conformance/decode/_walk.pyx) and the per-packet
step of the observers (conformance/observe/_step.pyx) have a compiled twin each; every
caller falls back to the pure-Python code, which is always there and always tested, when
the extension modules were not built (no compiler at install time: see
benchmarks/README.md) or when UCX_CONFORMANCE_PURE_PYTHON=1 asks for it.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

# Set to 1 to run the pure-Python code even where the compiled modules are installed.
PURE_PYTHON_ENV = "UCX_CONFORMANCE_PURE_PYTHON"


def load(name: str) -> ModuleType | None:
    """The compiled module `name`, or None (not built, or the pure-Python code asked for)."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


walk = load("conformance.decode._walk")
