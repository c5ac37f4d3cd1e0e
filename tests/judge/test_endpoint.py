"""HY-ENDPOINT: sslyze (the real scanner) against real TLS servers on loopback, each configured
as a cloud endpoint might be, and the judge on what it found; plus the cases no server makes."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.evidence.interface import ENDPOINT_SCAN
from conformance.judge.endpoint import endpoints
from conformance.judge.result import ControlResult
from conformance.lab.certs import LabCA
from conformance.lab.endpoint_scan import scan
from conformance.observe.records import Observations
from conformance.profile import load_profile
from conformance.verdict import Verdict
from tests.observed import observe_logs

PROFILE = Path(__file__).resolve().parents[2] / "fixtures" / "profiles" / "lab-hybrid.yaml"
NAME = "api.imagicle.com"
# server -> (certificate, lowest TLS version it accepts)
SERVERS = {
    "sound": ("valid", ssl.TLSVersion.TLSv1_2),
    "tls10": ("valid", ssl.TLSVersion.TLSv1),
    "expired": ("expired", ssl.TLSVersion.TLSv1_2),
    "wrong-name": ("wrong-name", ssl.TLSVersion.TLSv1_2),
    "untrusted": ("untrusted", ssl.TLSVersion.TLSv1_2),
    "weak-key": ("weak-key", ssl.TLSVersion.TLSv1_2),
}


def _serve(listener: socket.socket, context: ssl.SSLContext) -> None:
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            with context.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(1)
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, object]]]:
    """One sslyze run over every server (about 0.4 s each), results by server."""
    ca = LabCA(tmp_path_factory.mktemp("pki"))
    listeners: list[socket.socket] = []
    endpoints: list[dict[str, object]] = []
    ports: dict[int, str] = {}
    for label, (kind, lowest) in SERVERS.items():
        pair = ca.impostor(kind, (NAME,)) if kind == "weak-key" else ca.issue(label, (NAME,), kind)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            # Deliberately misconfigured: Python deprecates offering TLS 1.0, which is the point.
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = lowest
        if lowest < ssl.TLSVersion.TLSv1_2 or kind == "weak-key":
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL refuses both at its default level
        context.load_cert_chain(pair.chain, pair.key)
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        threading.Thread(target=_serve, args=(listener, context), daemon=True).start()
        listeners.append(listener)
        port = listener.getsockname()[1]
        ports[port] = label
        endpoints.append({"name": NAME, "port": port, "address": "127.0.0.1"})
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the scan cannot connect
    ports[closed_port] = "unreachable"
    endpoints.append({"name": NAME, "port": closed_port, "address": "127.0.0.1"})
    try:
        results = scan(endpoints, ca.ca_file)
    finally:
        for listener in listeners:
            listener.close()
    yield {ports[int(r["port"])]: r for r in results}


def judge(tmp_path: Path, entries: list[dict[str, object]] | str) -> ControlResult:
    path = tmp_path / "endpoint-scan.json"
    text = entries if isinstance(entries, str) else json.dumps({"endpoints": entries})
    path.write_text(text)
    profile = load_profile(PROFILE)
    return endpoints(observe_logs(tmp_path, profile, {ENDPOINT_SCAN: path}), profile)


def test_sound_endpoint_passes_with_its_facts(
    tmp_path: Path, scanned: dict[str, dict[str, object]]
) -> None:
    result = judge(tmp_path, [scanned["sound"]])
    assert result.verdict is Verdict.PASS, result
    (facts,) = result.facts["endpoints"].values()  # type: ignore[attr-defined]
    assert "TLS 1.2" in facts["versions"] and "TLS 1.0" not in facts["versions"]
    assert facts["chain_valid_with"] and facts["matches_name"] is True
    assert facts["key"] == "EC 256 bits" and facts["days_to_expiry"] >= 0


@pytest.mark.parametrize(
    ("server", "problem"),
    [
        ("tls10", "offers TLS 1.0"),
        ("expired", "expired on"),
        ("wrong-name", f"not issued for {NAME}"),
        ("untrusted", "chain not valid"),
        ("weak-key", "weak RSA key: 1024 bits"),
    ],
)
def test_misconfigured_endpoint_fails(
    tmp_path: Path, scanned: dict[str, dict[str, object]], server: str, problem: str
) -> None:
    result = judge(tmp_path, [scanned["sound"], scanned[server]])
    assert result.verdict is Verdict.FAIL, result
    assert any(problem in f.summary for f in result.violations), result.violations


def test_unreachable_endpoint_is_inconclusive(
    tmp_path: Path, scanned: dict[str, dict[str, object]]
) -> None:
    result = judge(tmp_path, [scanned["sound"], scanned["unreachable"]])
    assert result.verdict is Verdict.INCONCLUSIVE, result


@pytest.mark.parametrize("text", ["{", '{"endpoints": [{"port": 443}]}', '{"endpoints": 3}'])
def test_unreadable_scan_is_inconclusive(tmp_path: Path, text: str) -> None:
    result = judge(tmp_path, text)
    assert result.verdict is Verdict.INCONCLUSIVE and "unreadable" in result.reason


def test_empty_scan_is_inconclusive(tmp_path: Path) -> None:
    assert judge(tmp_path, []).verdict is Verdict.INCONCLUSIVE


def test_without_a_scan_the_control_is_inconclusive() -> None:
    result = endpoints(Observations(captures=(), flows=()), load_profile(PROFILE))
    assert result.verdict is Verdict.INCONCLUSIVE and "no endpoint scan" in result.reason
