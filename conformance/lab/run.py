"""One lab run: stand the lab up, capture the window, run stimuli and probes, tear down.

Teardown runs on every exit path: normal return, an exception, SIGINT/SIGTERM (turned into
an exception while the lab is up), and interpreter exit (atexit). A SIGKILL leaves the
state file behind; the next run's `clean_stale` removes what it lists.
"""

from __future__ import annotations

import atexit
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Final

from conformance.errors import LabError
from conformance.evidence.interface import STIMULI_LOG, TLS_KEYLOG
from conformance.lab import LabRun
from conformance.lab import topology as topo
from conformance.lab.cert_phase import run_impostor_phase
from conformance.lab.certs import LabCA
from conformance.lab.dumpcap import Capture
from conformance.lab.external import ExternalTarget
from conformance.lab.faults import check_faults
from conformance.lab.netns import LabState, check_host, clean_stale, in_netns
from conformance.lab.network import build
from conformance.lab.options import SCAN_PORTS, LabOptions, lab_options
from conformance.lab.perimeter import counters, install
from conformance.lab.scan_phase import run_endpoint_scan
from conformance.lab.services import (
    LDAP_BIND_DN,
    LDAP_PASSWORD,
    LDAP_SUFFIX,
    Evidence,
    Services,
    listening,
)
from conformance.lab.sshd import LabHostAccess, LabHostHook, start_sshd, write_host_files
from conformance.lab.stimuli import Stimulus, StimulusRunner, lab_stimuli
from conformance.profile_model import Mode, Profile
from conformance.progress import Progress
from conformance.resources import import_root

TICK: Final = 0.25  # seconds between progress updates during the window
PROBE_TIMEOUT: Final = 60.0  # the probe subprocess: scapy import plus a 2 s answer wait
PACKAGE_ROOT: Final = import_root()


class LabInterruptedError(LabError):
    """SIGINT or SIGTERM arrived while the lab was up; it has been torn down."""


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into LabInterruptedError (main thread only); restore handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise LabInterruptedError(f"lab interrupted by {signal.Signals(signum).name}; torn down")

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def _check_profile(profile: Profile) -> None:
    lab_target = topo.TARGET_V4
    if not any(str(a) == lab_target for a in profile.target.addresses):
        raise LabError(
            f"{profile.source}: the lab's target is {lab_target}; a lab profile must list it in"
            " target.addresses (see fixtures/profiles/lab-*.yaml)"
        )
    if profile.proxy is not None and (
        str(profile.proxy.address) != topo.PROXY_V4 or profile.proxy.port != topo.PROXY_PORT
    ):
        raise LabError(
            f"{profile.source}: the lab's proxy is {topo.PROXY_V4}:{topo.PROXY_PORT}, not"
            f" {profile.proxy}"
        )


def _target_config(
    profile: Profile,
    faults: Sequence[str],
    options: LabOptions,
    ca_file: Path,
    licence: Path,
    keylog: Path | None = None,
) -> dict[str, object]:
    return {
        "tls_keylog": str(keylog) if keylog is not None else None,
        "mode": profile.mode.value,
        "address": topo.TARGET_V4,
        "address_v6": topo.TARGET_V6,
        "admin_port": topo.ADMIN_PORT,
        "services": list(profile.cloud.services) if profile.cloud else [],
        "telemetry": profile.telemetry.value,
        "proxy": (
            {"address": str(profile.proxy.address), "port": profile.proxy.port}
            if profile.proxy
            else None
        ),
        "environment": [str(n) for n in profile.environment.networks],
        "faults": list(faults),
        "periods": options.periods,
        "ca_file": str(ca_file),
        "licence_file": str(licence),
        "internal_names": [f"cucm.{topo.INTERNAL_ZONE}", f"ad.{topo.INTERNAL_ZONE}"],
        "net": {
            "dns": topo.DNS_V4,
            "cucm": topo.CUCM_V4,
            "ldap": topo.LDAP_V4,
            "ntp": topo.NTP_V4,
            "gateway": topo.ROUTER_ONPREM_V4,
            "public_ntp": topo.CANARY_NTP_V4,
            "outside_resolver": topo.RESOLVER_V4,
            "api_name": topo.API_NAME,
            "api_v4": topo.API_V4,
            "api_v6": topo.API_V6,
            "grpc_name": topo.GRPC_NAME,
            "ldaps_name": topo.LDAPS_NAME,
            "undocumented_name": topo.UNDOCUMENTED_NAME,
            "undeclared": topo.UNDECLARED_V4,
        },
        "ldap": {
            "bind_dn": LDAP_BIND_DN,
            "password": LDAP_PASSWORD,
            "base": f"ou=people,{LDAP_SUFFIX}",
        },
        "cloud_ldap": {
            "bind_dn": "cn=ucx-sync,o=tenant-0001,dc=imagicle,dc=cloud",
            "password": "lab-only-secret",
            "base": "o=tenant-0001,dc=imagicle,dc=cloud",
        },
    }


