"""The reference target's fault switches, read from the fixture's own catalog.

The target (fixtures/lab/target) owns the list, in faults.json beside it, so the program
that implements a fault and the description shown by `ucx-conformance lab faults` cannot
drift apart. Nothing in judge/ or suites/ reads this: they must not know the fixture.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from conformance.errors import LabError
from conformance.resources import lab_dir

CATALOG: Final = lab_dir() / "target" / "faults.json"


def load_faults() -> tuple[tuple[str, str], ...]:
    """(name, description) of every fault switch, in catalog order."""
    try:
        data = json.loads(CATALOG.read_text())
        return tuple((str(f["name"]), str(f["description"])) for f in data["faults"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LabError(
            f"cannot read the reference target's fault catalog {CATALOG}: {exc}"
        ) from exc


def check_faults(faults: Sequence[str]) -> tuple[str, ...]:
    """The faults, deduplicated in order; LabError listing the valid ones for an unknown name."""
    known = dict(load_faults())
    unknown = [f for f in faults if f not in known]
    if unknown:
        raise LabError(f"unknown fault {', '.join(unknown)}; valid faults: {', '.join(known)}")
    return tuple(dict.fromkeys(faults))
