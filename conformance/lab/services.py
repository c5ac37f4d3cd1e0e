"""The lab's services: configs written into the run's workdir, processes started in namespaces.

Real daemons where the real thing starts fast enough: dnsmasq (on-prem and outside
resolvers), squid (the proxy), slapd (the on-prem directory). Python stand-ins
(fixtures/lab/standins) for what has no small real counterpart: CUCM, NTP, the Imagicle
cloud endpoints, canaries and the outside scanner. None of them has an upstream outside
the lab: dnsmasq runs with no-resolv and only lab servers, squid resolves only through the
lab resolver.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from conformance.errors import LabError
from conformance.evidence.interface import (
    CLOUD_REQUESTS,
    DECRYPTED_REQUESTS,
    KNOWN_PEOPLE,
    PROXY_ACCESS_LOG,
)
from conformance.lab import topology as topo
from conformance.lab.certs import CertPair, LabCA
from conformance.lab.netns import LabState, in_netns, run, run_dir, shm_prefix, stop_process
from conformance.resources import import_root, lab_dir

# A service not listening after this is broken, not slow: mitmproxy alone needs several
# seconds to import on a busy 2-core machine (5 s was seen to run out in a full lab run).
READY_TIMEOUT: Final = 30.0
POLL: Final = 0.02
FIXTURES: Final = lab_dir()
TARGET_PROGRAM: Final = FIXTURES / "target" / "ucx_target.py"
STANDINS_PROGRAM: Final = FIXTURES / "standins" / "standins.py"
LDAP_SUFFIX: Final = "dc=lab,dc=internal"
LDAP_BIND_DN: Final = f"cn=ucx-svc,{LDAP_SUFFIX}"
LDAP_PASSWORD: Final = "lab-only-secret"  # a throwaway directory inside a namespace

_TCP_LISTEN = "0A"  # /proc/net/tcp state of a listening socket
INTERCEPT_PORT: Final = 3129  # the interceptor, squid's parent proxy (same address)
INTERCEPT_PEER: Final = (
    f"cache_peer {topo.PROXY_V4} parent {INTERCEPT_PORT} 0 no-query no-digest"
    " no-netdb-exchange default name=interceptor",
    "never_direct allow all",
)


@dataclass
class Evidence:
    """Files the services write, named as they appear under the report's evidence/."""

    files: list[tuple[Path, str]] = field(default_factory=list)
    # Files that live outside the workdir while the lab runs, copied in at teardown.
    copy_back: list[tuple[Path, Path]] = field(default_factory=list)
    # The ones a judge reads, by conformance.evidence.interface log name.
    logs: dict[str, Path] = field(default_factory=dict)

    def add(self, path: Path, name: str, log: str | None = None) -> Path:
        self.files.append((path, name))
        if log is not None:
            self.logs[log] = path
        return path


