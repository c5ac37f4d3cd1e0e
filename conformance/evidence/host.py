"""Evidence from a live host through testinfra (placeholder, issue #7)."""

from __future__ import annotations

from conformance.errors import ConformanceError
from conformance.evidence.interface import Evidence, EvidenceSource
from conformance.profile_model import Profile
from conformance.progress import Progress


class HostSource:
    name = "host"

    def __init__(self, host: str, inner: EvidenceSource | None) -> None:
        self.host = host
        self.inner = inner

    def collect(self, profile: Profile, progress: Progress) -> Evidence:
        raise ConformanceError("--host: live host targets are not available in this build")

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
