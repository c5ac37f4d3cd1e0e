"""ucx-conformance command line: a thin front over the pytest suites, plus keygen and verify.

Only this module talks to the terminal: one rich Console on stderr for people; stdout
carries machine output (the report directory path, `lab faults` lines).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import os
import secrets
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from conformance import __version__
from conformance.errors import ConformanceError
from conformance.options import RunOptions, add_arguments, from_namespace, pytest_arguments
from conformance.resources import suites_dir
from conformance.scratch import scratch_dir
from conformance.verdict import ExitCode, Verdict
from conformance.watch.command import add_watch_commands

if TYPE_CHECKING:
    from rich.progress import Progress

    from conformance.run import Run, RunSummary
    from conformance.sign.verified import VerifiedReport


_VERDICT_STYLE = {
    Verdict.PASS: "bold green",
    Verdict.FAIL: "bold red",
    Verdict.INCONCLUSIVE: "bold yellow",
    Verdict.ERROR: "bold magenta",
    Verdict.NOT_APPLICABLE: "dim",
}

# pytest's own exit codes, as they reach `run` when the plugin could not map them.
_PYTEST_INTERNAL_ERROR = 3
_PYTEST_USAGE_ERROR = 4
_PYTEST_NO_TESTS = 5
_VERDICT_WIDTH = max(len(v.value) for v in Verdict)


class RichFrontend:
    """Progress bars and the closing table for `run`; registered as a pytest plugin object."""

    ucx_frontend = True

    def __init__(self, console: Console, start_up_over: Callable[[], None]) -> None:
        self.console = console
        self.summary: RunSummary | None = None
        self.progress = _RichProgress(console)
        self.start_up_over = start_up_over
        self.run: Run | None = None  # prepared and observed before pytest (`_observe_first`)

    def pytest_collection_finish(self) -> None:
        """Start-up is over: the run is prepared, the suites collected, no evidence read yet."""
        self.start_up_over()

    def finished(self, summary: RunSummary) -> None:
        self.summary = summary


class _RichProgress:
    """conformance.progress.Progress drawn with rich (stderr)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._bar: Progress | None = None
        self._task: int | None = None

    def start(self, step: str, total: float | None) -> None:
        self.finish()
        if not self._console.is_terminal or self._console.is_dumb_terminal:
            # rich draws a transient bar only at a terminal that can redraw a line: elsewhere
            # (a pipe, a file, cron, CI, TERM=dumb) nothing would show, and rich.progress is
            # 3 MiB of a run's peak (#17).
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[detail]}"),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(step, total=total, detail="")

    def advance(self, done: float, detail: str = "") -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, detail=detail)  # type: ignore[arg-type]

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            self._task = None


