"""Content-level evidence as records: the application messages the target sent (decrypted at
a hop the harness controls, received by the lab's cloud side, decrypted from the capture with
the target's own keys, or exported by an intercepting proxy as HAR), and what covers them.

Record types only (read by conformance.content.logs, judged by conformance.judge.telemetry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from conformance.evidence.interface import (
    CLOUD_REQUESTS,
    DECRYPTED_REQUESTS,
    HAR_CONTENT,
    TLS_DECRYPTED,
)

SOURCE_TITLES: Final = {
    DECRYPTED_REQUESTS: "intercepting proxy (decrypted requests)",
    CLOUD_REQUESTS: "lab cloud stand-ins (received requests)",
    TLS_DECRYPTED: "the target's TLS sessions decrypted with its keys",
    HAR_CONTENT: "an intercepting proxy's HAR",
}
OWN_SOURCES: Final = (TLS_DECRYPTED, HAR_CONTENT)


@dataclass(frozen=True, slots=True)
class ContentMessage:
    """One application message the target sent, with where it is recorded."""

    source: str  # DECRYPTED_REQUESTS | CLOUD_REQUESTS | TLS_DECRYPTED | HAR_CONTENT
    evidence_file: str  # its name under the report's evidence/
    line: int  # 1-based line of that file
    time: float | None
    kind: str  # "http" | "tcp" | "ldap"
    method: str
    host: str  # the server named: Host / :authority, CONNECT host, or the stand-in's name
    port: int | None
    path: str
    tls: str | None  # TLS version on the target's side; None: plaintext
    sni: str | None
    client: str | None
    body: Any  # decoded tree (conformance.decode.bodies.body_value)

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host

    def describe(self) -> str:
        """ "POST api.imagicle.com:443/v1/telemetry/beat (TLSv1.3)"."""
        channel = self.tls or "plaintext"
        return f"{self.method} {self.endpoint}{self.path} ({channel})".replace("  ", " ").strip()


@dataclass(frozen=True, slots=True)
class ContentEvidence:
    """What the content-level sources hold; `sources` empty means no content-level evidence."""

    sources: tuple[str, ...] = ()  # log names present
    files: Mapping[str, str] = field(default_factory=dict)  # log name -> evidence file name
    messages: tuple[ContentMessage, ...] = ()
    problems: tuple[str, ...] = ()  # unreadable lines: a message may be unseen
    notes: tuple[str, ...] = ()  # handshakes the target refused (it then sent nothing)
    # Own-evidence coverage lines (source, record): one per TLS connection of the target, saying
    # whether that source covers it (content.decryption_coverage.coverage_problems judges them).
    coverage: tuple[tuple[str, Mapping[str, Any]], ...] = ()

    @property
    def available(self) -> bool:
        return bool(self.sources)

    def describe_sources(self) -> str:
        return ", ".join(f"{SOURCE_TITLES.get(s, s)} {self.files[s]}" for s in self.sources)