def _python_argv(module: str, *args: str) -> list[str]:
    # PYTHONPATH lets `-m conformance...` work from a source checkout without an install.
    return ["env", f"PYTHONPATH={PACKAGE_ROOT}", sys.executable, "-m", module, *args]


class _Run:
    """The state of one run_lab call (kept together so teardown sees everything)."""

    def __init__(
        self,
        profile: Profile,
        faults: tuple[str, ...],
        workdir: Path,
        options: LabOptions,
        stimuli: tuple[Stimulus, ...],
        progress: Progress,
        host_hook: LabHostHook | None = None,
        external: ExternalTarget | None = None,
    ) -> None:
        self.host_hook = host_hook
        self.external = external
        self.profile, self.faults, self.workdir = profile, faults, workdir
        self.options, self.stimuli, self.progress = options, stimuli, progress
        self.notes: list[str] = []
        self.evidence = Evidence()
        self.state: LabState | None = None
        self.capture_path = workdir / "capture-target.pcapng"
        self.probe_log: Path | None = None

    def _start_external(
        self, external: ExternalTarget, services: Services, config: dict[str, object]
    ) -> subprocess.Popen[bytes]:
        """Hand the configuration to a target the lab did not start (a container)."""
        log = self.workdir / "target.jsonl"
        log.touch()
        conf = self.workdir / "target.json"
        partial = conf.with_suffix(".partial")
        partial.write_text(json.dumps({**config, "log": str(log)}, indent=2))
        partial.rename(conf)  # the target waits for this file: whole or absent
        self.evidence.add(log, "lab/target.jsonl")
        watcher = external.start(conf, self.workdir)
        pid, port = external.netns_pid(), topo.ADMIN_PORT
        services.pending.append(
            (lambda: listening(pid, "tcp", port), "container target", watcher, None)
        )
        self.notes.append(f"target: {external.describe()} (placed in the lab's target segment)")
        return watcher

    def _host_access(self, state: LabState, ns: topo.Namespaces) -> LabHostAccess:
        """sshd in the target's namespace and the product's settings file, for --host."""
        proxy = str(self.profile.proxy) if self.profile.proxy is not None else "none"
        if "proxy-mismatch" in self.faults:
            proxy = f"{topo.UNDECLARED_V4}:3128"
        settings: dict[str, object] = {
            "mode": self.profile.mode.value,
            "telemetry": self.profile.telemetry.value,
            "proxy": proxy,
        }
        write_host_files(ns, self.workdir, settings, "hosts-override" in self.faults)
        proc, access = start_sshd(state, ns, self.workdir, "no-tcpdump" in self.faults)
        self.evidence.add(self.workdir / "sshd.log", "lab/sshd.log")
        self.evidence.add(self.workdir / "ucx-settings.json", "lab/ucx-settings.json")
        deadline = time.monotonic() + 5
        while not listening(proc.pid, "tcp", 22):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (self.workdir / "sshd.log").read_text(errors="replace")[-300:]
                raise LabError(f"the lab's sshd did not start: {log}")
            time.sleep(0.05)
        self.notes.append("sshd in the target's namespace for the live-host backend")
        return access

    def execute(self) -> None:
        self.notes += clean_stale()
        self.state = state = LabState.new()
        if self.external is not None:
            state.attach[topo.Namespaces(state.run_id).target] = self.external.netns_pid()
        atexit.register(state.teardown)
        try:
            self._up_and_observe(state)
        finally:
            try:
                self._save_counters()
            finally:
                self.notes += state.teardown(on_stopped=self._copy_back)
                atexit.unregister(state.teardown)

    def _copy_back(self) -> None:
        for source, dest in self.evidence.copy_back:
            if source.exists():
                shutil.copyfile(source, dest)
            else:
                dest.touch()

    def _up_and_observe(self, state: LabState) -> None:
        ns = topo.Namespaces(state.run_id)
        began = time.monotonic()
        build(state, ns)
        install(ns.router, self.options.perimeter, proxied=self.profile.proxy is not None)
        ca = LabCA(self.workdir / "pki")
        services = Services(state, ns, self.workdir, ca, self.evidence)
        services.onprem_dns(hybrid=self.profile.mode is Mode.HYBRID)
        services.outside_dns()
        services.proxy(intercept=self.options.intercept)
        if self.options.intercept:
            services.interceptor()
        services.directory()
        services.onprem_standins()
        services.cloud_standins(
            self.options.cloud_cert,
            SCAN_PORTS if self.options.scanner else (),
            legacy_tls="tls10" in self.faults,  # only the tls10 fault needs a TLS 1.0 server
        )
        services.wait_ready()
        topology = self.workdir / "lab-topology.json"
        topology.write_text(topo.describe(ns, self.profile.mode.value, self.options.perimeter))
        self.evidence.add(topology, "lab/topology.json")
        licence = self.workdir / "offline-licence.json"
        licence.write_text(
            json.dumps(
                {"serial": "UCX-OFFLINE-0001", "modules": ["attendant-console", "call-recording"]}
            )
        )

        sshd = self._host_access(state, ns) if self.host_hook is not None else None
        capture = Capture(state, ns.target, topo.TARGET_LINK, self.capture_path)
        keylog = self._keylog()
        config = _target_config(
            self.profile, self.faults, self.options, ca.ca_file, licence, keylog
        )
        if self.external is not None:
            target = self._start_external(self.external, services, config)
        else:
            target = services.target(config)
        services.wait_ready()
        self.notes.append(f"lab up in {time.monotonic() - began:.2f} s (capture started first)")
        if self.options.intercept:
            self.notes.append(
                "content-level interceptor (mitmproxy) behind the proxy, lab CA trusted by the"
                " target: decrypted requests in lab/decrypted-requests.jsonl"
            )

        stimuli_log = self.workdir / "stimuli.jsonl"
        runner = StimulusRunner(
            self.stimuli,
            stimuli_log,
            http_argv=lambda s: in_netns(
                ns.onprem,
                _python_argv("conformance.lab.stimuli", "http", s.method, s.url, topo.ADMIN_V4),
            ),
            shell_argv=lambda s: in_netns(ns.target, ["sh", "-c", s.command]),
        )
        if self.stimuli:
            self.evidence.add(stimuli_log, "lab/stimuli.jsonl", STIMULI_LOG)
        if sshd is not None and self.host_hook is not None:
            self.host_hook.lab_ready(sshd)
        self._window(capture, runner, target)
        if self.host_hook is not None:
            self.host_hook.window_over()
        if self.profile.mode is Mode.HYBRID:
            if self.profile.proxy is not None:
                # The impostors and the scan meet the cloud side through the proxy, not the
                # interceptor (which would face them instead of the target).
                self.notes.append(services.proxy_after_window())
            # HY-CERT: the impostors answer the licensing connection, which only an activated
            # service makes.
            if self.profile.cloud is not None and "licensing" in self.profile.cloud.services:
                self.notes += run_impostor_phase(
                    state,
                    ns,
                    self.workdir,
                    ca,
                    self.evidence,
                    _python_argv,
                    proxied=self.profile.proxy is not None,
                )
            else:
                self.notes.append("HY-CERT: no impostor phase: the profile activates no licensing")
            self.notes += run_endpoint_scan(
                self.profile, ns.target, self.workdir, ca.ca_file, self.evidence, _python_argv
            )
        if self.options.probe_perimeter:
            self._probe(ns)

    def _keylog(self) -> Path | None:
        """The file the target writes its TLS key log to (lab.tls_keylog): a secret, so a log
        the source reads but never an evidence file (conformance.evidence.lab)."""
        if not self.options.tls_keylog:
            return None
        keylog = self.workdir / "target-tls-keys.log"
        keylog.touch(mode=0o600)
        self.evidence.logs[TLS_KEYLOG] = keylog
        self.notes.append(
            "the reference target writes its TLS key log (lab.tls_keylog): its sessions in the"
            " capture are decrypted with it; the key log is not copied into the report"
        )
        return keylog

    def _window(
        self, capture: Capture, runner: StimulusRunner, target: subprocess.Popen[bytes]
    ) -> None:
        window = self.options.window
        self.progress.start("lab window", window)
        started = time.monotonic()
        runner.start()
        try:
            while (elapsed := time.monotonic() - started) < window:
                if target.poll() is not None:
                    out = (self.workdir / "target.out").read_text(errors="replace")[-500:]
                    raise LabError(f"the reference target exited with {target.returncode}: {out}")
                self.progress.advance(elapsed, f"{capture.packets()} packets")
                time.sleep(min(TICK, max(0.0, window - elapsed)))
        finally:
            runner.join()
            summary = capture.stop()
            self.progress.advance(window, f"{capture.packets()} packets")
            self.progress.finish()
        if summary:
            self.notes.append(f"dumpcap: {summary}")

    def _probe(self, ns: topo.Namespaces) -> None:
        log = self.workdir / "probes.jsonl"
        argv = in_netns(
            ns.target,
            _python_argv(
                "conformance.lab.probe",
                "--log",
                str(log),
                "--v4",
                topo.CANARY_V4,
                "--v6",
                topo.CANARY_V6,
            ),
        )
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            self.notes.append("perimeter probes timed out")
            return
        if done.returncode != 0 or not log.exists():
            self.notes.append(f"perimeter probes failed: {done.stderr.strip()[-300:]}")
            return
        self.probe_log = log
        self.notes.append("perimeter probes ran after the capture window (not in the capture)")

    def _save_counters(self) -> None:
        if self.state is None or not self.state.namespaces:
            return
        ns = topo.Namespaces(self.state.run_id)
        path = self.workdir / "perimeter.json"
        path.write_text(counters(ns.router))
        self.evidence.add(path, "lab/perimeter.json")

    def result(self) -> LabRun:
        files = [(p, name) for p, name in self.evidence.files if p.exists()]
        if self.probe_log is not None:
            files.append((self.probe_log, self.probe_log.name))
        return LabRun(
            captures=(self.capture_path,),
            evidence_files=tuple(files),
            probe_log=self.probe_log,
            notes=tuple(self.notes),
            logs={name: p for name, p in self.evidence.logs.items() if p.exists()},
        )


def run_lab(
    profile: Profile,
    faults: Sequence[str],
    workdir: Path,
    progress: Progress,
    host_hook: LabHostHook | None = None,
    external: ExternalTarget | None = None,
) -> LabRun:
    """See conformance.lab.run_lab."""
    checked = check_faults(faults)
    options = lab_options(profile)
    stimuli = lab_stimuli(profile.stimuli)
    _check_profile(profile)
    check_host()
    workdir.mkdir(parents=True, exist_ok=True)
    lab = _Run(profile, checked, workdir, options, stimuli, progress, host_hook, external)
    with _signals_raise():
        lab.execute()
    return lab.result()
