"""DSSE v1: PAE bytes, a signed envelope round trip, strict parsing."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.sign.dsse import (
    PAYLOAD_TYPE,
    EnvelopeError,
    pae,
    parse_envelope,
    sign_envelope,
    signature_valid,
)


def test_pae_matches_the_dsse_spec_example() -> None:
    # DSSE protocol.md test vector.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert pae("tÿpe", "é".encode()) == "DSSEv1 5 tÿpe 2 é".encode()


def test_signed_envelope_verifies_and_only_with_its_key() -> None:
    key = Ed25519PrivateKey.generate()
    envelope = parse_envelope(sign_envelope(b'{"x":1}', key, "sha256:abc"))
    assert envelope.payload == b'{"x":1}' and envelope.keyid == "sha256:abc"
    assert signature_valid(envelope, key.public_key())
    assert not signature_valid(envelope, Ed25519PrivateKey.generate().public_key())


def _envelope(**changes: object) -> bytes:
    document: dict[str, object] = {
        "payload": base64.b64encode(b"{}").decode(),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": "", "sig": base64.b64encode(bytes(64)).decode()}],
    }
    document.update(changes)
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (_envelope(signatures=[]), "exactly one signature"),
        (
            _envelope(signatures=[{"sig": base64.b64encode(bytes(64)).decode()}] * 2),
            "exactly one signature",
        ),
        (_envelope(payloadType="application/json"), "payloadType"),
        (_envelope(extra=1), "fields must be exactly"),
        (_envelope(payload="not base64!"), "base64"),
        (_envelope(signatures=[{"sig": base64.b64encode(bytes(63)).decode()}]), "64"),
        (_envelope(signatures=[{"sig": "", "cert": "x"}]), "nothing else"),
        (b'{"payload": "", "payload": "", "payloadType": "", "signatures": []}', "duplicate"),
        (b"[]", "not a JSON object"),
        (b"\xff", "not a JSON object"),
    ],
)
def test_malformed_envelopes_are_refused(data: bytes, problem: str) -> None:
    with pytest.raises(EnvelopeError, match=problem):
        parse_envelope(data)
