"""HY-CERT: the target sends no application data to a server that cannot prove its name.

Active and lab-only: the lab meets the target's cloud connections with impostor servers that
present, in turn, a self-signed certificate, one from an untrusted CA, one for the wrong
name, an expired one and a weak-key one (docs/hybrid.md). Each impostor logs, per connection,
whether the handshake completed and how many bytes of application data arrived after it
(decision 3: a completed handshake followed by a silent close passes; the criterion is that no
application data was sent, measured at the impostor).

The phase's own capture (IMPOSTOR_CAPTURE) cross-checks the log: every logged connection must
be a flow opened in the capture (same client address and port), and every accepted connection
opened to the same front address and port must be in the log. A mismatch means the log may
miss a connection: the control cannot pass. Without a proxy the client is the target; with
one it is the proxy carrying the target's CONNECT tunnel (the capture is then taken on the
proxy's segment, docs/hybrid.md), and the TLS the impostor measures is still the target's.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from conformance.judge.common import describe_flow, evidence_gaps, plural
from conformance.judge.result import ControlResult, Finding, Severity
from conformance.observe.records import Flow, Observations
from conformance.profile_model import Profile
from conformance.verdict import Verdict

CONTROL = "HY-CERT"
IMPOSTOR_KINDS = ("self-signed", "untrusted-ca", "wrong-name", "expired", "weak-key")

Entry = Mapping[str, object]
Key = tuple[str, int]  # the target's address and port of one connection


@dataclass(frozen=True, slots=True)
class _CrossCheck:
    """The impostor capture read against the log."""

    flows: dict[Key, Flow]  # logged connection -> its flow in the capture
    gaps: list[str]  # why the capture does not confirm the log


def _key(entry: Entry) -> Key | None:
    host, _, port = str(entry.get("client", "")).rpartition(":")
    try:
        return str(ipaddress.ip_address(host.strip("[]"))), int(port)
    except ValueError:
        return None


def cross_check(entries: Sequence[tuple[int, Entry]], obs: Observations) -> _CrossCheck:
    """Match the logged connections with the flows the target opened in the capture."""
    gaps = [f"impostor capture: {gap}" for gap in evidence_gaps(obs)]
    by_client = {
        (str(f.initiator), f.initiator_port): f
        for f in obs.flows
        if f.transport == "tcp" and f.handshake_seen
    }
    matched: dict[Key, Flow] = {}
    unmatched: list[str] = []
    for _, entry in entries:
        key = _key(entry)
        flow = by_client.get(key) if key is not None else None
        if flow is None or key is None:
            unmatched.append(str(entry.get("client", "?")))
        else:
            matched[key] = flow
    if unmatched:
        gaps.append(
            f"{plural(len(unmatched), 'logged impostor connection')} not in the capture: "
            + ", ".join(unmatched[:5])
        )
    # The fronts the impostors stood behind (the cloud name's address, redirected on the way).
    fronts = {(f.responder, f.responder_port) for f in matched.values()}
    unlogged = [
        f
        for key, f in by_client.items()
        if (f.responder, f.responder_port) in fronts and f.accepted and key not in matched
    ]
    if unlogged:
        gaps.append(
            f"the capture shows {plural(len(unlogged), 'accepted connection')} to the impostors' "
            "address the impostor log lacks: " + "; ".join(describe_flow(f) for f in unlogged[:3])
        )
    return _CrossCheck(matched, gaps)


def _packets(flow: Flow | None, capture: str) -> dict[str, str]:
    if flow is None:
        return {}
    shown = ", ".join(str(n) for n in flow.sample_packets)
    return {
        "capture": capture,
        "flow": describe_flow(flow),
        "packets": shown + (" ..." if flow.last_packet not in flow.sample_packets else ""),
    }


def impostor(obs: Observations, profile: Profile) -> ControlResult:
    """HY-CERT from the impostors' per-connection log, cross-checked in the phase's capture."""
    phase = obs.impostors
    if phase is None:
        return ControlResult(
            CONTROL,
            Verdict.INCONCLUSIVE,
            "active control: no impostor ran in this run (it needs the lab: run --lab with a "
            "hybrid profile, where impostors answer the target's cloud connections)",
        )
    entries, bad = phase.log.records, len(phase.log.unreadable)
    gaps: list[str] = []
    flows: dict[Key, Flow] = {}
    if phase.capture is None:
        gaps.append(f"{phase.capture_error or 'no capture'}: the log cannot be cross-checked")
    else:
        check = cross_check(entries, phase.capture)
        flows, gaps = check.flows, check.gaps
    findings: list[Finding] = []
    reached: dict[str, int] = {}
    table: list[dict[str, object]] = []
    for number, entry in entries:
        kind = str(entry.get("kind", "?"))
        reached[kind] = reached.get(kind, 0) + 1
        data = entry.get("app_data_bytes", 0)
        key = _key(entry)
        flow = flows.get(key) if key is not None else None
        table.append(
            {
                "kind": kind,
                "client": entry.get("client"),
                "handshake": bool(entry.get("handshake")),
                "version": entry.get("version"),
                "app_data_bytes": data,
                "client_error": entry.get("error"),
                "capture_flow": flow.flow_id if flow is not None else None,
            }
        )
        if isinstance(data, int) and data > 0:
            findings.append(
                Finding(
                    Severity.VIOLATION,
                    f"sent {data} bytes of application data to the {kind} impostor "
                    f"({entry.get('client', '?')} -> {entry.get('server', '?')}, "
                    f"handshake {'completed' if entry.get('handshake') else 'not completed'})",
                    evidence_file=phase.log.evidence_file,
                    evidence_line=number,
                    facts={
                        "kind": kind,
                        "first_bytes": str(entry.get("first_bytes", "")),
                        **_packets(flow, phase.capture_file),
                    },
                )
            )
    facts: dict[str, object] = {"connections": len(entries), "by_kind": reached}
    if table:
        facts["impostor_connections"] = table
    if gaps:
        facts["cross_check"] = gaps
    if findings:
        return ControlResult(
            CONTROL,
            Verdict.FAIL,
            f"the target sent application data to {len(findings)} impostor connection(s): "
            f"{findings[0].summary}",
            tuple(findings),
            facts,
        )
    missing = [k for k in IMPOSTOR_KINDS if k not in reached]
    if bad:
        gaps.insert(0, f"{bad} unreadable lines in the impostor log")
    if missing:
        gaps.insert(0, "the target never reached the impostor(s) " + ", ".join(missing))
    if gaps:
        return ControlResult(CONTROL, Verdict.INCONCLUSIVE, "; ".join(gaps), (), facts)
    return ControlResult(
        CONTROL,
        Verdict.PASS,
        f"{len(entries)} connections to impostors ({', '.join(IMPOSTOR_KINDS)}), each matched "
        "in the phase's capture: no application data sent to any",
        (),
        facts,
    )
