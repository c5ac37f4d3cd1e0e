"""Evidence from capture files the user already holds (tcpdump, Wireshark, dumpcap, pktmon)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = tuple(paths)
        # Set by the run (report.prestage): the report's evidence copies are written
        # while the captures are read, from the very bytes that are judged.
        self.copies: EvidenceCopies | None = None

    def collect(self, profile: Profile, progress: Progress) -> Evidence:
        check_capture_paths(self.paths)
        observations = observe_captures(self.paths, progress, self.copies)
        files = tuple((p, capture_evidence_name(i, p)) for i, p in enumerate(self.paths))
        return Evidence(observations=observations, files=files, source="pcap")

    def close(self) -> None:
        pass
