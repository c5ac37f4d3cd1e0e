"""Evidence a signed report kept, judged again (`ucx-conformance rejudge`).

`rejudge` verifies the report and copies every file of its `evidence/` through the verified
reader (hashed while copied, compared with the signed statement) into a private directory,
with `evidence-logs.json` beside it: which file holds which kind of log (the report's own
`evidence_logs`, signed). This source hands those copies to the observe step exactly as the
original run's source handed its files: the captures in order, every log by its kind, and
every file to keep in the new report (the tables the report writes itself are made anew).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Final

from conformance.errors import CaptureError
from conformance.evidence.interface import (
    CLOUD_REQUESTS,
    DECRYPTED_REQUESTS,
    ENDPOINT_SCAN,
    HAR_CONTENT,
    HOST_FACTS,
    IMPOSTOR_CAPTURE,
    IMPOSTOR_LOG,
    KNOWN_PEOPLE,
    PROBE_LOG,
    PROXY_ACCESS_LOG,
    REPORT_GENERATED,
    STIMULI_LOG,
    TLS_DECRYPTED,
    Collected,
)
from conformance.profile_model import Profile
from conformance.progress import Progress

LOGS_FILE: Final = "evidence-logs.json"  # beside the copied evidence/, written by `rejudge`
EVIDENCE: Final = "evidence"
# Reports written before `evidence_logs` existed name their logs by these fixed names.
KNOWN_NAMES: Final = {
    "probes.jsonl": PROBE_LOG,
    "lab/squid-access.log": PROXY_ACCESS_LOG,
    "lab/decrypted-requests.jsonl": DECRYPTED_REQUESTS,
    "lab/cloud-requests.jsonl": CLOUD_REQUESTS,
    "lab/impostors.jsonl": IMPOSTOR_LOG,
    "lab/capture-impostors.pcapng": IMPOSTOR_CAPTURE,
    "lab/endpoint-scan.json": ENDPOINT_SCAN,
    "lab/stimuli.jsonl": STIMULI_LOG,
    "lab/known-people.json": KNOWN_PEOPLE,
    "host/facts.json": HOST_FACTS,
    "content/tls-decrypted.jsonl": TLS_DECRYPTED,
    "content/har-messages.jsonl": HAR_CONTENT,
}
_CAPTURE = re.compile(r"capture-(\d+)\.[A-Za-z0-9]+")


class ReportEvidenceSource:
    """A verified copy of a report's evidence/, collected again without capturing anything."""

    name = "report"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        if not (directory / EVIDENCE).is_dir():
            raise CaptureError(directory, "no evidence/ directory: not a rejudge copy")

    def collect(self, profile: Profile, progress: Progress) -> Collected:
        root = self.directory / EVIDENCE
        names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        captures = sorted(
            (int(found[1]), name) for name in names if (found := _CAPTURE.fullmatch(name))
        )
        logs_by_name = self._logs(names)
        kept = tuple((root / name, name) for name in names if name not in REPORT_GENERATED)
        return Collected(
            source="report",
            captures=tuple(root / name for _, name in captures),
            files=kept,
            logs={kind: root / name for name, kind in logs_by_name.items()},
            notes=(f"judged again from the evidence of a signed report ({len(kept)} files)",),
        )

    def _logs(self, names: list[str]) -> dict[str, str]:
        """Evidence name -> log kind: the report's own record, else the fixed names."""
        written = self.directory / LOGS_FILE
        if written.is_file():
            recorded = _recorded_logs(written)
            if recorded:
                return {name: kind for name, kind in recorded.items() if name in names}
        return {name: kind for name, kind in KNOWN_NAMES.items() if name in names}

    def close(self) -> None:
        pass  # the copies belong to `rejudge`, which removes them


def _recorded_logs(path: Path) -> dict[str, str]:
    """Evidence name -> log kind as `rejudge` wrote them (CaptureError when it is not that)."""
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, not UTF-8
        raise CaptureError(path, f"not a log record: {exc}") from None
    if not isinstance(record, dict) or not all(isinstance(v, str) for v in record.values()):
        raise CaptureError(path, "not a log record: expected an object of kind -> evidence path")
    return {name.removeprefix(f"{EVIDENCE}/"): kind for kind, name in record.items()}
