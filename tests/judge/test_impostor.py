"""HY-CERT on impostor logs and phase captures built here: the cases the lab cannot make
(a log that misses a connection, a connection the capture does not show, a broken log)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.evidence.interface import IMPOSTOR_CAPTURE, IMPOSTOR_LOG
from conformance.judge.impostor import IMPOSTOR_KINDS, impostor
from conformance.judge.result import ControlResult
from conformance.profile import load_profile
from conformance.profile_model import Profile
from conformance.verdict import Verdict
from tests import defects
from tests.defects import TARGET
from tests.observed import observe_logs

PROFILE = Path(__file__).resolve().parents[2] / "fixtures" / "profiles" / "lab-hybrid.yaml"
FRONT = "203.0.113.10"  # api.imagicle.com, redirected to the impostors on the way
HELLO = defects.client_hello("api.imagicle.com")


def profile() -> Profile:
    return load_profile(PROFILE)


def entry(kind: str, port: int, app_data: int = 0, handshake: bool = False) -> dict[str, object]:
    return {
        "kind": kind,
        "client": f"{TARGET}:{port}",
        "server": f"203.0.113.{41 + IMPOSTOR_KINDS.index(kind)}:443",
        "handshake": handshake,
        "app_data_bytes": app_data,
        "first_bytes": "POST /v1/licensing/poll" if app_data else "",
        "error": None if handshake else "SSLError: tlsv1 alert unknown ca",
    }


def judge(
    tmp_path: Path,
    entries: list[dict[str, object]] | None,
    ports: list[int] | None,
    raw_log: str | None = None,
) -> ControlResult:
    logs: dict[str, Path] = {}
    if entries is not None or raw_log is not None:
        log = tmp_path / "impostors.jsonl"
        log.write_text(raw_log or "".join(json.dumps(e) + "\n" for e in entries or []))
        logs[IMPOSTOR_LOG] = log
    if ports is not None:
        packets = [
            p for port in ports for p in defects.tcp_session(TARGET, port, FRONT, 443, HELLO)
        ]
        logs[IMPOSTOR_CAPTURE] = defects.write_pcap(
            tmp_path / "capture-impostors.pcapng", defects._Clock().stamp(packets)
        )
    site = profile()
    return impostor(observe_logs(tmp_path, site, logs), site)


PORTS = [40100 + i for i in range(len(IMPOSTOR_KINDS))]


def every_kind(**changes: dict[str, object]) -> list[dict[str, object]]:
    entries = [entry(kind, port) for kind, port in zip(IMPOSTOR_KINDS, PORTS, strict=True)]
    for e in entries:
        e.update(changes.get(str(e["kind"]), {}))
    return entries


def test_refused_by_every_impostor_and_matched_in_the_capture_passes(tmp_path: Path) -> None:
    result = judge(tmp_path, every_kind(), PORTS)
    assert result.verdict is Verdict.PASS, result
    table = result.facts["impostor_connections"]
    assert isinstance(table, list) and all(row["capture_flow"] for row in table)


def test_handshake_then_silent_close_passes(tmp_path: Path) -> None:
    # Decision 3: "the handshake failed" is not the criterion; no application data is.
    entries = every_kind(expired={"handshake": True, "error": None, "version": "TLSv1.3"})
    assert judge(tmp_path, entries, PORTS).verdict is Verdict.PASS


def test_application_data_to_an_impostor_fails_and_points_at_log_and_capture(
    tmp_path: Path,
) -> None:
    entries = every_kind(**{"wrong-name": {"handshake": True, "app_data_bytes": 212}})
    result = judge(tmp_path, entries, PORTS)
    assert result.verdict is Verdict.FAIL
    (finding,) = result.violations
    assert "212 bytes of application data to the wrong-name impostor" in finding.summary
    assert finding.evidence_file == "lab/impostors.jsonl" and finding.evidence_line == 3
    assert finding.facts["capture"] == "lab/capture-impostors.pcapng"
    assert finding.facts["packets"]


def test_application_data_fails_even_without_the_capture(tmp_path: Path) -> None:
    entries = every_kind(**{"self-signed": {"handshake": True, "app_data_bytes": 5}})
    assert judge(tmp_path, entries, None).verdict is Verdict.FAIL


@pytest.mark.parametrize(
    ("entries", "ports", "why"),
    [
        (every_kind()[:-1], PORTS[:-1], "never reached the impostor(s) weak-key"),
        (every_kind(), PORTS[:-1], "not in the capture"),
        ([*every_kind()[:-1], entry("expired", 40199)], PORTS, "the impostor log lacks"),
        (every_kind(), None, "capture is missing"),
        ([], [], "never reached"),
    ],
)
def test_what_cannot_be_confirmed_is_inconclusive(
    tmp_path: Path,
    entries: list[dict[str, object]],
    ports: list[int] | None,
    why: str,
) -> None:
    result = judge(tmp_path, entries, ports)
    assert result.verdict is Verdict.INCONCLUSIVE, result
    assert why in result.reason


def test_unreadable_log_lines_are_inconclusive(tmp_path: Path) -> None:
    lines = "".join(json.dumps(e) + "\n" for e in every_kind()) + "{oops\n"
    result = judge(tmp_path, None, PORTS, raw_log=lines)
    assert result.verdict is Verdict.INCONCLUSIVE and "unreadable lines" in result.reason


def test_no_impostor_phase_is_inconclusive(tmp_path: Path) -> None:
    result = judge(tmp_path, None, None)
    assert result.verdict is Verdict.INCONCLUSIVE and "no impostor ran" in result.reason
