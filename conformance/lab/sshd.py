"""A real sshd in the lab target's namespace, for the live-host backend (docs/hosts.md).

Host key, client key, known_hosts and an ssh_config are made per run in the workdir; the
client config reaches the target through `conformance.lab.nsrelay` from the admin
workstation's address, trusts only this run's host key and reads nothing from ~/.ssh.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from conformance.errors import LabError
from conformance.lab import topology as topo
from conformance.lab.netns import NETNS_ETC, LabState, in_netns
from conformance.resources import import_root

HOST_ALIAS = "ucx-lab-target"
PACKAGE_ROOT = import_root()
SSHD_PORT = 22


@dataclass(frozen=True, slots=True)
class LabHostAccess:
    """How to reach the lab target over ssh (testinfra URL and options)."""

    url: str
    ssh_config: Path
    identity: Path
    settings_path: str  # the product's settings file, as the host sees it


class LabHostHook(Protocol):
    """What a live-host source does around the lab window (conformance.evidence.host)."""

    def lab_ready(self, access: LabHostAccess) -> None:
        """The target runs and sshd listens: start sampling."""

    def window_over(self) -> None:
        """The capture window closed (the lab is still up): stop sampling, collect facts."""


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


def _path_without(tool: str, into: Path) -> str:
    """A PATH whose one directory links every program of the usual PATH except `tool`.

    The `no-tcpdump` fault: the host's sessions find no tcpdump, as on a server where it was
    never installed, while the machine's own tcpdump stays where it is.
    """
    into.mkdir(mode=0o755, exist_ok=True)
    for directory in (
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ):
        if not Path(directory).is_dir():
            continue
        for program in sorted(Path(directory).iterdir()):
            link = into / program.name
            if program.name != tool and not link.exists() and not link.is_symlink():
                link.symlink_to(program)
    return str(into)


def start_sshd(
    state: LabState, ns: topo.Namespaces, workdir: Path, no_tcpdump: bool = False
) -> tuple[subprocess.Popen[bytes], LabHostAccess]:
    """Start sshd on the target's address; return it and the client's access.

    `no_tcpdump` (the fault of that name): the sessions' PATH has no tcpdump.
    """
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists() or shutil.which("ssh") is None:
        raise LabError(
            "the live-host lab needs openssh-server and openssh-client (apt-get install)"
        )
    home = workdir / "ssh"
    home.mkdir(mode=0o700, exist_ok=True)
    host_key, client_key = home / "host_ed25519", home / "client_ed25519"
    _keygen(host_key, "ucx-lab-host")
    _keygen(client_key, "ucx-conformance")
    authorized = home / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    config = home / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {topo.TARGET_V4}",
                f"Port {SSHD_PORT}",
                f"HostKey {host_key}",
                f"AuthorizedKeysFile {authorized}",
                "PermitRootLogin prohibit-password",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "UsePAM no",
                "StrictModes no",
                "PidFile none",
                "PrintMotd no",
                "LogLevel VERBOSE",
                *([f"SetEnv PATH={_path_without('tcpdump', home / 'bin')}"] if no_tcpdump else []),
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    log = workdir / "sshd.log"
    handle = log.open("ab")
    try:
        proc = state.spawn(
            "sshd",
            in_netns(ns.target, [sshd, "-D", "-e", "-f", str(config)]),
            stdout=handle,
            stderr=handle,
        )
    finally:
        handle.close()
    known = home / "known_hosts"
    algorithm, key = Path(f"{host_key}.pub").read_text().split()[:2]
    known.write_text(f"{HOST_ALIAS} {algorithm} {key}\n")
    relay = " ".join(
        in_netns(
            ns.onprem,
            [
                "env",
                f"PYTHONPATH={PACKAGE_ROOT}",
                sys.executable,
                "-m",
                "conformance.lab.nsrelay",
                "%h",
                "%p",
                topo.ADMIN_V4,
            ],
        )
    )
    # Options for every host: this run's key and known_hosts only, no prompts, bounded waits,
    # and the relay, so any address is reached from inside the lab, never from the machine.
    common = [
        f"  IdentityFile {client_key}",
        "  IdentitiesOnly yes",
        f"  UserKnownHostsFile {known}",
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  ConnectTimeout 5",
        "  ServerAliveInterval 5",
        "  ServerAliveCountMax 2",
        f"  ProxyCommand {relay}",
        "  LogLevel ERROR",
    ]
    client = home / "ssh_config"
    client.write_text(
        "\n".join(
            [
                f"Host {HOST_ALIAS}",
                f"  HostName {topo.TARGET_V4}",
                f"  Port {SSHD_PORT}",
                f"  HostKeyAlias {HOST_ALIAS}",
                *common,
                # Any other address: trusted only if its key is known, and it is not.
                "Host *",
                *common,
                "",
            ]
        )
    )
    return proc, LabHostAccess(
        url=f"ssh://root@{HOST_ALIAS}",
        ssh_config=client,
        identity=client_key,
        settings_path=str(workdir / "ucx-settings.json"),
    )


def write_host_files(
    ns: topo.Namespaces, workdir: Path, settings: dict[str, object], hosts_override: bool
) -> None:
    """The product settings file the host backend reads, and the hosts-override fault.

    The settings are what an installer writes (mode, telemetry, proxy). The override is an
    /etc/netns/<target>/hosts, which `ip netns exec` binds over /etc/hosts for every process
    started in the target's namespace (sshd and its sessions included).
    """
    (workdir / "ucx-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    if hosts_override:
        etc = NETNS_ETC / ns.target
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(
            "127.0.0.1 localhost\n::1 localhost\n"
            f"{topo.UNDOCUMENTED_V4} {topo.API_NAME}  # the hosts-override fault\n"
        )
