"""The run's options, declared once: `ucx-conformance run` (argparse) and the pytest plugin
(`--ucx-...`) both read this table, and `RunOptions` is what either front hands the run.

`run --pcap F` is `pytest suites/ --ucx-pcap F`: the CLI passes each option it was given to
pytest under the plugin's name, so the two fronts cannot drift apart.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

Kind = Literal["value", "list", "flag"]


@dataclass(frozen=True, slots=True)
class Option:
    """One run option: its CLI flag, its pytest flag, how it is given, what it means."""

    dest: str  # RunOptions field
    flag: str  # `run --flag`
    kind: Kind  # one value, repeatable, or a switch
    help: str
    metavar: str | None = None
    cli: bool = True  # False: only `rejudge` sets it, through the plugin (not a `run` option)

    @property
    def pytest_flag(self) -> str:
        return "--ucx-" + self.flag.removeprefix("--")


OPTIONS: Final[tuple[Option, ...]] = (
    Option("profile", "--profile", "value", "deployment profile (YAML)", "PROFILE"),
    Option("pcaps", "--pcap", "list", "capture file, pcap or pcapng (repeatable)", "FILE"),
    Option("lab", "--lab", "flag", "stand the built-in lab up around the reference target"),
    Option("faults", "--fault", "list", "lab: switch on a reference-target fault", "NAME"),
    Option("image", "--image", "value", "run this container image as the lab's target", "IMAGE"),
    Option("env", "--env", "list", "with --image: environment variable (repeatable)", "K=V"),
    Option(
        "volumes",
        "--volume",
        "list",
        "with --image: bind mount (repeatable)",
        "HOST:CONTAINER[:ro]",
    ),
    Option("host", "--host", "value", "live host: ssh://user@addr, winrm://..., local://", "URL"),
    Option(
        "tls_keylogs",
        "--tls-keylog",
        "list",
        "with --pcap: the target's TLS key log (SSLKEYLOGFILE, NSS format; repeatable)",
        "FILE",
    ),
    Option(
        "content_logs",
        "--content-log",
        "list",
        "with --pcap: HAR 1.2 of an intercepting proxy (repeatable)",
        "FILE.har",
    ),
    Option(
        "keep_secrets",
        "--keep-secrets",
        "flag",
        "keep TLS keys (as a pcapng Decryption Secrets Block) and HARs in the report",
    ),
    Option(
        "report_dir",
        "--report-dir",
        "value",
        "report directory (default: reports/<profile>-<UTC time>)",
        "DIR",
    ),
    Option(
        "sign_key",
        "--sign-key",
        "value",
        "Ed25519 private key, PKCS#8 PEM (default: created once and reused)",
        "KEY",
    ),
    Option(
        "executor",
        "--executor",
        "value",
        "where captures are read: local (every core, the default; one large file in parts"
        " where there are 3+ cores), local:N, serial (one process, one pass), or"
        " dask://HOST:PORT (extra [scale])",
        "EXECUTOR",
    ),
    Option("waivers", "--waivers", "value", "waiver file (YAML): approved exceptions", "W"),
    Option(
        "baseline",
        "--baseline",
        "value",
        "earlier signed report: what changed goes into report.json `baseline`",
        "OLD_REPORT",
    ),
    Option(
        "baseline_key",
        "--baseline-key",
        "value",
        "public key the baseline is signed with (default: this run's signing key)",
        "PUB",
    ),
    Option(
        "evidence_dir",
        "--evidence-dir",
        "value",
        "rejudge: a verified copy of a report's evidence/ (made by `ucx-conformance rejudge`)",
        "DIR",
        cli=False,
    ),
    Option(
        "from_report",
        "--from-report",
        "value",
        "rejudge: the report whose evidence is judged again",
        "REPORT_DIR",
        cli=False,
    ),
    Option(
        "from_envelope",
        "--from-envelope",
        "value",
        "rejudge: the SHA-256 of that report's verified envelope",
        "SHA256",
        cli=False,
    ),
)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The options of one run, from either front."""

    profile: Path | None = None
    pcaps: tuple[Path, ...] = ()
    lab: bool = False
    faults: tuple[str, ...] = ()
    image: str | None = None
    env: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    host: str | None = None
    tls_keylogs: tuple[Path, ...] = ()
    content_logs: tuple[Path, ...] = ()
    keep_secrets: bool = False
    report_dir: str | None = None  # as given: "" is refused by the run (bad usage)
    sign_key: Path | None = None
    executor: str | None = None
    waivers: Path | None = None
    baseline: Path | None = None
    baseline_key: Path | None = None
    evidence_dir: Path | None = None
    from_report: str | None = None
    from_envelope: str | None = None

    @property
    def given(self) -> bool:
        """Whether anything says this is a conformance run (else the plugin stays inert)."""
        return self.profile is not None or self.sources > 0

    @property
    def sources(self) -> int:
        """How many kinds of evidence source the options name."""
        kinds = (self.pcaps, self.lab, self.image, self.host, self.evidence_dir)
        return sum(1 for kind in kinds if kind)

    @classmethod
    def read(cls, value: Callable[[Option], object]) -> RunOptions:
        """Build from `value(option)`: the raw value a front holds for each option."""
        fields: dict[str, object] = {}
        paths = {
            "profile",
            "pcaps",
            "tls_keylogs",
            "content_logs",
            "sign_key",
            "waivers",
            "baseline",
            "baseline_key",
            "evidence_dir",
        }
        for option in OPTIONS:
            raw = value(option)
            if option.kind == "flag":
                fields[option.dest] = bool(raw)
            elif option.kind == "list":
                items = tuple(str(v) for v in raw or ())  # type: ignore[attr-defined]
                fields[option.dest] = (
                    tuple(Path(v) for v in items) if option.dest in paths else items
                )
            elif raw is None or option.dest == "report_dir":
                fields[option.dest] = raw
            else:
                fields[option.dest] = Path(str(raw)) if option.dest in paths else str(raw)
        return cls(**fields)  # type: ignore[arg-type]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every run option as an argparse argument."""
    for option in OPTIONS:
        if not option.cli:
            continue
        if option.kind == "flag":
            parser.add_argument(
                option.flag, dest=option.dest, action="store_true", help=option.help
            )
        elif option.kind == "list":
            parser.add_argument(
                option.flag,
                dest=option.dest,
                action="append",
                default=[],
                metavar=option.metavar,
                help=option.help,
            )
        else:
            parser.add_argument(
                option.flag, dest=option.dest, metavar=option.metavar, help=option.help
            )


