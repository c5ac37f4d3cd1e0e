"""The compiled hot loops (Cython), when they were built and are not switched off.

The record walks of the readers (`walk`: conformance/decode/_walk.pyx), the per-packet
step of the observers (conformance/observe/_step.pyx), the hello reader asked of every
TLS direction's first payload (decode/tls.py `quick_hello`: conformance/decode/_hello.pyx),
the record maker and the compact flow and hello records (observe/records.py `maker`,
`DATACLASS_RECORDS`: conformance/observe/_records.pyx), the flow builder (observe/flows.py
`FlowTable.finish`: conformance/observe/_flows.pyx) and the lines of the two largest
evidence tables (report/tables.py `write_flows`, `write_tls`:
conformance/report/_tables.pyx) have a compiled twin each; every caller falls back to the
pure-Python code, which is always there and always tested, when the extension modules were
not built (no compiler at install time: see benchmarks/README.md), when a module built in a
checkout is older than its source, or when UCX_CONFORMANCE_PURE_PYTHON=1 asks for it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path
from types import ModuleType

# Set to 1 to run the pure-Python code even where the compiled modules are installed.
PURE_PYTHON_ENV = "UCX_CONFORMANCE_PURE_PYTHON"


# Every compiled module (hatch_build.py builds them): the readers' walks, the observers' step,
# the first payload's hello reader, the record maker, the flow builder, the table lines,
# the closed connections' spill, the read-ahead's chunks used again.
MODULES = (
    "conformance.decode._walk",
    "conformance.observe._step",
    "conformance.decode._hello",
    "conformance.observe._records",
    "conformance.observe._flows",
    "conformance.report._tables",
    "conformance.observe._spill",
    "conformance.decode._chunks",
)
# What `load` found for each module it was asked for: "compiled", or why not.
STATUS: dict[str, str] = {}


def load(name: str) -> ModuleType | None:
    """The compiled module `name`, or None (not built, stale, or the pure-Python code asked for)."""
    module, STATUS[name] = _find(name)
    return module


def _find(name: str) -> tuple[ModuleType | None, str]:
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None, f"switched off by {PURE_PYTHON_ENV}"
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:
        spec = None
    if spec is None or spec.origin is None:
        return None, "not built"
    if stale(Path(spec.origin)):
        return None, "built from an older source"
    try:
        return importlib.import_module(name), "compiled"
    except ImportError as exc:
        return None, f"cannot be loaded: {exc}"


def needs_build() -> bool:
    """Whether some compiled module is missing or older than its source (scripts/bootstrap)."""
    for name in MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None or stale(Path(spec.origin)):
            return True
    return False


def describe() -> str:
    """One line for the report: which per-packet code runs, compiled or pure Python, and why."""
    # The observers load their step when imported; here only if nothing has yet.
    importlib.import_module("conformance.observe.ingest")
    if not STATUS:
        return "pure Python: no compiled module asked for"
    pure = {name: why for name, why in STATUS.items() if why != "compiled"}
    if not pure:
        return "compiled (Cython): " + ", ".join(sorted(STATUS))
    reasons = "; ".join(f"{name} {why}" for name, why in sorted(pure.items()))
    return ("pure Python" if len(pure) == len(STATUS) else "partly compiled") + f": {reasons}"


def stale(module: Path) -> bool:
    """Whether a module built in place is older than its Cython source.

    Its source is its own .pyx and .pxd and every .pxd of the package's subpackages (a module
    that cimports another's declarations must be built again with them: conformance/observe/
    _step.pyx reads the layout of decode/_walk.pxd's CStep). In a checkout an edited source
    leaves the old build beside it until it is built again; the pure-Python code is then the
    one that matches the source. An installed wheel's files carry install times, not build
    times, so only a checkout (hatch_build.py beside the top package) is checked.
    """
    if len(module.parents) < 3 or not (module.parents[2] / "hatch_build.py").is_file():
        return False
    stem = module.name.split(".", 1)[0]
    try:
        built = module.stat().st_mtime
    except OSError:
        return True
    own = [module.parent / (stem + ".pyx"), module.parent / (stem + ".pxd")]
    for source in [*own, *module.parents[1].glob("*/*.pxd")]:
        try:
            if source.stat().st_mtime > built:
                return True
        except FileNotFoundError:
            continue
    return False


walk = load(MODULES[0])
