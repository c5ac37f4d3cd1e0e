"""Both content-level logs read into one list of `ContentMessage`s.

DECRYPTED_REQUESTS (conformance.lab.intercept, JSON lines) is the primary source: it is what
the target sent, decrypted at the first hop the harness controls, and works for any target that
trusts the interceptor's CA (the lab's target, a staging image). CLOUD_REQUESTS (the lab's
cloud stand-ins) is what arrived at the cloud side; it also sees traffic that went around the
interceptor. A message seen by both is judged in both (the findings name each source), so
neither can hide what the other saw.

TLS_DECRYPTED and HAR_CONTENT (conformance.content.own_evidence) come from the customer's own
evidence: the target's TLS sessions decrypted with its keys, an intercepting proxy's HAR.
They use the DECRYPTED_REQUESTS record format and add `coverage` lines, one per TLS connection
of the target: a connection that no source covers and that leaves the Customer Environment
(directly or through the proxy) is a problem (a telemetry message in it would be unseen), so
the TM-* controls stay `inconclusive` unless something fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from conformance.content.messages import OWN_SOURCES, ContentEvidence, ContentMessage
from conformance.decode.bodies import body_value
from conformance.evidence.interface import (
    CLOUD_REQUESTS,
    DECRYPTED_REQUESTS,
)

_SKIPPED_SERVICES: Final = frozenset({"canary", "scanner", "grpc"})


def _host_port(authority: str, default: int | None) -> tuple[str, int | None]:
    host, sep, port = authority.rpartition(":")
    if sep and port.isdigit() and "]" not in port:
        return host.strip("[]").lower(), int(port)
    return authority.strip("[]").lower(), default


def _decrypted(
    record: dict[str, Any], name: str, line: int, source: str = DECRYPTED_REQUESTS
) -> ContentMessage | None:
    event = record.get("event")
    if event not in ("request", "tcp-message") or (
        event == "tcp-message" and not record.get("from_client")
    ):
        return None
    tls = record.get("tls") or None
    host = str(record.get("host") or "")
    port = record.get("port")
    if not host and record.get("connect"):
        host, port = _host_port(str(record["connect"]), None)
    return ContentMessage(
        source=source,
        evidence_file=name,
        line=line,
        time=record.get("t"),
        kind="http" if event == "request" else "tcp",
        method=str(record.get("method") or ("DATA" if event == "tcp-message" else "")),
        host=host.lower(),
        port=int(port) if isinstance(port, int) else None,
        path=str(record.get("path") or ""),
        tls=(tls.get("version") or "TLS") if isinstance(tls, dict) else None,
        sni=tls.get("sni") if isinstance(tls, dict) else None,
        client=record.get("client"),
        body=body_value(record.get("body")),
    )


def _cloud(record: dict[str, Any], name: str, line: int) -> ContentMessage | None:
    if record.get("service") in _SKIPPED_SERVICES or "event" not in record:
        return None
    event = record["event"]
    if event == "request":
        kind, method, path, body = (
            "http",
            record.get("method"),
            record.get("path"),
            record.get("body"),
        )
    elif str(event).startswith("ldap-"):
        kind, method, path = "ldap", event, ""
        body = {k: record[k] for k in ("dn", "base") if k in record}
    else:
        return None
    return ContentMessage(
        source=CLOUD_REQUESTS,
        evidence_file=name,
        line=line,
        time=record.get("t"),
        kind=kind,
        method=str(method or ""),
        host=str(record.get("host") or record.get("service") or "").lower(),
        port=record.get("port"),
        path=str(path or ""),
        tls=record.get("tls"),
        sni=record.get("sni"),
        client=record.get("client"),
        body=body,
    )


def _read(path: Path, problems: list[str], name: str) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for number, text in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError:
            problems.append(f"{name} line {number} is not JSON (a message may be unseen)")
            continue
        if isinstance(record, dict):
            records.append((number, record))
    return records


def _own(source: str) -> Any:
    def parse(record: dict[str, Any], name: str, line: int) -> ContentMessage | None:
        return _decrypted(record, name, line, source)

    return parse


def load_content(logs: Mapping[str, Path], names: Mapping[Path, str]) -> ContentEvidence:
    """Read whichever content logs exist. `names` maps a log file to its evidence name."""
    sources: list[str] = []
    files: dict[str, str] = {}
    messages: list[ContentMessage] = []
    problems: list[str] = []
    notes: list[str] = []
    coverage: list[tuple[str, dict[str, Any]]] = []
    parsers = [(DECRYPTED_REQUESTS, _decrypted), (CLOUD_REQUESTS, _cloud)]
    parsers += [(source, _own(source)) for source in OWN_SOURCES]
    for source, parse in parsers:
        path = logs.get(source)
        if path is None or not path.is_file():
            continue
        name = names.get(path, path.name)
        sources.append(source)
        files[source] = name
        refused = incomplete = 0
        for number, record in _read(path, problems, name):
            if record.get("event") == "tls-failed":
                refused += 1
            if source in OWN_SOURCES and record.get("event") == "coverage":
                coverage.append((source, record))
                continue
            incomplete += bool(record.get("incomplete"))
            message = parse(record, name, number)
            if message is not None:
                messages.append(message)
        if incomplete:
            notes.append(
                f"{name}: {incomplete} requests ended before their last byte (judged on"
                " what was sent)"
            )
        if refused:
            notes.append(
                f"{name}: {refused} TLS handshakes with the interceptor failed (the target sent"
                " nothing on those connections; one that does not trust the interceptor's CA"
                " shows no content)"
            )
    return ContentEvidence(
        tuple(sources), files, tuple(messages), tuple(problems), tuple(notes), tuple(coverage)
    )
