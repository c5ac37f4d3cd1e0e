"""HAR 1.2 files (an intercepting proxy's export: mitmproxy, Fiddler, Charles, Burp, a browser)
as content-level evidence: each entry's request becomes a message record in the interceptor's
format, and each of the target's TLS connections in the capture is explained by an entry or
listed as not explained (conformance.content.decryption_coverage).

HAR 1.2 (W3C draft, http://www.softwareishard.com/blog/har-12-spec/): `log.entries[]` with
`startedDateTime` (ISO 8601), `time` (ms), `request` {method, url, httpVersion, headers[],
postData {mimeType, text, encoding?}}, and optional `serverIPAddress` and `connection`.
`postData.encoding: "base64"` (a common extension, as `content.encoding` in responses) marks
a binary body.

Matching entries to the capture: an entry can belong to a target TLS flow when its host is
the flow's SNI or CONNECT host, or its `serverIPAddress` is the flow's server, the port
agrees, and the entry's time span overlaps the flow's (within CLOCK_SLACK: the proxy's clock
and the capture's are different machines'); it is given to the nearest such flow in time (a
request travels in one connection). A flow no entry is given to is not explained. An entry
that matches no flow of the target is not judged (an intercepting proxy serves other clients
too) and is counted in the notes.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from conformance.content.decryption_coverage import TlsFlow
from conformance.decode.bodies import decode_body
from conformance.errors import ConformanceError

MAX_HAR_BYTES: Final = 512 << 20  # read whole (json); larger exports must be split
CLOCK_SLACK: Final = 2.0  # seconds between the proxy's clock and the capture's
DEFAULT_PORTS: Final = {"https": 443, "http": 80, "wss": 443, "ws": 80}


class HarError(ConformanceError):
    """A HAR file that cannot be read: names the file and the key path."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")


@dataclass(frozen=True, slots=True)
class HarEntry:
    """One request of the HAR, as the judges need it."""

    index: int  # position in log.entries
    start: float  # epoch seconds
    end: float
    method: str
    url: str
    scheme: str
    host: str
    port: int
    path: str
    http_version: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    mime_type: str
    server_ip: str | None
    connection: str | None
    client_ip: str | None  # a non-standard field some tools add (`_clientAddress`)


@dataclass(frozen=True, slots=True)
class HarFile:
    path: Path
    sha256: str
    version: str
    creator: str
    entries: tuple[HarEntry, ...]


