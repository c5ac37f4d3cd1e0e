"""Evidence from a live host through testinfra (docs/hosts.md).

`--host URL` adds host facts to the run's other evidence (`inner`: captures, the lab, a
container) or stands alone. Sockets are sampled through the window (the inner source's
collection, or the profile's window when there is none); every other fact is read once
after it. Each command's raw output is kept under evidence/host/ and the parsed facts in
evidence/host/facts.json.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from conformance.evidence.interface import HOST_FACTS, Evidence, EvidenceSource
from conformance.host.collect import HostCollector, HostOptions, public_url
from conformance.host.model import HostFacts
from conformance.host.options import host_options
from conformance.judge.host import raw_output_name
from conformance.observe.model import Observations
from conformance.profile_model import Profile
from conformance.progress import Progress

DEFAULT_WINDOW = 10.0  # seconds of socket sampling for a host judged on its own


class HostSource:
    """Host facts, alone or beside another evidence source."""

    name = "host"

    def __init__(self, host: str, inner: EvidenceSource | None) -> None:
        self.host = host
        self.inner = inner
        self._workdir: Path | None = None
        self._collector: HostCollector | None = None
        self._facts: HostFacts | None = None
        self._options: HostOptions | None = None

    # --- the lab's hook (--lab --host): sample while the target runs ----------------------

    def lab_ready(self, access: object) -> None:
        from conformance.lab.sshd import LabHostAccess

        assert isinstance(access, LabHostAccess) and self._options is not None
        options = replace(
            self._options,
            ssh_config=access.ssh_config,
            ssh_identity=access.identity,
            settings_path=self._options.settings_path or access.settings_path,
        )
        url = lab_url(self.host, access.url)
        self._collector = HostCollector(url, options)
        self._collector.start_sampling()

    def window_over(self) -> None:
        if self._collector is not None:
            self._collector.stop_sampling()
            self._facts = self._collector.collect()

    # --- EvidenceSource ---------------------------------------------------------------------

    def collect(self, profile: Profile, progress: Progress) -> Evidence:
        from conformance.evidence.lab import LabSource

        self._options = host_options(profile)
        self._workdir = Path(tempfile.mkdtemp(prefix="ucx-host-"))
        inner_evidence: Evidence | None = None
        if isinstance(self.inner, LabSource):
            self.inner.host_hook = self
            inner_evidence = self.inner.collect(profile, progress)
            if self._facts is None:
                self._facts = _unreached(self.host, "the lab never became ready for the host")
        else:
            self._collector = HostCollector(self.host, self._options)
            self._collector.start_sampling()
            try:
                if self.inner is not None:
                    inner_evidence = self.inner.collect(profile, progress)
                else:
                    self._sample_window(profile, progress)
            finally:
                self._collector.stop_sampling()
            self._facts = self._collector.collect()
        return self._evidence(self._facts, inner_evidence)

    def _sample_window(self, profile: Profile, progress: Progress) -> None:
        window = profile.window_seconds or DEFAULT_WINDOW
        progress.start("host sampling window", window)
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < window:
            progress.advance(elapsed, f"sampling {public_url(self.host)}")
            time.sleep(min(0.25, window - elapsed))
        progress.advance(window, "sampling done")
        progress.finish()

    def _evidence(self, facts: HostFacts, inner: Evidence | None) -> Evidence:
        assert self._workdir is not None
        files: list[tuple[Path, str]] = []
        for record in facts.commands:
            # Raw output only, so a finding's line number is the line of this file; the command,
            # exit status, timing and error of each are in facts.json.
            path = self._workdir / f"{record.name}.txt"
            path.write_text(record.stdout)
            files.append((path, raw_output_name(record.name)))
            if record.stderr.strip():
                err = self._workdir / f"{record.name}.stderr.txt"
                err.write_text(record.stderr)
                files.append((err, f"host/{record.name}.stderr.txt"))
        facts_path = self._workdir / "facts.json"
        facts_path.write_text(json.dumps(_jsonable(facts), indent=2, default=str) + "\n")
        files.append((facts_path, "host/facts.json"))
        notes = [f"host facts from {facts.url}: {facts.samples} socket samples"]
        notes += [f"host: {problem}" for problem in facts.problems[:10]]
        if inner is None:
            return Evidence(
                observations=Observations(captures=(), flows=()),
                files=tuple(files),
                logs={HOST_FACTS: facts_path},
                notes=tuple(notes),
                source="host",
            )
        return Evidence(
            observations=inner.observations,
            files=(*inner.files, *files),
            logs={**inner.logs, HOST_FACTS: facts_path},
            notes=(*inner.notes, *notes),
            source=f"{inner.source}+host",
        )

    def facts(self) -> HostFacts | None:
        return self._facts

    def close(self) -> None:
        if self._collector is not None:
            self._collector.stop_sampling()
        if self.inner is not None:
            self.inner.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def lab_url(host: str, target_url: str) -> str:
    """`--host lab` (or ssh://USER@lab[:PORT]) names the lab's target; others stay as given."""
    if host == "lab":
        return target_url
    parts = urlsplit(host)
    if parts.hostname != "lab":
        return host
    alias = urlsplit(target_url).hostname or "lab"
    user = f"{parts.username}@" if parts.username else "root@"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}{alias}{port}"))


def _unreached(url: str, why: str) -> HostFacts:
    return HostFacts(url=public_url(url), commands=(), problems=(why,))


def _jsonable(facts: HostFacts) -> dict[str, object]:
    data = asdict(facts)
    data["commands"] = [
        {k: v for k, v in c.items() if k not in ("stdout", "stderr")} for c in data["commands"]
    ]
    return data


def load_facts(path: Path) -> HostFacts:
    """Rebuild the facts a suite needs from evidence/host/facts.json and the raw outputs."""
    from conformance.host.collect import build_facts
    from conformance.host.model import CommandRecord

    data = json.loads(path.read_text())
    records = []
    for item in data.get("commands", []):
        raw = path.parent / f"{item['name']}.txt"
        err = path.parent / f"{item['name']}.stderr.txt"
        stdout = raw.read_text() if raw.is_file() else ""
        stderr = err.read_text() if err.is_file() else ""
        records.append(
            CommandRecord(
                name=item["name"],
                command=item["command"],
                exit_status=item["exit_status"],
                stdout=stdout,
                stderr=stderr,
                error=item["error"],
                at=item["at"],
            )
        )
    settings = "settings" if any(r.name == "settings" for r in records) else None
    facts = build_facts(data["url"], tuple(records), HostOptions(settings_path=settings))
    return replace(facts, problems=tuple(data.get("problems", facts.problems)))
