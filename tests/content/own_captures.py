"""Captures of real TLS sessions for the telemetry judges, with the target's key log: a
licence poll, a gRPC presence call, and whatever beats a test asks for (tests.tls_sessions).

The profiles are the lab's hybrid ones (fixtures/profiles/lab-hybrid*.yaml): target
192.0.2.10, environment 192.0.2.0/24, cloud at 198.51.100.x (outside).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conformance.evidence.interface import Collected, SecretInputs
from conformance.evidence.pcap import PcapSource
from conformance.judge import telemetry
from conformance.judge.result import ControlResult
from conformance.observe.evidence import KEPT_LOGS, Observed, observe_evidence
from conformance.observe.json_logs import JsonLines
from conformance.observe.records import Observations
from conformance.profile import load_profile
from conformance.profile_model import Profile
from conformance.progress import NULL_PROGRESS
from tests.tls_sessions import (
    START,
    Session,
    SessionFactory,
    grpc,
    har_document,
    post,
    write_sessions,
)

PROFILES = Path(__file__).resolve().parents[2] / "fixtures" / "profiles"
ON = load_profile(PROFILES / "lab-hybrid.yaml")
OFF = load_profile(PROFILES / "lab-hybrid-telemetry-off.yaml")
# A restart and a licence refresh just before the capture: every message comes after them.
STIMULI = [
    {"stimulus": "POST http://192.0.2.10:8080/actions/licence-refresh", "exit": 0, "t": START - 2},
    {"stimulus": "POST http://192.0.2.10:8080/actions/restart", "exit": 0, "t": START - 1},
]
LICENCE = {"installation_id": "00000000-0000-0000-0000-000000001ce5", "licences": ["UCX-LIC-1"]}


@dataclass(frozen=True)
class Site:
    """A built capture and the files that explain it."""

    capture: Path
    keylog: Path
    sessions: tuple[Session, ...]

    def har(self, path: Path, only: Sequence[int] | None = None) -> Path:
        """The sessions' requests as an intercepting proxy's HAR (`only`: session indexes)."""
        chosen = [s for i, s in enumerate(self.sessions) if only is None or i in only]
        path.write_text(json.dumps(har_document(chosen)))
        return path

    def with_secrets(self, path: Path) -> Path:
        """The capture as a pcapng carrying the key log in a DSB (Wireshark's editcap)."""
        subprocess.run(
            ["editcap", "--inject-secrets", f"tls,{self.keylog}", str(self.capture), str(path)],
            check=True,
            capture_output=True,
        )
        return path


def site(
    directory: Path,
    beats: Sequence[Any] = (),
    *,
    unkeyed: Sequence[Any] = (),
    h2_beats: bool = False,
    proxy: bool = False,
) -> Site:
    """Licence poll (HTTP/1.1, TLS 1.3), presence (gRPC over HTTP/2), then one session per beat
    (HTTP/1.1, or HTTP/2 with `h2_beats`), then beats in sessions whose keys are not logged."""
    factory = SessionFactory(directory)
    sessions = [
        factory.http1("api.imagicle.com", [post("/v1/licensing/poll", LICENCE)], via_proxy=proxy),
        factory.h2(
            "grpc.imagicle.com",
            [grpc("/imagicle.presence.v1.Presence/Subscribe", {"subscribe": "presence"})],
            via_proxy=proxy,
        ),
    ]
    for beat in beats:
        make = factory.h2 if h2_beats else factory.http1
        sessions.append(
            make("api.imagicle.com", [post("/v1/telemetry/beat", beat)], via_proxy=proxy)
        )
    for beat in unkeyed:
        sessions.append(
            factory.http1(
                "api.imagicle.com", [post("/v1/telemetry/beat", beat)], keys=False, via_proxy=proxy
            )
        )
    capture = write_sessions(directory / "site.pcap", sessions)
    return Site(capture, factory.keylog, tuple(sessions))


@dataclass(frozen=True)
class Gathered:
    """What a run collected and observed from the built site."""

    collected: Collected
    observed: Observed

    @property
    def observations(self) -> Observations:
        return self.observed.observations

    @property
    def notes(self) -> tuple[str, ...]:
        return self.observations.notes

    @property
    def files(self) -> tuple[tuple[Path, str], ...]:
        return self.collected.files + self.observed.files

    def log(self, kind: str) -> Path | None:
        """A derived content log (the decrypted, redacted messages) by its kind."""
        return next((p for p, name in self.observed.files if KEPT_LOGS.get(name) == kind), None)


def collect(
    captures: Sequence[Path],
    profile: Profile,
    keylogs: Sequence[Path] = (),
    hars: Sequence[Path] = (),
    keep_secrets: bool = False,
    workdir: Path | None = None,
) -> tuple[Gathered, PcapSource]:
    """What `run --pcap ... --tls-keylog ... --content-log ...` collects and observes (close
    the source)."""
    source = PcapSource(captures, SecretInputs(tuple(keylogs), tuple(hars), keep_secrets))
    collected = source.collect(profile, NULL_PROGRESS)
    work = workdir or source._work()
    return Gathered(collected, observe_evidence(collected, profile, work)), source


def with_stimuli(obs: Observations, stimuli: Sequence[Mapping[str, Any]] | None) -> Observations:
    """`obs` with the stimuli a lab would have recorded (None: no stimulus log)."""
    if stimuli is None:
        return obs
    records = tuple((n, dict(s)) for n, s in enumerate(stimuli, start=1))
    return replace(obs, stimuli=JsonLines("lab/stimuli.jsonl", records))


def judge(
    gathered: Gathered | Observations,
    profile: Profile,
    stimuli: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, ControlResult]:
    """TM-OPTOUT (telemetry disabled) or TM-MINIMAL and TM-CHANNEL (enabled), as the suites do."""
    obs = gathered.observations if isinstance(gathered, Gathered) else gathered
    obs = with_stimuli(obs, stimuli)
    if profile.telemetry.value == "disabled":
        return {"TM-OPTOUT": telemetry.optout(obs, profile)}
    return {
        "TM-MINIMAL": telemetry.minimal(obs, profile),
        "TM-CHANNEL": telemetry.channel(obs, profile),
    }


def verdicts(results: Mapping[str, ControlResult]) -> dict[str, str]:
    return {k: r.verdict.value for k, r in results.items()}
