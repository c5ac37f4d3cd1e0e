"""The evidence/ folder: copied files (captures, logs, the profile) and the derived tables.

Captures are stream-copied and hashed in one pass. A capture's copy must hash to the SHA-256
the decoder computed while judging it: otherwise the file changed in between, and signing
the copy would vouch for evidence nobody judged. A copy the decoder read every byte back
from is itself what was judged: its digest, taken after the walk, is the capture's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.errors import CaptureError
from conformance.observe.records import Observations
from conformance.report.interface import ReportRun
from conformance.report.json_report import json_bytes, jsonable
from conformance.report.ledger import ReportLedger
from conformance.report.links import EVIDENCE_DIR
from conformance.report.tables import write_dns, write_flows, write_http, write_names, write_tls
from conformance.waivers import EVIDENCE_NAME as WAIVERS_NAME

if TYPE_CHECKING:
    from conformance.report.prestage import Prestage


def _path(name: str) -> str:
    return f"{EVIDENCE_DIR}/{name}"


def evidence_paths(run: ReportRun) -> tuple[str | None, ...]:
    """Each capture's path in the report, before any copy is made.

    Index i of the result is `run.observations.captures[i]` (None: that capture was not
    among the evidence files, so findings cite it by index only).
    """
    named: dict[Path, str] = {}  # resolved source -> report path (the first name given)
    for source, name in run.evidence_files:
        named.setdefault(source.resolve(), _path(name))
    if run.observations is None:
        return ()
    return tuple(named.get(Path(s.path).resolve()) for s in run.observations.captures)


def copy_evidence(
    ledger: ReportLedger, run: ReportRun, prestage: Prestage | None = None
) -> tuple[str, ...]:
    """Copy every evidence file and the profile; return each capture's SHA-256 in the report.

    Index i of the result is `run.observations.captures[i]` ("" when it was not copied). A
    copy the decoder read back is hashed after the walk: `prestage.take` waits for it, so
    this comes after the tables (report.assemble).
    """
    copied: dict[Path, str] = {}  # resolved source -> sha256 of its copy (the first one)
    for source, name in run.evidence_files:
        staged = prestage.take(source) if prestage is not None else None
        if staged is None:
            digest = ledger.copy_file(source, _path(name))
        else:
            digest = ledger.adopt_file(*staged, _path(name))
        copied.setdefault(source.resolve(), digest.sha256)
    if run.profile_bytes is not None:  # what was judged, even if the file changed since
        ledger.write_bytes(_path("profile.yaml"), run.profile_bytes)
    else:
        ledger.copy_file(run.profile_source, _path("profile.yaml"))

    if run.observations is None:
        return ()
    digests: list[str] = []
    for summary in run.observations.captures:
        sha256 = copied.get(Path(summary.path).resolve(), "")
        if sha256 and summary.sha256 and summary.sha256 != sha256:
            raise CaptureError(
                summary.path,
                f"changed after it was judged (judged SHA-256 {summary.sha256}, "
                f"copied {sha256}); capture to a new file and run again",
            )
        digests.append(sha256)
    return tuple(digests)


def write_tables(
    ledger: ReportLedger, observations: Observations | None, capture_paths: Sequence[str | None]
) -> None:
    """Write the flows/dns/tls/http/names CSVs (empty tables without observations)."""
    # Inside evidence/ a capture is named by its file name (the CSVs sit beside it).
    names = [
        p.removeprefix(f"{EVIDENCE_DIR}/") if p else f"#{i}" for i, p in enumerate(capture_paths)
    ]
    obs = observations
    with ledger.open_text(_path("flows.csv")) as out:
        write_flows(out, obs.flows if obs else (), names)
    with ledger.open_text(_path("dns.csv")) as out:
        write_dns(out, obs.dns if obs else (), names)
    with ledger.open_text(_path("tls.csv")) as out:
        write_tls(out, obs.client_hellos if obs else (), obs.server_hellos if obs else (), names)
    with ledger.open_text(_path("http.csv")) as out:
        write_http(out, obs.http_requests if obs else (), names)
    with ledger.open_text(_path("names.csv")) as out:
        write_names(out, obs.names if obs else (), names)


def write_captures(
    ledger: ReportLedger,
    observations: Observations | None,
    capture_paths: Sequence[str | None],
    digests: Sequence[str],
) -> None:
    """captures.json: every capture's summary, with the SHA-256 of its copy in the report
    where the decoder left it to that copy (decode/read_ahead.py)."""
    captures = [
        {
            "evidence": capture_paths[i] if i < len(capture_paths) else None,
            **asdict(summary),
            "sha256": summary.sha256 or (digests[i] if i < len(digests) else ""),
            "complete": summary.complete,
        }
        for i, summary in enumerate(observations.captures if observations else ())
    ]
    ledger.write_bytes(_path("captures.json"), json_bytes(jsonable({"captures": captures})))


def write_tool_versions(ledger: ReportLedger, run: ReportRun) -> None:
    """evidence/tool-versions.json: what produced this evidence, keys sorted."""
    ledger.write_bytes(_path("tool-versions.json"), json_bytes(jsonable(run.tool_versions)))


def write_waivers(ledger: ReportLedger, run: ReportRun) -> None:
    """evidence/waivers.yaml: the exact bytes of the waiver file that was applied."""
    if run.waivers is not None:
        ledger.write_bytes(_path(WAIVERS_NAME), run.waivers.file.data)
