"""Hostile content against TM-OPTOUT: a telemetry beat sent despite the opt-out, on a
licensing path, wrapped so that no object at the top of the body has two beat keys. Each must
still be recognised as telemetry (and fail), whatever the wrapping."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.judge.telemetry import carries_beat
from conformance.telemetry_fields import load_telemetry_fields
from conformance.verdict import Verdict
from tests.content.beats import beat, content, request
from tests.judge.test_telemetry import LICENCE, OFF, ON, STIMULI, telemetry

BEAT = beat()
ENVELOPE = ("installation_id", "beat", "timestamp")
FIRST_BEAT_KEY = next(k for k in BEAT if k not in ENVELOPE)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


WRAPPED: dict[str, Any] = {
    "under a key": {"installation_id": "x", "data": BEAT},
    "in a list": {"items": [BEAT]},
    "one beat with its categories": {"installation_id": "x", FIRST_BEAT_KEY: BEAT[FIRST_BEAT_KEY]},
    "as JSON text": {"installation_id": "x", "blob": json.dumps(BEAT)},
    "as base64 JSON": {"blob": _b64(json.dumps(BEAT).encode())},
    "as base64 gzip JSON": {"blob": _b64(gzip.compress(json.dumps(BEAT).encode()))},
}


@pytest.mark.parametrize("how", sorted(WRAPPED))
def test_a_wrapped_beat_on_a_licensing_path_fails_the_opt_out(how: str, tmp_path: Path) -> None:
    logs = content(tmp_path, [LICENCE, request("/v1/licensing/poll", WRAPPED[how])])
    result = telemetry.optout(logs, OFF, STIMULI)
    assert result.verdict is Verdict.FAIL, result.reason
    (finding,) = result.violations
    assert finding.evidence_file == "lab/decrypted-requests.jsonl" and finding.evidence_line == 2


def test_a_wrapped_beat_is_judged_by_tm_minimal_too(tmp_path: Path) -> None:
    """With telemetry on, the wrapper is an undocumented field of a telemetry message."""
    logs = content(tmp_path, [LICENCE, request("/v1/licensing/poll", WRAPPED["under a key"])])
    result = telemetry.minimal(logs, ON)
    assert result.verdict is Verdict.FAIL, result.reason
    assert any("undocumented field data" in f.summary for f in result.violations)


def test_a_licence_poll_is_not_telemetry() -> None:
    fields = load_telemetry_fields()
    body = json.loads(json.dumps(LICENCE["body"]["value"]))
    assert not carries_beat(body, fields)
    assert not carries_beat({"product": "UCX Suite", "ucx_suite": "2024.Winter.1"}, fields)


def test_a_hostile_nesting_depth_ends() -> None:
    deep: Any = BEAT
    for _ in range(10_000):
        deep = [deep]
    assert not carries_beat(deep, load_telemetry_fields())
