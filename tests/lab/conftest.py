"""Shared lab runs for the lab tests: each scenario runs once per session, with a short window."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.evidence.lab import collected_from
from conformance.lab import LabRun, run_lab
from conformance.lab.netns import NETNS_ETC, STATE_DIR, existing_namespaces
from conformance.lab.topology import PREFIX
from conformance.observe.evidence import observe_evidence
from conformance.observe.records import Observations
from conformance.profile import parse_profile
from conformance.profile_model import Profile

PROFILES = Path(__file__).resolve().parents[2] / "fixtures" / "profiles"
WINDOW = 6.0  # seconds: every behaviour of the target happens at least once (periods <= 4 s)


def lab_profile(name: str, window: float = WINDOW, **sections: Any) -> Profile:
    """A ready lab profile with a short window; `sections` replace top-level sections (YAML
    values, checked by the loader like the file's own)."""
    path = PROFILES / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # Stimuli early enough to land inside the short window.
    data["stimuli"] = [
        {"at": "2s", "action": "licence-refresh"},
        {"at": "3s", "action": "restart"},
    ]
    data.update(sections, window=window)
    return parse_profile(data, path)


def run_id_of(workdir: Path) -> str | None:
    """The lab run that used `workdir` (from its topology file), if it got that far."""
    try:
        return str(json.loads((workdir / "lab-topology.json").read_text())["run_id"])
    except (OSError, ValueError, KeyError):
        return None


def own_namespaces(workdir: Path) -> list[str]:
    """Namespaces of the lab run that used `workdir` (other runs may be up concurrently)."""
    run_id = run_id_of(workdir)
    if run_id is None:
        return []
    return [n for n in existing_namespaces() if n.startswith(f"{PREFIX}{run_id}-")]


def leftovers(workdir: Path) -> list[str]:
    """What the lab run that used `workdir` left: namespaces, state, processes naming it."""
    found = [f"namespace {n}" for n in own_namespaces(workdir)]
    run_id = run_id_of(workdir)
    if run_id is not None and (STATE_DIR / f"{run_id}.json").exists():
        found.append(f"state file {run_id}.json")
    if NETNS_ETC.is_dir():
        found += [f"resolv.conf of {e.name}" for e in NETNS_ETC.glob(f"{PREFIX}{run_id}-*")]
    needle = str(workdir).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            shown = cmdline.replace(b"\0", b" ")[:120]
            found.append(f"process {entry.name}: {shown!r}")
    return found


_OBSERVED: dict[Path, Observations] = {}


@dataclass(frozen=True)
class Scenario:
    """One finished lab run and its profile."""

    profile: Profile
    faults: tuple[str, ...]
    run: LabRun
    workdir: Path

    @property
    def capture(self) -> Path:
        return self.run.captures[0]

    def evidence(self, name: str) -> Path:
        return dict((n, p) for p, n in self.run.evidence_files)[name]

    def observations(self) -> Observations:
        """The run's evidence through the one observe step (computed once)."""
        cached = _OBSERVED.get(self.workdir)
        if cached is None:
            collected = collected_from(self.run, self.faults)
            work = self.workdir / "observe-work"
            cached = _OBSERVED[self.workdir] = observe_evidence(
                collected, self.profile, work
            ).observations
        return cached

    def cloud_requests(self) -> list[dict[str, Any]]:
        lines = self.evidence("lab/cloud-requests.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


SCENARIOS: dict[str, tuple[str, tuple[str, ...], dict[str, Any]]] = {
    "ag-clean": ("lab-air-gapped", (), {}),
    "ag-faults": (
        "lab-air-gapped",
        (
            "phone-home-dns",
            "cloud-licensing-airgapped",
            "ipv6-leak",
            "ntp-public",
            "outside-resolver",
            "mdns-cloud-name",
            "listen-outside",
            "undeclared-onprem",
        ),
        {"lab": {"perimeter": "open"}},  # a broken perimeter too: AG-PERIMETER must fail
    ),
    "hy-faults-1": (
        "lab-hybrid",
        (
            "plaintext-licence",
            "undocumented-endpoint",
            "pii-in-telemetry",
            "undocumented-telemetry-field",
        ),
        {},
    ),
    "hy-faults-2": ("lab-hybrid", ("tls10", "no-sni", "telemetry-off-channel"), {}),
    "tm-optout": ("lab-hybrid-telemetry-off", ("telemetry-despite-optout",), {}),
    "px-faults": ("lab-proxy", ("direct-despite-proxy", "plaintext-get-via-proxy"), {}),
    "cert-clean": ("lab-hybrid", (), {"lab": {"perimeter": "cloud", "cloud_cert": "untrusted"}}),
    "cert-fault": (
        "lab-hybrid",
        ("accept-untrusted-cert",),
        {"lab": {"perimeter": "cloud", "cloud_cert": "untrusted"}},
    ),
}


@pytest.fixture(scope="session")
def lab_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Scenario]]:
    """Run a named scenario once per session (lazily), return it on every later call."""
    done: dict[str, Scenario] = {}

    def get(name: str) -> Scenario:
        if name not in done:
            profile_name, faults, extra = SCENARIOS[name]
            profile = lab_profile(profile_name, **extra)
            workdir = tmp_path_factory.mktemp(f"lab-{name}")
            run = run_lab(profile, faults, workdir)
            done[name] = Scenario(profile, faults, run, workdir)
        return done[name]

    yield get
