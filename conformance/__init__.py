"""ucx-conformance: prove, with network evidence, that a UCX install keeps its mode's promises.

The public API is small: the verdict type, the profile loader, the error base, and the
version. Everything else is internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conformance.errors import ConformanceError
from conformance.verdict import Verdict

if TYPE_CHECKING:
    from conformance.profile import load_profile

__version__ = "0.1.0"

__all__ = ["ConformanceError", "Verdict", "__version__", "load_profile"]


def __dir__() -> list[str]:
    return sorted(__all__)


def __getattr__(name: str) -> object:
    # The loader (YAML and the profile's key tables) is imported on first use: commands that
    # read no profile (verify, keygen, --help) never pay for it.
    if name == "load_profile":
        from conformance.profile import load_profile

        return load_profile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
