"""SSH settings of a run: nothing from the user's ~/.ssh, strict host keys, bounded in time.

testinfra's ssh backend reads ~/.ssh/config unless given a file, and its paramiko backend
accepts any host key (a warning). So a run without `host.ssh_config` gets a config written
for it, and paramiko hosts get a client that rejects unknown keys (docs/hosts.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conformance.host.facts import HostOptions

CONNECT_TIMEOUT = 10  # seconds to set up a connection
KEEPALIVE = 5  # seconds between keep-alives; 2 unanswered end the connection


def run_ssh_config(workdir: Path, options: HostOptions) -> Path:
    """Write the per-run client config used when the profile names none; return its path.

    Host keys are checked against `host.known_hosts` only (an empty file when the profile
    names none: the connection then fails with "Host key verification failed", never
    trusting a key on first use). Names are not canonicalised and host keys are not looked
    up in DNS, so the harness makes no DNS query of its own for an address.
    """
    known = options.known_hosts
    if known is None:
        known = workdir / "known_hosts"
        known.touch()
    lines = [
        "Host *",
        "  BatchMode yes",
        "  StrictHostKeyChecking yes",
        f"  UserKnownHostsFile {known}",
        "  GlobalKnownHostsFile /dev/null",
        "  UpdateHostKeys no",
        "  VerifyHostKeyDNS no",
        "  CheckHostIP no",
        "  CanonicalizeHostname no",
        "  ControlMaster no",
        "  ControlPath none",
        "  ForwardAgent no",
        "  ForwardX11 no",
        f"  ConnectTimeout {CONNECT_TIMEOUT}",
        f"  ServerAliveInterval {KEEPALIVE}",
        "  ServerAliveCountMax 2",
        "  LogLevel ERROR",
    ]
    if options.ssh_identity is not None:
        lines += [f"  IdentityFile {options.ssh_identity}", "  IdentitiesOnly yes"]
        lines += ["  IdentityAgent none"]
    path = workdir / "ssh_config"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


def strict_paramiko_client(url: str, options: HostOptions) -> Any:
    """A connected paramiko SSHClient that knows only the configured host keys.

    Reads `host.ssh_config` (HostName, Port, User, IdentityFile, UserKnownHostsFile,
    ProxyCommand) when given, never ~/.ssh; no agent, no default keys. Raises paramiko's
    own errors (the caller records them as a connection failure).
    """
    import paramiko  # type: ignore[import-untyped]

    parts = urlsplit(url)
    alias = parts.hostname or ""
    config: dict[str, Any] = {}
    if options.ssh_config is not None:
        config = dict(paramiko.SSHConfig.from_path(str(options.ssh_config)).lookup(alias))
    known = config.get("userknownhostsfile") or (
        str(options.known_hosts) if options.known_hosts else None
    )
    identities = list(config.get("identityfile") or [])
    if options.ssh_identity is not None:
        identities = [str(options.ssh_identity)]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if known:
        for path in str(known).split():
            client.load_host_keys(path)
    sock = paramiko.ProxyCommand(config["proxycommand"]) if "proxycommand" in config else None
    # With a HostKeyAlias the key is known under the alias, as OpenSSH would look it up.
    hostname = config.get("hostkeyalias") or config.get("hostname") or alias
    port = parts.port or int(config.get("port", 22))
    if "hostkeyalias" in config and sock is None:
        raise ValueError("HostKeyAlias without ProxyCommand is not supported for paramiko://")
    client.connect(
        hostname,
        port=port,
        username=parts.username or config.get("user"),
        password=parts.password,
        key_filename=identities or None,
        sock=sock,
        timeout=CONNECT_TIMEOUT,
        banner_timeout=CONNECT_TIMEOUT,
        auth_timeout=CONNECT_TIMEOUT,
        allow_agent=False,
        look_for_keys=False,
    )
    transport = client.get_transport()
    if transport is not None:
        transport.set_keepalive(KEEPALIVE)
    return client
