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
    tls_keylogs: tuple[Path, ...] = ()  # NSS key logs of the target's TLS sessions (--pcap)
    content_logs: tuple[Path, ...] = ()  # HAR files of an intercepting proxy (--pcap)
    keep_secrets: bool = False  # keep keys (as a pcapng DSB) and HARs in the report

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
    if (request.tls_keylogs or request.content_logs) and not request.pcaps:
        raise CaptureError(
            "--ucx-tls-keylog",
            "--tls-keylog and --content-log explain --pcap captures (the lab's target writes"
            " its own key log with `lab: {tls_keylog: true}`)",
        )
    inner: EvidenceSource | None = None
    if request.image:
        from conformance.evidence.docker import DockerSource

        inner = DockerSource(request.image, request.env, request.volumes, request.faults)
    elif request.lab:
        from conformance.evidence.lab import LabSource

        inner = LabSource(request.faults)
        inner.keep_secrets = request.keep_secrets
    elif request.pcaps:
        from conformance.content.own_evidence import OwnContentRequest

        check_capture_paths(request.pcaps)
        own = OwnContentRequest(request.tls_keylogs, request.content_logs, request.keep_secrets)
        inner = PcapSource(request.pcaps, own)
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
    tls_keylogs: Sequence[str] | None = None,
    content_logs: Sequence[str] | None = None,
    keep_secrets: bool = False,
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
        tls_keylogs=tuple(Path(p) for p in tls_keylogs or ()),
        content_logs=tuple(Path(p) for p in content_logs or ()),
        keep_secrets=keep_secrets,
    )
