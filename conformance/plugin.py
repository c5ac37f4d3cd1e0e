"""pytest plugin: the conformance suites' front over one `conformance.run.Run`.

`pytest suites/ --ucx-profile P --ucx-pcap F` and `ucx-conformance run` go through this
same code; the CLI only adds a terminal front end. The plugin is inert unless a run option is
given, so it never disturbs other test suites; only a session that collected conformance
suites (`ucx_control` items) without a profile is bad usage, so a CI job that forgot the
option is not green with nothing judged.

The hooks map onto the run's steps: configure → `Run.prepare` (exit 3 on anything a user
can fix), the first test → `Run.observe` (for a run of captures the CLI takes both steps
before pytest starts and hands the run over: `Frontend.run`), each control test →
`Run.judge` (the `ucx_judge` fixture), session end → `Run.finish` (report, signature) and
`Run.close`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from conformance.errors import ConformanceError
from conformance.judge.result import ControlResult
from conformance.options import OPTION_BY_FLAG, OPTIONS, Option, RunOptions, in_pytest_spelling
from conformance.progress import NULL_PROGRESS, Progress
from conformance.run import Run, RunSummary
from conformance.verdict import ExitCode, Verdict

__all__ = ["JudgeControl", "RunSummary"]

JudgeControl = Callable[[], None]
"""The `ucx_judge` fixture: judge the test's control and end the test as its verdict says."""


class Inconclusive(Exception):  # noqa: N818 (a verdict, not an error)
    """Raised by `ucx_judge` so pytest shows the control as not proven (never as passed)."""


class HarnessError(Exception):
    """The control could not be judged because the harness itself broke."""


class Frontend(Protocol):
    """A terminal front end (the CLI) passed to pytest.main(plugins=[...])."""

    ucx_frontend: bool
    progress: Progress
    run: Run | None  # prepared and observed already, or None

    def finished(self, summary: RunSummary) -> None: ...


_RUN = pytest.StashKey[Run]()
_SUMMARY = pytest.StashKey[RunSummary]()
_USAGE_ERROR = pytest.StashKey[str]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ucx-conformance", "UCX conformance suites")
    for option in OPTIONS:
        if option.kind == "flag":
            group.addoption(option.pytest_flag, action="store_true", help=option.help)
        elif option.kind == "list":
            group.addoption(
                option.pytest_flag,
                action="append",
                default=[],
                metavar=option.metavar,
                help=option.help,
            )
        else:
            group.addoption(option.pytest_flag, metavar=option.metavar, help=option.help)


def _options(config: pytest.Config) -> RunOptions:
    def value(option: Option) -> object:
        return config.getoption(option.pytest_flag, default=None)

    return RunOptions.read(value)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ucx_control(control_id): the catalog control a conformance test judges"
    )
    options = _options(config)
    if not options.given:
        return  # inert: not a conformance run
    if config.pluginmanager.is_blocked("terminal"):
        # Nobody reads pytest's failure text without its terminal reporter (`run` shows the
        # verdicts itself): the exception's message is enough, not its source-annotated
        # traceback (measured: ~0.1 s of a run with a dozen failed or inconclusive controls).
        config.option.tbstyle = "value"
    frontend = _find_frontend(config)
    prepared = getattr(frontend, "run", None)
    if isinstance(prepared, Run):  # the CLI prepared it and observed its captures first
        config.stash[_RUN] = prepared
        return
    try:
        config.stash[_RUN] = Run.prepare(options, Path(config.invocation_params.dir))
    except ConformanceError as exc:
        # Said when collection starts (`pytest_collection`): a pytest.exit before the
        # session has begun is printed by pytest itself, as "Exit: <message>".
        config.stash[_USAGE_ERROR] = _said(config, exc)


def _said(config: pytest.Config, exc: ConformanceError) -> str:
    """`exc` with options named as this front's user typed them: a refusal that names a run
    option (`--fault: ...`, in the harness's own words) is spelled `--ucx-fault` for a pytest
    user; `ucx-conformance run` spells options as the error does."""
    if _find_frontend(config) is None and getattr(exc, "path", None) in OPTION_BY_FLAG:
        return in_pytest_spelling(str(exc))
    return str(exc)


def _find_frontend(config: pytest.Config) -> Frontend | None:
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "ucx_frontend", False):
            return plugin  # type: ignore[no-any-return]
    return None


def _active(config: pytest.Config) -> Run | None:
    return config.stash.get(_RUN, None)