def _shorten(text: str, limit: int = 160) -> str:
    """The terminal table keeps reasons short; report.json and report.html have them whole."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _print_table(console: Console, summary: RunSummary) -> None:
    """For a person at a terminal: a table sized to it, long reasons shortened."""
    from rich.table import Table

    from conformance.catalog import load_catalog

    catalog = load_catalog()
    table = Table(title="ucx-conformance", show_lines=False)
    table.add_column("control", no_wrap=True)
    table.add_column("title")
    table.add_column("verdict", no_wrap=True)
    table.add_column("why")
    for result in summary.results:
        title = catalog.get(result.control_id).title
        why = escape(_shorten(result.reason))
        if result.violations:
            why = f"{why}\n{escape(result.violations[0].summary)}"
            if len(result.violations) > 1:
                why += f" (+{len(result.violations) - 1} more)"
        if summary.waived.get(result.control_id):
            why += f"\n({summary.waived[result.control_id]} waived)"
        style = _VERDICT_STYLE[result.verdict]
        table.add_row(result.control_id, title, f"[{style}]{result.verdict.value}[/]", why)
    console.print(table)


def _print_lines(console: Console, summary: RunSummary) -> None:
    """For a pipe or a CI log: one line per control with the whole reason, never wrapped."""
    width = max(len(result.control_id) for result in summary.results)
    indent = " " * (width + 2 + _VERDICT_WIDTH + 2)
    for result in summary.results:
        line = f"{result.control_id:<{width}}  {result.verdict.value:<{_VERDICT_WIDTH}}  "
        console.print(escape(line + result.reason), soft_wrap=True, highlight=False)
        if result.violations:
            more = len(result.violations) - 1
            extra = f" (+{more} more)" if more else ""
            console.print(
                escape(indent + result.violations[0].summary + extra),
                soft_wrap=True,
                highlight=False,
            )
        if summary.waived.get(result.control_id):
            console.print(f"{indent}({summary.waived[result.control_id]} waived)", highlight=False)


def _print_summary(console: Console, summary: RunSummary) -> None:
    """The closing summary on stderr: a table at a terminal, whole lines anywhere else."""
    if summary.results and console.is_terminal:
        _print_table(console, summary)
    elif summary.results:
        _print_lines(console, summary)
    _print_extras(console, summary)
    _print_coverage(console, summary)
    style = _VERDICT_STYLE[summary.verdict]
    console.print(f"verdict: [{style}]{summary.verdict.value}[/] (exit {summary.exit_code})")
    if summary.report_dir is not None:
        console.print(f"signed report: {escape(str(summary.report_dir))}")
    if summary.problem:
        console.print(f"[red]no report written:[/] {escape(summary.problem)}")
    if summary.key_created and summary.key_path is not None:
        console.print(
            f"created signing key {summary.key_path}; pin {summary.key_path}.pub when verifying"
        )


def _print_extras(console: Console, summary: RunSummary) -> None:
    """Profile and waiver warnings and the baseline headline, after the table."""
    for note in summary.profile_warnings:
        console.print(f"[yellow]{escape(note)}[/]")
    for note in summary.waiver_notes:
        console.print(f"[yellow]waiver warning:[/] {escape(note)}")
    if summary.baseline is not None:
        from conformance.report.diff_render import headline

        text = headline(summary.baseline)
        style = "red" if summary.baseline.get("regression") else "green"
        console.print(f"baseline: [{style}]{escape(text)}[/] (report.json `baseline`)")


# Coverage warnings printed under the table; report.html and report.json have them all.
MAX_COVERAGE_LINES = 6


def _print_coverage(console: Console, summary: RunSummary) -> None:
    """What the window could not see (decision 11): the written report's warnings."""
    if summary.report_dir is None:
        return
    from conformance.report.coverage_statement import report_warnings

    warnings = report_warnings(summary.report_dir)
    for line in warnings[:MAX_COVERAGE_LINES]:
        console.print(f"[yellow]not seen:[/] {escape(line)}")
    if len(warnings) > MAX_COVERAGE_LINES:
        console.print(
            f"not seen: {len(warnings) - MAX_COVERAGE_LINES} more in report.html"
            ' ("What this window could not see")'
        )


_AUTOLOAD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"
_UNUSED_PLUGINS = (
    "doctest",
    "pastebin",
    "junitxml",
    "stepwise",
    "setuponly",
    "setupplan",
    "unittest",
    "debugging",
    "legacypath",
    "tmpdir",
    "monkeypatch",
    "recwarn",
    "subtests",
)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _cmd_run(args: argparse.Namespace, console: Console) -> int:
    given = from_namespace(args)
    if given.profile is None and not given.lab:
        console.print("[red]ucx-conformance run:[/] --profile is required (or --lab)")
        return int(ExitCode.USAGE)
    if not (given.pcaps or given.lab or given.image or given.host):
        console.print(
            "[red]ucx-conformance run:[/] give --pcap FILE, --lab, --image IMAGE or --host URL"
        )
        return int(ExitCode.USAGE)
    return _judge(pytest_arguments(args), console, verbose=args.verbose, given=given)


