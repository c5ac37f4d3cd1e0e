"""Personal data and credentials out of the content messages the report keeps as evidence.

The messages decrypted from the customer's own evidence (TLS keys, HAR) are kept in the report
so an auditor, and `rejudge`, see what the judges saw without the keys. Kept, they must not
spread what TM-MINIMAL exists to stop: every personal value the scanner finds
(conformance.content.personal: e-mail addresses, phone numbers, person and user names, client
addresses) becomes a typed placeholder such as `[redacted:email]`, which the same scanner
counts as personal data of that kind when the file is judged again, so TM-MINIMAL's verdict
does not change. Credential headers (Authorization, Cookie, ...) are replaced too: they are
secrets, not evidence.

Redaction runs on the value the judges read (`decode.body_value`), with the same site
knowledge the judge uses (the server's own addresses, CT 10's infrastructure fields, the
site's known people), then the redacted value is put back into the decoded body tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from conformance.content.personal import Scanner
from conformance.decode.bodies import body_value
from conformance.profile_model import Profile
from conformance.telemetry_fields import TelemetryFields, load_telemetry_fields, normalise_key

CREDENTIAL: Final = "[redacted:credential]"
CREDENTIAL_HEADERS: Final = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)


def site_scanner(
    profile: Profile, known_names: Sequence[str] = (), fields: TelemetryFields | None = None
) -> Scanner:
    """The scanner TM-MINIMAL uses for this site (conformance.judge.telemetry.scanner_for)."""
    fields = fields or load_telemetry_fields()

    def address_kind(keys: tuple[str, ...]) -> str | None:
        if len(keys) < 3:
            return None
        category = fields.category(keys[0], keys[1])
        if category is None:
            return None
        for key in reversed(keys[2:]):
            kind = category.addresses.get(normalise_key(key))
            if kind is not None:
                return kind
        return None

    return Scanner(
        own_addresses=frozenset(str(a) for a in profile.target.addresses),
        known_names=tuple(known_names),
        address_kind=address_kind,
    )


def _rewrap(old: Any, new: Any) -> Any:
    """`new` in place of the value `old` carried, keeping gzip wrappers (decode.decode_value)."""
    if isinstance(old, dict) and old.get("gzip") is True and "value" in old:
        return {**old, "value": _rewrap(old["value"], new)}
    return new


def with_value(body: Any, value: Any) -> Any:
    """The decoded body tree `body` carrying `value` where `body_value(body)` read it."""
    if not isinstance(body, dict) or "encoding" not in body:
        return value
    encoding = body["encoding"]
    if encoding == "grpc" and isinstance(value, list):
        messages = [
            {**m, "value": _rewrap(m.get("value"), v)}
            for m, v in zip(body.get("messages", []), value, strict=False)
        ]
        return {**body, "messages": messages}
    if encoding == "protobuf" and isinstance(value, dict) and "protobuf" in value:
        return {**body, "value": value["protobuf"]}
    if encoding in ("json", "text"):
        return {**body, "value": _rewrap(body.get("value"), value)}
    if encoding == "binary" and isinstance(value, str):
        return {**body, "base64": value}
    return body


def redact_record(record: dict[str, Any], scanner: Scanner) -> tuple[dict[str, Any], int]:
    """A copy of one message record with personal data and credentials replaced; the count
    of values replaced."""
    out = dict(record)
    count = 0
    if "body" in out:
        value, hits = scanner.redacted(body_value(out["body"]))
        if hits:
            out["body"] = with_value(out["body"], value)
            count += len(hits)
    headers = []
    for pair in out.get("headers") or []:
        name, header = str(pair[0]), str(pair[1])
        if name.lower() in CREDENTIAL_HEADERS:
            headers.append([name, CREDENTIAL])
            count += 1
            continue
        redacted, hits = scanner.redacted({name: header})
        count += len(hits)
        new_name, new_value = next(iter(redacted.items()))
        headers.append([new_name, new_value])
    if "headers" in out:
        out["headers"] = headers
    for key in ("path", "url"):
        if isinstance(out.get(key), str):
            redacted_text, hits = scanner.redacted(out[key])
            out[key] = redacted_text
            count += len(hits)
    return out, count