def listening(pid: int, proto: str, port: int) -> bool:
    """Whether something in `pid`'s network namespace has bound `port` (tcp: listening)."""
    for suffix in ("", "6"):
        try:
            lines = Path(f"/proc/{pid}/net/{proto}{suffix}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and (proto == "udp" or fields[3] == _TCP_LISTEN):
                return True
    return False


def wait_until(check: object, what: str, proc: subprocess.Popen[bytes], log: Path | None) -> None:
    """Poll `check()` until true; LabError naming `what` (and its log tail) on timeout or exit."""
    assert callable(check)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if check():
            return
        if proc.poll() is not None:
            break
        time.sleep(POLL)
    tail = ""
    if log is not None and log.exists():
        tail = ": " + " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
    state = f"exited with {proc.returncode}" if proc.poll() is not None else "not ready in time"
    raise LabError(f"lab service {what} {state}{tail}")


class Services:
    """Starts every service of one lab run; the state records each process for teardown."""

    def __init__(
        self,
        state: LabState,
        ns: topo.Namespaces,
        workdir: Path,
        ca: LabCA,
        evidence: Evidence,
    ) -> None:
        self.state, self.ns, self.workdir, self.ca, self.evidence = (
            state,
            ns,
            workdir,
            ca,
            evidence,
        )
        self.pending: list[tuple[object, str, subprocess.Popen[bytes], Path | None]] = []
        self._squid: subprocess.Popen[bytes] | None = None
        self._interceptor: subprocess.Popen[bytes] | None = None

    def _spawn(
        self, name: str, namespace: str, argv: list[str], log: Path
    ) -> subprocess.Popen[bytes]:
        handle = log.open("ab")
        try:
            return self.state.spawn(name, in_netns(namespace, argv), stdout=handle, stderr=handle)
        finally:
            handle.close()

    def wait_ready(self) -> None:
        """Wait for everything started since the last call (they start in parallel)."""
        for check, what, proc, log in self.pending:
            wait_until(check, what, proc, log)
        self.pending.clear()

    # --- DNS -----------------------------------------------------------------------------------

    def onprem_dns(self, hybrid: bool) -> None:
        """dnsmasq on 192.0.2.53: internal names; in hybrid mode cloud zones go outside."""
        conf = self.workdir / "dnsmasq-onprem.conf"
        lines = [
            f"listen-address={topo.DNS_V4}",
            "bind-interfaces",
            "no-resolv",
            "no-hosts",
            "no-poll",
            "user=root",
            f"local=/{topo.INTERNAL_ZONE}/",
            "log-queries",
            f"log-facility={self.workdir / 'dns-onprem.log'}",
        ]
        for host in topo.HOSTS:
            if host.name.endswith(topo.INTERNAL_ZONE):
                lines.append(f"host-record={host.name},{host.v4}")
        if hybrid:
            # The customer's resolver forwards cloud zones to the outside resolver (CT 7).
            lines += [
                f"server=/{zone}/{topo.RESOLVER_V4}@{topo.DNS_V4}" for zone in topo.CLOUD_ZONES
            ]
        self._dnsmasq("dnsmasq-onprem", self.ns.onprem, conf, lines)
        self.evidence.add(self.workdir / "dns-onprem.log", "lab/dns-onprem.log")

    def outside_dns(self) -> None:
        """dnsmasq on 198.51.100.53: authoritative for the lab's internet names, nothing else."""
        conf = self.workdir / "dnsmasq-outside.conf"
        lines = [
            f"listen-address={topo.RESOLVER_V4}",
            "bind-interfaces",
            "no-resolv",
            "no-hosts",
            "no-poll",
            "user=root",
            "log-queries",
            f"log-facility={self.workdir / 'dns-outside.log'}",
        ]
        for host in topo.HOSTS:
            if host.segment == "internet" and "." in host.name:
                lines.append(
                    f"host-record={host.name},{host.v4}" + (f",{host.v6}" if host.v6 else "")
                )
        lines += [f"local=/{zone}/" for zone in topo.CLOUD_ZONES]
        self._dnsmasq("dnsmasq-outside", self.ns.internet, conf, lines)
        self.evidence.add(self.workdir / "dns-outside.log", "lab/dns-outside.log")

    def _dnsmasq(self, name: str, namespace: str, conf: Path, lines: list[str]) -> None:
        conf.write_text("\n".join(lines) + "\n")
        log = self.workdir / f"{name}.out"
        argv = ["dnsmasq", "--keep-in-foreground", f"--conf-file={conf}", "--pid-file="]
        proc = self._spawn(name, namespace, argv, log)
        self.pending.append((lambda: listening(proc.pid, "udp", 53), name, proc, log))

    # --- proxy ---------------------------------------------------------------------------------

    def proxy(self, intercept: bool = False) -> None:
        """squid on 192.0.2.80:3128: CONNECT to 443/636 only, access.log kept as evidence.

        With `intercept`, squid hands every request to the interceptor (`interceptor()`) as
        its parent proxy instead of going direct. This squid serves the judged window only
        (`proxy_after_window`): its access.log is the one PX-* read.
        """
        access = self.workdir / "squid-access.log"
        self._squid = self._start_squid("squid", intercept, access)
        self.evidence.add(access, "lab/squid-access.log", PROXY_ACCESS_LOG)

    def proxy_after_window(self) -> str:
        """Stop the interceptor and the window's squid; start a squid that goes direct.

        The phases after the window (impostors, endpoint scan) reach the cloud through the
        proxy like the target does, but must meet the cloud side itself, not the
        interceptor, and their CONNECTs must stay out of the judged access.log (decision 7):
        this squid has its own log, kept as evidence but judged by nobody.
        """
        for proc in (self._squid, self._interceptor):  # squid first: no request meets a
            if proc is not None:  # dead parent (a 503 in the judged log)
                self._stop(proc)
        self._interceptor = None
        access = self.workdir / "squid-access-after-window.log"
        self._squid = self._start_squid("squid-after-window", False, access)
        self.evidence.add(access, "lab/squid-access-after-window.log")
        self.wait_ready()
        return (
            "after the window: the interceptor stopped, a direct squid (own access.log,"
            " lab/squid-access-after-window.log) carries the impostor phase and the scan"
        )

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        started = next((p.started for p in self.state.processes if p.pid == proc.pid), None)
        stop_process(proc.pid, started)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1.0)

    def _start_squid(self, name: str, intercept: bool, access: Path) -> subprocess.Popen[bytes]:
        home = run_dir(self.state.run_id) / name
        home.mkdir(mode=0o750, exist_ok=True)
        shutil.chown(home, "proxy", "proxy")
        conf = self.workdir / f"{name}.conf"
        conf.write_text(
            "\n".join(
                [
                    f"http_port {topo.PROXY_V4}:{topo.PROXY_PORT}",
                    f"pid_filename {home / 'squid.pid'}",
                    f"access_log stdio:{home / 'access.log'} squid",
                    f"cache_log {home / 'cache.log'}",
                    "cache_store_log none",
                    "cache deny all",
                    f"coredump_dir {home}",
                    f"dns_nameservers {topo.DNS_V4}",  # the lab resolver, never the host's
                    "hosts_file none",
                    f"tcp_outgoing_address {topo.PROXY_V4}",
                    "pinger_enable off",  # the pinger would send ICMP of its own
                    "cache_effective_user proxy",
                    "cache_effective_group proxy",
                    "logfile_rotate 0",
                    "visible_hostname proxy.lab.internal",
                    "shutdown_lifetime 0 seconds",
                    "connect_timeout 3 seconds",
                    "forward_timeout 5 seconds",
                    "acl SSL_ports port 443 636",
                    "acl CONNECT method CONNECT",
                    f"acl localnet src {topo.ONPREM_V4}",
                    "http_access deny CONNECT !SSL_ports",
                    "http_access allow localnet",
                    "http_access deny all",
                    *(INTERCEPT_PEER if intercept else []),
                ]
            )
            + "\n"
        )
        log = self.workdir / f"{name}.out"
        # One squid at a time under the run's service name (its shared memory): a second one
        # starts only after the first has exited.
        argv = ["squid", "-N", "-n", shm_prefix(self.state.run_id), "-f", str(conf)]
        proc = self._spawn(name, self.ns.onprem, argv, log)
        self.pending.append(
            (lambda: listening(proc.pid, "tcp", topo.PROXY_PORT), name, proc, home / "cache.log")
        )
        self.evidence.copy_back.append((home / "access.log", access))
        return proc

    def interceptor(self) -> None:
        """mitmproxy (conformance.lab.intercept) on 192.0.2.80:3129, squid's parent: decrypts
        with lab-CA certificates and records DECRYPTED_REQUESTS; forwards to the lab only."""
        confdir = self.workdir / "pki" / "interceptor"
        self.ca.export_for_interceptor(confdir / "mitmproxy-ca.pem")
        log = self.workdir / "decrypted-requests.jsonl"
        log.touch()
        ready = self.workdir / "interceptor.ready"
        conf = self.workdir / "interceptor.json"
        conf.write_text(
            json.dumps(
                {
                    "listen_host": topo.PROXY_V4,
                    "listen_port": INTERCEPT_PORT,
                    "confdir": str(confdir),
                    "upstream_ca": str(self.ca.ca_file),
                    "connect_addr": topo.PROXY_V4,
                    "allowed_hosts": [
                        topo.API_NAME,
                        topo.GRPC_NAME,
                        topo.LDAPS_NAME,
                        topo.UNDOCUMENTED_NAME,
                    ],
                    "log": str(log),
                    "proxy_host": topo.PROXY_V4,
                    "proxy_port": topo.PROXY_PORT,
                    "ready": str(ready),
                },
                indent=2,
            )
        )
        out = self.workdir / "interceptor.out"
        argv = [
            "env",
            f"PYTHONPATH={import_root()}",
            sys.executable,
            "-m",
            "conformance.lab.intercept",
            str(conf),
        ]
        proc = self._interceptor = self._spawn("interceptor", self.ns.onprem, argv, out)
        # Ready once a warm-up CONNECT made it through squid to the interceptor.
        self.pending.append((ready.exists, "interceptor", proc, out))
        self.evidence.add(log, "lab/decrypted-requests.jsonl", DECRYPTED_REQUESTS)

    # --- directory -------------------------------------------------------------------------------

    def directory(self) -> None:
        """slapd on 192.0.2.30 (389 and 636) with a five-entry directory."""
        home = self.workdir / "slapd"
        (home / "db").mkdir(parents=True, exist_ok=True)
        cert = self.ca.issue("ad", ("ad.lab.internal", topo.LDAP_V4))
        conf = home / "slapd.conf"
        conf.write_text(
            "\n".join(
                [
                    "include /etc/ldap/schema/core.schema",
                    "include /etc/ldap/schema/cosine.schema",
                    "include /etc/ldap/schema/inetorgperson.schema",
                    f"pidfile {home / 'slapd.pid'}",
                    f"argsfile {home / 'slapd.args'}",
                    "modulepath /usr/lib/ldap",
                    "moduleload back_mdb",
                    f"TLSCertificateFile {cert.chain}",
                    f"TLSCertificateKeyFile {cert.key}",
                    "database mdb",
                    "maxsize 10485760",
                    f'suffix "{LDAP_SUFFIX}"',
                    f'rootdn "{LDAP_BIND_DN}"',
                    f"rootpw {LDAP_PASSWORD}",
                    f"directory {home / 'db'}",
                ]
            )
            + "\n"
        )
        people = [("Alice Example", "1001"), ("Bob Example", "1002"), ("Carol Example", "1003")]
        entries = [
            f"dn: {LDAP_SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
            "dc: lab\no: ucx-conformance lab\n",
            f"dn: ou=people,{LDAP_SUFFIX}\nobjectClass: organizationalUnit\nou: people\n",
        ] + [
            f"dn: cn={cn},ou=people,{LDAP_SUFFIX}\nobjectClass: inetOrgPerson\ncn: {cn}\n"
            f"sn: {cn.split()[1]}\ntelephoneNumber: {ext}\n"
            for cn, ext in people
        ]
        ldif = home / "directory.ldif"
        ldif.write_text("\n".join(entries))
        known = self.workdir / "known-people.json"
        known.write_text(json.dumps([cn for cn, _ in people]))
        self.evidence.add(known, "lab/known-people.json", KNOWN_PEOPLE)
        run(["slapadd", "-q", "-f", str(conf), "-l", str(ldif)])
        log = self.workdir / "slapd.log"
        urls = f"ldap://{topo.LDAP_V4}/ ldaps://{topo.LDAP_V4}/"
        argv = ["slapd", "-f", str(conf), "-h", urls, "-d", "stats"]  # -d: stay in foreground
        proc = self._spawn("slapd", self.ns.onprem, argv, log)
        self.pending.append((lambda: listening(proc.pid, "tcp", 636), "slapd", proc, log))
        self.evidence.add(log, "lab/slapd.log")

    # --- stand-ins -------------------------------------------------------------------------------

    def onprem_standins(self) -> None:
        """CUCM (SIP 5060 udp/tcp, HTTPS 8443) and the on-prem NTP server."""
        cert = self.ca.issue("cucm", ("cucm.lab.internal", topo.CUCM_V4))
        self._standins(
            "standins-onprem",
            self.ns.onprem,
            {
                "role": "onprem",
                "cucm": topo.CUCM_V4,
                "ntp": topo.NTP_V4,
                "cucm_cert": [str(cert.chain), str(cert.key)],
            },
            "lab/onprem-requests.jsonl",
        )

    def cloud_standins(
        self, cert_kind: str, scan_ports: tuple[int, ...], legacy_tls: bool = False
    ) -> None:
        """Imagicle cloud stand-ins, a non-Imagicle service, canaries and the scanner."""

        def cert(label: str, *names: str) -> CertPair:
            return self.ca.issue(label, names, cert_kind)

        services = [
            (topo.API_NAME, (topo.API_V4, topo.API_V6), 443, "http", cert("api", topo.API_NAME)),
            (
                topo.GRPC_NAME,
                (topo.GRPC_V4, topo.GRPC_V6),
                443,
                "http",
                cert("grpc", topo.GRPC_NAME),
            ),
            (
                topo.LDAPS_NAME,
                (topo.LDAPS_V4, topo.LDAPS_V6),
                636,
                "ldap",
                cert("ldaps", topo.LDAPS_NAME, "*.imagicle.cloud"),
            ),
            (
                topo.UNDOCUMENTED_NAME,
                (topo.UNDOCUMENTED_V4,),
                443,
                "http",
                self.ca.issue("undocumented", (topo.UNDOCUMENTED_NAME,)),
            ),
        ]
        config: dict[str, object] = {
            "role": "cloud",
            "legacy_tls": legacy_tls,
            "services": [
                {
                    "name": name,
                    "addresses": list(addresses),
                    "port": port,
                    "kind": kind,
                    "cert": [str(pair.chain), str(pair.key)],
                }
                for name, addresses, port, kind, pair in services
            ],
            "canaries": [topo.CANARY_V4, topo.CANARY_V6],
            "ntp_canaries": [topo.CANARY_NTP_V4],
        }
        if scan_ports:
            config["scan"] = {
                "source": topo.SCANNER_V4,
                "target": topo.TARGET_V4,
                "ports": list(scan_ports),
                "delay": 1.0,
                "period": 3.0,
            }
        self._standins(
            "standins-cloud",
            self.ns.internet,
            config,
            "lab/cloud-requests.jsonl",
            CLOUD_REQUESTS,
        )

    def _standins(
        self,
        name: str,
        namespace: str,
        config: dict[str, object],
        evidence: str,
        log_name: str | None = None,
    ) -> None:
        requests = self.workdir / f"{name}.jsonl"
        ready = self.workdir / f"{name}.ready"
        config = {**config, "log": str(requests), "ready": str(ready)}
        conf = self.workdir / f"{name}.json"
        conf.write_text(json.dumps(config, indent=2))
        log = self.workdir / f"{name}.out"
        proc = self._spawn(name, namespace, [sys.executable, str(STANDINS_PROGRAM), str(conf)], log)
        self.pending.append((ready.exists, name, proc, log))
        requests.touch()
        self.evidence.add(requests, evidence, log_name)

    # --- the target ------------------------------------------------------------------------------

    def target(self, config: dict[str, object]) -> subprocess.Popen[bytes]:
        """Start the reference target with `config`; ready when its admin API listens."""
        log = self.workdir / "target.jsonl"
        log.touch()
        conf = self.workdir / "target.json"
        conf.write_text(json.dumps({**config, "log": str(log)}, indent=2))
        out = self.workdir / "target.out"
        proc = self._spawn(
            "ucx-target", self.ns.target, [sys.executable, str(TARGET_PROGRAM), str(conf)], out
        )
        self.evidence.add(log, "lab/target.jsonl")
        port = topo.ADMIN_PORT
        self.pending.append((lambda: listening(proc.pid, "tcp", port), "ucx-target", proc, out))
        return proc
