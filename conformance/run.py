"""One conformance run, start to end: prepare → collect → observe → judge → report → sign.

The pytest plugin (conformance.plugin) and the CLI (`ucx-conformance run`, which drives the
plugin) are two thin fronts over this class: the plugin calls `Run.prepare` at configure time,
`observe` before the first control, `judge` once per control test, and `finish` at the end.

Fail closed: a control no test judged is `inconclusive`; a harness failure while collecting
makes every control `error`; nothing is written when the run was interrupted. Exit status
(interface.md): 0 all applicable controls passed, 1 one failed, 2 none failed but one is
inconclusive or error, 3 bad usage or bad profile (nothing judged).
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance import __version__
from conformance.catalog import Control, applies_when, load_catalog
from conformance.errors import CaptureError, ConformanceError, ProfileError
from conformance.evidence.interface import Collected, EvidenceSource
from conformance.judge.result import ControlResult
from conformance.observe.evidence import KEPT_LOGS, observe_evidence
from conformance.observe.parallel import CaptureExecutor, Judged, check_executor, executor_for
from conformance.observe.records import Observations
from conformance.options import RunOptions
from conformance.profile import load_profile
from conformance.profile_model import Profile
from conformance.progress import NULL_PROGRESS, Progress
from conformance.report.interface import PeriodLink, SourceReport
from conformance.resources import profiles_dir
from conformance.verdict import ExitCode, Verdict, exit_code, overall

if TYPE_CHECKING:
    from conformance.report.interface import BaselineCompare
    from conformance.report.lock import ReportLock
    from conformance.report.prestage import Prestage
    from conformance.waivers import WaiverFile, WaiverOutcome

DEFAULT_REPORTS_DIR = Path("reports")
DEFAULT_LAB_PROFILE = "lab-air-gapped.yaml"
INTERRUPTED = "interrupted: no report"
# The observation keeps every flow of the captures (benchmarks/README.md: about 0.7 KB a flow
# on a port scan's capture, 2 KB with TLS hellos): a scan of tens of millions of ports can
# outgrow a machine's memory.
OUT_OF_MEMORY = (
    "collecting evidence failed: out of memory (MemoryError) while observing the evidence:"
    " the observation keeps every flow of the captures; give the harness more memory, or"
    " split the capture (editcap -c PACKETS) and judge the parts in runs of their own"
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a front end needs after the run: verdicts, where the report is, how it was signed."""

    results: tuple[ControlResult, ...]
    verdict: Verdict
    exit_code: int
    report_dir: Path | None
    key_path: Path | None
    key_created: bool
    problem: str | None = None  # why no report was written
    waived: Mapping[str, int] = field(default_factory=dict)  # control id -> findings waived
    waiver_notes: tuple[str, ...] = ()  # expired, stale or misplaced waivers
    baseline: Mapping[str, Any] | None = None  # the `baseline` diff written into report.json
    # What `profile check` warns about the profile (a network that makes everything on-prem):
    # also among the report's notes, since a pass under such a profile proves little.
    profile_warnings: tuple[str, ...] = ()


