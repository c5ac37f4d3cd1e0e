"""The one observe step: everything a source collected, read into one `Observations` record.

Captures go through the decoders (observe.builder); every other kind of evidence through its
one reader: the proxy's access.log (observe.proxy_log), content-level logs (content.logs), the
harness's own JSON logs (observe.json_logs: probes, impostors, stimuli, scan results, the lab
directory's people), a live host's facts (host.collect.build_facts), and the HY-CERT phase's
capture, observed like any other. Where the customer gave TLS secrets or HAR files, the
target's sessions are decrypted here too (content.own_evidence), after the captures are read:
that writes the redacted messages the report keeps (`Observed.files`).

Judges read only the record this returns; nothing downstream opens an evidence file again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from conformance.content.messages import ContentEvidence
from conformance.content.own_inputs import HAR_EVIDENCE, TLS_EVIDENCE, OwnEvidence, check_inputs
from conformance.errors import ConformanceError
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
    STIMULI_LOG,
    TLS_DECRYPTED,
    CaptureLoss,
    Collected,
)
from conformance.host.collect import build_facts
from conformance.host.facts import CommandRecord, HostFacts, HostOptions
from conformance.observe.builder import EvidenceCopies, observe_captures
from conformance.observe.json_logs import JsonLines, read_json_document, read_json_lines
from conformance.observe.parallel import CaptureExecutor, Judged, executor_for, observe_files
from conformance.observe.proxy_log import read_proxy_log
from conformance.observe.records import CaptureSummary, ImpostorPhase, Observations
from conformance.profile_model import Profile
from conformance.progress import NULL_PROGRESS, Progress

_CONTENT_LOGS = (DECRYPTED_REQUESTS, CLOUD_REQUESTS, TLS_DECRYPTED, HAR_CONTENT)
# Where a report keeps the logs the observe step reads (names under its evidence/), so
# observing a report's evidence again (`rejudge`) finds them without the lab, the capture's
# keys or the HAR: the kept content logs are already decrypted and redacted.
KEPT_LOGS: Final = {
    "lab/decrypted-requests.jsonl": DECRYPTED_REQUESTS,
    "lab/cloud-requests.jsonl": CLOUD_REQUESTS,
    "lab/stimuli.jsonl": STIMULI_LOG,
    "lab/known-people.json": KNOWN_PEOPLE,
    TLS_EVIDENCE: TLS_DECRYPTED,
    HAR_EVIDENCE: HAR_CONTENT,
}


@dataclass(frozen=True, slots=True)
class Observed:
    """The observe step's result: the record judges read, and the files it derived (the
    decrypted, redacted messages; keys kept on request) that the report keeps as evidence."""

    observations: Observations
    files: tuple[tuple[Path, str], ...] = ()
    judged: tuple[Judged, ...] = ()  # which executor and worker read each capture


def observe_evidence(
    collected: Collected,
    profile: Profile,
    workdir: Path,
    progress: Progress = NULL_PROGRESS,
    copies: EvidenceCopies | None = None,
    executor: CaptureExecutor | None = None,
) -> Observed:
    """Read everything `collected` holds. `profile` scopes what is decrypted (the target's
    sessions); `workdir` receives derived files (removed by the caller). The captures are
    read by `executor` (observe.parallel; by default all local cores for several files) and
    merged.

    Raises ConformanceError for input the user gave that cannot be read at all (a capture
    that is not one, a bad key log or HAR): nothing has been judged yet.
    """
    judged: tuple[Judged, ...] = ()
    if collected.captures:
        chosen = executor or executor_for(None, len(collected.captures))
        try:
            obs, judged = observe_files(collected.captures, chosen, progress, copies)
        finally:
            if executor is None:
                chosen.close()
        obs = _with_losses(obs, collected.capture_loss)
    else:
        obs = Observations(captures=(), flows=())
    logs = dict(collected.logs)
    people = _known_people(collected)
    own = _own_content(collected, obs, profile, workdir, people, progress)
    logs.update(own.logs)
    names = {path: name for path, name in (*collected.files, *own.files)}
    obs = dataclasses.replace(
        obs,
        notes=(*collected.notes, *own.notes, *obs.notes),
        source=collected.source,
        probes=_lines(logs, PROBE_LOG, names, require="probe"),
        proxy_log=(
            read_proxy_log(path, names.get(path, path.name))
            if (path := _present(logs, PROXY_ACCESS_LOG)) is not None
            else None
        ),
        content=_content(logs, names),
        impostors=_impostors(logs, names),
        endpoint_scan=(
            read_json_document(path, names.get(path, path.name))
            if (path := _present(logs, ENDPOINT_SCAN)) is not None
            else None
        ),
        host=load_facts(path) if (path := _present(logs, HOST_FACTS)) is not None else None,
        stimuli=_lines(logs, STIMULI_LOG, names),
        known_people=people,
    )
    return Observed(obs, tuple(own.files), judged)


def kept_logs(evidence_dir: Path) -> dict[str, Path]:
    """The logs a report kept, by kind, found in its `evidence/` directory."""
    return {log: path for name, log in KEPT_LOGS.items() if (path := evidence_dir / name).is_file()}


def _present(logs: Mapping[str, Path], kind: str) -> Path | None:
    path = logs.get(kind)
    return path if path is not None and path.is_file() else None


def _lines(
    logs: Mapping[str, Path], kind: str, names: Mapping[Path, str], require: str | None = None
) -> JsonLines | None:
    path = _present(logs, kind)
    if path is None:
        return None
    return read_json_lines(path, names.get(path, path.name), require=require)


def _with_losses(obs: Observations, losses: Mapping[int, CaptureLoss]) -> Observations:
    """What the capture tool reported about its own captures joins their summaries."""
    if not losses:
        return obs
    captures: list[CaptureSummary] = []
    for index, summary in enumerate(obs.captures):
        loss = losses.get(index)
        if loss is None:
            captures.append(summary)
        elif loss.dropped is None:
            # Ended without its statistics (killed, failed): losses unknown, so not complete.
            captures.append(
                dataclasses.replace(summary, truncated_file=True, truncated_detail=loss.detail)
            )
        else:
            captures.append(
                dataclasses.replace(summary, drops=loss.dropped, drop_detail=loss.detail)
            )
    return dataclasses.replace(obs, captures=tuple(captures))


def _known_people(collected: Collected) -> tuple[str, ...]:
    path = collected.log(KNOWN_PEOPLE)
    if path is None:
        return ()
    names = read_json_document(path, path.name).value
    return tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else ()


def _own_content(
    collected: Collected,
    obs: Observations,
    profile: Profile,
    workdir: Path,
    people: tuple[str, ...],
    progress: Progress,
) -> OwnEvidence:
    """The target's sessions decrypted with its own keys, and HAR entries matched to them."""
    given = collected.originals or collected.captures
    inputs = check_inputs(collected.secrets, given)
    if not (inputs.decrypts or inputs.hars):
        return OwnEvidence()
    from conformance.content.own_evidence import collect

    names = [collected.evidence_name(p) for p in collected.captures]
    progress.start("decrypting the target's TLS sessions (tshark)", None)
    try:
        return collect(inputs, given, names, obs, profile, workdir / "own-content", people)
    finally:
        progress.finish()


