"""The telemetry judges: TM-OPTOUT, TM-MINIMAL and TM-CHANNEL (CT 3, CT 10).

Judged on content-level evidence (conformance.content.logs): telemetry shares the licensing
channel (CT 3 "It works via the same secure channel established for Cloud Licensing"), so a
capture alone cannot tell a beat from a licence poll. Without content-level evidence every
one of them is `inconclusive`, and the reason says so.

A message is telemetry when its path (URL path, gRPC method) has a telemetry word of
telemetry_fields.yaml, or its body carries a CT 10 beat whatever its path: an object with two
or more beat keys, or one beat key over a category of that beat, at any depth (wrapped in
other objects or lists, or as JSON text in a string).
Findings quote the offending message with every personal value redacted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from conformance.content.decryption_coverage import coverage_problems
from conformance.content.messages import (
    CLOUD_REQUESTS,
    DECRYPTED_REQUESTS,
    HAR_CONTENT,
    TLS_DECRYPTED,
    ContentEvidence,
    ContentMessage,
)
from conformance.content.personal import PersonalHit, Scanner, marker, redact
from conformance.content.personal import _decodings as decodings  # the scanner's decoders
from conformance.judge.result import ControlResult, Finding, Severity
from conformance.observe.records import Observations
from conformance.profile_model import Mode, Profile
from conformance.telemetry_fields import TelemetryFields, load_telemetry_fields, normalise_key
from conformance.verdict import Verdict

QUOTE_CHARS: Final = 320
# How deep `carries_beat` looks into a body (objects, lists, encoded strings): far deeper than
# any beat is nested, and bounded for a hostile body.
MAX_BODY_DEPTH: Final = 32
REQUIRED_STIMULI: Final = ("restart", "licence-refresh")
OPTIONAL_STIMULI: Final = ("telemetry-beat",)  # reported when run: "send telemetry now"
NO_CONTENT: Final = (
    "content-level evidence not available (no decrypted request log from an intercepting"
    " proxy, no record of what the cloud side received, no TLS keys of the target"
    " (--tls-keylog), no HAR (--content-log)): telemetry travels in the licensing"
    " channel (CT 3), so the capture cannot tell a telemetry beat from a licence poll"
)


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def _has_marker(text: str, markers: Iterable[str]) -> bool:
    return any(w.startswith(m) for w in _words(text) for m in markers)


def _beat_objects(body: Any) -> Iterable[Mapping[str, Any]]:
    if isinstance(body, dict):
        yield body
    elif isinstance(body, list):
        for item in body:
            if isinstance(item, dict):
                yield item


def is_telemetry(message: ContentMessage, fields: TelemetryFields) -> bool:
    """Telemetry by path words, or by a body that carries a beat anywhere (`carries_beat`)."""
    if _has_marker(message.path, fields.telemetry_markers):
        return True
    return carries_beat(message.body, fields)


def carries_beat(value: Any, fields: TelemetryFields, depth: int = MAX_BODY_DEPTH) -> bool:
    """Whether `value` holds an object shaped like a CT 10 beat at any depth: in lists, under
    any key, or as JSON (plain, base64 or gzip) inside a string, so that wrapping a beat
    (`{"data": beat}`, `{"items": [beat]}`, a JSON string) does not hide it. An object is a
    beat when it has two or more beat keys, or one beat key over a category of that beat."""
    if depth <= 0:
        return False
    if isinstance(value, str):
        return any(carries_beat(inner, fields, depth - 1) for _, inner in decodings(value))
    if isinstance(value, list):
        return any(carries_beat(item, fields, depth - 1) for item in value)
    if not isinstance(value, dict):
        return False
    if _is_beat_object(value, fields):
        return True
    return any(carries_beat(inner, fields, depth - 1) for inner in value.values())


def _is_beat_object(obj: Mapping[Any, Any], fields: TelemetryFields) -> bool:
    beats = [key for key in obj if isinstance(key, str) and fields.is_beat(key)]
    if len(beats) >= 2:
        return True
    return any(
        isinstance(obj[key], dict)
        and any(fields.category(key, str(category)) is not None for category in obj[key])
        for key in beats
    )


def is_licensing(message: ContentMessage, fields: TelemetryFields) -> bool:
    return _has_marker(message.path, fields.licensing_markers) and not is_telemetry(message, fields)


def _from_target(message: ContentMessage, profile: Profile) -> bool:
    """Sent by the target (or relayed by the site's proxy): the stand-ins log the peer."""
    if message.client is None:
        return True
    allowed = {str(a) for a in profile.target.addresses}
    if profile.proxy is not None:
        allowed.add(str(profile.proxy.address))
    return message.client in allowed


def scanner_for(
    profile: Profile, fields: TelemetryFields, known_names: Sequence[str] = ()
) -> Scanner:
    """A personal-data scanner that knows the server's own addresses and CT 10's address fields."""

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


def quote(message: ContentMessage, hits: Sequence[PersonalHit], around: str = "") -> str:
    """The message, its body as JSON with personal values redacted, cut around the text
    `around` (a redaction marker, a quoted key) when it is there."""
    body = json.dumps(message.body, separators=(",", ":"), ensure_ascii=False, default=str)
    body = redact(body, hits)
    start = max(0, body.find(around) - 60) if around and around in body else 0
    excerpt = body[start : start + QUOTE_CHARS]
    prefix = "…" if start else ""
    suffix = "…" if start + QUOTE_CHARS < len(body) else ""
    return f"{message.describe()} {prefix}{excerpt}{suffix}"


def _evidence_finding(
    severity: Severity, summary: str, message: ContentMessage, facts: Mapping[str, str]
) -> Finding:
    return Finding(
        severity,
        summary,
        evidence_file=message.evidence_file,
        evidence_line=message.line,
        facts={"source": message.source, **facts},
    )


@dataclass
class _Grouped:
    """Findings merged by key: the first message is quoted, the rest counted."""

    findings: dict[tuple[object, ...], tuple[Finding, int]] = field(default_factory=dict)

    def add(self, key: tuple[object, ...], finding: Finding) -> None:
        first, count = self.findings.get(key, (finding, 0))
        self.findings[key] = (first, count + 1)

    def result(self) -> list[Finding]:
        out = []
        for kept, count in self.findings.values():
            first = kept
            if count > 1:
                first = Finding(
                    first.severity,
                    f"{first.summary} ({count} messages; first quoted)",
                    first.flow_id,
                    first.packets,
                    first.evidence_file,
                    first.evidence_line,
                    first.facts,
                )
            out.append(first)
        return out


def _content_gaps(content: ContentEvidence, profile: Profile) -> list[str]:
    """Why the content evidence may miss a message: unreadable lines, and TLS connections of
    the target leaving the environment that no content source covers."""
    uncovered, _ = coverage_problems(content, profile)
    return [*content.problems, *uncovered]


def _unavailable(control_id: str, content: ContentEvidence | None) -> ControlResult | None:
    if content is None or not content.available:
        return ControlResult(control_id, Verdict.INCONCLUSIVE, NO_CONTENT, (), {"content": "none"})
    return None


def _result(
    control_id: str,
    findings: list[Finding],
    facts: dict[str, object],
    gaps: Sequence[str],
    *,
    passed: str,
    failed: str,
) -> ControlResult:
    first = next((f for f in findings if f.severity is Severity.VIOLATION), None)
    if first is not None:
        return ControlResult(
            control_id, Verdict.FAIL, f"{failed}; first: {first.summary}", tuple(findings), facts
        )
    if gaps:
        facts["incomplete"] = list(gaps)
        return ControlResult(
            control_id, Verdict.INCONCLUSIVE, "; ".join(gaps), tuple(findings), facts
        )
    return ControlResult(control_id, Verdict.PASS, passed, tuple(findings), facts)


# --- TM-OPTOUT -------------------------------------------------------------------------------


def optout(
    obs: Observations, profile: Profile, fields: TelemetryFields | None = None
) -> ControlResult:
    """TM-OPTOUT: with telemetry disabled, no recorded message is telemetry, over a window that
    includes a restart and a licence refresh (stimuli, each followed by a recorded message)."""
    content = obs.content
    unavailable = _unavailable("TM-OPTOUT", content)
    if unavailable is not None:
        return unavailable
    assert content is not None
    stimuli = [record for _, record in obs.stimuli.records] if obs.stimuli is not None else None
    fields = fields or load_telemetry_fields()
    scanner = scanner_for(profile, fields, obs.known_people)
    messages = [m for m in content.messages if _from_target(m, profile)]
    grouped = _Grouped()
    telemetry = 0
    for message in messages:
        if not is_telemetry(message, fields):
            continue
        telemetry += 1
        grouped.add(
            (message.source, message.endpoint, message.path),
            _evidence_finding(
                Severity.VIOLATION,
                f"telemetry sent although telemetry is disabled: "
                f"{quote(message, scanner.scan(message.body))}",
                message,
                {},
            ),
        )
    gaps = _content_gaps(content, profile)
    if not messages:
        gaps.append(
            f"the content sources ({content.describe_sources()}) recorded no message from the"
            " target: nothing shows the channel was observed"
        )
    stimulus_facts: dict[str, object] = {}
    for name in REQUIRED_STIMULI:
        stimulus_facts[name] = _stimulus_gap(name, stimuli, messages, gaps)
    for name in OPTIONAL_STIMULI:
        if _succeeded(name, stimuli):
            stimulus_facts[name] = "ran"
    facts: dict[str, object] = {
        "content_sources": content.describe_sources(),
        "messages": len(messages),
        "telemetry_messages": telemetry,
        "stimuli": stimulus_facts,
        "notes": [*content.notes, *coverage_problems(content, profile)[1]],
    }
    return _result(
        "TM-OPTOUT",
        grouped.result(),
        facts,
        gaps,
        passed=(
            f"{len(messages)} messages recorded ({content.describe_sources()}), none is"
            " telemetry, including after a restart and a licence refresh"
        ),
        failed=f"{telemetry} telemetry messages although telemetry is disabled",
    )


def _stimulus_gap(
    name: str,
    stimuli: Sequence[Mapping[str, Any]] | None,
    messages: Sequence[ContentMessage],
    gaps: list[str],
) -> str:
    """Check one required stimulus ran and a message was recorded after it; returns a fact."""
    if stimuli is None:
        gaps.append(f"no stimulus log: the window cannot be shown to include a {name}")
        return "no stimulus log"
    done = _succeeded(name, stimuli)
    if not done:
        gaps.append(f"the window included no successful {name} (add it to the profile's stimuli)")
        return "not run"
    when = done[-1].get("t")  # the last: a message after it is after every one
    if isinstance(when, int | float) and not any(
        m.time is not None and m.time >= when for m in messages
    ):
        gaps.append(f"no message was recorded after the {name}: the channel was not observed")
        return "no message after it"
    return "ran, messages recorded after it"


def _succeeded(name: str, stimuli: Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    """The successful runs of the admin action `name` in the stimuli log."""
    return [
        s
        for s in stimuli or ()
        if str(s.get("stimulus", "")).endswith(f"/actions/{name}") and s.get("exit") == 0
    ]


# --- TM-MINIMAL ------------------------------------------------------------------------------


def undocumented_fields(body: Any, fields: TelemetryFields) -> list[str] | None:
    """Paths of fields CT 10 does not document; None when the body has no field names."""
    objects = list(_beat_objects(body))
    if not objects or any(set(obj) == {"protobuf"} for obj in objects):
        return None  # text, or a protobuf walk: numbered fields, no names to match
    found: dict[str, None] = {}
    for obj in objects:
        for key, value in obj.items():
            key_text = str(key)
            norm = normalise_key(key_text)
            if norm in fields.envelope:
                continue
            if norm not in fields.beats or not isinstance(value, dict):
                found[key_text] = None
                continue
            for category_key, inner in value.items():
                category = fields.category(key_text, str(category_key))
                path = f"{key_text}.{category_key}"
                if category is None:
                    found[path] = None
                    continue
                for extra in _unknown_keys(inner, category.fields, path):
                    found[extra] = None
    return list(found)


def _unknown_keys(value: Any, allowed: frozenset[str], path: str) -> Iterable[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            sub = f"{path}.{key}"
            if normalise_key(str(key)) not in allowed:
                yield sub
                continue
            yield from _unknown_keys(inner, allowed, sub)
    elif isinstance(value, list):
        for item in value:
            yield from _unknown_keys(item, allowed, f"{path}[]")


def minimal(
    obs: Observations, profile: Profile, fields: TelemetryFields | None = None
) -> ControlResult:
    """TM-MINIMAL: every field of every telemetry message is in CT 10's categories and no
    personal data appears anywhere in it, nested and encoded values included."""
    content = obs.content
    unavailable = _unavailable("TM-MINIMAL", content)
    if unavailable is not None:
        return unavailable
    assert content is not None
    fields = fields or load_telemetry_fields()
    scanner = scanner_for(profile, fields, obs.known_people)
    telemetry = [
        m for m in content.messages if _from_target(m, profile) and is_telemetry(m, fields)
    ]
    grouped = _Grouped()
    unreadable = 0
    checked_fields: set[str] = set()
    for message in telemetry:
        hits = scanner.scan(message.body)
        for hit in hits:
            grouped.add(
                ("pii", message.source, hit.kind, re.sub(r"\[\d+\]", "[]", hit.path)),
                _evidence_finding(
                    Severity.VIOLATION,
                    f"personal data ({hit.kind}) at {hit.path}: "
                    + quote(message, hits, marker(hit.kind)),
                    message,
                    {"kind": hit.kind, "field": hit.path},
                ),
            )
        undocumented = undocumented_fields(message.body, fields)
        if undocumented is None:
            unreadable += 1
            continue
        checked_fields.update(_leaf_paths(message.body))
        for path in undocumented:
            last = path.rsplit(".", 1)[-1].rstrip("[]")
            grouped.add(
                ("field", message.source, path),
                _evidence_finding(
                    Severity.VIOLATION,
                    f"undocumented field {path} (not in {fields.section}): "
                    + quote(message, hits, f'"{last}"'),
                    message,
                    {"field": path},
                ),
            )
    gaps = _content_gaps(content, profile)
    if not telemetry:
        gaps.append(
            f"telemetry is enabled but no telemetry message was recorded"
            f" ({content.describe_sources()}): nothing to judge"
        )
    if unreadable:
        gaps.append(
            f"{unreadable} telemetry messages carry no field names (schema-less protobuf or"
            " text): their fields cannot be matched to CT 10"
        )
    findings = grouped.result()
    violations = sum(1 for f in findings if f.severity is Severity.VIOLATION)
    facts: dict[str, object] = {
        "content_sources": content.describe_sources(),
        "telemetry_messages": len(telemetry),
        "distinct_fields": len(checked_fields),
        "documented_categories": len(fields.categories),
    }
    return _result(
        "TM-MINIMAL",
        findings,
        facts,
        gaps,
        passed=(
            f"{len(telemetry)} telemetry messages, {len(checked_fields)} distinct fields, all"
            f" in the categories of {fields.section}; no personal data found"
        ),
        failed=f"{violations} problems in telemetry messages",
    )


def _leaf_paths(value: Any, path: str = "") -> Iterable[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaf_paths(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _leaf_paths(item, f"{path}[]")
    else:
        yield path


# --- TM-CHANNEL ------------------------------------------------------------------------------


def channel(
    obs: Observations, profile: Profile, fields: TelemetryFields | None = None
) -> ControlResult:
    """TM-CHANNEL: telemetry arrives only over TLS to the licensing endpoints (CT 3)."""
    content = obs.content
    unavailable = _unavailable("TM-CHANNEL", content)
    if unavailable is not None:
        return unavailable
    assert content is not None
    fields = fields or load_telemetry_fields()
    scanner = scanner_for(profile, fields, obs.known_people)
    messages = [m for m in content.messages if _from_target(m, profile)]
    licensing = set(fields.licensing_endpoints)
    licensing.update(m.endpoint for m in messages if m.tls and is_licensing(m, fields))
    telemetry = [m for m in messages if is_telemetry(m, fields)]
    grouped = _Grouped()
    for message in telemetry:
        if message.tls is None:
            why = "in plaintext, not over TLS"
        elif message.endpoint not in licensing:
            why = (
                f"to {message.endpoint}, not a licensing endpoint ({', '.join(sorted(licensing))})"
            )
        else:
            continue
        grouped.add(
            ("channel", message.source, message.endpoint, message.tls is None),
            _evidence_finding(
                Severity.VIOLATION,
                f"telemetry {why}: {quote(message, scanner.scan(message.body))}",
                message,
                {"endpoint": message.endpoint},
            ),
        )
    gaps = _content_gaps(content, profile)
    if not telemetry:
        gaps.append("no telemetry message was recorded: no channel to judge")
    findings = grouped.result()
    facts: dict[str, object] = {
        "content_sources": content.describe_sources(),
        "telemetry_messages": len(telemetry),
        "licensing_endpoints": sorted(licensing),
    }
    return _result(
        "TM-CHANNEL",
        findings,
        facts,
        gaps,
        passed=(
            f"{len(telemetry)} telemetry messages, all over TLS to licensing endpoints"
            f" ({', '.join(sorted(licensing))})"
        ),
        failed=f"{len(findings)} telemetry channels other than the licensing one",
    )


# --- what the report says about content-level evidence ------------------------------------------

_CONTENT_TITLES: Final = (
    (DECRYPTED_REQUESTS, "the intercepting proxy's decrypted requests"),
    (CLOUD_REQUESTS, "what the lab cloud side received"),
    (TLS_DECRYPTED, "the target's TLS sessions decrypted with its own keys"),
    (HAR_CONTENT, "an intercepting proxy's HAR matched to the capture"),
)


def content_notes(obs: Observations, profile: Profile) -> tuple[str, ...]:
    """What the report says about content-level evidence in a hybrid run: which source the
    telemetry controls were judged on, or plainly that there was none."""
    if profile.mode is not Mode.HYBRID:
        return ()
    content = obs.content
    sources = content.sources if content is not None else ()
    present = [
        (title, content.files[log])
        for log, title in _CONTENT_TITLES
        if content is not None and log in sources
    ]
    if not present:
        return (
            "content-level evidence not available: no intercepting proxy's decrypted requests,"
            " no record of what the cloud side received, no TLS keys of the target"
            " (--tls-keylog), no HAR (--content-log). Telemetry shares the licensing channel"
            " (CT 3), so TM-OPTOUT, TM-MINIMAL and TM-CHANNEL are inconclusive, never pass",
        )
    listed = "; ".join(f"{title} ({name})" for title, name in present)
    note = f"content-level evidence: {listed}"
    if not any(log in sources for log in (DECRYPTED_REQUESTS, TLS_DECRYPTED)):
        note += " (no intercepting proxy: the target's own side of the traffic was not decrypted)"
    return (note,)
