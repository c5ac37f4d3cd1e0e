"""The `watch` and `verify-chain` subcommands (cli.py adds them with `add_watch_commands`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from conformance.errors import ConformanceError, VerifyError
from conformance.verdict import ExitCode
from conformance.watch.periods import MIN_PERIOD_S, duration

DEFAULT_PERIOD = "24h"
# The history table's width when stdout is a file or a pipe (a terminal gives its own).
TABLE_WIDTH = 160


def add_watch_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`watch` and `verify-chain` (interface.md)."""
    watch = sub.add_parser(
        "watch", help="judge rotated captures as they close: one signed report per period"
    )
    watch.add_argument("--profile", required=True, help="the deployment profile (YAML)")
    source = watch.add_mutually_exclusive_group(required=True)
    source.add_argument("--capture-dir", metavar="DIR", help="where rotated captures appear")
    source.add_argument(
        "--capture",
        metavar="IFACE",
        help="capture IFACE with dumpcap into a ring buffer under REPORT_ROOT/.watch/ring",
    )
    source.add_argument(
        "--host",
        metavar="URI",
        help="stream tcpdump from a live host (ssh://user@host, local://, docker://NAME)",
    )
    watch.add_argument(
        "--host-interface",
        metavar="IFACE",
        help="--host: the interface tcpdump captures (default: the profile's"
        " host.capture_interface, else any)",
    )
    watch.add_argument("--report-root", required=True, metavar="R", help="the chain's directory")
    watch.add_argument("--period", default=DEFAULT_PERIOD, help="period length (default 24h)")
    watch.add_argument("--sign-key", help="Ed25519 private key (default: as run)")
    watch.add_argument("--waivers", metavar="W", help="waiver file (YAML) for every period")
    watch.add_argument(
        "--executor", help="where captures are read: local (default), local:N, serial, dask://H:P"
    )
    watch.add_argument("--poll", default="2s", help="time between listings (default 2s)")
    watch.add_argument(
        "--settle", default="2s", help="a file unchanged this long may be closed (default 2s)"
    )
    watch.add_argument(
        "--quiet",
        default="120s",
        help="a file nobody is seen writing is closed after this long (default 120s)",
    )
    watch.add_argument(
        "--grace", default="10s", help="a period's report waits this long after it (default 10s)"
    )
    watch.add_argument(
        "--gap-tolerance",
        default="60s",
        help="silence between capture files shorter than this is no gap (default 60s)",
    )
    watch.add_argument(
        "--ring-seconds",
        default="60s",
        help="--capture, --host: seconds per ring file (default 60s)",
    )
    watch.set_defaults(handler=_cmd_watch)

    chain = sub.add_parser(
        "verify-chain", help="verify a watch's period reports and the chain between them"
    )
    chain.add_argument("report_root", metavar="R")
    chain.add_argument("--key", metavar="PUB", help="the signer's public key (PEM) to pin")
    chain.add_argument(
        "--allow-unpinned",
        action="store_true",
        help="without --key: check integrity against the key inside each report (not pinned)",
    )
    chain.add_argument("--format", choices=("text", "json"), default="text")
    chain.set_defaults(handler=_cmd_verify_chain)


def _cmd_watch(args: argparse.Namespace, console: Console) -> int:
    from conformance.watch.watcher import DiskFullError, Watch, WatchLog, WatchOptions

    root = Path(args.report_root)
    if duration(args.period, "--period") < MIN_PERIOD_S:
        raise ConformanceError(f"--period {args.period}: at least {MIN_PERIOD_S:g} s")
    with _capture_dir(args, root) as capture_dir:
        options = WatchOptions(
            profile=Path(args.profile),
            capture_dir=capture_dir,
            report_root=root,
            period=duration(args.period, "--period"),
            sign_key=Path(args.sign_key) if args.sign_key else None,
            waivers=Path(args.waivers) if args.waivers else None,
            executor=args.executor,
            poll=duration(args.poll, "--poll"),
            settle=duration(args.settle, "--settle"),
            quiet=duration(args.quiet, "--quiet"),
            grace=duration(args.grace, "--grace"),
            gap_tolerance=duration(args.gap_tolerance, "--gap-tolerance"),
        )
        watch = Watch(options, WatchLog(lambda line: console.print(escape(line))))
        watch.start()
        try:
            console.print(
                f"watching {escape(str(capture_dir))}: periods of {options.period:g} s,"
                f" reports in {escape(str(root))}"
            )
            watch.run()
        except DiskFullError as exc:
            console.print(f"[red]ucx-conformance watch:[/] {escape(str(exc))}")
            return int(ExitCode.INCOMPLETE)
        finally:
            watch.close()
    console.print("watch stopped; state saved")
    return 0


@contextlib.contextmanager
def _capture_dir(args: argparse.Namespace, root: Path) -> Iterator[Path]:
    """The directory to watch: --capture-dir, dumpcap's ring buffer for --capture, or the
    host's tcpdump stream cut into files for --host."""
    if args.capture_dir is not None:
        yield Path(args.capture_dir)
        return
    if args.host is not None:
        from conformance.watch.stream_ring import StreamRing

        stream = StreamRing(_host_argv(args), root, duration(args.ring_seconds, "--ring-seconds"))
        stream.start()
        try:
            yield stream.directory
        finally:
            stream.stop()
        return
    from conformance.watch.ring import RingCapture

    ring = RingCapture(args.capture, root, duration(args.ring_seconds, "--ring-seconds"))
    ring.start()
    try:
        yield ring.directory
    finally:
        ring.stop()


def _host_argv(args: argparse.Namespace) -> list[str]:
    """The local command streaming the host's tcpdump (host/remote_capture.py's, no end)."""
    from conformance.host.options import host_options
    from conformance.host.remote_capture import RemoteCapture
    from conformance.profile import load_profile

    options = host_options(load_profile(Path(args.profile)))
    interface = args.host_interface or options.capture_interface or "any"
    # seconds 0: `timeout 0` runs tcpdump until the watch stops it.
    capture = RemoteCapture(args.host, options, interface, 0, Path("/dev/null"))
    try:
        return capture.argv()
    except ValueError as exc:
        raise ConformanceError(f"--host {args.host}: {exc}") from exc


def _cmd_verify_chain(args: argparse.Namespace, console: Console) -> int:
    from conformance.watch.chain import chain_document, history_table, verify_chain

    try:
        result = verify_chain(
            Path(args.report_root),
            Path(args.key) if args.key else None,
            allow_unpinned=args.allow_unpinned,
        )
    except VerifyError as exc:
        raise ConformanceError(str(exc)) from exc
    if args.format == "json":
        sys.stdout.write(json.dumps(chain_document(result), indent=2) + "\n")
    else:
        from rich.table import Table  # only here: `run` and `watch` need not load it

        table = Table(title=f"{len(result.rows)} periods")
        for column in ("period", "verdict", "not passed", "new destinations", "gaps"):
            table.add_column(column, overflow="fold")
        for row in history_table(result):
            table.add_row(*(escape(cell) for cell in row))
        out = Console(emoji=False)  # a ":x:" in a report's text stays as written
        if not out.is_terminal:
            out.width = TABLE_WIDTH
        out.print(table)
    for problem in result.problems:
        console.print(f"[red]FAILED[/] {escape(problem)}")
    if not result.ok:
        return 1
    console.print(f"[green]chain ok[/]: {len(result.rows)} periods; head envelope {result.head}")
    if not result.pinned:
        console.print("[yellow]signer not pinned[/]: integrity only (give --key PUB)")
        return 2
    return 0
