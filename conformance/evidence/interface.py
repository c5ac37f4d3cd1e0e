"""How evidence is reached: one interface, one module per source (pcap files, lab, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from conformance.observe.model import Observations
from conformance.profile_model import Profile
from conformance.progress import Progress

# Well-known names of `Evidence.logs`: each is a file a judge parses itself (the suites look
# them up by these names; a source that did not produce one leaves it out, and the control
# that needs it is inconclusive).
PROBE_LOG = "probes"  # AG-PERIMETER probe log (JSON lines, conformance.lab.probe)
PROXY_ACCESS_LOG = "proxy-access"  # squid access.log of the site's proxy
CLOUD_REQUESTS = "cloud-requests"  # what the cloud stand-ins received (JSON lines)
DECRYPTED_REQUESTS = "decrypted-requests"  # intercepting proxy's request/response log
IMPOSTOR_LOG = "impostor"  # HY-CERT impostor servers' per-connection log
IMPOSTOR_CAPTURE = "impostor-capture"  # the target's link during the HY-CERT phase
ENDPOINT_SCAN = "endpoint-scan"  # HY-ENDPOINT server-side TLS scan results (JSON)
HOST_FACTS = "host-facts"  # facts collected on a live host (JSON)
CONTAINER_LOG = "container"  # the target container's stdout/stderr
STIMULI_LOG = "stimuli"  # stimuli run during the window (JSON lines, conformance.lab.stimuli)
KNOWN_PEOPLE = "known-people"  # names of the site's people (JSON list): personal data (TM-MINIMAL)
# Content from the customer's own evidence (conformance.content.own_evidence, JSON lines in
# the DECRYPTED_REQUESTS format plus coverage lines, personal data redacted):
TLS_DECRYPTED = "tls-decrypted"  # the target's TLS sessions decrypted with its own keys
HAR_CONTENT = "har-content"  # an intercepting proxy's HAR entries matched to the capture
# The target's NSS key log (the lab's reference target writes it): a secret the source uses
# to decrypt; unlike every other log it is never in `files` (never copied into a report).
TLS_KEYLOG = "tls-keylog"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a source produced: the observations and the files that back them.

    `files` are copied into the report's `evidence/` (and hashed into the signature);
    `logs` names the ones a judge reads directly (keys above), each also in `files`.
    """

    observations: Observations
    files: tuple[tuple[Path, str], ...]  # (file, name under the report's evidence/)
    logs: Mapping[str, Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    source: str = ""  # "pcap", "lab", "docker", "host" ... shown in the report

    @property
    def probe_log(self) -> Path | None:
        return self.logs.get(PROBE_LOG)

    def log(self, name: str) -> Path | None:
        """The log called `name` if this source produced it and it is on disk."""
        path = self.logs.get(name)
        return path if path is not None and path.is_file() else None


class EvidenceSource(Protocol):
    """Collects evidence for one run; `close` removes whatever it left on disk or running."""

    name: str

    def collect(self, profile: Profile, progress: Progress) -> Evidence: ...

    def close(self) -> None: ...