@dataclass
class Run:
    """The state of one run; built only by `Run.prepare`."""

    profile: Profile
    source: EvidenceSource
    report_dir: Path
    key_pem: bytes  # the signing key file, checked (sign/key_file.py); loaded to sign
    key_path: Path
    key_created: bool
    lock: ReportLock
    waivers: WaiverFile | None = None
    baseline: BaselineCompare | None = None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    results: dict[str, ControlResult] = field(default_factory=dict)
    collected: Collected | None = None
    observations: Observations | None = None
    derived: tuple[tuple[Path, str], ...] = ()  # files the observe step made (kept content)
    evidence_error: str | None = None  # the harness broke while collecting or observing
    prestage: Prestage | None = None
    workdir: Path | None = None
    source_report: SourceReport | None = None  # `rejudge`: the report judged again
    executor: str | None = None  # `--executor`: where captures are read (observe.parallel)
    judged: tuple[Judged, ...] = ()  # which executor and worker read each capture
    period: PeriodLink | None = None  # `watch`: the period judged and its link in the chain
    frozen: bool = False  # the observations are out of the cyclic collector's way (`observe`)
    observed: bool = False  # `observe` ran (it runs once)
    closed: bool = False  # `close` ran

    # -- 1. prepare: everything a user can get wrong, before anything is judged --------------

    @classmethod
    def prepare(cls, options: RunOptions, cwd: Path, source: EvidenceSource | None = None) -> Run:
        """Check options, profile, key, report directory, waivers and baseline; take the
        report directory's lock. ConformanceError (exit 3) on anything a user can fix.

        `source`: the evidence source, when the caller has its own (a `watch` period's
        captures); otherwise the options name it."""
        from conformance.evidence.select import build_source
        from conformance.report.lock import acquire
        from conformance.report_dirs import check_report_dir
        from conformance.scratch import remove_stale_scratch
        from conformance.sign.signing_key import signing_key_file

        profile = _load_profile(options)
        if profile.draft:
            raise ProfileError(
                profile.source,
                "draft",
                "this profile is a draft (`profile draft` wrote it from a capture): review every"
                " entry, then remove the `draft: true` line",
            )
        source = source or build_source(options)
        check_executor(options.executor)
        key_pem, key_path, created = signing_key_file(options.sign_key)
        started = datetime.now(UTC)
        report_dir = _report_dir(options.report_dir, profile, cwd, started)
        if key_path.absolute().is_relative_to(report_dir):
            raise CaptureError(
                key_path, "the signing key must not live inside the report directory"
            )
        waivers = _waivers(options)
        baseline = _baseline(options, key_path)
        lock = acquire(report_dir)  # last: nothing after it may fail without releasing it
        try:
            check_report_dir(report_dir, _sealed_files)
            # What earlier runs killed with SIGKILL left in the temporary directory.
            remove_stale_scratch()
        except BaseException:
            lock.release()
            raise
        return cls(
            profile=profile,
            source=source,
            report_dir=report_dir,
            key_pem=key_pem,
            key_path=key_path,
            key_created=created,
            lock=lock,
            waivers=waivers,
            baseline=baseline,
            started=started,
            source_report=(
                SourceReport(options.from_report, options.from_envelope or "")
                if options.from_report is not None
                else None
            ),
            executor=options.executor,
        )

    # -- 2. collect and 3. observe ----------------------------------------------------------

    def observe(self, progress: Progress = NULL_PROGRESS) -> None:
        """Collect the evidence and observe it, once. ConformanceError (input the user gave
        that cannot be read) propagates: exit 3. A harness failure makes every control
        `error`, saying why."""
        from conformance.evidence.pcap import PcapSource
        from conformance.report.lock import hidden_sibling
        from conformance.report.prestage import Prestage

        self.observed = True
        copies = None
        executor: CaptureExecutor | None = None
        if isinstance(self.source, PcapSource):
            executor = executor_for(self.executor, len(self.source.paths))
            # The report's copies of the user's captures are written by the decoder, from the
            # very bytes it judges, in the same pass (or, when other processes read them, by
            # a thread while they do).
            self.prestage = Prestage(self.report_dir)
            self.prestage.start(self.source.paths, teed=executor.in_process)
            copies = self.prestage if executor.in_process else None
        # Beside the report directory, tagged with this process: a run killed with SIGKILL
        # leaves it there, and the next run into that directory removes it (report.lock).
        self.workdir = hidden_sibling(self.report_dir, "observe", create=True)
        collector = gc.isenabled()
        gc.disable()  # until the observations are frozen below (observe.builder pauses it too)
        try:
            self.collected = self.source.collect(self.profile, progress)
            if executor is None:
                executor = executor_for(self.executor, len(self.collected.captures))
            observed = observe_evidence(
                self.collected, self.profile, self.workdir, progress, copies, executor
            )
        except ConformanceError:
            raise
        except MemoryError:  # says nothing itself; what was read is let go by now
            self.evidence_error = OUT_OF_MEMORY
        except Exception as exc:  # the harness broke: every control becomes `error`
            self.evidence_error = f"collecting evidence failed: {type(exc).__name__}: {exc}"
        else:
            self.observations = observed.observations
            self.derived = observed.files
            self.judged = observed.judged
            # Every object alive now (the observations: millions after a large capture, none
            # in a reference cycle) leaves the collector's generations until `close`: each
            # collection while judging and reporting would otherwise walk them all again.
            gc.freeze()
            self.frozen = True
        finally:
            if collector:
                gc.enable()
            if executor is not None:
                executor.close()
            progress.finish()

    # -- 4. judge -----------------------------------------------------------------------------

    def not_applicable(self, control_id: str) -> ControlResult | None:
        """The control's `not-applicable` result when the mode or profile makes it moot."""
        control = load_catalog().get(control_id)
        if control.applies_to(self.profile):
            return None
        return ControlResult(
            control_id, Verdict.NOT_APPLICABLE, _not_applicable_reason(control, self.profile)
        )

    def judge(self, control_id: str) -> ControlResult:
        """Judge one control on the run's observations (an `error` result if there are none)."""
        moot = self.not_applicable(control_id)
        if moot is not None:
            return moot
        if self.observations is None:
            why = self.evidence_error or "no evidence was collected"
            return ControlResult(control_id, Verdict.ERROR, why)
        return _judges()[control_id](self.observations, self.profile)

    def judge_all(self) -> None:
        """Judge every control of the profile's mode, as the suites do (`watch` judges its
        periods so, without pytest: the same judges through `judge` and `record`)."""
        for control in load_catalog().for_mode(self.profile.mode.value):
            if control.id in _judges():
                self.record(self.judge(control.id))

    def record(self, result: ControlResult) -> None:
        """Keep a result; a control judged twice keeps the worse verdict."""
        previous = self.results.get(result.control_id)
        if previous is None or result.verdict.rank > previous.verdict.rank:
            self.results[result.control_id] = result

    # -- 5. report and 6. sign ---------------------------------------------------------------

    def finish(self, *, interrupted: bool = False, judged_any: bool = True) -> RunSummary:
        """Complete the results, apply waivers, write and sign the report, say how it went."""
        if interrupted:
            return self._summary((), Verdict.INCONCLUSIVE, None, INTERRUPTED)
        results, waivers = self._apply_waivers(self._complete_results())
        if self.observations is not None:
            # Judging is over: its indexes go before the report is written (#17: the 2M web
            # mix's 3 MiB of target flows, first hellos and cloud conversations).
            self.profile.memo.forget(self.observations)
        verdict = overall(r.verdict for r in results)
        if not judged_any:
            verdict = Verdict.INCONCLUSIVE  # no suite ran: nothing was proven
        try:
            baseline = self._write(results, waivers)
        except ConformanceError as exc:
            return self._summary(results, Verdict.INCONCLUSIVE, None, str(exc))
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM while the report was written
            return self._summary((), Verdict.INCONCLUSIVE, None, INTERRUPTED)
        summary = self._summary(results, verdict, self.report_dir, None)
        return _with_extras(summary, waivers, baseline)

    def close(self) -> None:
        """Release everything the run holds: copies, the source's leftovers, the lock (once:
        a run the CLI observed before pytest is closed by whichever of them ends it)."""
        if self.closed:
            return
        self.closed = True
        if self.frozen:  # back to the collector: a `watch` runs one Run after another
            gc.unfreeze()
            self.frozen = False
        try:
            if self.prestage is not None:
                self.prestage.close()
            self.source.close()
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None
        finally:
            self.lock.release()

    def _complete_results(self) -> tuple[ControlResult, ...]:
        """Every catalog control of the mode gets a verdict; unjudged ones are not proven."""
        catalog = load_catalog()
        results = dict(self.results)
        for control in catalog.for_mode(self.profile.mode.value):
            if control.id in results or control.id == "RP-SIGNED":
                continue
            moot = self.not_applicable(control.id)
            results[control.id] = moot or ControlResult(
                control.id, Verdict.INCONCLUSIVE, "no suite judged this control in this run"
            )
        results["RP-SIGNED"] = ControlResult(
            "RP-SIGNED",
            Verdict.PASS,
            "report.intoto.json signs every file of this directory (`ucx-conformance verify`)",
        )
        order = {c.id: i for i, c in enumerate(catalog)}
        return tuple(sorted(results.values(), key=lambda r: order.get(r.control_id, len(order))))

    def _apply_waivers(
        self, results: tuple[ControlResult, ...]
    ) -> tuple[tuple[ControlResult, ...], WaiverOutcome | None]:
        """Results after the run's waivers (between judging and writing, never in a judge)."""
        if self.waivers is None:
            return results, None
        from conformance.waivers import apply_waivers

        outcome = apply_waivers(results, self.waivers, datetime.now(UTC), self.observations)
        return outcome.results, outcome

    def _write(
        self, results: tuple[ControlResult, ...], waivers: WaiverOutcome | None
    ) -> Mapping[str, Any] | None:
        """Write and sign the report; return its `baseline` section (None without one)."""
        from conformance.report.assemble import write_report
        from conformance.report.interface import ReportRun
        from conformance.sign.seal import Ed25519Sealer
        from conformance.sign.signing_key import signing_key

        files: tuple[tuple[Path, str], ...] = ()
        notes: tuple[str, ...] = ()
        logs: dict[str, str] = {}
        if self.collected is not None:
            files = self.collected.files + self.derived
            names = dict(files)
            logs = {
                kind: names[path] for kind, path in self.collected.logs.items() if path in names
            }
            logs.update((KEPT_LOGS[name], name) for _, name in self.derived if name in KEPT_LOGS)
        from conformance.judge.common import coverage_for
        from conformance.judge.telemetry import content_notes

        if self.observations is not None:
            notes = self.observations.notes + content_notes(self.observations, self.profile)
        if self.evidence_error:
            notes += (self.evidence_error,)
        notes += self._profile_warnings()
        report_run = ReportRun(
            profile_name=self.profile.name,
            profile_mode=self.profile.mode.value,
            profile_source=self.profile.source,
            profile_bytes=self.profile.loaded,
            results=results,
            observations=self.observations,
            evidence_files=files,
            tool_versions=tool_versions(),
            started=self.started,
            finished=datetime.now(UTC),
            harness_version=__version__,
            notes=notes,
            waivers=waivers,
            baseline=self.baseline,
            evidence_logs=logs,
            source_report=self.source_report,
            coverage=(
                coverage_for(self.observations, self.profile)
                if self.observations is not None
                else None
            ),
            judged_by=self.judged,
            period=self.period,
        )
        summary = write_report(
            self.report_dir,
            report_run,
            Ed25519Sealer(signing_key(self.key_pem, self.key_path)),
            load_catalog().get,
            self.prestage,
        )
        return summary.baseline

    def _summary(
        self,
        results: tuple[ControlResult, ...],
        verdict: Verdict,
        report_dir: Path | None,
        problem: str | None,
    ) -> RunSummary:
        code = exit_code(verdict) if problem is None else ExitCode.INCOMPLETE
        return RunSummary(
            results=results,
            verdict=verdict,
            exit_code=int(code),
            report_dir=report_dir,
            key_path=self.key_path,
            key_created=self.key_created,
            problem=problem,
            profile_warnings=self._profile_warnings(),
        )

    def _profile_warnings(self) -> tuple[str, ...]:
        from conformance.profile.check import warnings

        return tuple(f"profile {warning}" for warning in warnings(self.profile))


