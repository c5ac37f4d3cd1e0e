"""DSSE v1 envelopes signed with Ed25519: PAE, sign, parse strictly, verify.

Spec: https://github.com/secure-systems-lab/dsse/blob/v1.0.0/envelope.md and protocol.md.
The signature covers PAE(payloadType, payload), never the JSON of the envelope, so the
envelope's own formatting cannot matter; `keyid` is an unauthenticated hint (DSSE says so)
and is never used to choose the key.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from conformance.sign.strict_json import StrictJsonError, loads_object

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# An envelope is a few KiB per thousand evidence files; anything far larger is not ours.
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024


class SigningKey(Protocol):
    """An Ed25519 private key that signs: cryptography's, or the system libcrypto's
    (sign/system_ed25519.py), so that signing a report need not load `cryptography`."""

    def sign(self, data: bytes) -> bytes: ...


PAYLOAD_TYPE = "application/vnd.in-toto+json"
ED25519_SIGNATURE_BYTES = 64


class EnvelopeError(ValueError):
    """The envelope is not a well-formed single-signature DSSE envelope of our payload type."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed envelope: decoded payload and signature bytes."""

    payload_type: str
    payload: bytes
    signature: bytes
    keyid: str


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`.

    Lengths are ASCII decimal byte counts (DSSE protocol.md), so the type is encoded first.
    """
    type_bytes = payload_type.encode("utf-8")
    return b" ".join(
        [b"DSSEv1", str(len(type_bytes)).encode(), type_bytes, str(len(payload)).encode(), payload]
    )


def sign_envelope(payload: bytes, key: SigningKey, keyid: str) -> bytes:
    """Sign `payload` (an in-toto statement) and return the envelope file's bytes."""
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    document = {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(signature).decode("ascii")}],
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("ascii")


def _b64(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError(f"{field} must be a string")
    try:
        # validate=True: no characters outside the alphabet are silently dropped.
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise EnvelopeError(f"{field} is not standard base64: {exc}") from exc


def parse_envelope(data: bytes) -> Envelope:
    """Parse envelope bytes strictly: exact fields, one signature, our payload type."""
    try:
        document = loads_object(data)
    except StrictJsonError as exc:
        raise EnvelopeError(f"not a JSON object: {exc}") from exc
    if set(document) != {"payload", "payloadType", "signatures"}:
        raise EnvelopeError("fields must be exactly payload, payloadType, signatures")
    if document["payloadType"] != PAYLOAD_TYPE:
        raise EnvelopeError(f"payloadType must be {PAYLOAD_TYPE}")
    signatures = document["signatures"]
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise EnvelopeError("exactly one signature is expected")
    entry = signatures[0]
    if not isinstance(entry, dict) or "sig" not in entry or not set(entry) <= {"sig", "keyid"}:
        raise EnvelopeError("a signature has 'sig' and optionally 'keyid', nothing else")
    keyid = entry.get("keyid", "")
    if not isinstance(keyid, str):
        raise EnvelopeError("keyid must be a string")
    signature = _b64(entry["sig"], "sig")
    if len(signature) != ED25519_SIGNATURE_BYTES:
        raise EnvelopeError(f"sig is {len(signature)} bytes, an Ed25519 signature is 64")
    return Envelope(
        payload_type=PAYLOAD_TYPE,
        payload=_b64(document["payload"], "payload"),
        signature=signature,
        keyid=keyid,
    )


def signature_valid(envelope: Envelope, key: Ed25519PublicKey) -> bool:
    """Whether the envelope's signature over PAE(type, payload) verifies under `key`."""
    from cryptography.exceptions import InvalidSignature

    try:
        key.verify(envelope.signature, pae(envelope.payload_type, envelope.payload))
    except InvalidSignature:
        return False
    return True