_NO_PROFILE = (
    "these are conformance suites and nothing was judged: give --ucx-profile PROFILE"
    " with --ucx-pcap FILE, --ucx-lab, --ucx-image IMAGE or --ucx-host URL"
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """The run could not be prepared (pytest_configure): bad usage, exit 3, in one line."""
    message = session.config.stash.get(_USAGE_ERROR, None)
    if message is not None and _active(session.config) is None:
        _usage_exit(session.config, message)


def _usage_exit(config: pytest.Config, message: str) -> None:
    if _find_frontend(config) is not None:  # its terminal has no pytest reporter
        sys.stderr.write(f"ucx-conformance: {message}\n")
    pytest.exit(f"ucx-conformance: {message}", returncode=int(ExitCode.USAGE))


def pytest_collection_finish(session: pytest.Session) -> None:
    """Conformance suites collected without a profile: bad usage, as `run` says (exit 3)."""
    config = session.config
    if _active(config) is not None or config.option.collectonly:
        return
    if any(_control_id(item) is not None for item in session.items):
        pytest.exit(f"ucx-conformance: {_NO_PROFILE}", returncode=int(ExitCode.USAGE))


def pytest_unconfigure(config: pytest.Config) -> None:
    run = _active(config)
    if run is not None:
        run.lock.release()  # also when the session ended early (pytest.exit, an interrupt)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Collect and observe the evidence once, before the first control is judged."""
    run = _active(session.config)
    if run is None or session.testscollected == 0 or session.config.option.collectonly:
        return
    if run.observed:  # by the CLI, before pytest started (cli.py `_observe_first`)
        return
    frontend = _find_frontend(session.config)
    try:
        run.observe(frontend.progress if frontend else NULL_PROGRESS)
    except ConformanceError as exc:
        said = _said(session.config, exc)
        session.config.stash[_USAGE_ERROR] = said
        run.close()
        _usage_exit(session.config, said)


def _control_id(item: pytest.Item) -> str | None:
    marker = item.get_closest_marker("ucx_control")
    if marker is None or not marker.args:
        return None
    return str(marker.args[0])


def pytest_runtest_setup(item: pytest.Item) -> None:
    run = _active(item.config)
    control_id = _control_id(item)
    if run is None or control_id is None:
        return
    moot = run.not_applicable(control_id)
    if moot is not None:
        run.record(moot)
        item.ucx_recorded = True  # type: ignore[attr-defined]
        pytest.skip(moot.reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    run = _active(item.config)
    control_id = _control_id(item)
    if run is None or control_id is None:
        return report
    recorded = run.results.get(control_id) if getattr(item, "ucx_recorded", False) else None
    if report.when == "call" and recorded is not None:
        report.ucx_verdict = recorded.verdict.value  # type: ignore[attr-defined]
    if recorded is not None or (report.when in ("setup", "teardown") and report.passed):
        return report
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


# --- the fixture the suites use --------------------------------------------------------------


@pytest.fixture
def ucx_judge(request: pytest.FixtureRequest) -> JudgeControl:
    """Judge the test's control (its `ucx_control` mark) and end the test as pytest shows
    that verdict: pass, fail, skip (not applicable), or an Inconclusive/HarnessError."""
    run = _active(request.config)
    if run is None:
        pytest.skip("not a conformance run: give --ucx-profile")
    control_id = _control_id(request.node)
    if control_id is None:
        raise HarnessError("ucx_judge needs a @pytest.mark.ucx_control(ID) mark")

    def judge() -> None:
        result = run.judge(control_id)
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

    return judge


# --- end of session --------------------------------------------------------------------------


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    run = _active(config)
    if run is None or _USAGE_ERROR in config.stash:
        return
    summary: RunSummary | None = None
    try:
        if exitstatus == pytest.ExitCode.USAGE_ERROR:
            session.exitstatus = int(ExitCode.USAGE)
            return
        summary = run.finish(
            interrupted=exitstatus == pytest.ExitCode.INTERRUPTED,
            judged_any=session.testscollected > 0,
        )
        config.stash[_SUMMARY] = summary
        session.exitstatus = summary.exit_code
    finally:
        # The front end hears of a sealed report before the run tears down: a signal during
        # the teardown must not have it say that no report was written.
        frontend = _find_frontend(config)
        if frontend is not None and summary is not None:
            frontend.finished(summary)
        run.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    config = terminalreporter.config
    summary = config.stash.get(_SUMMARY, None)
    if summary is None or _find_frontend(config) is not None:
        return  # the CLI prints its own summary
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
        from conformance.report.diff_render import headline

        yield f"baseline: {headline(summary.baseline)}"
    if summary.report_dir is not None:
        yield f"signed report: {summary.report_dir}"
    if summary.problem:
        yield f"no report written: {summary.problem}"
    if summary.key_created and summary.key_path is not None:
        yield f"created signing key {summary.key_path} (public key: {summary.key_path}.pub)"
