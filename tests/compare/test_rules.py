"""What counts as a regression: the rules of compare.diff on hand-made snapshots."""

from __future__ import annotations

import pytest

from conformance.compare.diff import diff
from conformance.compare.snapshot import Destination, Snapshot, TlsEndpoint
from conformance.report.diff_render import render_markdown

API = "api.imagicle.com:443"


def snapshot(
    destinations: tuple[Destination, ...] = (),
    names: dict[str, frozenset[str]] | None = None,
    tls: tuple[TlsEndpoint, ...] = (),
    verdicts: dict[str, str] | None = None,
    profile: str = "site",
) -> Snapshot:
    return Snapshot(
        identity={"profile": profile, "mode": "hybrid", "verdict": "pass"},
        destinations={d.key: d for d in destinations},
        names=names or {},
        tls={e.endpoint: e for e in tls},
        verdicts=verdicts or {},
    )


def dest(address: str, names: tuple[str, ...] = (), port: int | None = 443) -> Destination:
    return Destination(address, port, "tcp", names, 1)


def tls(versions: set[str], suites: set[str], sni: set[str] | None = None) -> TlsEndpoint:
    return TlsEndpoint(API, frozenset(versions), frozenset(suites), frozenset(sni or {"x"}))


def test_a_cloud_name_on_a_new_address_is_shown_not_counted() -> None:
    old = snapshot((dest("203.0.113.25", ("api.imagicle.com",)),))
    new = snapshot((dest("203.0.113.26", ("api.imagicle.com",)),))
    doc = diff(old, new)
    assert not doc["regression"]
    assert doc["destinations"]["new"][0]["known_name"] is True
    assert "same name, new address" in render_markdown(doc)


def test_a_known_name_on_another_port_is_new() -> None:
    old = snapshot((dest("203.0.113.25", ("api.imagicle.com",)),))
    new = snapshot((dest("203.0.113.25", ("api.imagicle.com",), port=8443),))
    assert diff(old, new)["regressions"] == [
        "new destination 203.0.113.25:8443/tcp (api.imagicle.com)"
    ]


def test_an_unnamed_new_destination_is_a_regression() -> None:
    doc = diff(snapshot(), snapshot((dest("2001:db8:ffff::7", port=None),)))
    assert doc["regressions"] == ["new destination 2001:db8:ffff::7 tcp (no name maps to it)"]


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [
        (
            tls({"TLS1.3"}, {"0x1301"}),
            tls({"TLS1.2", "TLS1.3"}, {"0x1301", "0xc02f"}),
            "lowest version TLS1.3 -> TLS1.2",
        ),
        (
            tls({"TLS1.2"}, {"0xc02f"}),
            tls({"TLS1.2"}, {"0x000a"}),
            "now chooses TLS_RSA_WITH_3DES_EDE_CBC_SHA (3DES)",
        ),
        (
            tls({"TLS1.2"}, {"0xc02f"}),
            tls({"TLS1.2"}, {"0xc02f"}, {"x", "(none)"}),
            "a connection without SNI",
        ),
    ],
)
def test_weaker_tls_is_a_regression(before: TlsEndpoint, after: TlsEndpoint, reason: str) -> None:
    doc = diff(snapshot(tls=(before,)), snapshot(tls=(after,)))
    assert doc["regression"]
    assert doc["tls"]["changed"][0]["weaker"] == [reason]
    assert f"weaker TLS at {API}: {reason}" in doc["regressions"]


def test_stronger_tls_is_a_change_not_a_regression() -> None:
    doc = diff(
        snapshot(tls=(tls({"TLS1.2"}, {"0xc02f"}),)), snapshot(tls=(tls({"TLS1.3"}, {"0x1301"}),))
    )
    assert not doc["regression"]
    assert doc["tls"]["changed"][0]["new"]["suites"] == ["TLS_AES_128_GCM_SHA256"]


@pytest.mark.parametrize(
    ("old", "new", "worse"),
    [
        ("pass", "fail", True),
        ("pass", "inconclusive", True),
        ("pass", "error", True),
        ("inconclusive", "fail", True),
        ("error", "fail", True),
        ("fail", "inconclusive", False),
        ("fail", "pass", False),
        ("inconclusive", "pass", False),
        ("not-applicable", "pass", False),
        ("not-applicable", "inconclusive", True),
        ("pass", None, True),  # judged before, no longer judged
        (None, "fail", True),
        (None, "pass", False),
    ],
)
def test_verdict_changes(old: str | None, new: str | None, worse: bool) -> None:
    before = {"AG-EGRESS": old} if old else {}
    after = {"AG-EGRESS": new} if new else {}
    doc = diff(snapshot(verdicts=before), snapshot(verdicts=after))
    assert doc["verdicts"]["changed"] == [
        {"control": "AG-EGRESS", "old": old, "new": new, "worse": worse}
    ]
    assert doc["regression"] is worse


def test_a_new_name_is_a_regression_and_a_vanished_one_is_not() -> None:
    doc = diff(
        snapshot(names={"a.example": frozenset({"dns"})}),
        snapshot(names={"b.example": frozenset({"sni"})}),
    )
    assert doc["regressions"] == ["new name sought: b.example (sni)"]
    assert doc["names"]["vanished"] == [{"name": "a.example", "via": ["dns"]}]


def test_different_profiles_are_noted() -> None:
    doc = diff(snapshot(profile="a"), snapshot(profile="b"))
    assert "different profiles" in doc["notes"][0]


def test_markdown_neutralises_names_from_the_network() -> None:
    hostile = "x`](http://evil.example)|<b>"
    doc = diff(snapshot(), snapshot(names={hostile: frozenset({"sni"})}))
    text = render_markdown(doc)
    assert "`x'](http://evil.example)\\|<b>`" in text
    assert "](http://evil.example)|" not in text
