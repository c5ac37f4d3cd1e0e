"""Build the optional compiled hot loops (Cython): for a wheel, or in place for a checkout.

The harness is pure Python and always works as such; eight extension modules make the
decoder's per-packet work several times faster (figures: benchmarks/README.md):

    conformance/decode/_walk.pyx   the readers' record walks (pcap records, pcapng EPBs)
    conformance/observe/_step.pyx  the observers' per-packet step
    conformance/decode/_hello.pyx  the hello in a TLS direction's first payload
    conformance/observe/_records.pyx  the observers' records: compact flows and hellos, a maker
    conformance/observe/_flows.pyx    the flows built from the flow table at a capture's end
    conformance/observe/_spill.pyx    closed connections out of the flow table, in a scratch file
    conformance/report/_tables.pyx    the lines of the two largest evidence tables
    conformance/decode/_chunks.pyx    the read-ahead's chunks, read into bytes objects used again

They need Cython and a C compiler at build time, which not every machine has, so they are
built only on request:

    UCX_CONFORMANCE_COMPILE=1 pip wheel --no-build-isolation .   # a platform wheel with them
    python hatch_build.py                                        # in place, for a checkout

Without the variable, `pip wheel .` / `pip install .` build the pure-Python wheel. The
hatchling hook below (`[tool.hatch.build.targets.wheel.hooks.custom]` in pyproject.toml)
does the wheel part. With the variable set, a build that cannot compile fails loudly
rather than shipping a wheel that silently lacks what was asked for.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

COMPILE_ENV = "UCX_CONFORMANCE_COMPILE"
# (module, source) of every extension module, relative to the project root.
EXTENSIONS = (
    ("conformance.decode._walk", "conformance/decode/_walk.pyx"),
    ("conformance.observe._step", "conformance/observe/_step.pyx"),
    ("conformance.decode._hello", "conformance/decode/_hello.pyx"),
    ("conformance.observe._records", "conformance/observe/_records.pyx"),
    ("conformance.observe._flows", "conformance/observe/_flows.pyx"),
    ("conformance.observe._spill", "conformance/observe/_spill.pyx"),
    ("conformance.report._tables", "conformance/report/_tables.pyx"),
    ("conformance.decode._chunks", "conformance/decode/_chunks.pyx"),
)


def build_extensions(root: Path, out: Path | None) -> list[Path]:
    """Compile every extension module; into `out` (a package tree), or in place if None.

    Returns the built files, relative to `out` (or `root`).
    """
    from Cython.Build import cythonize
    from setuptools import Distribution, Extension

    here = Path.cwd()
    os.chdir(root)  # Cython names modules and finds the .pxd files from the package tree
    try:
        extensions = cythonize(
            [Extension(name, [source]) for name, source in EXTENSIONS],
            compiler_directives={"language_level": 3},
            quiet=True,
        )
        dist = Distribution({"name": "ucx-conformance-speedups", "ext_modules": extensions})
        build = dist.get_command_obj("build_ext")
        with tempfile.TemporaryDirectory(prefix="ucx-build-") as temp:
            build.build_temp = temp
            if out is None:
                build.inplace = True
            else:
                build.build_lib = str(out)
            build.ensure_finalized()
            build.run()
        built = [Path(build.get_ext_fullpath(name)) for name, _ in EXTENSIONS]
        if out is None:
            # build_ext leaves a module it found up to date (by Cython's own dependency
            # tracking) untouched; made now, it must not count as older than a source
            # (conformance/decode/compiled.py `stale`, scripts/bootstrap).
            for path in built:
                os.utime(path)
    finally:
        os.chdir(here)
    base = root if out is None else out
    return [path.resolve().relative_to(base.resolve()) for path in built]


class SpeedupsHook(BuildHookInterface):  # type: ignore[type-arg]
    """Adds the compiled modules to the wheel when UCX_CONFORMANCE_COMPILE=1."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get(COMPILE_ENV, "") in ("", "0"):
            return
        out = Path(tempfile.mkdtemp(prefix="ucx-speedups-"))
        self._out = out
        for path in build_extensions(Path(self.root), out):
            build_data["force_include"][str(out / path)] = str(path)
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        out = getattr(self, "_out", None)
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    root = Path(__file__).resolve().parent
    for path in build_extensions(root, None):
        print(f"built {path}")
    sys.exit(0)
