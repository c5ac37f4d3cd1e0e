"""Pick the evidence source a run's options ask for (captures, lab, image, live host)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from conformance.errors import CaptureError
from conformance.evidence.interface import EvidenceSource


@dataclass(frozen=True, slots=True)
class SourceRequest:
    """The evidence options of one run, as given on the command line (or pytest options)."""

    pcaps: tuple[Path, ...] = ()
    lab: bool = False
    faults: tuple[str, ...] = ()
    image: str | None = None  # container image run as the lab's target
    env: tuple[str, ...] = ()  # K=V for the container
    volumes: tuple[str, ...] = ()  # HOST:CONTAINER[:ro] for the container
    host: str | None = None  # live host (testinfra URL: ssh://user@addr, local://, ...)

    @property
    def given(self) -> bool:
        return bool(self.pcaps or self.lab or self.image or self.host)


def build_source(request: SourceRequest) -> EvidenceSource:
    """The source for `request`, or CaptureError naming the option that conflicts."""
    from conformance.evidence.pcap import PcapSource, check_capture_paths

    if not request.given:
        raise CaptureError(
            "--ucx-pcap", "no evidence: give --pcap FILE, --lab, --image IMAGE or --host URL"
        )
    if request.lab and request.pcaps:
        raise CaptureError("--ucx-pcap", "use either --lab or --pcap, not both")
    if request.image and request.pcaps:
        raise CaptureError("--ucx-image", "use either --image or --pcap, not both")
    if (request.env or request.volumes) and not request.image:
        raise CaptureError("--ucx-env", "--env and --volume apply only to --image")
    if request.faults and not (request.lab or request.image):
        raise CaptureError("--ucx-fault", "fault switches exist only in the lab (--lab, --image)")
    inner: EvidenceSource | None = None
    if request.image:
        from conformance.evidence.docker import DockerSource

        inner = DockerSource(request.image, request.env, request.volumes, request.faults)
    elif request.lab:
        from conformance.evidence.lab import LabSource

        inner = LabSource(request.faults)
    elif request.pcaps:
        check_capture_paths(request.pcaps)
        inner = PcapSource(request.pcaps)
    if request.host:
        from conformance.evidence.host import HostSource

        return HostSource(request.host, inner)
    assert inner is not None
    return inner


def _strings(values: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(values or ())


def request_from_options(
    pcaps: Sequence[str] | None,
    lab: bool,
    faults: Sequence[str] | None,
    image: str | None,
    env: Sequence[str] | None,
    volumes: Sequence[str] | None,
    host: str | None,
) -> SourceRequest:
    """A SourceRequest from raw option values (None for an option not given)."""
    return SourceRequest(
        pcaps=tuple(Path(p) for p in pcaps or ()),
        lab=lab,
        faults=_strings(faults),
        image=image,
        env=_strings(env),
        volumes=_strings(volumes),
        host=host,
    )
