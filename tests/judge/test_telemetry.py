"""TM-OPTOUT, TM-MINIMAL and TM-CHANNEL on content logs written by the tests (the lab runs are
in tests/lab/test_proxy_telemetry.py)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from conformance.content.messages import ContentEvidence
from conformance.judge import telemetry as judges
from conformance.judge.result import ControlResult
from conformance.observe.json_logs import JsonLines
from conformance.observe.records import Observations
from conformance.profile_model import Profile
from conformance.verdict import Verdict
from tests.content.beats import beat, cloud_record, content, request
from tests.proxy_captures import proxy_profile

OFF = proxy_profile("lab-proxy")
ON = proxy_profile("lab-proxy-telemetry")
LICENCE = request("/v1/licensing/poll", {"installation_id": "x", "licences": ["UCX-LIC-0001"]})
STIMULI = [
    {"stimulus": "POST http://192.0.2.10:8080/actions/licence-refresh", "exit": 0, "t": 50.0},
    {"stimulus": "POST http://192.0.2.10:8080/actions/restart", "exit": 0, "t": 60.0},
]


def observed(
    content: ContentEvidence | None,
    stimuli: list[dict[str, Any]] | None = None,
    known_names: tuple[str, ...] = (),
) -> Observations:
    """What the observe step would hold for these content logs, stimuli and people."""
    steps = None
    if stimuli is not None:
        steps = JsonLines("lab/stimuli.jsonl", tuple(enumerate(stimuli, start=1)))
    return Observations(
        captures=(), flows=(), content=content, stimuli=steps, known_people=known_names
    )


class telemetry:  # noqa: N801 (the judges' module, with the tests' content-first arguments)
    """The judges called as these tests call them: content, profile, stimuli, people."""

    @staticmethod
    def optout(
        content: ContentEvidence | None,
        profile: Profile,
        stimuli: list[dict[str, Any]] | None = None,
        known_names: tuple[str, ...] = (),
    ) -> ControlResult:
        return judges.optout(observed(content, stimuli, known_names), profile)

    @staticmethod
    def minimal(
        content: ContentEvidence | None, profile: Profile, known_names: tuple[str, ...] = ()
    ) -> ControlResult:
        return judges.minimal(observed(content, None, known_names), profile)

    @staticmethod
    def channel(
        content: ContentEvidence | None, profile: Profile, known_names: tuple[str, ...] = ()
    ) -> ControlResult:
        return judges.channel(observed(content, None, known_names), profile)


# --- TM-OPTOUT -----------------------------------------------------------------------------


def test_no_telemetry_after_restart_and_refresh_passes(tmp_path: Path) -> None:
    result = telemetry.optout(content(tmp_path, [LICENCE]), OFF, STIMULI)
    assert result.verdict is Verdict.PASS, result


def test_a_beat_despite_the_opt_out_fails_with_the_request_quoted(tmp_path: Path) -> None:
    logs = content(tmp_path, [LICENCE, request(body=beat("pii-in-telemetry"))])
    result = telemetry.optout(logs, OFF, STIMULI)
    assert result.verdict is Verdict.FAIL, result
    (finding,) = result.violations
    assert finding.evidence_file == "lab/decrypted-requests.jsonl" and finding.evidence_line == 2
    assert "POST api.imagicle.com:443/v1/telemetry/beat (TLSv1.3)" in finding.summary
    assert "mario.rossi@example.com" not in finding.summary  # redacted even here


def test_telemetry_recognised_by_its_body_on_any_path(tmp_path: Path) -> None:
    logs = content(tmp_path, [LICENCE, request("/v2/diag", beat())])
    assert telemetry.optout(logs, OFF, STIMULI).verdict is Verdict.FAIL


def test_without_content_level_evidence_opt_out_is_inconclusive_never_pass() -> None:
    for evidence in (None, ContentEvidence()):
        result = telemetry.optout(evidence, OFF, STIMULI)
        assert result.verdict is Verdict.INCONCLUSIVE
        assert "content-level evidence not available" in result.reason


@pytest.mark.parametrize(
    ("stimuli", "reason"),
    [
        (None, "no stimulus log"),
        (STIMULI[:1], "no successful restart"),
        ([{**STIMULI[0], "exit": 1}, STIMULI[1]], "no successful licence-refresh"),
        ([STIMULI[0], {**STIMULI[1], "t": 500.0}], "no message was recorded after the restart"),
    ],
)
def test_opt_out_window_must_include_restart_and_licence_refresh(
    stimuli: list[dict[str, Any]] | None, reason: str, tmp_path: Path
) -> None:
    result = telemetry.optout(content(tmp_path, [LICENCE]), OFF, stimuli)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert reason in result.reason


def test_the_last_restart_must_be_followed_by_a_message(tmp_path: Path) -> None:
    second = {**STIMULI[1], "t": 500.0}  # a second restart, after the last message (t=100)
    result = telemetry.optout(content(tmp_path, [LICENCE]), OFF, [*STIMULI, second])
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "no message was recorded after the restart" in result.reason


def test_send_telemetry_now_is_reported_when_it_ran(tmp_path: Path) -> None:
    beat_now = {"stimulus": "POST http://192.0.2.10:8080/actions/telemetry-beat", "exit": 0}
    result = telemetry.optout(content(tmp_path, [LICENCE]), OFF, [*STIMULI, beat_now])
    assert result.verdict is Verdict.PASS, result
    assert result.facts["stimuli"] == {
        "restart": "ran, messages recorded after it",
        "licence-refresh": "ran, messages recorded after it",
        "telemetry-beat": "ran",
    }


def test_silent_content_sources_are_inconclusive(tmp_path: Path) -> None:
    result = telemetry.optout(content(tmp_path, []), OFF, STIMULI)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "recorded no message" in result.reason


def test_the_cloud_side_record_counts_too(tmp_path: Path) -> None:
    logs = content(tmp_path, [LICENCE], [cloud_record("/v1/telemetry/beat", beat())])
    result = telemetry.optout(logs, OFF, STIMULI)
    assert result.verdict is Verdict.FAIL
    assert result.violations[0].evidence_file == "lab/cloud-requests.jsonl"


# --- TM-MINIMAL ----------------------------------------------------------------------------


def test_the_reference_beat_is_minimal(tmp_path: Path) -> None:
    result = telemetry.minimal(content(tmp_path, [LICENCE, request(body=beat())]), ON)
    assert result.verdict is Verdict.PASS, result
    assert result.facts["distinct_fields"] > 50


def test_e_mail_phone_and_name_fail_and_are_redacted(tmp_path: Path) -> None:
    result = telemetry.minimal(content(tmp_path, [request(body=beat("pii-in-telemetry"))]), ON)
    assert result.verdict is Verdict.FAIL, result
    kinds = {f.facts.get("kind") for f in result.violations}
    assert {"e-mail address", "phone number", "person or user name"} <= kinds
    for finding in result.violations:
        assert "mario.rossi" not in finding.summary and "943232" not in finding.summary
        assert "Mario Rossi" not in finding.summary
    email = next(f for f in result.violations if f.facts.get("kind") == "e-mail address")
    assert "[e-mail redacted]" in email.summary


def test_undocumented_field_fails(tmp_path: Path) -> None:
    result = telemetry.minimal(
        content(tmp_path, [request(body=beat("undocumented-telemetry-field"))]), ON
    )
    assert result.verdict is Verdict.FAIL
    assert [f.facts["field"] for f in result.violations] == ["recent_calls"]
    assert '"recent_calls"' in result.violations[0].summary


def _with(extra: dict[str, Any]) -> dict[str, Any]:
    body = beat()
    body["ucx_suite"]["info"].update(extra)
    return body


def _b64(value: Any) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def _b64_gzip(value: Any) -> str:
    return base64.b64encode(gzip.compress(json.dumps(value).encode())).decode()


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("contact anna.bianchi@example.org for support", "e-mail address"),
        ("+1 (202) 555-0143", "phone number"),
        (json.dumps({"owner": "Anna Bianchi"}), "person or user name"),
        (_b64({"mail": "anna.bianchi@example.org"}), "e-mail address"),
        (_b64_gzip({"note": "call +39 0584 943232"}), "phone number"),
        ("last login from 192.0.2.50", "client address"),
        ("Alice Example", "person or user name"),
    ],
)
def test_nested_and_encoded_personal_data_fails(value: str, kind: str, tmp_path: Path) -> None:
    body = _with({"version": value})  # a documented field: only the personal data is wrong
    result = telemetry.minimal(
        content(tmp_path, [request(body=body)]), ON, known_names=("Alice Example",)
    )
    assert result.verdict is Verdict.FAIL, result
    assert {f.facts.get("kind") for f in result.violations} == {kind}, result.findings


def test_the_servers_own_and_infrastructure_addresses_are_not_personal(tmp_path: Path) -> None:
    body = beat()
    assert body["hardware_info"]["network"][0]["ip_addresses"] == ["192.0.2.10"]
    result = telemetry.minimal(content(tmp_path, [request(body=body)]), ON)
    assert result.verdict is Verdict.PASS, result
    body["hardware_info"]["network"][0]["ip_addresses"] = ["192.0.2.77"]  # not the server's
    result = telemetry.minimal(content(tmp_path, [request(body=body)]), ON)
    assert result.verdict is Verdict.FAIL
    assert result.violations[0].facts["kind"] == "client address"


def test_no_telemetry_while_enabled_is_inconclusive(tmp_path: Path) -> None:
    result = telemetry.minimal(content(tmp_path, [LICENCE]), ON)
    assert result.verdict is Verdict.INCONCLUSIVE


def test_schema_less_protobuf_telemetry_is_inconclusive(tmp_path: Path) -> None:
    record = request()
    record["body"] = {"encoding": "protobuf", "value": [{"field": 1, "wire": "varint", "value": 7}]}
    result = telemetry.minimal(content(tmp_path, [record]), ON)
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "no field names" in result.reason


# --- TM-CHANNEL ----------------------------------------------------------------------------


def test_telemetry_over_the_licensing_channel_passes(tmp_path: Path) -> None:
    result = telemetry.channel(content(tmp_path, [LICENCE, request(body=beat())]), ON)
    assert result.verdict is Verdict.PASS, result


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (request("/telemetry", beat(), host="grpc.imagicle.com"), "not a licensing endpoint"),
        (request(body=beat(), tls=None, port=80), "in plaintext"),
    ],
)
def test_telemetry_off_the_licensing_channel_fails(
    record: dict[str, Any], why: str, tmp_path: Path
) -> None:
    result = telemetry.channel(content(tmp_path, [LICENCE, record]), ON)
    assert result.verdict is Verdict.FAIL, result
    assert why in result.violations[0].summary


def test_channel_without_content_is_inconclusive() -> None:
    assert telemetry.channel(None, ON).verdict is Verdict.INCONCLUSIVE


def test_telemetry_in_grpc_frames_is_decoded_and_judged(tmp_path: Path) -> None:
    from conformance.decode.bodies import decode_body

    message = json.dumps(beat("pii-in-telemetry")).encode()
    record = request("/imagicle.telemetry.v1.Telemetry/Beat")
    frame = b"\0" + len(message).to_bytes(4, "big") + message
    record["body"] = decode_body(gzip.compress(frame), "application/grpc", "gzip")
    logs = content(tmp_path, [LICENCE, record])
    assert telemetry.optout(logs, OFF, STIMULI).verdict is Verdict.FAIL
    result = telemetry.minimal(logs, ON)
    assert result.verdict is Verdict.FAIL
    assert "e-mail address" in {f.facts.get("kind") for f in result.violations}
