"""pytest plugin: runs the conformance suites against a profile and writes the signed report.

`pytest suites/ --ucx-profile P --ucx-pcap F` and `ucx-conformance run` go through this
same code; the CLI only adds a terminal front end. The plugin is inert unless
`--ucx-profile` (or `--ucx-lab`) is given, so it never disturbs other test suites; only a
session that collected conformance suites (`ucx_control` items) without a profile is bad
usage, so a CI job that forgot the option is not green with nothing judged.

A run holds its report directory's lock (report.lock) from configure time, before anything
is judged, until the report is in place: a second run into the same directory, or one that
cannot write there, is bad usage at once.

Exit status (interface.md): 0 all applicable controls passed, 1 one failed, 2 none failed
but one is inconclusive or error (also: no tests collected, interrupted, harness crash),
3 bad usage or bad profile (nothing judged).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from conformance import __version__
from conformance.catalog import Control, applies_when, load_catalog
from conformance.errors import ConformanceError
from conformance.evidence.interface import Evidence, EvidenceSource
from conformance.evidence.select import SourceRequest
from conformance.judge.model import ControlResult
from conformance.observe.model import Observations
from conformance.profile import load_profile
from conformance.profile_model import Profile
from conformance.progress import NULL_PROGRESS, Progress
from conformance.report.lock import ReportLock
from conformance.report.prestage import Prestage
from conformance.verdict import ExitCode, Verdict, exit_code, overall

if TYPE_CHECKING:
    from conformance.observe.coverage import Coverage
    from conformance.report.model import BaselineCompare
    from conformance.waivers import WaiverFile, WaiverOutcome

DEFAULT_REPORTS_DIR = Path("reports")


class Inconclusive(Exception):  # noqa: N818 (a verdict, not an error)
    """Raised by `ucx_verdict` so pytest shows the control as not proven (never as passed)."""


class HarnessError(Exception):
    """The evidence could not be collected because the harness itself broke."""


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


class Frontend(Protocol):
    """A terminal front end (the CLI) passed to pytest.main(plugins=[...])."""

    ucx_frontend: bool
    progress: Progress

    def finished(self, summary: RunSummary) -> None: ...


@dataclass
class UcxRun:
    """State of one conformance run inside a pytest session."""

    profile: Profile
    source: EvidenceSource
    report_dir: Path
    key_path: Path | None
    key_created: bool
    sign: Callable[[], object]  # returns the private key (loaded at configure time)
    frontend: Frontend | None
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    results: dict[str, ControlResult] = field(default_factory=dict)
    evidence: Evidence | None = None
    evidence_error: str | None = None
    prestage: Prestage | None = None
    usage_error: str | None = None
    summary: RunSummary | None = None
    waivers: WaiverFile | None = None  # --ucx-waivers, parsed before anything is judged
    baseline: BaselineCompare | None = None  # --ucx-baseline, verified before anything is judged
    lock: ReportLock | None = None  # the report directory's, held for the whole run

    def record(self, result: ControlResult) -> None:
        # A control judged twice keeps the worse verdict: never let a later pass hide a fail.
        previous = self.results.get(result.control_id)
        if previous is None or result.verdict.rank > previous.verdict.rank:
            self.results[result.control_id] = result


_RUN = pytest.StashKey[UcxRun]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ucx-conformance", "UCX conformance suites")
    group.addoption("--ucx-profile", metavar="PROFILE", help="deployment profile (YAML)")
    group.addoption(
        "--ucx-pcap",
        metavar="FILE",
        action="append",
        default=[],
        help="capture to judge (pcap or pcapng); repeat for several",
    )
    group.addoption(
        "--ucx-lab",
        action="store_true",
        help="stand up the built-in lab around the reference target and capture live",
    )
    group.addoption(
        "--ucx-fault",
        metavar="NAME",
        action="append",
        default=[],
        help="lab only: switch on a reference-target fault (`ucx-conformance lab faults`)",
    )
    group.addoption(
        "--ucx-image",
        metavar="IMAGE",
        help="run this container image as the lab's target (Docker engine needed)",
    )
    group.addoption(
        "--ucx-env",
        metavar="K=V",
        action="append",
        default=[],
        help="with --ucx-image: environment variable for the container (repeatable)",
    )
    group.addoption(
        "--ucx-volume",
        metavar="HOST:CONTAINER[:ro]",
        action="append",
        default=[],
        help="with --ucx-image: bind mount for the container (repeatable)",
    )
    group.addoption(
        "--ucx-host",
        metavar="URL",
        help="live host to collect facts from (testinfra URL: ssh://user@addr, local://, ...)",
    )
    group.addoption(
        "--ucx-tls-keylog",
        metavar="FILE",
        action="append",
        default=[],
        help="with --ucx-pcap: NSS key log (SSLKEYLOGFILE) of the target's TLS sessions, to"
        " judge telemetry content; repeatable (docs/telemetry-evidence.md)",
    )
    group.addoption(
        "--ucx-content-log",
        metavar="FILE.har",
        action="append",
        default=[],
        help="with --ucx-pcap: HAR 1.2 of an intercepting proxy, as content-level evidence",
    )
    group.addoption(
        "--ucx-keep-secrets",
        action="store_true",
        help="keep the TLS keys (inside a pcapng Decryption Secrets Block) and HAR files in"
        " the report; default: only their SHA-256",
    )
    group.addoption(
        "--ucx-report-dir",
        metavar="DIR",
        help="report directory (default: reports/<profile>-<UTC time>)",
    )
    group.addoption(
        "--ucx-sign-key",
        metavar="KEY",
        help="Ed25519 private key (PKCS#8 PEM, mode 0600); default: created once and reused",
    )
    group.addoption(
        "--ucx-waivers",
        metavar="FILE",
        help="waiver file (YAML): approved, expiring exceptions for known findings",
    )
    group.addoption(
        "--ucx-baseline",
        metavar="REPORT_DIR",
        help="earlier signed report: what changed goes into report.json `baseline`",
    )
    group.addoption(
        "--ucx-baseline-key",
        metavar="PUBKEY",
        help="public key the baseline must be signed with (default: this run's signing key)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ucx_control(control_id): the catalog control a conformance test judges"
    )
    from conformance.evidence.select import request_from_options

    profile_opt = config.getoption("--ucx-profile", default=None)
    request = request_from_options(
        pcaps=config.getoption("--ucx-pcap", default=None),
        lab=bool(config.getoption("--ucx-lab", default=False)),
        faults=config.getoption("--ucx-fault", default=None),
        image=config.getoption("--ucx-image", default=None),
        env=config.getoption("--ucx-env", default=None),
        volumes=config.getoption("--ucx-volume", default=None),
        host=config.getoption("--ucx-host", default=None),
        tls_keylogs=config.getoption("--ucx-tls-keylog", default=None),
        content_logs=config.getoption("--ucx-content-log", default=None),
        keep_secrets=bool(config.getoption("--ucx-keep-secrets", default=False)),
    )
    if profile_opt is None and not request.given:
        return  # inert: not a conformance run
    try:
        config.stash[_RUN] = _prepare_run(config, profile_opt, request)
    except ConformanceError as exc:
        pytest.exit(f"ucx-conformance: {exc}", returncode=int(ExitCode.USAGE))


def _find_frontend(config: pytest.Config) -> Frontend | None:
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "ucx_frontend", False):
            return plugin  # type: ignore[no-any-return]
    return None


def _prepare_run(config: pytest.Config, profile_opt: str | None, request: SourceRequest) -> UcxRun:
    """Check everything a user can get wrong before anything is judged (exit 3 on error)."""
    from conformance.errors import CaptureError, ProfileError
    from conformance.evidence.select import build_source
    from conformance.report.assemble import check_report_dir
    from conformance.report.lock import acquire
    from conformance.sign.keys import ensure_key

    if profile_opt is None:
        raise CaptureError("--ucx-profile", "a deployment profile is required")
    profile = load_profile(Path(profile_opt))
    if profile.draft:
        raise ProfileError(
            profile.source,
            "draft",
            "this profile is a draft (`profile draft` wrote it from a capture): review every"
            " entry, then remove the `draft: true` line",
        )
    source = build_source(request)

    key_opt = config.getoption("--ucx-sign-key")
    key, key_path, created = ensure_key(Path(key_opt) if key_opt else None)

    report_opt = config.getoption("--ucx-report-dir")
    started = datetime.now(UTC)
    if report_opt is not None:
        if not report_opt.strip():
            raise ConformanceError(
                'the report directory is "" (empty); give a directory or leave the option out'
            )
        report_dir = Path(report_opt)
    else:
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", profile.name).strip("-") or "report"
        report_dir = Path(config.invocation_params.dir) / DEFAULT_REPORTS_DIR / f"{safe}-{stamp}"
    report_dir = report_dir.absolute()
    if key_path.absolute().is_relative_to(report_dir):
        raise CaptureError(key_path, "the signing key must not live inside the report directory")
    lock = acquire(report_dir)  # last: nothing after it may fail without releasing it
    try:
        check_report_dir(report_dir)
    except BaseException:
        lock.release()
        raise
    return UcxRun(
        profile=profile,
        source=source,
        report_dir=report_dir,
        key_path=key_path,
        key_created=created,
        sign=lambda: key,
        frontend=_find_frontend(config),
        started=started,
        waivers=_load_waivers(config),
        baseline=_load_baseline(config, key_path),
        lock=lock,
    )


def _load_waivers(config: pytest.Config) -> WaiverFile | None:
    """--ucx-waivers, parsed now: a bad waiver file is bad usage (exit 3), nothing judged."""
    from conformance.waivers import load_waivers

    option = config.getoption("--ucx-waivers", default=None)
    return load_waivers(Path(option), load_catalog().ids()) if option else None


def _load_baseline(config: pytest.Config, key_path: Path) -> BaselineCompare | None:
    """--ucx-baseline, verified and read now (exit 3 if it does not verify).

    Pinned by --ucx-baseline-key, else by the public half of this run's signing key: a CI
    job that signs every run with one key compares against its own earlier reports.
    """
    from conformance.compare.baseline import load_baseline
    from conformance.sign.keys import public_key_path

    option = config.getoption("--ucx-baseline", default=None)
    if not option:
        return None
    key_option = config.getoption("--ucx-baseline-key", default=None)
    pin = Path(key_option) if key_option else public_key_path(key_path)
    return load_baseline(Path(option), pin)


def _active(config: pytest.Config) -> UcxRun | None:
    return config.stash.get(_RUN, None)


_NO_PROFILE = (
    "these are conformance suites and nothing was judged: give --ucx-profile PROFILE"
    " with --ucx-pcap FILE, --ucx-lab, --ucx-image IMAGE or --ucx-host URL"
)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Conformance suites collected without a profile: bad usage, as `run` says (exit 3)."""
    config = session.config
    if _active(config) is not None or config.option.collectonly:
        return
    if any(_control_id(item) is not None for item in session.items):
        pytest.exit(f"ucx-conformance: {_NO_PROFILE}", returncode=int(ExitCode.USAGE))


