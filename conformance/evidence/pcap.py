"""Evidence from capture files the user already holds (tcpdump, Wireshark, dumpcap, pktmon),
with the content-level evidence they can give: the target's TLS keys (`--tls-keylog`, or
Decryption Secrets Blocks inside a pcapng) and an intercepting proxy's HAR (`--content-log`),
through conformance.content.own_evidence."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from conformance.content.own_evidence import (
    Inputs,
    OwnContentRequest,
    check_inputs,
    collect,
    judged_captures,
)
from conformance.errors import CaptureError
from conformance.evidence.interface import Evidence
from conformance.observe.builder import EvidenceCopies, observe_captures
from conformance.profile_model import Profile
from conformance.progress import Progress


def capture_evidence_name(index: int, path: Path) -> str:
    """Name of a capture inside the report: `capture-<i>` keeping the original extension."""
    suffix = "".join(path.suffixes[-1:]) or ".pcap"
    return f"capture-{index}{suffix.lower()}"


def check_capture_paths(paths: Sequence[Path]) -> None:
    """Fail early, before anything is judged, on a capture path that cannot be read."""
    for path in paths:
        if not path.exists():
            raise CaptureError(path, "no such file")
        if not path.is_file():
            raise CaptureError(path, "not a regular file")


class PcapSource:
    """Judges existing capture files."""

    name = "pcap"

    def __init__(self, paths: Sequence[Path], own: OwnContentRequest | None = None) -> None:
        self.given = tuple(paths)
        # Key logs, DSBs and HARs are checked now: a bad one is exit 3 before any judging.
        self.inputs: Inputs = check_inputs(own or OwnContentRequest(), self.given)
        self._paths: tuple[Path, ...] | None = None
        self._workdir: Path | None = None
        # Set by the run (report.prestage): the report's evidence copies are written
        # while the captures are read, from the very bytes that are judged.
        self.copies: EvidenceCopies | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        """The captures judged and copied into the report: as given, or without their
        Decryption Secrets Blocks (made on first use)."""
        if self._paths is None:
            if any(s.blocks for s in self.inputs.secrets) and not self.inputs.request.keep_secrets:
                self._paths = tuple(judged_captures(self.inputs, self.given, self._work()))
            else:
                self._paths = self.given
        return self._paths

    def _work(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="ucx-pcap-"))
        return self._workdir

    def collect(self, profile: Profile, progress: Progress) -> Evidence:
        check_capture_paths(self.given)
        observations = observe_captures(self.paths, progress, self.copies)
        names = [capture_evidence_name(i, p) for i, p in enumerate(self.given)]
        files = tuple(zip(self.paths, names, strict=True))
        if not (self.inputs.decrypts or self.inputs.hars):
            return Evidence(observations=observations, files=files, source="pcap")
        progress.start("decrypting the target's TLS sessions (tshark)", None)
        try:
            own = collect(self.inputs, self.given, names, observations, profile, self._work())
        finally:
            progress.finish()
        return Evidence(
            observations=observations,
            files=files + tuple(own.files),
            logs=own.logs,
            notes=tuple(own.notes),
            source="pcap",
        )

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
