"""The customer's own content inputs, checked before anything is judged (content.own_evidence,
step 1): what a run must know at its start, apart from the decrypting and matching that
`own_evidence.collect` does after the captures are read. A run without key logs, HARs or
Decryption Secrets Blocks needs only this (own_evidence, with tshark's extraction, the
redaction and the HAR reader, is 2 MiB of a run's peak: #17)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from conformance.decode.keylog import CaptureSecrets, KeyLog
from conformance.evidence.interface import SecretInputs
from conformance.evidence.secrets import check_secrets

if TYPE_CHECKING:
    from conformance.content.har import HarFile

TLS_EVIDENCE: Final = "content/tls-decrypted.jsonl"
HAR_EVIDENCE: Final = "content/har-messages.jsonl"


@dataclass(frozen=True, slots=True)
class Inputs:
    """The checked inputs: key logs, each capture's DSBs, HAR files."""

    request: SecretInputs
    keylogs: tuple[KeyLog, ...] = ()
    secrets: tuple[CaptureSecrets, ...] = ()  # per capture, in capture order
    hars: tuple[HarFile, ...] = ()

    @property
    def decrypts(self) -> bool:
        return bool(self.keylogs or any(s.keylogs for s in self.secrets))


@dataclass
class OwnEvidence:
    """What `collect` adds to the run's evidence: files for the report, logs to read, notes."""

    files: list[tuple[Path, str]] = field(default_factory=list)
    logs: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def check_inputs(request: SecretInputs, captures: Sequence[Path]) -> Inputs:
    """Read and check every key log, DSB and HAR; KeyLogError / HarError (exit 3) on a bad
    one, naming the file and the line or key."""
    checked = check_secrets(request, captures)
    hars: tuple[HarFile, ...] = ()
    if request.hars:
        from conformance.content.har import read_har

        hars = tuple(read_har(p) for p in request.hars)
    inputs = Inputs(request, checked.keylogs, checked.secrets, hars)
    if inputs.decrypts:
        from conformance.content.tshark_content import tshark_version

        tshark_version()  # TsharkMissingError now, not after the captures were read
    return inputs
