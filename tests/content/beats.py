"""Telemetry beats for tests: the reference target's own (fixtures/lab/target/ucx_target.py),
so the tests and the lab judge the same payload, built without starting the target."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from conformance.content.logs import ContentEvidence, load_content
from conformance.evidence.interface import CLOUD_REQUESTS, DECRYPTED_REQUESTS

TARGET_PROGRAM = (
    Path(__file__).resolve().parents[2] / "fixtures" / "lab" / "target" / "ucx_target.py"
)
SERVER = "192.0.2.10"


def _target_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ucx_target_for_tests", TARGET_PROGRAM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def beat(*faults: str) -> dict[str, Any]:
    """One telemetry beat of the reference target with `faults` switched on."""
    target = SimpleNamespace(
        installation="00000000-0000-0000-0000-000000001ce5",
        beats=1,
        addr=SERVER,
        net={"dns": "192.0.2.53", "gateway": "192.0.2.1", "cucm": "192.0.2.20"},
        faults=set(faults),
    )
    payload: dict[str, Any] = _target_module().telemetry_payload(target)
    return payload


def request(
    path: str = "/v1/telemetry/beat",
    body: Any = None,
    *,
    host: str = "api.imagicle.com",
    port: int = 443,
    tls: str | None = "TLSv1.3",
    t: float = 100.0,
    client: str = "192.0.2.80",
) -> dict[str, Any]:
    """One DECRYPTED_REQUESTS line (a request event)."""
    return {
        "t": t,
        "event": "request",
        "client": client,
        "tls": {"sni": host, "version": tls, "alpn": None} if tls else None,
        "method": "POST",
        "host": host,
        "port": port,
        "path": path,
        "body": {"encoding": "json", "value": body} if body is not None else {"encoding": "empty"},
    }


def cloud_record(
    path: str,
    body: Any,
    *,
    host: str = "api.imagicle.com",
    t: float = 100.0,
    tls: str | None = "TLSv1.3",
) -> dict[str, Any]:
    """One CLOUD_REQUESTS line (what a cloud stand-in received)."""
    return {
        "t": t,
        "service": host,
        "host": host,
        "client": "192.0.2.10",
        "port": 443,
        "tls": tls,
        "sni": host,
        "alpn": None,
        "event": "request",
        "method": "POST",
        "path": path,
        "headers": {},
        "body": body,
    }


def content(
    tmp_path: Path,
    decrypted: list[dict[str, Any]] | None = None,
    cloud: list[dict[str, Any]] | None = None,
) -> ContentEvidence:
    """Write the given log lines and read them back as the judges do."""
    logs: dict[str, Path] = {}
    names: dict[Path, str] = {}
    for source, records, name in (
        (DECRYPTED_REQUESTS, decrypted, "lab/decrypted-requests.jsonl"),
        (CLOUD_REQUESTS, cloud, "lab/cloud-requests.jsonl"),
    ):
        if records is None:
            continue
        path = tmp_path / name.replace("/", "-")
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        logs[source] = path
        names[path] = name
    return load_content(logs, names)
