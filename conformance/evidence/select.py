"""Pick the evidence source a run's options ask for (captures, lab, image, live host)."""

from __future__ import annotations

from conformance.errors import CaptureError
from conformance.evidence.interface import EvidenceSource, SecretInputs
from conformance.options import RunOptions


def build_source(request: RunOptions) -> EvidenceSource:
    """The source for `request`, or CaptureError naming the option that conflicts."""
    from conformance.evidence.pcap import PcapSource, check_capture_paths

    if request.evidence_dir is not None:
        if request.sources > 1:
            raise CaptureError("--evidence-dir", "judges a report's evidence alone")
        given = request.faults or request.env or request.volumes or request.keep_secrets
        if given or request.tls_keylogs or request.content_logs:
            raise CaptureError(
                "--evidence-dir",
                "a report's evidence is judged as it was kept: no faults, container settings,"
                " key logs, content logs or --keep-secrets",
            )
        from conformance.evidence.report_copy import ReportEvidenceSource

        return ReportEvidenceSource(request.evidence_dir)
    if not (request.pcaps or request.lab or request.image or request.host):
        raise CaptureError(
            "--pcap", "no evidence: give --pcap FILE, --lab, --image IMAGE or --host URL"
        )
    if request.lab and request.pcaps:
        raise CaptureError("--pcap", "use either --lab or --pcap, not both")
    if request.image and request.pcaps:
        raise CaptureError("--image", "use either --image or --pcap, not both")
    if (request.env or request.volumes) and not request.image:
        raise CaptureError("--env", "--env and --volume apply only to --image")
    if request.faults and not (request.lab or request.image):
        raise CaptureError("--fault", "fault switches exist only in the lab (--lab, --image)")
    if (request.tls_keylogs or request.content_logs) and not request.pcaps:
        raise CaptureError(
            "--tls-keylog",
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
        check_capture_paths(request.pcaps)
        secrets = SecretInputs(request.tls_keylogs, request.content_logs, request.keep_secrets)
        inner = PcapSource(request.pcaps, secrets)
    if request.host:
        from conformance.evidence.host import HostSource

        return HostSource(request.host, inner)
    assert inner is not None
    return inner