def _field(value: Any, path: Path, key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise HarError(path, key, f"expected {name}, got {type(value).__name__}")
    return value


def _time(text: str, path: Path, key: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise HarError(path, key, f"not an ISO 8601 date-time: {text[:40]!r}") from None


def _body(post: Any, path: Path, key: str) -> tuple[bytes, str]:
    if post is None:
        return b"", ""
    post = _field(post, path, key, dict)
    mime = str(post.get("mimeType") or "")
    text = post.get("text")
    if text is None:
        params = post.get("params") or []
        pairs = [f"{p.get('name', '')}={p.get('value', '')}" for p in params if isinstance(p, dict)]
        return "&".join(pairs).encode(), mime
    text = _field(text, path, f"{key}.text", str)
    if str(post.get("encoding") or "").lower() == "base64":
        try:
            return base64.b64decode(text, validate=False), mime
        except (binascii.Error, ValueError):
            raise HarError(path, f"{key}.text", "encoding is base64 but the text is not") from None
    return text.encode("utf-8", errors="surrogateescape"), mime


def _entry(index: int, raw: Any, path: Path) -> HarEntry:
    key = f"log.entries[{index}]"
    raw = _field(raw, path, key, dict)
    request = _field(raw.get("request"), path, f"{key}.request", dict)
    url = _field(request.get("url"), path, f"{key}.request.url", str)
    method = _field(request.get("method"), path, f"{key}.request.method", str)
    started = _field(raw.get("startedDateTime"), path, f"{key}.startedDateTime", str)
    start = _time(started, path, f"{key}.startedDateTime")
    took = raw.get("time")
    duration = float(took) / 1000 if isinstance(took, int | float) and took > 0 else 0.0
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        raise HarError(path, f"{key}.request.url", f"not an absolute URL: {url[:80]!r}")
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError:
        raise HarError(path, f"{key}.request.url", f"bad port in {url[:80]!r}") from None
    headers = []
    for n, raw_header in enumerate(request.get("headers") or []):
        header = _field(raw_header, path, f"{key}.request.headers[{n}]", dict)
        headers.append((str(header.get("name", "")), str(header.get("value", ""))))
    body, mime = _body(request.get("postData"), path, f"{key}.request.postData")
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    client = raw.get("_clientAddress") or raw.get("clientIPAddress")
    return HarEntry(
        index=index,
        start=start,
        end=start + duration,
        method=method,
        url=url,
        scheme=parts.scheme.lower(),
        host=parts.hostname.lower().rstrip("."),
        port=port,
        path=target,
        http_version=str(request.get("httpVersion") or ""),
        headers=tuple(headers),
        body=body,
        mime_type=mime,
        server_ip=str(raw["serverIPAddress"]).strip("[]") if raw.get("serverIPAddress") else None,
        connection=str(raw["connection"]) if raw.get("connection") is not None else None,
        client_ip=str(client) if client else None,
    )


def read_har(path: Path) -> HarFile:
    """Read and check a HAR file; HarError naming the file and key path when it is not one."""
    import hashlib

    if not path.is_file():
        raise HarError(path, "<file>", "no such file" if not path.exists() else "not a file")
    size = path.stat().st_size
    if size > MAX_HAR_BYTES:
        raise HarError(path, "<file>", f"{size} bytes: larger than {MAX_HAR_BYTES >> 20} MiB")
    data = path.read_bytes()
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise HarError(path, "<file>", f"not JSON: {exc}") from None
    log = _field(_field(document, path, "<top>", dict).get("log"), path, "log", dict)
    version = str(log.get("version") or "")
    if version not in ("1.1", "1.2"):
        raise HarError(path, "log.version", f"{version!r} is not HAR 1.1 or 1.2")
    entries = _field(log.get("entries"), path, "log.entries", list)
    creator = log.get("creator") if isinstance(log.get("creator"), dict) else {}
    return HarFile(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        version=version,
        creator=f"{creator.get('name', '?')} {creator.get('version', '')}".strip(),
        entries=tuple(_entry(i, e, path) for i, e in enumerate(entries)),
    )


def _flow_port(flow: TlsFlow) -> int:
    if flow.connect:
        _, _, port = flow.connect.rpartition(":")
        return int(port) if port.isdigit() else 443
    return flow.server_port


def _flow_host(flow: TlsFlow) -> str | None:
    if flow.connect:
        return flow.connect.rpartition(":")[0].strip("[]").lower() or None
    return flow.sni


def _distance(entry: HarEntry, flow: TlsFlow) -> float:
    """Seconds between the entry's start and the flow's span (0 inside it)."""
    if entry.start < flow.first_time:
        return flow.first_time - entry.start
    return max(0.0, entry.start - flow.last_time)


def explains(entry: HarEntry, flow: TlsFlow) -> bool:
    """Whether the entry could be a request carried by that flow (names, port, time)."""
    if entry.port != _flow_port(flow):
        return False
    named = entry.host == _flow_host(flow) or entry.host == flow.sni
    addressed = entry.server_ip is not None and not flow.connect and entry.server_ip == flow.server
    if not (named or addressed):
        return False
    return (
        entry.start <= flow.last_time + CLOCK_SLACK and entry.end >= flow.first_time - CLOCK_SLACK
    )


def match(har: HarFile, flows: Sequence[TlsFlow]) -> dict[int, TlsFlow]:
    """Entry index -> the one target flow that carried it: of the flows it could be, the
    nearest in time (a request travels in one connection; connections to the same host
    seconds apart must not all count as explained by one request)."""
    out: dict[int, TlsFlow] = {}
    load: dict[int, int] = {}
    for entry in har.entries:
        fits = [f for f in flows if explains(entry, f)]
        if not fits:
            continue
        best = min(fits, key=lambda f: (_distance(entry, f), load.get(f.flow_id, 0), f.flow_id))
        out[entry.index] = best
        load[best.flow_id] = load.get(best.flow_id, 0) + 1
    return out


def entry_records(
    har: HarFile, name: str, matches: dict[int, TlsFlow], captures: Sequence[str]
) -> Iterator[dict[str, Any]]:
    """Message records for the entries that match a flow of the target (`captures`: the
    evidence names of the captures, by index)."""
    for entry in har.entries:
        flow = matches.get(entry.index)
        if flow is None:
            continue
        content_type = next((v for k, v in entry.headers if k.lower() == "content-type"), "")
        encoding = next((v for k, v in entry.headers if k.lower() == "content-encoding"), "")
        tls = entry.scheme in ("https", "wss")
        yield {
            "t": round(entry.start, 6),
            "event": "request",
            "har": name,
            "entry": entry.index,
            "capture": captures[flow.capture] if flow.capture < len(captures) else None,
            "flow": flow.flow_id,
            "client": flow.client,
            "client_port": flow.client_port,
            "server": entry.server_ip or flow.server,
            "server_port": entry.port,
            "connect": flow.connect,
            "tls": {"sni": flow.sni or entry.host, "version": None, "alpn": None} if tls else None,
            "proto": entry.http_version,
            "method": entry.method,
            "scheme": entry.scheme,
            "host": entry.host,
            "port": entry.port,
            "path": entry.path,
            "headers": [[k, v] for k, v in entry.headers],
            "body": decode_body(entry.body, content_type or entry.mime_type, encoding),
        }