@contextlib.contextmanager
def _collector_paused_for_start_up() -> Iterator[Callable[[], None]]:
    """Pause the cyclic garbage collector while a run starts up; the yielded function ends
    the pause.

    Start-up (pytest and its plugins, the harness's modules, the profile, the suites)
    allocates a few hundred thousand objects that live as long as the run, and next to no
    garbage: the collector would walk them dozens of times for nothing. When start-up is
    over they move to the permanent generation (gc.freeze) before it resumes, or its next
    collection would walk them all at once (together: 7% of a small capture's run). On
    leaving they are handed back (gc.unfreeze, as Run.close does with what Run.observe
    froze), so an in-process caller (the tests) keeps nothing frozen.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    frozen = False

    def start_up_over() -> None:
        nonlocal frozen
        if was_enabled and not gc.isenabled():
            frozen = gc.get_freeze_count() == 0  # objects someone else froze stay theirs
            if frozen:
                gc.freeze()
            gc.enable()

    try:
        yield start_up_over
    finally:
        if frozen:
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def _judge(
    options: list[str],
    console: Console,
    *,
    verbose: bool = False,
    given: RunOptions | None = None,
) -> int:
    """Run the conformance suites through pytest with the plugin's `options`; a run of
    captures alone (`given`) is prepared and its captures observed first (`_observe_first`)."""
    frontend: RichFrontend | None = None
    try:
        # One span of signal handling over both steps: a SIGINT between them is not lost.
        with _collector_paused_for_start_up() as start_up_over, _signals_as_interrupts():
            frontend = RichFrontend(console, start_up_over)
            try:
                code = _observe_first(given, frontend) if given is not None else None
                if code is None:
                    code = _pytest_main(_pytest_args(options, verbose=verbose), frontend)
            finally:
                if frontend.run is not None:  # pytest ended it, or was stopped before it could
                    frontend.run.close()
        summary = frontend.summary
        if summary is not None:
            _print_summary(console, summary)
            if summary.report_dir is not None:
                print(summary.report_dir)
            return summary.exit_code
    except KeyboardInterrupt:
        sealed = frontend.summary if frontend is not None else None
        if sealed is None or sealed.report_dir is None:
            raise  # nothing sealed: main says so
        return _interrupted_after_seal(console, sealed)
    return _unmapped_exit(code)


def _interrupted_after_seal(console: Console, summary: RunSummary) -> int:
    """A signal that lands once the report is sealed (while the run tears down or the summary
    is printed): the report is whole and is said to be, not "no report written". A failure
    it records stays the exit status (a leak found is a fail); anything else is incomplete,
    as the run did not end on its own."""
    console.print(
        f"[yellow]interrupted[/] after the report was sealed: {escape(str(summary.report_dir))}"
        f" (verdict {summary.verdict.value}; check it with `ucx-conformance verify`)"
    )
    print(summary.report_dir)
    return int(ExitCode.FAILED if summary.exit_code == ExitCode.FAILED else ExitCode.INCOMPLETE)


def _pytest_args(options: list[str], *, verbose: bool) -> list[str]:
    """pytest's command line: the suites, only our plugin, the plugin's `options`."""
    suites = suites_dir()
    pytest_args = [
        str(suites),
        # Explicit ini and rootdir: pytest would otherwise take the common ancestor of every
        # path-like argument (profile, captures) and could pick up a project's own settings.
        "-c",
        str(suites / "pytest.ini"),
        "--rootdir",
        str(suites),
        "-p",
        "no:cacheprovider",
        *options,
    ]
    # Only our plugin: third-party pytest plugins installed beside the harness have no say in
    # a conformance run (and must not make traffic of their own). unraisableexception runs
    # gc.collect() five times at exit, which costs a second with millions of packets' objects.
    pytest_args += ["-p", "conformance.plugin", "-p", "no:unraisableexception"]
    # The suites hold no assert statements to rewrite, and none of these plugins has a say
    # in a conformance run (the report writes its own junit.xml; the suites use no unittest
    # classes, debugger, tmp_path, monkeypatch, recwarn or subtests): each costs start-up time.
    pytest_args += ["--assert=plain"]
    for unused in _UNUSED_PLUGINS:
        pytest_args += ["-p", f"no:{unused}"]
    if verbose:
        pytest_args += ["--no-header", "-rN", "-v"]
    else:
        # The rich frontend is the only output; pytest's terminal reporter (and the
        # options it owns, such as -q and -r) is switched off.
        pytest_args += ["-p", "no:terminal"]
    return pytest_args


def _observe_first(given: RunOptions, frontend: RichFrontend) -> int | None:
    """A run of captures alone: prepare it and observe its captures before pytest starts,
    and hand the run to the plugin (`frontend.run`); None then, else the exit status (a
    usage error, said; an interruption, summed up in `frontend.summary`).

    #17: pytest, the judges and the report then load into the memory the walk let go, not
    on top of the walk's peak (8 MiB of pytest alone). Labs, images and hosts keep the
    plugin's order (their sources stand up and tear down inside pytest's session).
    """
    if not given.pcaps or given.lab or given.image or given.host:
        return None
    from conformance.run import INTERRUPTED, Run

    try:
        run = Run.prepare(given, Path.cwd())
    except ConformanceError as exc:
        sys.stderr.write(f"ucx-conformance: {exc}\n")
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:  # nothing held yet: Run.prepare lets go of what it took
        sys.stderr.write(f"ucx-conformance: {INTERRUPTED}\n")
        return int(ExitCode.INCOMPLETE)
    frontend.run = run  # from here on `_judge` closes it, however the run ends
    try:
        frontend.start_up_over()
        run.observe(frontend.progress)
    except ConformanceError as exc:
        sys.stderr.write(f"ucx-conformance: {exc}\n")
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        frontend.finished(run.finish(interrupted=True))
        return int(ExitCode.INCOMPLETE)
    return None


@contextlib.contextmanager
def _signals_as_interrupts() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every source cleans up (lab namespaces, containers)
    and no half report stays behind, whenever it arrives. SIGINT gets Python's own handler
    back: a shell starts background jobs (`cmd &` in a script) with SIGINT ignored, and
    `kill -INT PID` must still stop the run as Ctrl-C does."""
    saved_term = signal.signal(signal.SIGTERM, _terminate)
    saved_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, saved_int)
        signal.signal(signal.SIGTERM, saved_term)


