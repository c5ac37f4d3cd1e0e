"""Where the harness's runtime content lives: inside the installed package, else the checkout.

The wheel carries the conformance suites as `conformance/_suites` and the runtime fixtures
(reference lab, reference target, fault table, profiles, sample captures) as
`conformance/_fixtures` (pyproject.toml, force-include); a source checkout has them at the
top level (`suites/`, `fixtures/`). Everything the package reads or starts by file path is
found here, never through `Path(__file__).parents[...]`, so `pipx install` and a wheel in a
virtual environment run the lab exactly as a checkout does.

The lab starts programs by path (the reference target, the stand-ins) and children with
`-m conformance...`, so the content must be real files: an import from a zip file is refused
with a clear error rather than half working.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

PACKAGE: Final = "conformance"
PACKAGED_SUITES: Final = "_suites"
PACKAGED_FIXTURES: Final = "_fixtures"

_PACKAGE_DIR: Final = Path(__file__).resolve().parent
# A checkout: this file is conformance/resources.py at the top of the source tree.
_CHECKOUT: Final = _PACKAGE_DIR.parent


def _packaged(name: str) -> Path | None:
    """`conformance/<name>` of the installed package as a real directory, or None."""
    found = resources.files(PACKAGE) / name
    if not found.is_dir():
        return None
    if not isinstance(found, Path):
        raise RuntimeError(
            f"{found}: the harness is imported from an archive; install it as files"
            " (pip install, pipx install) so the lab can start its programs by path"
        )
    return found


def suites_dir() -> Path:
    """The conformance suites (pytest files): the packaged copy, else `suites/` of the checkout."""
    return _packaged(PACKAGED_SUITES) or _CHECKOUT / "suites"


def fixtures_dir() -> Path:
    """The runtime fixtures: the packaged copy, else `fixtures/` of the checkout."""
    return _packaged(PACKAGED_FIXTURES) or _CHECKOUT / "fixtures"


def lab_dir() -> Path:
    """The reference lab's programs: reference target, stand-ins, their shared protocol code."""
    return fixtures_dir() / "lab"


def profiles_dir() -> Path:
    """The ready-made profiles (`lab-air-gapped.yaml`, `sample-air-gapped.yaml`, ...)."""
    return fixtures_dir() / "profiles"


def captures_dir() -> Path:
    """The bundled sample captures (`sample-air-gapped.pcapng`, ...)."""
    return fixtures_dir() / "captures"


def import_root() -> Path:
    """The directory holding the `conformance` package: PYTHONPATH for the lab's children.

    In a checkout that is the source tree (no install needed); when installed it is
    site-packages, which the interpreter already searches.
    """
    return _PACKAGE_DIR.parent


def main() -> int:
    """`python -m conformance.resources`: print where the runtime content is, one a line."""
    for name, path in (
        ("suites", suites_dir()),
        ("fixtures", fixtures_dir()),
        ("profiles", profiles_dir()),
        ("captures", captures_dir()),
    ):
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
