"""Read the named logs of an `Evidence` for the proxy and telemetry judges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from conformance.content.logs import ContentEvidence, load_content
from conformance.content.own_evidence import HAR_EVIDENCE, TLS_EVIDENCE
from conformance.content.squid import read_access_log
from conformance.evidence.interface import (
    CLOUD_REQUESTS,
    DECRYPTED_REQUESTS,
    HAR_CONTENT,
    KNOWN_PEOPLE,
    PROXY_ACCESS_LOG,
    STIMULI_LOG,
    TLS_DECRYPTED,
    Evidence,
)
from conformance.judge.proxy import ProxyLog
from conformance.profile_model import Mode, Profile


def evidence_names(evidence: Evidence) -> dict[Path, str]:
    """Each evidence file and its name under the report's evidence/."""
    return {path: name for path, name in evidence.files}


CONTENT_LOGS = (DECRYPTED_REQUESTS, CLOUD_REQUESTS, TLS_DECRYPTED, HAR_CONTENT)
# Where a report keeps the logs the telemetry judges read (names under its evidence/), so a
# re-judging of the report finds them without the lab, the capture's keys or the HAR.
KEPT_LOGS: Final = {
    "lab/decrypted-requests.jsonl": DECRYPTED_REQUESTS,
    "lab/cloud-requests.jsonl": CLOUD_REQUESTS,
    "lab/stimuli.jsonl": STIMULI_LOG,
    "lab/known-people.json": KNOWN_PEOPLE,
    TLS_EVIDENCE: TLS_DECRYPTED,
    HAR_EVIDENCE: HAR_CONTENT,
}


def kept_logs(evidence_dir: Path) -> dict[str, Path]:
    """The content-level logs a report kept, by log name, found in its `evidence/` directory
    (for `rejudge`: an `Evidence` with these logs judges TM-* as the run did)."""
    return {log: path for name, log in KEPT_LOGS.items() if (path := evidence_dir / name).is_file()}


def content_evidence(evidence: Evidence, profile: Profile | None = None) -> ContentEvidence:
    """Every content log the source produced (interceptor, cloud side, the target's own TLS
    keys, a HAR); `profile` says which uncovered TLS connections leave the environment."""
    logs = {name: path for name in CONTENT_LOGS if (path := evidence.log(name)) is not None}
    return load_content(logs, evidence_names(evidence), profile)


def proxy_log(evidence: Evidence) -> ProxyLog | None:
    """The proxy's access.log, when the source has one."""
    path = evidence.log(PROXY_ACCESS_LOG)
    if path is None:
        return None
    entries, bad = read_access_log(path)
    name = evidence_names(evidence).get(path, path.name)
    return ProxyLog(name, tuple(entries), tuple(bad))


def stimuli(evidence: Evidence) -> list[dict[str, Any]] | None:
    """The stimuli run during the window, or None when the source ran none."""
    path = evidence.log(STIMULI_LOG)
    if path is None:
        return None
    records = []
    for text in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def known_people(evidence: Evidence) -> tuple[str, ...]:
    """Names of the site's people (the lab directory's), to find them in telemetry."""
    path = evidence.log(KNOWN_PEOPLE)
    if path is None:
        return ()
    try:
        names = json.loads(path.read_text())
    except ValueError:
        return ()
    return tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else ()


def content_notes(evidence: Evidence, profile: Profile) -> tuple[str, ...]:
    """What the report says about content-level evidence in a hybrid run: which source the
    telemetry controls were judged on, or plainly that there was none."""
    if profile.mode is not Mode.HYBRID:
        return ()
    names = evidence_names(evidence)
    present = [
        (title, names.get(path, path.name))
        for log, title in (
            (DECRYPTED_REQUESTS, "the intercepting proxy's decrypted requests"),
            (CLOUD_REQUESTS, "what the lab cloud side received"),
            (TLS_DECRYPTED, "the target's TLS sessions decrypted with its own keys"),
            (HAR_CONTENT, "an intercepting proxy's HAR matched to the capture"),
        )
        if (path := evidence.log(log)) is not None
    ]
    if not present:
        return (
            "content-level evidence not available: no intercepting proxy's decrypted requests,"
            " no record of what the cloud side received, no TLS keys of the target"
            " (--tls-keylog), no HAR (--content-log). Telemetry shares the licensing channel"
            " (CT 3), so TM-OPTOUT, TM-MINIMAL and TM-CHANNEL are inconclusive, never pass",
        )
    listed = "; ".join(f"{title} ({name})" for title, name in present)
    note = f"content-level evidence: {listed}"
    if not any(evidence.log(log) is not None for log in (DECRYPTED_REQUESTS, TLS_DECRYPTED)):
        note += " (no intercepting proxy: the target's own side of the traffic was not decrypted)"
    return (note,)
