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
import time
from dataclasses import asdict, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from conformance.evidence.interface import HOST_FACTS, CaptureLoss, Collected, EvidenceSource
from conformance.host.collect import HostCollector, public_url
from conformance.host.facts import HostFacts, HostOptions, raw_output_name
from conformance.host.options import host_options
from conformance.host.pktmon import PktmonCapture, is_windows, winrm_runner
from conformance.host.remote_capture import CaptureStats, RemoteCapture
from conformance.profile_model import Profile
from conformance.progress import Progress
from conformance.scratch import scratch_dir

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
        self._lab_capture: RemoteCapture | None = None
        self._pktmon: PktmonCapture | None = None
        self._lab_capture_result: tuple[CaptureStats | None, str] | None = None
        self.remote_capture: Collected | None = None  # the remote capture, judged on its own
        self._lab_window = DEFAULT_WINDOW

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
        if options.capture_interface is not None and self._workdir is not None:
            # Over the lab's ssh too: the lab's own capture stays the judged one; this one
            # shows the remote route working and is kept as evidence beside it.
            self._lab_capture = RemoteCapture(
                url,
                options,
                options.capture_interface,
                self._lab_window,
                self._workdir / "remote-capture.pcap",
            )
            self._lab_capture.start()

    def window_over(self) -> None:
        if self._collector is not None:
            self._collector.stop_sampling()
            self._facts = self._collector.collect()
        if self._lab_capture is not None:
            self._lab_capture_result = self._lab_capture.finish()

    # --- EvidenceSource ---------------------------------------------------------------------

    def collect(self, profile: Profile, progress: Progress) -> Collected:
        from conformance.evidence.lab import LabSource

        self._options = host_options(profile)
        self._workdir = scratch_dir("host")
        inner_evidence: Collected | None = None
        if isinstance(self.inner, LabSource):
            self.inner.host_hook = self
            self._lab_window = profile.window_seconds or DEFAULT_WINDOW
            inner_evidence = self.inner.collect(profile, progress)
            if self._facts is None:
                self._facts = _unreached(self.host, "the lab never became ready for the host")
        else:
            if urlsplit(self.host).scheme == "ssh" and self._options.ssh_config is None:
                from conformance.host.sshconfig import run_ssh_config

                # Never ~/.ssh/config: a config of this run's own (docs/hosts.md).
                self._options = replace(
                    self._options, ssh_config=run_ssh_config(self._workdir, self._options)
                )
            self._collector = HostCollector(self.host, self._options)
            self._collector.start_sampling()
            capture = self._start_capture(profile) if self.inner is None else None
            try:
                if self.inner is not None:
                    inner_evidence = self.inner.collect(profile, progress)
                else:
                    self._sample_window(profile, progress)
            finally:
                self._collector.stop_sampling()
            self._facts = self._collector.collect()
            if capture is not None:
                stats, stderr = capture.finish()
                inner_evidence = self._capture_evidence(capture, stats, stderr)
                self.remote_capture = inner_evidence
        evidence = self._evidence(self._facts, inner_evidence)
        if self._lab_capture is not None:
            stats, stderr = self._lab_capture_result or (None, "the lab window never closed")
            remote = self._capture_evidence(self._lab_capture, stats, stderr)
            self.remote_capture = remote
            note = "remote tcpdump over ssh, kept beside the lab's judged capture: " + "; ".join(
                remote.notes
            )
            evidence = replace(
                evidence, files=(*evidence.files, *remote.files), notes=(*evidence.notes, note)
            )
        return evidence

    def _start_capture(self, profile: Profile) -> RemoteCapture | PktmonCapture | None:
        assert self._options is not None and self._workdir is not None
        if self._options.capture_interface is None:
            return None
        if is_windows(self.host):
            pktmon = PktmonCapture(
                winrm_runner(self.host, self._options),
                profile.window_seconds or DEFAULT_WINDOW,
                self._workdir / "remote-capture.pcapng",
            )
            pktmon.start()
            self._pktmon = pktmon
            return pktmon
        capture = RemoteCapture(
            self.host,
            self._options,
            self._options.capture_interface,
            profile.window_seconds or DEFAULT_WINDOW,
            self._workdir / "remote-capture.pcap",
        )
        capture.start()
        return capture

    def _capture_evidence(
        self,
        capture: RemoteCapture | PktmonCapture,
        stats: CaptureStats | None,
        stderr: str,
    ) -> Collected:
        """The remote capture as evidence; the capture tool's own loss count goes with it."""
        tool = "pktmon" if isinstance(capture, PktmonCapture) else "tcpdump"
        outputs = capture.outputs if isinstance(capture, PktmonCapture) else (capture.output,)
        packets = tuple(p for p in outputs if p.exists() and p.stat().st_size > 0)
        files = [(p, f"host/{p.name}") for p in outputs if p.exists()]
        if capture.output.with_suffix(".stderr.txt").exists():
            files.append((capture.output.with_suffix(".stderr.txt"), f"host/{tool}.stderr.txt"))
        tail = " | ".join(stderr.strip().splitlines()[-3:]) or "no output"
        if capture.output not in packets:
            note = f"remote capture gave no packets file: {tail}"
            return Collected(source="host-capture", files=tuple(files), notes=(note,))
        if stats is None:
            # Ended without its statistics (killed, failed): losses unknown, so not complete.
            loss = CaptureLoss(None, f"{tool} ended without its loss statistics ({tail})")
        else:
            loss = CaptureLoss(stats.dropped, f"{tool}: {stats.dropped} lost")
        summary = f"{stats.captured} captured, {stats.dropped} dropped" if stats else tail
        return Collected(
            source="host-capture",
            captures=packets,
            files=tuple(files),
            notes=(f"remote {tool} on {capture.interface}: {summary}",),
            capture_loss={0: loss},
        )

    def _sample_window(self, profile: Profile, progress: Progress) -> None:
        window = profile.window_seconds or DEFAULT_WINDOW
        progress.start("host sampling window", window)
        began = time.monotonic()
        while (elapsed := time.monotonic() - began) < window:
            progress.advance(elapsed, f"sampling {public_url(self.host)}")
            time.sleep(min(0.25, window - elapsed))
        progress.advance(window, "sampling done")
        progress.finish()

    def _evidence(self, facts: HostFacts, inner: Collected | None) -> Collected:
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
            return Collected(
                source="host", files=tuple(files), logs={HOST_FACTS: facts_path}, notes=tuple(notes)
            )
        return replace(
            inner,
            source=f"{inner.source}+host",
            files=(*inner.files, *files),
            logs={**inner.logs, HOST_FACTS: facts_path},
            notes=(*inner.notes, *notes),
        )

    def facts(self) -> HostFacts | None:
        return self._facts

    def close(self) -> None:
        if self._collector is not None:
            self._collector.stop_sampling()
        if self._lab_capture is not None:
            self._lab_capture.stop()
        if self._pktmon is not None:
            self._pktmon.stop()
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