def pytest_unconfigure(config: pytest.Config) -> None:
    run = _active(config)
    if run is not None and run.lock is not None:
        run.lock.release()  # also when the session ended early (pytest.exit, an interrupt)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Collect the evidence once, before the first control is judged."""
    run = _active(session.config)
    if run is None or session.testscollected == 0 or session.config.option.collectonly:
        return
    progress = run.frontend.progress if run.frontend else NULL_PROGRESS
    _start_prestage(run)
    try:
        run.evidence = run.source.collect(run.profile, progress)
    except ConformanceError as exc:
        run.usage_error = str(exc)
        run.source.close()
        if run.frontend is not None:  # its terminal has no pytest reporter to show the exit
            sys.stderr.write(f"ucx-conformance: {exc}\n")
        pytest.exit(f"ucx-conformance: {exc}", returncode=int(ExitCode.USAGE))
    except Exception as exc:  # the harness broke: every control becomes `error`
        run.evidence_error = f"collecting evidence failed: {type(exc).__name__}: {exc}"
    finally:
        progress.finish()


def _start_prestage(run: UcxRun) -> None:
    """Start copying captures the user gave into the report while they are judged."""
    from conformance.evidence.pcap import PcapSource
    from conformance.report.prestage import Prestage

    if isinstance(run.source, PcapSource):
        run.prestage = Prestage(run.report_dir)
        run.prestage.start(run.source.paths, teed=True)  # the decoder writes the copies
        run.source.copies = run.prestage


