"""How evidence is reached: one interface, one module per source (pcap files, lab, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from conformance.observe.model import Observations
from conformance.profile_model import Profile
from conformance.progress import Progress


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a source produced: the observations and the files that back them."""

    observations: Observations
    files: tuple[tuple[Path, str], ...]  # (file, name under the report's evidence/)
    probe_log: Path | None = None
    notes: tuple[str, ...] = ()
    source: str = ""  # "pcap", "lab", ... shown in the report


class EvidenceSource(Protocol):
    """Collects evidence for one run; `close` removes whatever it left on disk or running."""

    name: str

    def collect(self, profile: Profile, progress: Progress) -> Evidence: ...

    def close(self) -> None: ...
