"""Run the fact commands on a host through testinfra, each bounded in time, and parse them.

Every remote command is wrapped in `timeout` on the host, and ssh connections carry
keep-alives and a connect timeout, so a hanging command or a dead link ends in a recorded
error instead of a hung run. Nothing from the user's ~/.ssh is read: the caller passes an
ssh_config file (docs/hosts.md).
"""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from conformance.errors import ConformanceError
from conformance.host.facts import CommandRecord, HostFacts, HostOptions, Socket
from conformance.host.parse import (
    firewall_restrictions,
    is_listener,
    parse_hosts,
    parse_proxy_env,
    parse_resolvers,
    parse_settings,
    parse_ss,
)

SS = "ss -H -a -n -t -u -p"
FACT_COMMANDS: tuple[tuple[str, str], ...] = (
    ("sockets", SS),
    ("routes", "ip route show; ip -6 route show"),
    ("resolv.conf", "cat /etc/resolv.conf"),
    ("hosts", "cat /etc/hosts"),
    ("environment", "env"),
    ("etc-environment", "cat /etc/environment"),
    ("nftables", "nft list ruleset"),
    ("iptables", "iptables -S"),
)
_FIREWALL_COMMANDS = ("nftables", "iptables")
_TIMED_OUT = 124  # coreutils timeout
_SSH_FAILED = 255
_NOT_FOUND = 127  # sh: command not found


