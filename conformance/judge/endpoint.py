"""HY-ENDPOINT: the cloud endpoints the site reaches offer sound TLS (server-side scan).

Judged from the sslyze scan results (Evidence log ENDPOINT_SCAN, conformance.lab.endpoint_scan):
per endpoint, no protocol version below the profile's minimum is offered, no weak suite is
accepted, and the certificate chain is valid for the name and not expired. An endpoint that
could not be scanned leaves the control inconclusive; without a scan in the run, it is
inconclusive (docs/hybrid.md).
"""

from __future__ import annotations

from conformance.judge.result import ControlResult, Finding, Severity
from conformance.observe.records import Observations
from conformance.profile_model import Profile
from conformance.verdict import Verdict

CONTROL = "HY-ENDPOINT"
_ORDER = ("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3")
MIN_KEY_BITS = {"RSA": 2048, "DSA": 2048, "EC": 224}  # NIST SP 800-57 part 1: 112-bit strength


def _days(days: object) -> str:
    return f"{days} day{'' if days == 1 else 's'}"


def _row(entry: dict[str, object], cert: object) -> dict[str, object]:
    """One endpoint's line of the report's table: what it offers and its certificate."""
    row: dict[str, object] = {
        "address": entry.get("address"),
        "versions": entry.get("versions", []),
        "weak_suites": entry.get("weak_suites", []),
    }
    if isinstance(cert, dict):
        row.update(
            {
                "subject": cert.get("subject"),
                "names": cert.get("names"),
                "matches_name": cert.get("matches_name"),
                "chain_valid_with": cert.get("trusted_by"),
                "not_after": cert.get("not_after"),
                "days_to_expiry": cert.get("days_to_expiry"),
                "key": f"{cert.get('key_type', '?')} {cert.get('key_bits', '?')} bits",
            }
        )
    else:
        row["error"] = entry.get("error") or entry.get("connectivity")
    return row


def endpoints(obs: Observations, profile: Profile) -> ControlResult:
    """HY-ENDPOINT from the server-side scan results the run recorded."""
    scan = obs.endpoint_scan
    if scan is None:
        return ControlResult(
            CONTROL,
            Verdict.INCONCLUSIVE,
            "no endpoint scan in this run (server-side scans run in the lab, after the window)",
        )
    try:
        if scan.error is not None:
            raise ValueError(scan.error)
        endpoints = scan.value["endpoints"]
        if not isinstance(endpoints, list) or not all(
            isinstance(e, dict) and "name" in e and "port" in e for e in endpoints
        ):
            raise TypeError("'endpoints' is not a list of {name, port, ...}")
    except (ValueError, KeyError, TypeError) as exc:
        return ControlResult(
            CONTROL, Verdict.INCONCLUSIVE, f"unreadable scan results ({scan.evidence_file}): {exc}"
        )
    endpoints = sorted(endpoints, key=lambda e: (str(e["name"]), str(e["port"])))
    minimum = f"TLS {profile.cloud.min_tls}" if profile.cloud is not None else "TLS 1.2"
    below = set(_ORDER[: _ORDER.index(minimum)]) if minimum in _ORDER else set()
    findings: list[Finding] = []
    table: dict[str, dict[str, object]] = {}
    unscanned: list[str] = []
    for entry in endpoints:
        key = f"{entry['name']}:{entry['port']}"
        cert = entry.get("certificate")
        table[key] = _row(entry, cert)

        def fail(text: str, key: str = key) -> None:
            findings.append(
                Finding(Severity.VIOLATION, f"{key}: {text}", evidence_file=scan.evidence_file)
            )

        if entry.get("connectivity") != "COMPLETED" or cert is None:
            unscanned.append(f"{key} ({entry.get('error') or entry.get('connectivity')})")
            continue
        offered_below = [v for v in entry.get("versions", []) if v in below]
        if offered_below:
            fail(f"offers {', '.join(offered_below)}, below the minimum {minimum}")
        if entry.get("weak_suites"):
            fail(f"accepts weak suites: {', '.join(entry['weak_suites'][:5])}")
        if not cert.get("trusted_by"):
            fail(f"certificate chain not valid ({cert.get('subject')})")
        if not cert.get("matches_name"):
            fail(f"certificate not issued for {entry['name']} ({cert.get('subject')})")
        if cert.get("days_to_expiry", 0) < 0:
            fail(f"certificate expired on {cert.get('not_after')}")
        key_type, bits = cert.get("key_type"), cert.get("key_bits")
        least = MIN_KEY_BITS.get(str(key_type))
        if least is not None and isinstance(bits, int) and bits < least:
            fail(f"weak {key_type} key: {bits} bits (at least {least})")
    facts: dict[str, object] = {"endpoints": table}
    if findings:
        return ControlResult(
            CONTROL,
            Verdict.FAIL,
            f"{len(findings)} problem(s) with the cloud endpoints' TLS: {findings[0].summary}",
            tuple(findings),
            facts,
        )
    if unscanned or not endpoints:
        return ControlResult(
            CONTROL,
            Verdict.INCONCLUSIVE,
            "not every endpoint could be scanned: " + ("; ".join(unscanned) or "none listed"),
            (),
            facts,
        )
    parts = []
    for entry in endpoints:
        cert = entry["certificate"]
        parts.append(
            f"{entry['name']}:{entry['port']} {', '.join(entry['versions'])} "
            f"(certificate valid, {_days(cert.get('days_to_expiry'))} left)"
        )
    return ControlResult(
        CONTROL, Verdict.PASS, f"{len(table)} endpoint(s) sound: {'; '.join(parts)}", (), facts
    )