def _pytest_main(pytest_args: list[str], frontend: RichFrontend) -> int:
    """pytest.main with no plugin but ours, its stdout on stderr."""
    import pytest

    # pytest writes its own output to stdout; stdout is for machine output here.
    saved_autoload = os.environ.get(_AUTOLOAD)
    os.environ[_AUTOLOAD] = "1"
    try:
        with contextlib.redirect_stdout(sys.stderr):  # `_judge` handles the signals
            return int(pytest.main(pytest_args, plugins=[frontend]))
    finally:
        if saved_autoload is None:
            os.environ.pop(_AUTOLOAD, None)
        else:
            os.environ[_AUTOLOAD] = saved_autoload


def _unmapped_exit(code: int) -> int:
    """Exit status when the plugin could not produce a summary (interface.md)."""
    if code == int(ExitCode.USAGE):
        return code  # the plugin's own usage/profile error (message already printed)
    if code == _PYTEST_USAGE_ERROR:
        return int(ExitCode.USAGE)
    if code in (0, 1, _PYTEST_NO_TESTS, _PYTEST_INTERNAL_ERROR):
        return int(ExitCode.INCOMPLETE)  # nothing proven, or the harness broke
    return int(ExitCode.INCOMPLETE)


def _cmd_keygen(args: argparse.Namespace, console: Console) -> int:
    from conformance.report_dirs import refuse_inside_report
    from conformance.sign.keys import fingerprint, generate_key, load_public_key

    given = args.key_path
    if not given or given.endswith("/") or Path(given).name in ("", ".", ".."):
        raise ConformanceError(f"keygen {given!r}: give a file name for the private key")
    refuse_inside_report(Path(given), "KEY_PATH")
    path = generate_key(Path(given))
    pub = load_public_key(Path(f"{path}.pub"))
    console.print(f"private key: {path} (mode 0600)")
    console.print(f"public key:  {path}.pub")
    console.print(f"fingerprint: {fingerprint(pub)}")
    return 0


