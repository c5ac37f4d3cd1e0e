"""Write and sign a report directory: evidence, tables, report.json/html, junit.xml, envelope.

Atomicity: everything is written into a fresh hidden sibling, `.<name>.partial-<owner>-<random>`,
and the envelope (`report.intoto.json`) is written last, after every file it names. Only
then is the directory renamed into place. An interrupted or failed run removes the partial
directory, so REPORT_DIR is either absent, the previous report, or the new complete one:
never a half-written or half-signed report. A hard kill can leave the hidden partial
directory behind (never at REPORT_DIR's name); its name says whose it is (pid and process
start, report.lock.owner_tag), and the next run into the same directory removes it.

The whole write holds the report directory's lock (report.lock), which a run takes before
judging: two writers never interleave in one REPORT_DIR.

An existing REPORT_DIR is accepted only when it is empty or holds a previous report of
ours (every file it holds is named by its statement); it is replaced at the final rename:
renamed aside to `.<name>.old-<random>`, the new one renamed in, the old one removed.
Anything else is refused, so no file of the user's is ever deleted.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from conformance.digest import ENVELOPE_NAME, PRIMARY_SUBJECT, FileDigest
from conformance.report.evidence_dir import (
    copy_evidence,
    evidence_paths,
    write_captures,
    write_tables,
    write_tool_versions,
    write_waivers,
)
from conformance.report.html_report import render_html
from conformance.report.interface import ControlInfo, ReportRun, ReportSummary, SealedFiles, Sealer
from conformance.report.json_report import (
    jsonable,
    period_document,
    render_json,
    report_document,
)
from conformance.report.junit_report import render_junit
from conformance.report.ledger import ReportLedger
from conformance.report.links import EVIDENCE_DIR
from conformance.report.lock import hidden_sibling, hold
from conformance.report.text import iso_utc
from conformance.report.view import ReportView, build_view
from conformance.report_dirs import check_report_dir

if TYPE_CHECKING:
    from conformance.report.prestage import Prestage


def _install(partial: Path, target: Path, sealed_files: SealedFiles) -> None:
    """Move the finished report to `target`, replacing an empty dir or a previous report."""
    check_report_dir(target, sealed_files)  # again: it may have changed while we judged
    if not target.exists() or not any(target.iterdir()):
        os.replace(partial, target)  # POSIX rename replaces an empty directory atomically
        return
    old = hidden_sibling(target, "old", create=False)
    os.rename(target, old)
    try:
        os.rename(partial, target)
    except BaseException:
        os.rename(old, target)  # put the previous report back
        raise
    shutil.rmtree(old, ignore_errors=True)


def _predicate(view: ReportView, sealer: Sealer) -> dict[str, object]:
    """The signed predicate: what the report concluded, about what, by which harness and key."""
    predicate: dict[str, object] = {
        "verdict": view.verdict.value,
        "profile": {
            "name": view.profile_name,
            "mode": view.profile_mode,
            "source": view.profile_source,
        },
        "harness": {
            "version": view.harness_version,
            "started": iso_utc(view.started),
            "finished": iso_utc(view.finished),
        },
        "publicKey": sealer.public_key_pem,
    }
    if view.source_report is not None:
        # `rejudge`: the report whose signed evidence this one judged again (its identity).
        predicate["sourceReport"] = {
            "path": view.source_report.path,
            "envelopeSha256": view.source_report.envelope_sha256,
        }
    if view.period is not None:
        # `watch`: this period and the previous period's envelope (verify-chain walks them).
        predicate["period"] = period_document(view.period)
    return predicate


def _fill(
    root: Path,
    run: ReportRun,
    sealer: Sealer,
    lookup: Callable[[str], ControlInfo],
    prestage: Prestage | None,
) -> tuple[ReportView, tuple[FileDigest, ...]]:
    """Write every file into `root` in order, the envelope last; return the view and subjects."""
    ledger = ReportLedger(root)
    capture_paths = evidence_paths(run)
    write_tables(ledger, run.observations, capture_paths)
    # After the tables: a capture's copy may still be being hashed (report.prestage).
    digests = copy_evidence(ledger, run, prestage)
    write_captures(ledger, run.observations, capture_paths, digests)
    write_tool_versions(ledger, run)
    write_waivers(ledger, run)
    view = build_view(
        run, lookup, ledger.under(f"{EVIDENCE_DIR}/"), capture_paths, sealer.fingerprint
    )
    if run.baseline is not None:
        # Read from the tables just written, as `diff` reads them from a finished report.
        view = replace(view, baseline=run.baseline.compare(root, report_document(view)))
    ledger.write_bytes(PRIMARY_SUBJECT, render_json(view))
    ledger.write_bytes("report.html", render_html(view))
    ledger.write_bytes("junit.xml", render_junit(view))
    # The statement must name exactly what is on disk: a stray file would fail `verify`.
    ledger.check_exact()
    envelope = sealer.envelope(ledger.files(), jsonable(_predicate(view, sealer)))
    with (root / ENVELOPE_NAME).open("xb") as handle:
        handle.write(envelope)
    subjects = sorted(ledger.files(), key=lambda f: (f.path != PRIMARY_SUBJECT, f.path))
    return view, tuple(subjects)


def write_report(
    report_dir: Path,
    run: ReportRun,
    sealer: Sealer,
    lookup: Callable[[str], ControlInfo],
    prestage: Prestage | None = None,
) -> ReportSummary:
    """Write the signed report directory for `run` at `report_dir` (see the module docstring).

    `lookup(control_id)` gives the catalog entry of each result (`load_catalog().get`);
    `prestage` holds evidence copies made while the run was judging (report.prestage).
    Raises ConformanceError when `report_dir` may not be used (checked before any copy),
    CaptureError when a capture changed after it was judged.
    """
    target = report_dir.absolute()
    with hold(target):  # already held by a run (report.lock): taken again, not waited for
        check_report_dir(target, sealer.sealed_files)
        # Named first, made inside the try: an interrupt at any point leaves nothing behind.
        # The name carries this process's tag, so no other process can have made it.
        partial = hidden_sibling(target, "partial", create=False)
        try:
            partial.mkdir()
            view, subjects = _fill(partial, run, sealer, lookup, prestage)
            _install(partial, target, sealer.sealed_files)
        except BaseException:
            # Interrupted or failed: no half report stays behind, at any name.
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return ReportSummary(
        report_dir=target,
        verdict=view.verdict,
        fingerprint=view.fingerprint,
        files=subjects,
        counts=view.counts,
        baseline=view.baseline,
    )
