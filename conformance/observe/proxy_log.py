"""The site proxy's access.log (squid native format) as records: its own account of what it
carried (PX-ONLY, PX-CONNECT).

1732345678.123 1023 192.0.2.10 TCP_TUNNEL/200 3954 CONNECT api.imagicle.com:443 - HIER_DIRECT/-
time           elapsed client action/status bytes method URL          ident hierarchy/peer
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

_FIELDS: Final = 7  # time, elapsed, client, action/status, bytes, method, URL (the rest optional)
_HIERARCHY: Final = 8  # index of hierarchy/peer, after the ident field


@dataclass(frozen=True, slots=True)
class ProxyLogEntry:
    line: int  # 1-based
    time: float
    client: str
    action: str  # TCP_TUNNEL, TCP_DENIED, TCP_MISS, ...
    status: int
    method: str
    url: str  # "host:port" for CONNECT, "http://host/path" for a proxied request
    text: str  # the line as written
    # "HIER_DIRECT/203.0.113.10": how squid forwarded it and the address (or parent) it
    # connected to; "-" when the line does not say
    hierarchy: str = "-"


def read_access_log(path: Path) -> tuple[list[ProxyLogEntry], list[int]]:
    """The entries and the numbers of lines that could not be read."""
    entries: list[ProxyLogEntry] = []
    bad: list[int] = []
    for number, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
        parts = text.split()
        if not parts:
            continue
        try:
            if len(parts) < _FIELDS:
                raise ValueError(text)
            action, _, status = parts[3].partition("/")
            entries.append(
                ProxyLogEntry(
                    line=number,
                    time=float(parts[0]),
                    client=parts[2],
                    action=action,
                    status=int(status or 0),
                    method=parts[5],
                    url=parts[6],
                    text=text.strip(),
                    hierarchy=parts[8] if len(parts) > _HIERARCHY else "-",
                )
            )
        except ValueError:
            bad.append(number)
    return entries, bad


@dataclass(frozen=True, slots=True)
class ProxyLog:
    """The proxy's access.log as read, and its name under the report's evidence/."""

    evidence_file: str
    entries: tuple[ProxyLogEntry, ...]
    unreadable: tuple[int, ...] = ()


def read_proxy_log(path: Path, evidence_file: str) -> ProxyLog:
    """The access.log at `path` as a `ProxyLog`."""
    entries, bad = read_access_log(path)
    return ProxyLog(evidence_file, tuple(entries), tuple(bad))