def pytest_arguments(args: argparse.Namespace) -> list[str]:
    """The plugin's arguments for what `args` (from `add_arguments`) holds."""
    out: list[str] = []
    for option in OPTIONS:
        raw = getattr(args, option.dest, None)
        if option.kind == "flag":
            out += [option.pytest_flag] if raw else []
        elif option.kind == "list":
            for item in raw or ():
                out += [option.pytest_flag, str(item)]
        elif raw is not None:
            out += [option.pytest_flag, str(raw)]
    return out


def from_namespace(args: argparse.Namespace) -> RunOptions:
    """RunOptions from an argparse namespace built by `add_arguments`."""
    return RunOptions.read(lambda option: getattr(args, option.dest, None))


def names() -> Sequence[str]:
    """The CLI flags, in table order (for docs and tests)."""
    return [option.flag for option in OPTIONS if option.cli]


_FLAG_WORD = re.compile(r"(?<![\w/.-])--([a-z][a-z0-9-]*)(?![\w-])")


def in_pytest_spelling(text: str) -> str:
    """`text` (the harness's own words) with every run option named as the pytest plugin
    spells it: errors name options as `run` does (`--pcap`); a pytest user typed the plugin's
    (`--ucx-pcap`)."""

    def spelled(match: re.Match[str]) -> str:
        option = OPTION_BY_FLAG.get(match[0])
        return match[0] if option is None else option.pytest_flag

    return _FLAG_WORD.sub(spelled, text)


OPTION_BY_FLAG: Final[dict[str, Option]] = {option.flag: option for option in OPTIONS}