def _cmd_verify(args: argparse.Namespace, console: Console) -> int:

    from conformance.errors import VerifyError
    from conformance.sign.verify import verify_report

    try:
        result = verify_report(Path(args.report_dir), Path(args.key) if args.key else None)
    except VerifyError as exc:
        console.print(f"[red]FAILED[/] {escape(str(exc))}")
        return 1
    if not result.ok:
        for problem in result.problems:
            console.print(f"[red]FAILED[/] {escape(str(problem))}")
        return 1
    console.print(
        f"[green]integrity ok[/]: signature and {result.files_checked} file hashes match key "
        f"{result.fingerprint}"
    )
    if not result.pinned:
        console.print(
            "[yellow]signer not pinned[/]: checked against the public key shipped inside the "
            "report. Re-run with --key PUBKEY (the signer's .pub you trust) to verify the signer."
        )
        return 2
    console.print("[green]verified[/]: signed by the pinned key")
    return 0


def _open_input(
    console: Console, path: str, key: str | None, allow_unpinned: bool
) -> VerifiedReport:
    """A report given to diff/export, verified (VerifyError: exit 3, naming the file)."""
    from conformance.sign.verified import open_verified

    report = open_verified(Path(path), Path(key) if key else None, allow_unpinned=allow_unpinned)
    if not report.pinned:
        console.print(
            f"[yellow]signer not pinned[/]: {escape(path)} checked for integrity only, against"
            f" the key inside it ({report.fingerprint})"
        )
    return report


def _write_output(data: bytes, output: str | None) -> None:
    """Machine output: to stdout, or to a new file (never overwriting one, never into a
    signed report directory, never half-written: it appears whole or not at all)."""
    if output is None or output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    if not output:
        raise ConformanceError('-o "": give a file name, or - for stdout')
    from conformance.report_dirs import refuse_inside_report

    target = Path(output)
    refuse_inside_report(target, "-o")
    try:
        _create_whole(target, data)
    except FileExistsError as exc:
        raise ConformanceError(f"{output}: exists; choose another -o FILE") from exc
    except OSError as exc:
        raise ConformanceError(f"{output}: cannot write: {exc.strerror or exc}") from exc


# link(2) is refused by some file systems (FAT, some FUSE and network mounts).
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK)


def _create_whole(target: Path, data: bytes) -> None:
    """Create `target` holding `data`: written to a hidden file beside it first, then linked
    to its name, which fails if the name exists (FileExistsError) and is never seen partly
    written. An interrupt or a full disk leaves nothing behind under either name."""
    if target.exists() or target.is_symlink():
        raise FileExistsError(errno.EEXIST, "exists", str(target))
    temporary = target.parent / f".{target.name[:64]}.{secrets.token_hex(8)}.part"
    # Mode 0666 less the umask, as any new file (mkstemp's 0600 would hide it from others).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temporary, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, target)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            with target.open("xb") as handle:  # no atomic no-replace here: exclusive create
                handle.write(data)
    finally:
        os.unlink(temporary)


def _cmd_diff(args: argparse.Namespace, console: Console) -> int:
    from conformance.compare.baseline import snapshot_of
    from conformance.compare.diff import diff
    from conformance.report.diff_render import headline, render

    old_key = args.old_key or args.key
    old = snapshot_of(_open_input(console, args.old, old_key, args.allow_unpinned))
    new = snapshot_of(_open_input(console, args.new, args.key, args.allow_unpinned))
    document = diff(old, new)
    # A lone surrogate (undecodable bytes a report kept) is written as its \\uXXXX escape.
    _write_output(render(document, args.format).encode("utf-8", "backslashreplace"), None)
    style = "red" if document["regression"] else "green"
    console.print(f"[{style}]{escape(headline(document))}[/]")
    return int(ExitCode.FAILED) if document["regression"] else 0