def public_url(url: str) -> str:
    """`url` without a password, for reports and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class HostCollector:
    """One host, reached through testinfra; collects facts and connection samples."""

    def __init__(self, url: str, options: HostOptions) -> None:
        self.url = url
        self.options = options
        self._records: list[CommandRecord] = []
        self._lock = threading.Lock()
        self._began = time.monotonic()
        self._connect_error: str | None = None
        self._host: Any = None
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._samples = 0

    # --- connection ---------------------------------------------------------------------

    def _testinfra_host(self) -> Any:
        if self._host is None:
            import testinfra

            scheme = urlsplit(self.url).scheme
            if scheme == "winrm":
                raise ConformanceError(
                    f"{public_url(self.url)}: facts from Windows hosts are not collected in "
                    "this version (see docs/hosts.md for the pktmon capture route)"
                )
            kwargs: dict[str, Any] = {"sudo": self.options.sudo}
            if scheme == "ssh":
                # No ControlPersist master: it would outlive the run as a stray process.
                kwargs["controlpersist"] = 0
            if scheme in ("ssh", "paramiko"):
                kwargs["timeout"] = int(min(self.options.command_timeout, 30))
                if self.options.ssh_config is not None:
                    kwargs["ssh_config"] = str(self.options.ssh_config)
                if self.options.ssh_identity is not None:
                    kwargs["ssh_identity_file"] = str(self.options.ssh_identity)
            host = testinfra.get_host(self.url, **kwargs)
            if scheme == "paramiko":
                from conformance.host.sshconfig import strict_paramiko_client

                # Before testinfra's own client (which accepts any host key) is ever made.
                host.backend.__dict__["client"] = strict_paramiko_client(self.url, self.options)
            self._host = host
        return self._host

    def run(self, name: str, command: str) -> CommandRecord:
        """Run `command` on the host, bounded by the command timeout; never raises."""
        at = time.monotonic() - self._began
        if self._connect_error is not None:
            record = CommandRecord(name, command, None, "", "", self._connect_error, at)
            return self._keep(record)
        limit = self.options.command_timeout
        wrapped = f"timeout -k 2 {limit:g} sh -c {shlex.quote(command)}"
        try:
            result = self._testinfra_host().run(wrapped)
        except ConformanceError as exc:
            self._connect_error = str(exc)
            return self._keep(CommandRecord(name, command, None, "", "", str(exc), at))
        except Exception as exc:  # testinfra (ssh rc 255), paramiko, winrm: connection trouble
            self._connect_error = f"connection to {public_url(self.url)} failed: {_reason(exc)}"
            return self._keep(CommandRecord(name, command, None, "", "", self._connect_error, at))
        stdout, stderr, status = str(result.stdout), str(result.stderr), int(result.rc)
        error: str | None = None
        if status == _SSH_FAILED and urlsplit(self.url).scheme == "ssh":
            last = stderr.strip().splitlines()[-1:] or ["no message"]
            self._connect_error = f"ssh to {public_url(self.url)} failed: {last[0]}"
            error = self._connect_error
        elif status == _TIMED_OUT:
            error = f"timed out after {limit:g} s on the host"
        elif status == _NOT_FOUND:
            error = f"not available on the host: {stderr.strip()[:200]}"
        return self._keep(CommandRecord(name, command, status, stdout, stderr, error, at))

    def _keep(self, record: CommandRecord) -> CommandRecord:
        with self._lock:
            self._records.append(record)
        return record

    # --- sampling through the window ----------------------------------------------------------

    def start_sampling(self) -> None:
        """Sample the host's sockets every `sample_interval` until `stop_sampling`."""
        self._sampler = threading.Thread(target=self._sample_loop, name="ucx-host-samples")
        self._sampler.start()

    def _sample_loop(self) -> None:
        while not self._stop.is_set():
            record = self.run(f"sample-{self._samples + 1}", SS)
            if record.ok:
                self._samples += 1
            if self._connect_error is not None:
                return
            self._stop.wait(self.options.sample_interval)

    def stop_sampling(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()
            self._sampler = None

    # --- facts ----------------------------------------------------------------------------------

    def collect(self) -> HostFacts:
        """Run every fact command (after any sampling) and parse what came back."""
        for name, command in FACT_COMMANDS:
            self.run(name, command)
        if self.options.settings_path:
            self.run("settings", f"cat {shlex.quote(self.options.settings_path)}")
        return build_facts(public_url(self.url), tuple(self._records), self.options)


def _reason(exc: Exception) -> str:
    """A one-line reason: the telling lines of ssh's stderr when testinfra wraps a result."""
    result = exc.args[0] if exc.args else None
    stderr = str(getattr(result, "stderr", "") or "")
    lines = [line.strip() for line in stderr.replace("\r", "").splitlines() if line.strip()]
    telling = [line for line in lines if "Traceback" not in line and not line.startswith("File ")]
    if telling:
        return "; ".join(telling[-2:])[:300]
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _output(records: tuple[CommandRecord, ...], name: str) -> str | None:
    record = next((r for r in records if r.name == name), None)
    return record.stdout if record is not None and record.ok else None


def build_facts(url: str, records: tuple[CommandRecord, ...], options: HostOptions) -> HostFacts:
    """Parse the command records into facts; what could not be read becomes a problem."""
    problems: list[str] = []
    firewall_read = any(r.ok for r in records if r.name in _FIREWALL_COMMANDS)
    for record in records:
        if record.name in _FIREWALL_COMMANDS and firewall_read:
            continue  # one firewall listing is enough
        if record.error is not None:
            problems.append(f"{record.name} ({record.command}): {record.error}")
        elif record.exit_status not in (0, None):
            problems.append(f"{record.name} ({record.command}): exit {record.exit_status}")
    listeners: tuple[Socket, ...] = ()
    connections: dict[tuple[object, ...], Socket] = {}
    samples = 0
    for record in records:
        if not record.ok or not (record.name == "sockets" or record.name.startswith("sample-")):
            continue
        sockets, bad = parse_ss(record.stdout, record.name)
        if bad:
            problems.append(f"{record.name}: {bad} lines of ss output not understood")
        samples += 1
        if record.name == "sockets":
            listeners = tuple(s for s in sockets if is_listener(s))
        for sock in sockets:
            if is_listener(sock) or sock.peer is None:
                continue
            key = (sock.transport, sock.local, sock.local_port, sock.peer, sock.peer_port)
            connections.setdefault(key, sock)
    if samples == 0:
        problems.append("no socket listing could be read: connections and listeners unknown")
    proxy: dict[str, str] = {}
    for name in ("environment", "etc-environment"):
        text = _output(records, name)
        if text is not None:
            proxy.update(parse_proxy_env(text, name))
    firewall, input_restricted, output_restricted = firewall_restrictions(
        _output(records, "nftables"), _output(records, "iptables")
    )
    settings_text = _output(records, "settings")
    settings = parse_settings(settings_text) if settings_text is not None else None
    if options.settings_path and settings is None:
        problems.append(f"the product settings file {options.settings_path} could not be read")
    hosts = _output(records, "hosts")
    resolv = _output(records, "resolv.conf")
    return HostFacts(
        url=url,
        commands=records,
        listeners=listeners,
        connections=tuple(connections.values()),
        samples=samples,
        resolvers=parse_resolvers(resolv) if resolv is not None else (),
        hosts_entries=parse_hosts(hosts) if hosts is not None else (),
        proxy_settings=proxy,
        firewall=firewall,
        firewall_input_restricted=input_restricted,
        firewall_output_restricted=output_restricted,
        product_settings=settings,
        problems=tuple(problems),
    )


def with_problem(facts: HostFacts, problem: str) -> HostFacts:
    return replace(facts, problems=(*facts.problems, problem))


SamplerFactory = Callable[[str, HostOptions], HostCollector]
