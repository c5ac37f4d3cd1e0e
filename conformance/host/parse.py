"""Parsers for the raw outputs of the host commands (ss, hosts, resolv.conf, firewall, env)."""

from __future__ import annotations

import ipaddress
import json
import re

from conformance.host.facts import HostsEntry, Socket
from conformance.profile_model import IPAddress

_WILDCARDS = frozenset({"*", "0.0.0.0", "::", "[::]"})
_PROXY_KEYS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
_NFT_POLICY_DROP = re.compile(r"hook\s+(input|output)\b[^;]*;[^}]*?policy\s+drop", re.DOTALL)
_IPT_POLICY = re.compile(r"^-P\s+(INPUT|OUTPUT)\s+(DROP|REJECT)\b", re.MULTILINE)


def split_endpoint(text: str) -> tuple[IPAddress | None, int] | None:
    """`ss`'s "addr:port" (IPv6 in brackets, optional %iface, `*` ports) as (address, port).

    The wildcard address is None; a `*` port is 0. None for anything unparseable.
    """
    host, sep, port_text = text.rpartition(":")
    if not sep:
        return None
    port = 0 if port_text == "*" else int(port_text) if port_text.isdigit() else -1
    if port < 0:
        return None
    host = host.split("%", 1)[0]
    if host in _WILDCARDS:
        return None, port
    host = host.removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address, port


def parse_ss(output: str, command: str) -> tuple[tuple[Socket, ...], int]:
    """Sockets from `ss -H -a -n -t -u [-p]` output, and the count of lines not understood."""
    sockets: list[Socket] = []
    bad = 0
    for number, raw in enumerate(output.splitlines(), start=1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) < 6 or fields[0] not in ("tcp", "udp"):
            bad += 1
            continue
        local = split_endpoint(fields[4])
        peer = split_endpoint(fields[5])
        if local is None or peer is None:
            bad += 1
            continue
        sockets.append(
            Socket(
                transport=fields[0],
                state=fields[1],
                local=local[0],
                local_port=local[1],
                peer=peer[0],
                peer_port=peer[1],
                process=" ".join(fields[6:]),
                command=command,
                line=number,
            )
        )
    return tuple(sockets), bad


def is_listener(sock: Socket) -> bool:
    """A socket waiting for others: TCP LISTEN, or unconnected UDP bound to a port."""
    return sock.state == "LISTEN" or (
        sock.transport == "udp" and sock.state == "UNCONN" and sock.peer is None
    )


def parse_hosts(output: str) -> tuple[HostsEntry, ...]:
    entries: list[HostsEntry] = []
    for number, raw in enumerate(output.splitlines(), start=1):
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 2:
            entries.append(
                HostsEntry(fields[0], tuple(n.lower().rstrip(".") for n in fields[1:]), number)
            )
    return tuple(entries)


def parse_resolvers(output: str) -> tuple[str, ...]:
    found: list[str] = []
    for raw in output.splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1])
    return tuple(found)


def parse_proxy_env(output: str, source: str) -> dict[str, str]:
    """`KEY=value` lines (env, /etc/environment) whose key is a proxy variable."""
    found: dict[str, str] = {}
    for raw in output.splitlines():
        key, sep, value = raw.strip().removeprefix("export ").partition("=")
        if sep and key.lower() in _PROXY_KEYS:
            found[f"{source}:{key}"] = value.strip().strip("'\"")
    return found


def firewall_restrictions(
    nft: str | None, iptables: str | None
) -> tuple[str, bool | None, bool | None]:
    """(which firewall, input restricted, output restricted), from its rule listing.

    Restricted means a default-drop policy on that hook (nftables `policy drop`, iptables
    `-P INPUT DROP`); False when the listing was read and has none; None when unread.
    """
    if nft is not None and nft.strip():
        hooks = {m.group(1) for m in _NFT_POLICY_DROP.finditer(nft)}
        return "nftables", "input" in hooks, "output" in hooks
    if iptables is not None:
        policies = {m.group(1) for m in _IPT_POLICY.finditer(iptables)}
        return "iptables", "INPUT" in policies, "OUTPUT" in policies
    if nft is not None:
        return "nftables", False, False  # read, and empty: nothing filtered
    return "", None, None


def parse_settings(text: str) -> dict[str, object] | None:
    """The product's settings file: JSON object, or `key = value` / `key: value` lines."""
    stripped = text.strip()
    if not stripped:
        return None
    if stripped.startswith("{"):
        try:
            loaded = json.loads(stripped)
        except ValueError:
            return None
        return loaded if isinstance(loaded, dict) else None
    settings: dict[str, object] = {}
    for raw in stripped.splitlines():
        line = raw.split("#", 1)[0].strip()
        match = re.match(r"([A-Za-z0-9_.-]+)\s*[:=]\s*(.*)$", line)
        if match:
            settings[match.group(1).lower()] = match.group(2).strip().strip("'\"")
    return settings or None
