"""Evidence from the built-in lab: the reference target captured live on its link."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.evidence.interface import PROBE_LOG, TLS_KEYLOG, Collected, SecretInputs
from conformance.evidence.pcap import capture_evidence_name
from conformance.profile_model import Profile
from conformance.progress import Progress
from conformance.scratch import scratch_dir

if TYPE_CHECKING:
    from conformance.lab import LabRun
    from conformance.lab.external import ExternalTarget
    from conformance.lab.sshd import LabHostHook


class LabSource:
    """Stands the lab up, captures for the profile's window, tears it down."""

    name = "lab"

    def __init__(self, faults: Sequence[str]) -> None:
        self.faults = tuple(faults)
        self.host_hook: LabHostHook | None = None  # set by HostSource (--host with --lab)
        self.external: ExternalTarget | None = None  # set by DockerSource (--image)
        self.workdir: Path | None = None  # a caller-made workdir (DockerSource mounts it)
        self.keep_secrets = False  # --keep-secrets: the target's key log kept as a DSB
        self._workdir: Path | None = None

    def collect(self, profile: Profile, progress: Progress) -> Collected:
        from conformance.lab import run_lab

        if self.workdir is not None:
            workdir = self.workdir  # the caller owns it and removes it
        else:
            workdir = self._workdir = scratch_dir("lab")
        lab_run = run_lab(profile, self.faults, workdir, progress, self.host_hook, self.external)
        return collected_from(lab_run, self.faults, self.keep_secrets)

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def collected_from(lab_run: LabRun, faults: Sequence[str], keep_secrets: bool = False) -> Collected:
    """A finished lab run's files as the evidence of a run."""
    files = tuple((p, capture_evidence_name(i, p)) for i, p in enumerate(lab_run.captures))
    notes = lab_run.notes
    if faults:
        notes = (f"reference target faults switched on: {', '.join(faults)}", *notes)
    logs = {name: path for name, path in lab_run.logs.items() if name != TLS_KEYLOG}
    if lab_run.probe_log is not None:
        logs[PROBE_LOG] = lab_run.probe_log
    keylog = lab_run.logs.get(TLS_KEYLOG)
    # lab.tls_keylog: the observe step decrypts the capture with the target's own keys.
    secrets = SecretInputs(
        keylogs=(keylog,) if keylog is not None else (), keep_secrets=keep_secrets
    )
    return Collected(
        source="lab",
        captures=tuple(lab_run.captures),
        files=files + lab_run.evidence_files,
        logs=logs,
        notes=notes,
        secrets=secrets,
    )