def _sealed_files(directory: Path) -> set[str] | None:
    """sign.seal.sealed_files, imported only for a report directory that holds files: the
    signing modules load `cryptography` (11 MiB), which a run loads to sign, at its end."""
    from conformance.sign.seal import sealed_files

    return sealed_files(directory)


def _judges() -> Mapping[str, Callable[[Observations, Profile], ControlResult]]:
    """The judges, imported when the first control is judged: the CLI observes a run's
    captures before that, and the judges' modules then load into what the walk let go
    rather than on top of its peak (#17; `coverage_for` and `content_notes` likewise)."""
    from conformance.judge.controls import JUDGES

    return JUDGES


def tool_versions() -> dict[str, str]:
    """The harness's own version and the versions of what it ran on, for the report."""
    from importlib import metadata

    versions = {"ucx-conformance": __version__, "python": sys.version.split()[0]}
    for dist in ("pytest", "scapy", "cryptography", "PyYAML", "rich", "mitmproxy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    versions["platform"] = f"{os.uname().sysname} {os.uname().release} {os.uname().machine}"
    from conformance.decode import compiled

    versions["decoder"] = compiled.describe()
    return versions


def _load_profile(options: RunOptions) -> Profile:
    """The profile, named as the user knows it: `rejudge` judges a copy of a report's
    evidence in a temporary directory, and a profile from there is named where it lives in
    that report (errors, report.json's profile source), never by a path that is gone."""
    path = _profile_path(options)
    shown = _in_source_report(path, options)
    try:
        profile = load_profile(path)
    except ProfileError as exc:
        if shown is None:
            raise
        raise ProfileError(shown, exc.key, exc.problem) from None
    return profile if shown is None else replace(profile, source=shown)


def _in_source_report(path: Path, options: RunOptions) -> Path | None:
    """Where `path`, a file of `rejudge`'s copy of a report's evidence, is in that report."""
    if options.from_report is None or options.evidence_dir is None:
        return None
    try:
        inside = path.absolute().relative_to(options.evidence_dir.absolute())
    except ValueError:
        return None
    return Path(options.from_report) / inside


def _profile_path(options: RunOptions) -> Path:
    if options.profile is not None:
        return options.profile
    if options.lab:
        return profiles_dir() / DEFAULT_LAB_PROFILE
    raise ProfileError("--profile", "", "a deployment profile is required (or --lab)")


def _report_dir(given: str | None, profile: Profile, cwd: Path, started: datetime) -> Path:
    if given is not None:
        if not given.strip():
            raise ConformanceError(
                'the report directory is "" (empty); give a directory or leave the option out'
            )
        return Path(given).absolute()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", profile.name).strip("-") or "report"
    return (cwd / DEFAULT_REPORTS_DIR / f"{safe}-{stamp}").absolute()


def _waivers(options: RunOptions) -> WaiverFile | None:
    """--waivers, parsed now: a bad waiver file is bad usage (exit 3), nothing judged."""
    if options.waivers is None:
        return None
    from conformance.waivers import load_waivers

    return load_waivers(options.waivers, load_catalog().ids())


def _baseline(options: RunOptions, key_path: Path) -> BaselineCompare | None:
    """--baseline, verified and read now (exit 3 if it does not verify).

    Pinned by --baseline-key, else by the public half of this run's signing key: a CI job
    that signs every run with one key compares against its own earlier reports.
    """
    if options.baseline is None:
        return None
    from conformance.compare.baseline import load_baseline
    from conformance.sign.keys import public_key_path

    pin = options.baseline_key or public_key_path(key_path)
    return load_baseline(options.baseline, pin)


def _not_applicable_reason(control: Control, profile: Profile) -> str:
    if profile.mode.value not in control.modes:
        return f"{control.id} applies to {', '.join(control.modes)}; profile is {profile.mode}"
    return f"{control.id} applies only when {applies_when(control)}"


def _with_extras(
    summary: RunSummary, waivers: WaiverOutcome | None, baseline: Mapping[str, Any] | None
) -> RunSummary:
    """The summary with what waivers did and the baseline diff, for the front ends."""
    if waivers is None:
        return replace(summary, baseline=baseline)
    waived = {r.control_id: waivers.waived(r.control_id) for r in waivers.results}
    notes = [
        f"{use.waiver.label}: {use.state}"
        for use in waivers.uses
        if use.state in ("expired", "unmatched", "no-control")
    ]
    return replace(
        summary,
        waived={k: v for k, v in waived.items() if v},
        waiver_notes=tuple(notes),
        baseline=baseline,
    )
