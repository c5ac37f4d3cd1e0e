"""ucx-conformance: prove, with network evidence, that a UCX install keeps its mode's promises.

The public API is small: the verdict type, the profile loader, the error base, and the
version. Everything else is internal and may change.
"""

from conformance.errors import ConformanceError
from conformance.verdict import Verdict

__version__ = "0.1.0"

__all__ = ["ConformanceError", "Verdict", "__version__", "load_profile"]


def __dir__() -> list[str]:
    return sorted(__all__)


from conformance.profile import load_profile  # noqa: E402