def _cmd_export(args: argparse.Namespace, console: Console) -> int:
    from conformance.export import exporter

    report = _open_input(console, args.report_dir, args.key, args.allow_unpinned)
    chosen = exporter(args.format)
    key = None
    if chosen.signed:
        from conformance.sign.keys import ensure_key

        key, key_path, created = ensure_key(Path(args.sign_key) if args.sign_key else None)
        if created:
            console.print(f"created signing key {key_path}; pin {key_path}.pub when verifying")
    _write_output(chosen.export(report, key), args.output)
    where = args.output or "stdout"
    console.print(f"{chosen.name}: wrote {escape(where)} from {escape(args.report_dir)}")
    return 0


def _cmd_lab_faults(args: argparse.Namespace, console: Console) -> int:
    from conformance.lab import list_faults

    for name, description in list_faults():
        print(f"{name}\t{description}")
    return 0


def _cmd_lab_build_image(args: argparse.Namespace, console: Console) -> int:
    import subprocess

    from conformance.container.image import build_reference_image

    console.print("building the reference target image (debootstrap, docker import; cached)")
    try:
        tag = build_reference_image()
    except (OSError, subprocess.CalledProcessError) as exc:
        console.print(f"[red]ucx-conformance lab build-image:[/] {escape(str(exc))}")
        return int(ExitCode.INCOMPLETE)
    print(tag)
    return 0


def _cmd_profile_draft(args: argparse.Namespace, console: Console) -> int:
    from conformance.draft import DraftRequest, draft_profile

    request = DraftRequest(
        captures=tuple(Path(p) for p in args.pcap),
        targets=tuple(args.target),
        mode=args.mode,
        networks=tuple(args.network),
        name=args.name,
    )
    draft = draft_profile(request)
    _write_output(draft.text.encode("utf-8"), args.output)
    for note in draft.notes:
        console.print(f"[yellow]review:[/] {escape(note)}")
    where = args.output or "stdout"
    console.print(
        f"wrote a draft profile to {escape(where)}: review every entry, remove `draft: true`,"
        " then `ucx-conformance profile check` it"
    )
    return 0


def _cmd_profile_check(args: argparse.Namespace, console: Console) -> int:
    from conformance.profile import load_profile
    from conformance.profile.check import explain, warnings

    profile = load_profile(Path(args.profile))
    print("\n".join(explain(profile)))
    found = warnings(profile)
    print()
    for warning in found:
        print(warning)
    print(f"{len(found)} warning{'' if len(found) == 1 else 's'}" if found else "no warnings")
    return 0


def _cmd_profile_schema(args: argparse.Namespace, console: Console) -> int:
    from conformance.profile.schema import shipped

    _write_output(shipped().encode("utf-8"), args.output)
    return 0


def _add_profile_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """profile draft / check / schema: writing the deployment profile (docs/profile.md)."""
    profile = sub.add_parser("profile", help="draft, check and describe deployment profiles")
    profile_sub = profile.add_subparsers(dest="profile_command", required=True)
    draft = profile_sub.add_parser("draft", help="draft a profile from captures, for review")
    draft.add_argument(
        "--pcap", action="append", required=True, metavar="FILE", help="capture (repeatable)"
    )
    draft.add_argument(
        "--target", action="append", default=[], metavar="ADDR", help="the UCX host (repeatable)"
    )
    draft.add_argument("--mode", choices=("air-gapped", "hybrid"), default="air-gapped")
    draft.add_argument(
        "--network",
        action="append",
        default=[],
        metavar="CIDR",
        help="a network of the Customer Environment (repeatable; default: inferred on-link)",
    )
    draft.add_argument("--name", help="the profile's name (default: from the first capture)")
    draft.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    draft.set_defaults(handler=_cmd_profile_draft)
    check = profile_sub.add_parser("check", help="explain a profile and warn about likely mistakes")
    check.add_argument("profile", metavar="PROFILE")
    check.set_defaults(handler=_cmd_profile_check)
    schema = profile_sub.add_parser("schema", help="print the profile's JSON Schema (editors)")
    schema.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    schema.set_defaults(handler=_cmd_profile_schema)


