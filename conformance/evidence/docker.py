"""Evidence from a container image run as the lab's target (placeholder, issue #6)."""

from __future__ import annotations

from collections.abc import Sequence

from conformance.errors import ConformanceError
from conformance.evidence.interface import Evidence
from conformance.profile_model import Profile
from conformance.progress import Progress


class DockerSource:
    name = "docker"

    def __init__(self, image: str, env: Sequence[str], volumes: Sequence[str]) -> None:
        self.image = image
        self.env = tuple(env)
        self.volumes = tuple(volumes)

    def collect(self, profile: Profile, progress: Progress) -> Evidence:
        raise ConformanceError("--image: container targets are not available in this build")

    def close(self) -> None:
        pass
