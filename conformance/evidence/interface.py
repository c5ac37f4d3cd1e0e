"""How evidence is reached: one interface, one module per source (pcap files, lab, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from conformance.profile_model import Profile
from conformance.progress import Progress

# The files a report writes itself under evidence/ from the observations: a source's file may
# not take these names, and `rejudge` never reads them back as input (it makes them anew).
REPORT_GENERATED: Final = frozenset(
    {
        "flows.csv",
        "dns.csv",
        "tls.csv",
        "http.csv",
        "names.csv",
        "captures.json",
        "profile.yaml",
        "tool-versions.json",
        "waivers.yaml",  # the waiver file applied (conformance.waivers.EVIDENCE_NAME)
    }
)

# Well-known kinds of `Collected.logs`: each is a file the observe step reads with its own
# parser into `Observations` (a source that did not produce one leaves it out, and the
# control that needs it is inconclusive).
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
class CaptureLoss:
    """What the capture tool itself said about a capture it wrote (remote tcpdump, pktmon)."""

    dropped: int | None  # packets the tool reports lost; None: it ended without saying
    detail: str  # its own words, for the report


@dataclass(frozen=True, slots=True)
class SecretInputs:
    """The customer's own content evidence for a capture run: TLS key logs (NSS format; pcapng
    Decryption Secrets Blocks are found in the captures themselves) and HAR files."""

    keylogs: tuple[Path, ...] = ()
    hars: tuple[Path, ...] = ()
    keep_secrets: bool = False  # keep the keys in the report (a DSB pcapng), never otherwise

    @property
    def given(self) -> bool:
        return bool(self.keylogs or self.hars or self.keep_secrets)


@dataclass(frozen=True, slots=True)
class Collected:
    """What a source collected: files, never judgements or parsed records.

    `captures` are judged in order (capture index = position) and `files` are copied into the
    report's `evidence/` under their names (captures included, as `capture-<i>.<ext>`);
    `logs` names the files the observe step reads, by the kinds above (each also in `files`,
    except TLS_KEYLOG, which is a secret).
    """

    source: str  # "pcap", "lab", "docker", "host", "lab+host", ... shown in the report
    captures: tuple[Path, ...] = ()
    files: tuple[tuple[Path, str], ...] = ()  # (file, name under the report's evidence/)
    logs: Mapping[str, Path] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    capture_loss: Mapping[int, CaptureLoss] = field(default_factory=dict)  # by capture index
    secrets: SecretInputs = SecretInputs()
    # The captures as given, where they differ from `captures` (judged without their DSBs): the
    # keys inside them are read from these.
    originals: tuple[Path, ...] = ()

    def log(self, name: str) -> Path | None:
        """The log called `name` if this source produced it and it is on disk."""
        path = self.logs.get(name)
        return path if path is not None and path.is_file() else None

    def evidence_name(self, path: Path) -> str:
        """`path`'s name under the report's evidence/ (its file name if it is not copied)."""
        return next((name for source, name in self.files if source == path), path.name)


class EvidenceSource(Protocol):
    """Collects evidence for one run; `close` removes whatever it left on disk or running."""

    name: str

    def collect(self, profile: Profile, progress: Progress) -> Collected: ...

    def close(self) -> None: ...
