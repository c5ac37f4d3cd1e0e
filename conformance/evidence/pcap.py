"""Evidence from capture files the user already holds (tcpdump, Wireshark, dumpcap, pktmon),
with the customer's own content evidence for them: TLS key logs (`--tls-keylog`, or Decryption
Secrets Blocks inside a pcapng) and an intercepting proxy's HAR (`--content-log`)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from conformance.errors import CaptureError
from conformance.evidence.interface import Collected, SecretInputs
from conformance.evidence.secrets import CheckedSecrets, check_secrets, judged_captures
from conformance.profile_model import Profile
from conformance.progress import Progress
from conformance.scratch import scratch_dir


def capture_evidence_name(index: int, path: Path) -> str:
    """Name of a capture inside the report: `capture-<i>` keeping the original extension."""
    suffix = "".join(path.suffixes[-1:]) or ".pcap"
    return f"capture-{index}{suffix.lower()}"


def check_capture_paths(paths: Sequence[Path]) -> None:
    """Fail early, before anything is judged, on a capture path that cannot be read."""
    for path in paths:
        try:
            if not path.exists():
                raise CaptureError(path, "no such file")
            if not path.is_file():
                raise CaptureError(path, "not a regular file")
            with path.open("rb"):
                pass  # a file the user may not read is exit 3 here, not a traceback later
        except OSError as exc:
            raise CaptureError(path, f"cannot read: {exc.strerror or exc}") from None


class PcapSource:
    """Judges existing capture files."""

    name = "pcap"

    def __init__(self, paths: Sequence[Path], secrets: SecretInputs | None = None) -> None:
        self.given = tuple(paths)
        # Key logs and DSBs are checked now: a bad one is exit 3 before any judging.
        self.checked: CheckedSecrets = check_secrets(secrets or SecretInputs(), self.given)
        self._paths: tuple[Path, ...] | None = None
        self._workdir: Path | None = None

    @property
    def paths(self) -> tuple[Path, ...]:
        """The captures judged and copied into the report: as given, or without their
        Decryption Secrets Blocks (made on first use)."""
        if self._paths is None:
            if (
                any(s.blocks for s in self.checked.secrets)
                and not self.checked.request.keep_secrets
            ):
                self._paths = tuple(judged_captures(self.checked, self.given, self._work()))
            else:
                self._paths = self.given
        return self._paths

    def _work(self) -> Path:
        if self._workdir is None:
            self._workdir = scratch_dir("pcap")
        return self._workdir

    def collect(self, profile: Profile, progress: Progress) -> Collected:
        check_capture_paths(self.given)
        names = [capture_evidence_name(i, p) for i, p in enumerate(self.given)]
        return Collected(
            source="pcap",
            captures=self.paths,
            files=tuple(zip(self.paths, names, strict=True)),
            secrets=self.checked.request,
            originals=self.given,
        )

    def close(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
