"""Personal data found in message trees, and nothing found in the documented beat."""

from __future__ import annotations

from conformance.content.personal import ADDRESS, EMAIL, PERSON, PHONE, Scanner, redact
from tests.content.beats import beat


def test_the_reference_beat_has_no_personal_data() -> None:
    scanner = Scanner(
        own_addresses=frozenset({"192.0.2.10"}), address_kind=lambda k: "infrastructure"
    )
    assert scanner.scan(beat()) == []


def test_versions_dates_ids_and_times_are_not_phone_numbers_or_addresses() -> None:
    tree = {
        "version": "10.0.20348.1",
        "date": "2024-01-15",
        "id": "00000000-0000-0000-0000-000000001ce5",
        "when": "2024-05-01T02:00:00Z",
        "kb": "KB5034439",
        "count": 1234567,
    }
    assert Scanner().scan(tree) == []


def test_kinds_and_paths() -> None:
    tree = {
        "users": [{"name": "Anna Bianchi", "extension": 1001}],
        "note": "mail me at a.b@example.org or +44 20 7946 0958",
        "peer": "2001:db8:ffff::7",
    }
    hits = {(h.kind, h.path) for h in Scanner().scan(tree)}
    assert (PERSON, "users[0].name") in hits
    assert (PHONE, "users[0].extension") in hits
    assert (EMAIL, "note") in hits and (PHONE, "note") in hits
    assert (ADDRESS, "peer") in hits


def test_redaction_replaces_every_value() -> None:
    tree = {"email": "a.b@example.org", "name": "x"}
    hits = Scanner().scan(tree)
    assert redact('{"email":"a.b@example.org"}', hits) == '{"email":"[e-mail redacted]"}'