def _control_id(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("ucx_control")
    if marker is None or not marker.args:
        return None
    return str(marker.args[0])


def _supplementary(item: pytest.Item) -> bool:
    """`ucx_control(ID, supplementary=True)`: judges ID from other evidence (host facts) and
    may have nothing to say; the control's main test still decides when it says nothing."""
    marker = item.get_closest_marker("ucx_control")
    return bool(marker is not None and marker.kwargs.get("supplementary", False))


def pytest_runtest_setup(item: pytest.Item) -> None:
    run = _active(item.config)
    control_id = _control_id(item)
    if run is None or control_id is None:
        return
    control = load_catalog().get(control_id)
    if not control.applies_to(run.profile):
        reason = _not_applicable_reason(control, run.profile)
        run.record(ControlResult(control_id, Verdict.NOT_APPLICABLE, reason))
        item.ucx_recorded = True  # type: ignore[attr-defined]
        pytest.skip(reason)


def _not_applicable_reason(control: Control, profile: Profile) -> str:
    if profile.mode.value not in control.modes:
        return f"{control.id} applies to {', '.join(control.modes)}; profile is {profile.mode}"
    return f"{control.id} applies only when {applies_when(control)}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    run = _active(item.config)
    control_id = _control_id(item)
    if run is None or control_id is None:
        return report
    # Whether *this* test recorded: another test may judge the same control (host facts).
    recorded = run.results.get(control_id) if getattr(item, "ucx_recorded", False) else None
    if report.when == "call" and recorded is not None:
        report.ucx_verdict = recorded.verdict.value  # type: ignore[attr-defined]
    if recorded is not None or (report.when in ("setup", "teardown") and report.passed):
        return report
    if _supplementary(item) and (report.passed or report.skipped):
        return report  # a second opinion with nothing to say (e.g. no host in this run)
    # Nothing recorded: whatever happened, the control is not proven.
    if call.excinfo is not None and call.excinfo.errisinstance(pytest.skip.Exception):
        run.record(
            ControlResult(control_id, Verdict.INCONCLUSIVE, f"skipped: {call.excinfo.value}")
        )
    elif call.excinfo is not None:
        text = f"{call.excinfo.typename}: {call.excinfo.value}".strip()
        run.record(ControlResult(control_id, Verdict.ERROR, f"harness error: {text}"))
    else:
        run.record(ControlResult(control_id, Verdict.ERROR, "the test recorded no verdict"))
    report.ucx_verdict = run.results[control_id].verdict.value  # type: ignore[attr-defined]
    return report


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
    verdict = getattr(report, "ucx_verdict", None)
    if report.when == "call" and verdict == Verdict.INCONCLUSIVE.value:
        return "inconclusive", "I", ("INCONCLUSIVE", {"yellow": True})
    return None


# --- fixtures used by the suites -------------------------------------------------------------


def _require_run(request: pytest.FixtureRequest) -> UcxRun:
    run = _active(request.config)
    if run is None:
        pytest.skip("not a conformance run: give --ucx-profile")
    return run


@pytest.fixture(scope="session")
def ucx_profile(request: pytest.FixtureRequest) -> Profile:
    """The validated deployment profile of this run."""
    return _require_run(request).profile


@pytest.fixture(scope="session")
def ucx_evidence(request: pytest.FixtureRequest) -> Evidence:
    """Everything the evidence source collected (observations, files, probe log)."""
    run = _require_run(request)
    if run.evidence is None:
        raise HarnessError(run.evidence_error or "no evidence was collected")
    return run.evidence


@pytest.fixture(scope="session")
def ucx_observations(ucx_evidence: Evidence) -> Observations:
    """Flows, names and handshakes observed in the evidence."""
    return ucx_evidence.observations


@pytest.fixture
def ucx_verdict(request: pytest.FixtureRequest) -> Callable[[ControlResult], None]:
    """Record a control's result and end the test the way pytest shows that verdict."""
    run = _require_run(request)
    expected = _control_id(request.node)

    def record(result: ControlResult) -> None:
        if expected is not None and result.control_id != expected:
            raise HarnessError(f"test judged {result.control_id}, marked {expected}")
        run.record(result)
        request.node.ucx_recorded = True
        match result.verdict:
            case Verdict.PASS:
                return
            case Verdict.FAIL:
                lines = [f"{result.control_id}: {result.reason}"]
                lines += [f"  [{f.severity}] {f.summary}" for f in result.violations[:20]]
                pytest.fail("\n".join(lines), pytrace=False)
            case Verdict.INCONCLUSIVE:
                raise Inconclusive(f"{result.control_id}: {result.reason}")
            case Verdict.NOT_APPLICABLE:
                pytest.skip(f"{result.control_id}: not applicable: {result.reason}")
            case Verdict.ERROR:
                raise HarnessError(f"{result.control_id}: {result.reason}")

    return record


# --- end of session: fill the gaps, write and sign the report --------------------------------


def _complete_results(run: UcxRun) -> tuple[ControlResult, ...]:
    """Every catalog control of the mode gets a verdict; unjudged ones are not proven."""
    catalog = load_catalog()
    results = dict(run.results)
    for control in catalog.for_mode(run.profile.mode.value):
        if control.id in results or control.id == "RP-SIGNED":
            continue
        if not control.applies_to(run.profile):
            results[control.id] = ControlResult(
                control.id, Verdict.NOT_APPLICABLE, _not_applicable_reason(control, run.profile)
            )
            continue
        results[control.id] = ControlResult(
            control.id, Verdict.INCONCLUSIVE, "no suite judged this control in this run"
        )
    results["RP-SIGNED"] = ControlResult(
        "RP-SIGNED",
        Verdict.PASS,
        "report.intoto.json signs every file of this directory (`ucx-conformance verify`)",
    )
    order = {c.id: i for i, c in enumerate(catalog)}
    return tuple(sorted(results.values(), key=lambda r: order.get(r.control_id, len(order))))


def _tool_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {"ucx-conformance": __version__, "python": sys.version.split()[0]}
    for dist in ("pytest", "scapy", "cryptography", "PyYAML", "rich", "mitmproxy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    versions["platform"] = f"{os.uname().sysname} {os.uname().release} {os.uname().machine}"
    return versions


def _apply_waivers(
    run: UcxRun, results: tuple[ControlResult, ...]
) -> tuple[tuple[ControlResult, ...], WaiverOutcome | None]:
    """Results after the run's waivers (between judging and writing, never in a judge)."""
    if run.waivers is None:
        return results, None
    from conformance.waivers import apply_waivers

    observations = run.evidence.observations if run.evidence is not None else None
    outcome = apply_waivers(results, run.waivers, datetime.now(UTC), observations)
    return outcome.results, outcome


def _write(
    run: UcxRun, results: tuple[ControlResult, ...], waivers: WaiverOutcome | None = None
) -> Mapping[str, Any] | None:
    """Write and sign the report; return its `baseline` section (None without --baseline)."""
    from conformance.report.assemble import write_report
    from conformance.report.model import ReportRun

    evidence_files: tuple[tuple[Path, str], ...] = ()
    notes: tuple[str, ...] = ()
    observations = None
    if run.evidence is not None:
        evidence_files = run.evidence.files
        notes = run.evidence.notes + run.evidence.observations.notes
        observations = run.evidence.observations
        from conformance.content.from_evidence import content_notes

        notes += content_notes(run.evidence, run.profile)  # says when there was no content
    if run.evidence_error:
        notes += (run.evidence_error,)
    report_run = ReportRun(
        profile_name=run.profile.name,
        profile_mode=run.profile.mode.value,
        profile_source=run.profile.source,
        results=results,
        observations=observations,
        evidence_files=evidence_files,
        tool_versions=_tool_versions(),
        started=run.started,
        finished=datetime.now(UTC),
        harness_version=__version__,
        notes=notes,
        waivers=waivers,
        baseline=run.baseline,
        coverage=_coverage(observations, run.profile),
    )
    catalog = load_catalog()
    summary = write_report(
        run.report_dir,
        report_run,
        run.sign(),  # type: ignore[arg-type]
        catalog.get,
        run.prestage,
    )
    return summary.baseline


def _coverage(observations: Observations | None, profile: Profile) -> Coverage | None:
    """What the window could not see (decision 11), for the profile's target and minimum."""
    if observations is None:
        return None
    from conformance.judge.common import coverage_for

    return coverage_for(observations, profile)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    run = _active(session.config)
    if run is None or run.usage_error is not None:
        return
    try:
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            run.summary = _summary(run, (), Verdict.INCONCLUSIVE, None, "interrupted: no report")
        elif exitstatus == pytest.ExitCode.USAGE_ERROR:
            run.summary = _summary(run, (), Verdict.INCONCLUSIVE, None, "pytest usage error")
            session.exitstatus = int(ExitCode.USAGE)
            return
        else:
            results, waivers = _apply_waivers(run, _complete_results(run))
            verdict = overall(r.verdict for r in results)
            if session.testscollected == 0:
                verdict = Verdict.INCONCLUSIVE  # no suite ran: nothing was proven
            try:
                baseline = _write(run, results, waivers)
            except ConformanceError as exc:
                run.summary = _summary(run, results, Verdict.INCONCLUSIVE, None, str(exc))
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM while the report was written
                run.summary = _summary(
                    run, (), Verdict.INCONCLUSIVE, None, "interrupted: no report"
                )
            else:
                run.summary = _summary(run, results, verdict, run.report_dir, None)
                run.summary = _with_extras(run.summary, waivers, baseline)
        session.exitstatus = run.summary.exit_code
    finally:
        if run.prestage is not None:
            run.prestage.close()
        run.source.close()
        if run.lock is not None:
            run.lock.release()
        if run.frontend is not None and run.summary is not None:
            run.frontend.finished(run.summary)


def _summary(
    run: UcxRun,
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
        key_path=run.key_path,
        key_created=run.key_created,
        problem=problem,
    )


def _with_extras(
    summary: RunSummary, waivers: WaiverOutcome | None, baseline: Mapping[str, Any] | None
) -> RunSummary:
    """The summary with what waivers did and the baseline diff, for the front ends."""
    from dataclasses import replace

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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    run = _active(terminalreporter.config)
    if run is None or run.summary is None or run.frontend is not None:
        return  # the CLI prints its own summary
    summary = run.summary
    tr = terminalreporter
    tr.section("ucx-conformance")
    for result in summary.results:
        waived = summary.waived.get(result.control_id)
        note = f" ({waived} waived)" if waived else ""
        tr.write_line(f"{result.control_id:16} {result.verdict.value:15} {result.reason}{note}")
    for line in _closing_lines(summary):
        tr.write_line(line)


def _closing_lines(summary: RunSummary) -> Iterator[str]:
    yield f"verdict: {summary.verdict.value} (exit {summary.exit_code})"
    for note in summary.waiver_notes:
        yield f"waiver warning: {note}"
    if summary.baseline is not None:
        from conformance.compare.render import headline

        yield f"baseline: {headline(summary.baseline)}"
    if summary.report_dir is not None:
        yield f"signed report: {summary.report_dir}"
    if summary.problem:
        yield f"no report written: {summary.problem}"
    if summary.key_created and summary.key_path is not None:
        yield f"created signing key {summary.key_path} (public key: {summary.key_path}.pub)"
