"""Evidence from the built-in lab: the reference target captured live on its link."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.evidence.interface import KNOWN_PEOPLE, PROBE_LOG, TLS_KEYLOG, Evidence
from conformance.evidence.pcap import capture_evidence_name
from conformance.observe.builder import observe_captures
from conformance.observe.model import Observations
from conformance.profile_model import Profile
from conformance.progress import Progress

if TYPE_CHECKING:
    from conformance.content.own_evidence import OwnEvidence
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

    def collect(self, profile: Profile, progress: Progress) -> Evidence:
        from conformance.lab import run_lab

        if self.workdir is not None:
            workdir = self.workdir  # the caller owns it and removes it
        else:
            workdir = self._workdir = Path(tempfile.mkdtemp(prefix="ucx-lab-"))
        lab_run = run_lab(profile, self.faults, workdir, progress, self.host_hook, self.external)
        observations = observe_captures(lab_run.captures, progress)
        files = tuple((p, capture_evidence_name(i, p)) for i, p in enumerate(lab_run.captures))
        notes = lab_run.notes
        if self.faults:
            notes = (f"reference target faults switched on: {', '.join(self.faults)}", *notes)
        logs = {name: path for name, path in lab_run.logs.items() if name != TLS_KEYLOG}
        keylog = lab_run.logs.get(TLS_KEYLOG)
        extra: tuple[tuple[Path, str], ...] = ()
        if keylog is not None:  # lab.tls_keylog: the capture decrypted with the target's keys
            own = self._own_content(keylog, lab_run.captures, files, observations, profile, logs)
            extra, notes = tuple(own.files), (*notes, *own.notes)
            logs.update(own.logs)
        return Evidence(
            observations=observations,
            files=files + lab_run.evidence_files + extra,
            logs={
                **logs,
                **({PROBE_LOG: lab_run.probe_log} if lab_run.probe_log is not None else {}),
            },
            notes=notes,
            source="lab",
        )

    def _own_content(
        self,
        keylog: Path,
        captures: Sequence[Path],
        files: Sequence[tuple[Path, str]],
        observations: Observations,
        profile: Profile,
        logs: Mapping[str, Path],
    ) -> OwnEvidence:
        """The lab's captures decrypted with the key log the reference target wrote."""
        from conformance.content.own_evidence import OwnContentRequest, check_inputs, collect

        people = logs.get(KNOWN_PEOPLE)
        try:
            names = json.loads(people.read_text()) if people is not None else []
        except (OSError, ValueError):
            names = []
        inputs = check_inputs(OwnContentRequest((keylog,), (), self.keep_secrets), captures)
        workdir = keylog.parent / "own-content"  # the lab's workdir, removed with it
        return collect(
            inputs,
            captures,
            [name for _, name in files],
            observations,
            profile,
            workdir,
            [n for n in names if isinstance(n, str)],
        )

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
