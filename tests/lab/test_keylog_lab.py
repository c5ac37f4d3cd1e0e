"""The lab with `lab: {tls_keylog: true}`: the reference target writes its TLS key log, the
capture of its link is decrypted with it, and TM-OPTOUT, TM-MINIMAL and TM-CHANNEL judged on
those decrypted sessions alone agree with the verdicts judged on the interceptor's record
(through the proxy) or the cloud stand-ins' record (without one). The key log itself never
becomes evidence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from conformance.content.decryption_coverage import coverage_problems
from conformance.content.messages import ContentEvidence
from conformance.evidence.interface import CLOUD_REQUESTS, DECRYPTED_REQUESTS, TLS_DECRYPTED
from conformance.evidence.lab import LabSource
from conformance.judge import telemetry
from conformance.judge.result import ControlResult
from conformance.observe.evidence import Observed, observe_evidence
from conformance.observe.records import Observations
from conformance.profile_model import Profile
from conformance.progress import NULL_PROGRESS
from tests.lab.conftest import lab_profile, leftovers

pytestmark = pytest.mark.lab

WINDOW = 4.0
STIMULI = [
    {"at": "1.5s", "action": "licence-refresh"},
    {"at": "2.5s", "action": "restart"},
    {"at": "3s", "action": "telemetry-beat"},
]
# name: (profile, faults, the other content source, expected TM verdicts)
RUNS: dict[str, tuple[str, tuple[str, ...], str, dict[str, str]]] = {
    "proxy-off": ("lab-proxy", (), DECRYPTED_REQUESTS, {"TM-OPTOUT": "pass"}),
    "proxy-pii": (
        "lab-proxy-telemetry",
        ("pii-in-telemetry",),
        DECRYPTED_REQUESTS,
        {"TM-MINIMAL": "fail", "TM-CHANNEL": "pass"},
    ),
    "direct-off-channel": (
        "lab-hybrid",
        ("telemetry-off-channel",),
        CLOUD_REQUESTS,
        {"TM-MINIMAL": "pass", "TM-CHANNEL": "fail"},
    ),
}


@dataclass(frozen=True)
class Run:
    profile: Profile
    evidence: Observed
    other: str
    expected: dict[str, str]
    workdir: Path
    files: tuple[tuple[Path, str], ...]  # what the report keeps (the run's and the observe step's)


def _only(observed: Observed, source: str) -> Observations:
    """The run's observations with one content source (stimuli and the site's people kept)."""
    obs = observed.observations
    content = obs.content
    assert content is not None and source in content.sources, source
    only = ContentEvidence(
        sources=(source,),
        files={source: content.files[source]},
        messages=tuple(m for m in content.messages if m.source == source),
        coverage=tuple(c for c in content.coverage if c[0] == source),
    )
    return replace(obs, content=only)


def _judge(obs: Observations, profile: Profile) -> dict[str, ControlResult]:
    results = {
        "TM-OPTOUT": telemetry.optout(obs, profile),
        "TM-MINIMAL": telemetry.minimal(obs, profile),
        "TM-CHANNEL": telemetry.channel(obs, profile),
    }
    wanted = (
        {"TM-OPTOUT"} if profile.telemetry.value == "disabled" else {"TM-MINIMAL", "TM-CHANNEL"}
    )
    return {k: v for k, v in results.items() if k in wanted}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Run]]:
    done: dict[str, Run] = {}
    sources: list[LabSource] = []

    def get(name: str) -> Run:
        if name not in done:
            profile_name, faults, other, expected = RUNS[name]
            profile = lab_profile(
                profile_name,
                window=WINDOW,
                stimuli=STIMULI,
                lab={"perimeter": "cloud", "tls_keylog": True},
            )
            source = LabSource(faults)
            workdir = source.workdir = tmp_path_factory.mktemp(f"keylog-{name}")
            sources.append(source)
            collected = source.collect(profile, NULL_PROGRESS)
            observed = observe_evidence(collected, profile, workdir / "observe-work")
            files = collected.files + observed.files
            done[name] = Run(profile, observed, other, expected, workdir, files)
        return done[name]

    yield get
    for source in sources:
        source.close()
    for run in done.values():
        assert leftovers(run.workdir) == []


@pytest.mark.parametrize("name", list(RUNS))
def test_keys_and_the_lab_record_agree(name: str, runs: Callable[[str], Run]) -> None:
    run = runs(name)
    by_keys = _judge(_only(run.evidence, TLS_DECRYPTED), run.profile)
    by_other = _judge(_only(run.evidence, run.other), run.profile)
    together = _judge(run.evidence.observations, run.profile)
    shown = {k: (r.verdict.value, r.reason[:300]) for k, r in by_keys.items()}
    assert {k: r.verdict.value for k, r in by_keys.items()} == run.expected, shown
    assert {k: r.verdict.value for k, r in by_other.items()} == run.expected
    assert {k: r.verdict.value for k, r in together.items()} == run.expected


@pytest.mark.parametrize("name", list(RUNS))
def test_every_tls_session_of_the_target_was_decrypted(
    name: str, runs: Callable[[str], Run]
) -> None:
    run = runs(name)
    content = _only(run.evidence, TLS_DECRYPTED).content
    assert content is not None and content.problems == ()
    assert coverage_problems(content, run.profile)[0] == []
    assert content.messages, "the target's sessions carried messages"
    assert all(m.tls for m in content.messages if m.path.startswith("/v1/"))


def test_the_key_log_is_used_but_never_evidence(runs: Callable[[str], Run]) -> None:
    run = runs("proxy-pii")
    keylog = run.workdir / "target-tls-keys.log"
    lines = [line.split() for line in keylog.read_text().splitlines() if not line.startswith("#")]
    secrets = [fields[2].encode() for fields in lines if len(fields) == 3]
    assert secrets, "the target wrote its key log"
    names = [name for _, name in run.files]
    assert "content/tls-decrypted.jsonl" in names
    assert not any("keys" in name for name in names)
    for path, _ in run.files:
        if path.is_file():
            data = path.read_bytes()
            assert not any(secret in data for secret in secrets), path
    assert any("key log is not copied" in note for note in run.evidence.observations.notes)