class _Version(argparse.Action):
    """`--version`: the harness's version, and whether its compiled hot loops are in use
    (found only when asked: loading the decoder takes a moment every other command needs not)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        from conformance.decode import compiled

        print(f"{parser.prog} {__version__}\ndecoder: {compiled.describe()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ucx-conformance",
        description="Prove, with network evidence, that a UCX install keeps its deployment "
        "mode's promises; write signed, offline-verifiable reports.",
    )
    parser.add_argument(
        "--version", action=_Version, help="show the version and which decoder runs, and exit"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="judge captures or a live target against a profile")
    add_arguments(run)
    run.add_argument("-v", "--verbose", action="store_true", help="show pytest's own output")
    run.set_defaults(handler=_cmd_run)

    verify = sub.add_parser("verify", help="verify a signed report directory offline")
    verify.add_argument("report_dir", metavar="REPORT_DIR")
    verify.add_argument("--key", metavar="PUBKEY", help="the signer's public key (PEM) to pin")
    verify.set_defaults(handler=_cmd_verify)

    _add_after_run_commands(sub)
    add_watch_commands(sub)

    keygen = sub.add_parser("keygen", help="write an Ed25519 signing key pair")
    keygen.add_argument("key_path", metavar="KEY_PATH")
    keygen.set_defaults(handler=_cmd_keygen)

    _add_profile_commands(sub)

    lab = sub.add_parser("lab", help="the built-in lab")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True)
    faults = lab_sub.add_parser("faults", help="list the reference target's fault switches")
    faults.set_defaults(handler=_cmd_lab_faults)
    build_image = lab_sub.add_parser(
        "build-image",
        help="build the reference target's container image (root, debootstrap, Docker engine)",
    )
    build_image.set_defaults(handler=_cmd_lab_build_image)
    return parser


def _add_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key", metavar="PUB", help="the signer's public key (PEM) to pin")
    parser.add_argument(
        "--allow-unpinned",
        action="store_true",
        help="without --key: check integrity against the key inside the report (not pinned)",
    )


def _cmd_rejudge(args: argparse.Namespace, console: Console) -> int:
    """Judge a verified report's evidence again into a new signed report (interface.md)."""
    import json
    import shutil

    from conformance.evidence.report_copy import EVIDENCE, LOGS_FILE

    if args.new_report_dir:  # the run refuses an empty --report-dir itself
        _check_rejudge_target(Path(args.report_dir), Path(args.new_report_dir))
    source = _open_input(console, args.report_dir, args.key, args.allow_unpinned)
    if not args.profile and not source.has(f"{EVIDENCE}/profile.yaml"):
        raise ConformanceError(
            f"{args.report_dir}: holds no {EVIDENCE}/profile.yaml to judge against;"
            " give --profile P"
        )
    work = scratch_dir("rejudge")
    try:
        # Only copies made through the verified reader are judged: a byte the signature
        # does not cover is never read, even if the directory changes meanwhile.
        for name in sorted(source.subjects):
            if name.startswith(f"{EVIDENCE}/"):
                source.copy_to(name, work / name)
        logs = source.report().get("evidence_logs") or {}
        (work / LOGS_FILE).write_text(json.dumps(logs))
        profile = args.profile or str(work / EVIDENCE / "profile.yaml")
        options = [
            "--ucx-profile",
            profile,
            "--ucx-evidence-dir",
            str(work),
            "--ucx-from-report",
            str(Path(args.report_dir).absolute()),
            "--ucx-from-envelope",
            source.envelope_sha256,
            "--ucx-report-dir",
            args.new_report_dir,
        ]
        if args.sign_key:
            options += ["--ucx-sign-key", args.sign_key]
        if args.waivers:
            options += ["--ucx-waivers", args.waivers]
        return _judge(options, console, verbose=args.verbose)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _check_rejudge_target(source: Path, target: Path) -> None:
    """The new report must not replace the report it judges again (that would lose what the
    user had; the run itself refuses a directory inside a signed report)."""
    try:
        same = source.exists() and target.exists() and source.samefile(target)
    except OSError:
        same = False
    if same or source.absolute() == target.absolute():
        raise ConformanceError(
            f"--report-dir {target}: is the report being judged again ({source});"
            " rejudge writes a new report beside it: choose another directory"
        )


