"""Redaction of kept messages: typed placeholders the scanner still counts, in JSON, gRPC,
gzip, base64 and nested JSON bodies, headers and paths; credentials replaced; the server's own
address and CT 10's infrastructure addresses left alone."""

from __future__ import annotations

import base64
import gzip
import json

from conformance.content.personal import ADDRESS, EMAIL, PERSON, PHONE, Scanner, placeholder
from conformance.content.redact import CREDENTIAL, redact_record, site_scanner
from conformance.decode.bodies import body_value, decode_body
from tests.content.beats import beat
from tests.content.own_captures import ON

EMAIL_TEXT = "mario.rossi@example.com"


def record(body: bytes, content_type: str = "application/json", **extra: object) -> dict:
    return {"event": "request", "body": decode_body(body, content_type), **extra}


def test_placeholders_are_personal_data_of_their_kind() -> None:
    tree = {"note": f"{placeholder(EMAIL)} {placeholder(PHONE)}", "who": placeholder(PERSON)}
    kinds = {(h.kind, h.path) for h in Scanner().scan(tree)}
    assert kinds == {(EMAIL, "note"), (PHONE, "note"), (PERSON, "who")}
    assert placeholder(ADDRESS) == "[redacted:address]"


def test_the_reference_beat_is_left_as_it_is() -> None:
    scanner = site_scanner(ON)
    clean = record(json.dumps(beat()).encode())
    out, count = redact_record(clean, scanner)
    assert count == 0 and out == clean


def test_the_pii_beat_keeps_its_shape_and_its_verdict() -> None:
    scanner = site_scanner(ON)
    original = beat("pii-in-telemetry")
    out, count = redact_record(record(json.dumps(original).encode()), scanner)
    value = body_value(out["body"])
    assert value["ucx_suite"]["attendant_console"]["operators"] == [
        {"name": "[redacted:name]", "email": "[redacted:email]", "phone": "[redacted:phone]"}
    ]
    assert value["hardware_info"] == original["hardware_info"]  # infrastructure, own address
    assert count == 3
    before = {(h.kind, h.path) for h in scanner.scan(original)}
    after = {(h.kind, h.path) for h in scanner.scan(value)}
    assert before == after


def test_grpc_gzip_and_encoded_values() -> None:
    scanner = Scanner()
    message = json.dumps({"contact": EMAIL_TEXT}).encode()
    zipped = gzip.compress(message)
    grpc_body = b"\0" + len(message).to_bytes(4, "big") + message
    grpc_body += b"\1" + len(zipped).to_bytes(4, "big") + zipped
    out, _ = redact_record(record(grpc_body, "application/grpc"), scanner)
    assert EMAIL_TEXT not in json.dumps(out)
    assert [m["compressed"] for m in out["body"]["messages"]] == [False, True]
    assert body_value(out["body"]) == [{"contact": "[redacted:email]"}] * 2
    hidden = base64.b64encode(json.dumps({"email": EMAIL_TEXT}).encode()).decode()
    out, _ = redact_record(record(json.dumps({"blob": hidden}).encode()), scanner)
    assert body_value(out["body"]) == {"blob": "[redacted:email]"}  # the whole encoded value


def test_headers_paths_and_credentials() -> None:
    scanner = Scanner()
    raw = record(
        b"",
        headers=[["Authorization", "Bearer abc"], ["X-User", EMAIL_TEXT], ["Cookie", "s=1"]],
        path=f"/v1/users/{EMAIL_TEXT}/beat",
    )
    out, count = redact_record(raw, scanner)
    assert out["headers"] == [
        ["Authorization", CREDENTIAL],
        ["X-User", "[redacted:email]"],
        ["Cookie", CREDENTIAL],
    ]
    assert out["path"] == "/v1/users/[redacted:email]/beat" and count == 4
