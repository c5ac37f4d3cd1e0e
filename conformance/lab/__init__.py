"""The built-in lab: namespaces around the reference UCX target, captured live (docs/lab.md).

Public API (used by the evidence source `conformance.evidence.lab` and the CLI):
`LabRun`, `list_faults`, `run_lab`. Everything else in this package is private to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.profile_model import Profile
from conformance.progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:
    from conformance.lab.external import ExternalTarget
    from conformance.lab.sshd import LabHostHook

__all__ = ["LabRun", "list_faults", "run_lab"]


@dataclass(frozen=True)
class LabRun:
    """What one lab run left behind, all inside the workdir given to `run_lab`."""

    captures: tuple[Path, ...]  # pcapng files of the target's link
    evidence_files: tuple[tuple[Path, str], ...]  # (file, name under evidence/)
    probe_log: Path | None  # AG-PERIMETER probe log, when probes ran
    notes: tuple[str, ...]  # start-up time, capture summary, cleanup, anything odd
    # named logs for the judges (keys: conformance.evidence.interface), each also in
    # evidence_files
    logs: Mapping[str, Path] = field(default_factory=dict)


def list_faults() -> tuple[tuple[str, str], ...]:
    """The reference target's fault switches: (name, one-line description)."""
    from conformance.lab.faults import load_faults

    return load_faults()


def run_lab(
    profile: Profile,
    faults: Sequence[str],
    workdir: Path,
    progress: Progress = NULL_PROGRESS,
    host_hook: LabHostHook | None = None,
    external: ExternalTarget | None = None,
) -> LabRun:
    """Stand the lab up around the reference target in `profile.mode` and observe it.

    Captures the target's link for the profile's window (default 20 s), runs the profile's
    stimuli during it and, if `probes: {perimeter: true}`, the AG-PERIMETER probes after it;
    tears everything down on every exit path (exception, SIGINT/SIGTERM) and returns the
    evidence. Raises LabError for an unknown fault (listing the valid ones), a missing tool
    (saying what to install), no root, or a lab that fails to come up; ProfileError for a bad
    `lab:`, `probes:` or `stimuli:` section. With `host_hook`, a real sshd runs in the
    target's namespace and the hook is told when to sample and when to collect (--host).
    With `external`, the target is not started by the lab but adopted (a container, --image).
    """
    from conformance.lab.run import run_lab as _run_lab

    return _run_lab(profile, faults, workdir, progress, host_hook, external)
