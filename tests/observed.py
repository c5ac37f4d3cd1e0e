"""Observations of evidence files a test wrote, through the one observe step (as a run does)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from conformance.evidence.interface import Collected
from conformance.observe.evidence import observe_evidence
from conformance.observe.records import Observations
from conformance.profile_model import Profile


def observe_logs(
    tmp_path: Path, profile: Profile, logs: Mapping[str, Path], source: str = "lab"
) -> Observations:
    """What the observe step reads from these logs (each named `lab/<file name>`)."""
    files = tuple((path, f"lab/{path.name}") for path in logs.values())
    collected = Collected(source=source, files=files, logs=dict(logs))
    return observe_evidence(collected, profile, tmp_path / "observe-work").observations