def _content(logs: Mapping[str, Path], names: Mapping[Path, str]) -> ContentEvidence | None:
    present = {kind: path for kind in _CONTENT_LOGS if (path := _present(logs, kind)) is not None}
    if not present:
        return None
    from conformance.content.logs import load_content  # with its body decoders: only if read

    return load_content(present, names)


def _impostors(logs: Mapping[str, Path], names: Mapping[Path, str]) -> ImpostorPhase | None:
    path = _present(logs, IMPOSTOR_LOG)
    if path is None:
        return None
    log = read_json_lines(path, names.get(path, path.name))
    capture = _present(logs, IMPOSTOR_CAPTURE)
    if capture is None:
        return ImpostorPhase(log, None, "", "the impostor phase's capture is missing")
    name = names.get(capture, capture.name)
    try:
        return ImpostorPhase(log, observe_captures([capture]), name)
    except ConformanceError as exc:
        return ImpostorPhase(log, None, name, f"the impostor phase's capture cannot be read: {exc}")


def load_facts(path: Path) -> HostFacts:
    """A live host's facts, from evidence/host/facts.json and the raw outputs beside it."""
    data = json.loads(path.read_text())
    records = []
    for item in data.get("commands", []):
        raw = path.parent / f"{item['name']}.txt"
        err = path.parent / f"{item['name']}.stderr.txt"
        records.append(
            CommandRecord(
                name=item["name"],
                command=item["command"],
                exit_status=item["exit_status"],
                stdout=raw.read_text() if raw.is_file() else "",
                stderr=err.read_text() if err.is_file() else "",
                error=item["error"],
                at=item["at"],
            )
        )
    settings = "settings" if any(r.name == "settings" for r in records) else None
    facts = build_facts(data["url"], tuple(records), HostOptions(settings_path=settings))
    return dataclasses.replace(facts, problems=tuple(data.get("problems", facts.problems)))
