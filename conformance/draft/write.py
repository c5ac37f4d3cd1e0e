"""The draft as YAML text with comments (PyYAML drops comments, so the text is written here).

Every value is written in the profile's one spelling (quoted addresses and networks, `N/tcp`,
`name:port`), so the draft loads as written; tests load every draft they make. Comments
carry what was seen (flows, first and last time in UTC, names, link role) and the reasons.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from conformance import __version__
from conformance.draft.infer import CloudEndpointSeen, Inference, Peer, Seen
from conformance.observe.records import CaptureSummary
from conformance.profile_model import Mode
from conformance.report.text import utc_strftime

MAX_NAME: Final = 200  # the loader's limit for `name` and endpoint names
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\ufffd]")
_LABEL = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class FailLine:
    """One finding of a capture judge on the draft as written: what would fail."""

    control: str
    summary: str


def render(
    inference: Inference,
    name: str,
    captures: Sequence[CaptureSummary],
    would_fail: Sequence[FailLine] = (),
    more: dict[str, int] | None = None,
) -> str:
    """The whole draft profile."""
    lines = [
        "# DRAFT profile written by `ucx-conformance profile draft`"
        f" (ucx-conformance {__version__}).",
        "# It says what the captures show, not what the site promises: REVIEW EVERY ENTRY,",
        "# then remove the `draft: true` line (`run` refuses a draft) and run",
        "# `ucx-conformance profile check` on it. Nothing outside the networks is written as",
        "# allowed: what the target reached outside is listed at the end, as comments.",
        "#",
        "# Captures:",
        *(f"#   {_capture(c)}" for c in captures),
        "draft: true",
        f"name: {_quoted(name[:MAX_NAME])}",
        f"mode: {inference.mode.value}",
        "target:",
        *(f"  # {_comment(why)}" for why in inference.target_why),
        f"  addresses: [{', '.join(_quoted(str(a)) for a in inference.targets)}]",
        "environment:",
        *(f"  # {n.network}: {_comment(n.why)}" for n in inference.networks),
        *(f"  # note: {_comment(note)}" for note in inference.network_notes),
        f"  networks: [{', '.join(_quoted(str(n.network)) for n in inference.networks)}]",
        "  strict: false  # review: true makes a flow to an undeclared on-prem endpoint fail",
        *_endpoints(inference.peers),
        *_clients(inference),
    ]
    if inference.mode is Mode.HYBRID:
        lines += _hybrid(inference)
    lines += _footer(inference, would_fail, more or {})
    return "\n".join(lines) + "\n"


def _capture(summary: CaptureSummary) -> str:
    window = (
        f"{_time(summary.first_time)} .. {_time(summary.last_time)}"
        if summary.first_time is not None and summary.last_time is not None
        else "no packets"
    )
    return _comment(
        f"{summary.path}: {summary.packets} packets, {window}, sha256 {summary.sha256[:16]}..."
    )


def _endpoints(peers: Sequence[Peer]) -> list[str]:
    declared = [p for p in peers if p.ports]
    lines = []
    if not declared:
        lines.append("  endpoints: []  # the target opened no TCP/UDP flow to an inside address")
    else:
        lines.append("  endpoints:")
    used: set[str] = set()
    for peer in declared:
        name = _endpoint_name(peer, used)
        names = f"{', '.join(peer.names[:3])}; " if peer.names else ""
        lines.append(f"    # {_comment(names + _seen(peer.seen) + '; ' + peer.why)}")
        ports = sorted(peer.ports, key=lambda p: (p[1], p[0]))
        detail = "; ".join(
            f"{port}/{transport} {_flows(peer.ports[(port, transport)])}"
            for port, transport in ports
        )
        for other, seen in sorted(peer.other.items()):
            detail += f"; {other} {_flows(seen)}"
        lines.append(f"    #   {_comment(detail)}")
        spelled = ", ".join(f"{port}/{transport}" for port, transport in ports)
        lines.append(
            f"    - {{name: {_quoted(name)}, address: {_quoted(str(peer.address))},"
            f" ports: [{spelled}]}}"
        )
    for peer in (p for p in peers if not p.ports):
        kinds = ", ".join(f"{kind} {_flows(seen)}" for kind, seen in sorted(peer.other.items()))
        lines.append(
            f"  # {peer.address}: {_comment(kinds)} only, no port: an endpoint needs one, and"
            " AG-ONPREM needs the address declared (review: add its service's port)"
        )
    return lines


def _endpoint_name(peer: Peer, used: set[str]) -> str:
    """The first label of its first DNS name, else the service of its lowest port (the
    system's services database), else host-ADDRESS; unique in the draft."""
    base = ""
    if peer.names:
        base = _LABEL.sub("-", peer.names[0].split(".")[0].lower()).strip("-")
    if not base:
        port, transport = min(peer.ports)
        with contextlib.suppress(OSError):
            base = _LABEL.sub("-", socket.getservbyport(port, transport).lower()).strip("-")
    if not base:
        base = "host-" + _LABEL.sub("-", str(peer.address).lower()).strip("-")
    name, count = base, 1
    while name in used:
        count += 1
        name = f"{base}-{count}"
    used.add(name)
    return name


def _clients(inference: Inference) -> list[str]:
    if not inference.clients:
        return []
    lines = ["  # On-prem clients of the target (they opened the flows: not integrations):"]
    for client in inference.clients:
        ports = "; ".join(f"{port} {_flows(seen)}" for port, seen in sorted(client.ports.items()))
        lines.append(f"  #   {client.address}: {_comment(ports)}")
    return lines


def _hybrid(inference: Inference) -> list[str]:
    lines = ["cloud:"]
    if inference.cloud:
        lines += [
            "  # REVIEW: the services the site activates. A capture cannot tell them apart (they",
            "  # share the licensing channel, CT 3); licensing is the prerequisite of all (CT 2).",
            "  services: [licensing]",
            "  endpoints:",
        ]
        for endpoint in inference.cloud:
            lines.append(f"    # {_comment(_cloud_comment(endpoint))}")
            lines.append(f"    - {_quoted(str(endpoint))}")
    else:
        lines += [
            "  # No endpoint Imagicle documents was reached: no service activated, so",
            "  # HY-DEACTIVATED judges the site like an air-gapped one. REVIEW.",
            "  services: []",
        ]
    lines.append('  min_tls: "1.2"  # review: the lowest TLS version HY-TLS accepts')
    if inference.proxy is not None:
        lines.append(f"# {_comment(inference.proxy_why)}")
        lines.append(f"proxy: {_quoted(str(inference.proxy))}")
    lines += [
        "# REVIEW: enabled or disabled. A capture cannot tell (telemetry travels in the",
        "# licensing channel, CT 3): TM-MINIMAL and TM-CHANNEL judge enabled, TM-OPTOUT disabled.",
        "telemetry: disabled",
    ]
    return lines


def _cloud_comment(endpoint: CloudEndpointSeen) -> str:
    bases = ", ".join(sorted(b for b in endpoint.bases if b)) or "unnamed"
    via = "; through the proxy" if endpoint.tunnel else ""
    return f"{_seen(endpoint.seen)}; named by {bases}{via}"


def _footer(
    inference: Inference, would_fail: Sequence[FailLine], more: dict[str, int]
) -> list[str]:
    lines: list[str] = []
    if inference.outside:
        if inference.mode is Mode.AIR_GAPPED:
            lines.append("# Reached outside the networks; a draft never allows it (air-gapped mode")
            lines.append("# allows no connection out of the environment, HA 2.2):")
        else:
            lines.append("# Reached outside the networks (HY-DEST allows a flow only by a cloud")
            lines.append("# endpoint above, matched by name, port and transport):")
        lines += [f"#   {_comment(text)}" for text in inference.outside]
    if inference.cloud_unproposed:
        lines.append("# Reached outside the environment, not proposed (HY-DEST allows only")
        lines.append("# endpoints Imagicle documents, or ones a person justifies in writing):")
        lines += [f"#   {_comment(text)}" for text in inference.cloud_unproposed]
    if would_fail:
        lines.append("# With this profile as written, the capture judges find (each would fail):")
        for line in would_fail:
            lines.append(f"#   {line.control}: {_comment(line.summary)}")
        for control, count in sorted(more.items()):
            lines.append(f"#   {control}: ... and {count} more")
    elif inference.targets:
        lines.append("# With this profile as written, the capture judges find nothing that fails.")
    return lines


def _seen(seen: Seen) -> str:
    return f"{_flows(seen)}, {_time(seen.first)} .. {_time(seen.last)}"


def _flows(seen: Seen) -> str:
    return f"{seen.flows} flow{'' if seen.flows == 1 else 's'}"


def _time(epoch: float) -> str:
    return utc_strftime(epoch, "%Y-%m-%dT%H:%M:%SZ")


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is a subset of it)."""
    return json.dumps(text, ensure_ascii=True)


def _comment(text: str) -> str:
    """`text` safe inside a YAML comment: one line of printable characters."""
    return _NOT_PRINTABLE.sub("?", text)
