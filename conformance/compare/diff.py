"""Two snapshots -> the diff document of `diff` and of report.json `baseline`.

A regression (exit 1 of `diff`) is any of:
- a new destination, unless every name that maps to it already mapped to a destination on
  the same port and transport (a cloud name that moved to another address is shown, not
  counted: the controls judge where it went);
- a new name sought (DNS query, SNI, HTTP Host);
- weaker TLS at an endpoint in both reports: a lower version, a newly chosen weak suite, a
  connection without SNI where there was none before;
- a verdict that got worse (pass -> inconclusive/error/fail, inconclusive -> fail, ...), or a
  control judged before and missing now.
Vanished destinations and names, and better verdicts, are shown and never a regression.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from conformance.compare.snapshot import Destination, Snapshot, TlsEndpoint
from conformance.tls_registry import is_weak_suite, suite_name
from conformance.verdict import Verdict

DIFF_FORMAT = 1
_VERSION_CODES = {
    "SSL3.0": 0x0300,
    "TLS1.0": 0x0301,
    "TLS1.1": 0x0302,
    "TLS1.2": 0x0303,
    "TLS1.3": 0x0304,
}
NO_SNI = "(none)"


def _version_rank(text: str) -> int:
    """Order of a version as tables.py writes it ("TLS1.2", or "0x7f1c" when unnamed)."""
    if text in _VERSION_CODES:
        return _VERSION_CODES[text]
    try:
        value = int(text, 16)
    except ValueError:
        return 0  # unreadable: ranks lowest, so a change to it counts as weaker
    return 0x0304 if value >> 8 == 0x7F else value  # TLS 1.3 drafts


def _suite(text: str) -> tuple[str, str | None]:
    """A suite cell ("0x1301") as (IANA name, why weak or None)."""
    try:
        value = int(text, 16)
    except ValueError:
        return text, "unreadable"
    return suite_name(value), is_weak_suite(value)


def _verdict_rank(value: str | None) -> int:
    if value is None:
        return -1
    try:
        return Verdict(value).rank
    except ValueError:
        return Verdict.ERROR.rank


def _worse(old: str | None, new: str | None) -> bool:
    """Whether a control's verdict got worse: more severe and not a pass, or no longer judged."""
    if new is None:
        return old is not None and old != Verdict.NOT_APPLICABLE.value
    if old is None:
        return new not in (Verdict.PASS.value, Verdict.NOT_APPLICABLE.value)
    if new in (Verdict.PASS.value, Verdict.NOT_APPLICABLE.value):
        return False
    return _verdict_rank(new) > _verdict_rank(old)


def _destination(d: Destination, known: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": d.address,
        "port": d.port,
        "transport": d.transport,
        "destination": d.text,
        "names": list(d.names),
        "flows": d.flows,
    }
    if known is not None:
        out["known_name"] = known
    return out


def _tls_side(e: TlsEndpoint) -> dict[str, Any]:
    return {
        "versions": sorted(e.versions, key=_version_rank),
        "suites": sorted(_suite(s)[0] for s in e.suites),
        "sni": sorted(e.sni),
    }


def _weaker(old: TlsEndpoint, new: TlsEndpoint) -> list[str]:
    reasons: list[str] = []
    old_low = min(old.versions, key=_version_rank)
    new_low = min(new.versions, key=_version_rank)
    if _version_rank(new_low) < _version_rank(old_low):
        reasons.append(f"lowest version {old_low} -> {new_low}")
    for suite in sorted(new.suites - old.suites):
        name, weak = _suite(suite)
        if weak:
            reasons.append(f"now chooses {name} ({weak})")
    if NO_SNI in new.sni and NO_SNI not in old.sni:
        reasons.append("a connection without SNI")
    return reasons


def _names(names: Mapping[str, frozenset[str]], keys: Iterable[str]) -> list[dict[str, Any]]:
    return [{"name": n, "via": sorted(names[n])} for n in sorted(keys)]


def diff(old: Snapshot, new: Snapshot) -> dict[str, Any]:
    """The diff document (old -> new); `regression` says whether anything got worse."""
    regressions: list[str] = []
    old_named = {(n, d.port, d.transport) for d in old.destinations.values() for n in d.names}
    added = []
    for key in sorted(set(new.destinations) - set(old.destinations), key=str):
        d = new.destinations[key]
        known = bool(d.names) and all((n, d.port, d.transport) in old_named for n in d.names)
        added.append(_destination(d, known))
        if not known:
            named = f" ({', '.join(d.names)})" if d.names else " (no name maps to it)"
            regressions.append(f"new destination {d.text}{named}")
    vanished = [
        _destination(old.destinations[k])
        for k in sorted(set(old.destinations) - set(new.destinations), key=str)
    ]
    new_names = set(new.names) - set(old.names)
    regressions += [
        f"new name sought: {n} ({', '.join(sorted(new.names[n]))})" for n in sorted(new_names)
    ]
    tls_changed = []
    for endpoint in sorted(set(old.tls) & set(new.tls)):
        before, after = old.tls[endpoint], new.tls[endpoint]
        if before == after:
            continue
        reasons = _weaker(before, after)
        tls_changed.append(
            {
                "endpoint": endpoint,
                "old": _tls_side(before),
                "new": _tls_side(after),
                "weaker": reasons,
            }
        )
        regressions += [f"weaker TLS at {endpoint}: {r}" for r in reasons]
    verdicts = []
    for control in sorted(set(old.verdicts) | set(new.verdicts)):
        was, now = old.verdicts.get(control), new.verdicts.get(control)
        if was == now:
            continue
        worse = _worse(was, now)
        verdicts.append({"control": control, "old": was, "new": now, "worse": worse})
        if worse:
            regressions.append(f"{control}: {was or 'not judged'} -> {now or 'not judged'}")
    notes = list(dict.fromkeys([*old.notes, *new.notes]))
    if (old.identity.get("profile"), old.identity.get("mode")) != (
        new.identity.get("profile"),
        new.identity.get("mode"),
    ):
        notes.append("the two reports judged different profiles: compare with care")
    return {
        "format": DIFF_FORMAT,
        "old": dict(old.identity),
        "new": dict(new.identity),
        "regression": bool(regressions),
        "regressions": regressions,
        "destinations": {"new": added, "vanished": vanished},
        "names": {
            "new": _names(new.names, new_names),
            "vanished": _names(old.names, set(old.names) - set(new.names)),
        },
        "tls": {
            "changed": tls_changed,
            "new": sorted(set(new.tls) - set(old.tls)),
            "vanished": sorted(set(old.tls) - set(new.tls)),
        },
        "verdicts": {"changed": verdicts},
        "notes": notes,
    }