def _add_after_run_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """diff, rejudge and export: commands on signed report directories (exit 3 if one does not
    verify)."""
    from conformance.export import FORMAT_NAMES
    from conformance.report.diff_render import FORMATS

    diff = sub.add_parser("diff", help="what changed between two signed reports")
    diff.add_argument("old", metavar="OLD_REPORT")
    diff.add_argument("new", metavar="NEW_REPORT")
    _add_input_options(diff)
    diff.add_argument("--old-key", metavar="PUB", help="OLD_REPORT's signer, if not --key")
    diff.add_argument("--format", choices=FORMATS, default="text")
    diff.set_defaults(handler=_cmd_diff)

    rejudge = sub.add_parser(
        "rejudge", help="judge a signed report's evidence again into a new signed report"
    )
    rejudge.add_argument("report_dir", metavar="REPORT_DIR")
    _add_input_options(rejudge)
    rejudge.add_argument(
        "--profile", help="an amended profile (default: the report's own evidence/profile.yaml)"
    )
    rejudge.add_argument("--waivers", metavar="W", help="waiver file (YAML) to apply")
    rejudge.add_argument(
        "--report-dir", dest="new_report_dir", required=True, metavar="NEW", help="the new report"
    )
    rejudge.add_argument("--sign-key", help="Ed25519 private key (default: as run)")
    rejudge.add_argument("-v", "--verbose", action="store_true", help="show pytest's own output")
    rejudge.set_defaults(handler=_cmd_rejudge)

    export = sub.add_parser("export", help="a signed report as OSCAL, SARIF or an attestation")
    export.add_argument("report_dir", metavar="REPORT_DIR")
    export.add_argument("--format", choices=FORMAT_NAMES, required=True)
    _add_input_options(export)
    export.add_argument("--sign-key", help="test-result: Ed25519 private key (default as run)")
    export.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout)")
    export.set_defaults(handler=_cmd_export)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C in every command, so each cleans up what it was writing
    (an export's hidden file, a key pair's first half) and says it was interrupted."""
    try:
        saved = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (an embedding caller): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse `argv`, run one subcommand, return its exit status."""
    # soft_wrap: never break a path or fingerprint across lines (users copy them).
    # emoji=False: a path or value holding ":x:" is printed as written, not as an emoji.
    console = Console(stderr=True, soft_wrap=True, emoji=False)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, bad usage is 2 → ours is 3
        return 0 if exc.code == 0 else int(ExitCode.USAGE)
    try:
        with _sigterm_as_interrupt():
            code = int(args.handler(args, console))
    except ConformanceError as exc:
        console.print(f"[red]ucx-conformance:[/] {escape(str(exc))}")
        return int(ExitCode.USAGE)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: no report written")
        return int(ExitCode.INCOMPLETE)
    if argv is None:
        # The process's own command line: it ends now. Objects still alive are left to the
        # exit rather than walked once more by the cyclic collector at interpreter shutdown
        # (measured: 0.15-0.2 s after judging 2M packets). Every file is closed by now.
        gc.freeze()
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
