"""The proxy judges: PX-ONLY, PX-CONNECT and PX-DNS (CT 7 "Via proxy, so no need for the UCX
Suite to have direct connectivity").

Judged on the capture of the target's link; the proxy's own access.log (squid native format)
is a second source where the evidence has one: it names what the proxy carried for the target
(a plaintext request it forwarded, a CONNECT to a host the capture cannot name, the address
it connected to). Content-level evidence (the intercepting proxy's decrypted log) adds
plaintext requests it saw. Names and addresses (decision 8) through a proxy: the proxy, not
the target, resolves a CONNECT host, so the tunnel's SNI must be the CONNECT host itself, and
where the access.log records the address the proxy reached, it is checked against the
capture's DNS answers for that host (docs/proxy-telemetry.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from conformance.content.messages import DECRYPTED_REQUESTS, ContentEvidence
from conformance.judge.air_gapped import (
    ANSWER_ONLY,
    ANSWERS_NOTHING,
    answer_only,
    answers_nothing_gap,
    unasked_outside,
)
from conformance.judge.common import (
    FindingGroups,
    Findings,
    address_of,
    conclude,
    describe_flow,
    flow_packets,
    host_of,
    is_cloud_name,
    is_outside,
    name_index,
    plural,
    target_view,
)
from conformance.judge.name_map import Agreement, DnsNames, dns_names, real_name_hidden
from conformance.judge.result import ControlResult, Finding, Severity
from conformance.names import matches
from conformance.observe.records import (
    Flow,
    Observations,
    ProxyLog,
    ProxyLogEntry,
    TlsClientHello,
)
from conformance.profile_model import Profile

NO_REQUEST: Final = "error:transaction-end-before-headers"  # squid: a connection, no request
DIRECT: Final = "HIER_DIRECT"  # squid's hierarchy code: it connected to the origin itself


def _no_proxy(control_id: str, profile: Profile) -> ControlResult | None:
    if profile.proxy is None:
        from conformance.verdict import Verdict

        return ControlResult(control_id, Verdict.NOT_APPLICABLE, "the profile declares no proxy")
    return None


def _to_proxy(flow: Flow, profile: Profile) -> bool:
    proxy = profile.proxy
    return (
        proxy is not None
        and flow.transport == "tcp"
        and flow.responder_port == proxy.port
        and flow.responder == proxy.address
    )


def _target_entries(log: ProxyLog | None, profile: Profile) -> list[ProxyLogEntry]:
    if log is None:
        return []
    targets = {str(a) for a in profile.target.addresses}
    return [e for e in log.entries if e.client in targets]


# --- PX-ONLY ---------------------------------------------------------------------------------


def only(obs: Observations, profile: Profile) -> ControlResult:
    """PX-ONLY: every flow the target opens to an outside address goes to the proxy instead.

    Any other flow to an outside address fails, answered or not, DNS to an outside resolver
    included (PX-DNS judges the name it carried as well: both fail). A flow in which only
    an answer to an earlier request is seen is a warning (`air_gapped.answer_only`).
    """
    skip = _no_proxy("PX-ONLY", profile)
    if skip is not None:
        return skip
    assert profile.proxy is not None
    log = obs.proxy_log
    view = target_view(obs, profile)
    index = name_index(obs, profile)
    findings = Findings()
    dns_flows = {q.flow_id for q in obs.dns if profile.is_target(q.client)}
    direct = proxied = dns_outside = 0
    around = f": around the proxy {profile.proxy}"
    dns_around = f": DNS to an outside resolver, around the proxy {profile.proxy} (PX-DNS)"
    for flow in view.outgoing:
        if _to_proxy(flow, profile):
            proxied += 1
        elif not view.outside(flow.responder):
            continue
        elif answer_only(flow):
            findings.flow(Severity.WARNING, flow, index, ANSWER_ONLY)
        else:
            direct += 1
            note = around
            if flow.flow_id in dns_flows:
                dns_outside += 1
                note = dns_around
            findings.flow(Severity.VIOLATION, flow, index, note)
    unasked = unasked_outside(view)
    for flow in unasked:
        findings.flow(Severity.WARNING, flow, index, ANSWERS_NOTHING)
    tunnels = [e for e in _target_entries(log, profile) if e.method == "CONNECT"]
    facts: dict[str, object] = {
        "target_flows": len(view.flows),
        "flows_to_proxy": proxied,
        "direct_external_flows": direct,
        "dns_flows_to_outside_resolvers": dns_outside,
        "proxy_log": log.evidence_file if log else "not available",
        "proxy_log_tunnels_for_target": len(tunnels),
    }
    if log is not None and tunnels:
        findings.append(
            Finding(
                Severity.INFO,
                f"the proxy's access.log records {plural(len(tunnels), 'tunnel')} for the target",
                evidence_file=log.evidence_file,
                evidence_line=tunnels[0].line,
            )
        )
    gaps = [answers_nothing_gap(len(unasked))] if unasked else []
    if not proxied:
        gaps.append(
            f"the target opened no connection to the proxy {profile.proxy} in the window:"
            " nothing shows its cloud traffic uses it"
        )
    return conclude(
        "PX-ONLY",
        view,
        findings,
        passed=(
            f"{plural(proxied, 'flow')} to the proxy {profile.proxy};"
            f" no direct flow to an outside address ({len(view.flows)} target flows)"
        ),
        failed=f"{plural(direct, 'flow')} to outside addresses around the proxy",
        facts=facts,
        gaps=gaps,
    )


# --- PX-CONNECT ------------------------------------------------------------------------------


def allowed_endpoint(host: str, port: int | None, profile: Profile) -> bool:
    """Whether host:port is one of the profile's TCP cloud endpoints (decision 4 patterns):
    a CONNECT tunnel is TCP, so a `/udp` (QUIC) endpoint does not allow it."""
    if profile.cloud is None or port is None:
        return False
    return any(
        e.port == port and e.transport == "tcp" and _matches(e.pattern, host)
        for e in profile.cloud.endpoints
    )


def _matches(pattern: str, host: str) -> bool:
    try:
        return matches(pattern, host)
    except ValueError:
        return False


def _split_authority(target: str) -> tuple[str, int | None]:
    host = host_of(target)
    _, _, port = target.rpartition(":")
    return host, int(port) if port.isdigit() else None


def _endpoints(profile: Profile) -> str:
    return ", ".join(str(e) for e in profile.cloud.endpoints) if profile.cloud else "none"


def connect(obs: Observations, profile: Profile) -> ControlResult:
    """PX-CONNECT: each request to the proxy is CONNECT to an allowed host:port, the tunnel's
    TLS ClientHello names the CONNECT host (SNI), and no plaintext request goes through it."""
    skip = _no_proxy("PX-CONNECT", profile)
    if skip is not None:
        return skip
    log, content = obs.proxy_log, obs.content
    view = target_view(obs, profile)
    index = name_index(obs, profile)
    to_proxy = [flow for flow in view.outgoing if _to_proxy(flow, profile)]
    tunnelled = {flow.flow_id for flow in to_proxy}
    hellos: dict[int, list[TlsClientHello]] = {}
    for hello in obs.client_hellos:
        if hello.flow_id in tunnelled:
            hellos.setdefault(hello.flow_id, []).append(hello)
    groups = FindingGroups()
    counts = {"connects": 0, "sni_matched": 0, "plaintext": 0, "not_allowed": 0, "ech_hidden": 0}
    opaque = 0
    for flow in to_proxy:
        requests = index.requests(flow)
        if not requests and flow.first_payload_packet is not None:
            opaque += 1
        for request in requests:
            packets = (request.packet,)
            if request.method != "CONNECT":
                counts["plaintext"] += request.count
                groups.add(
                    ("plain", request.method, request.target),
                    Severity.VIOLATION,
                    f"{request.method} {request.target} sent to the proxy in plaintext"
                    f" ({describe_flow(flow)}): not a CONNECT tunnel",
                    capture=request.capture,
                    packets=packets,
                    flow_id=flow.flow_id,
                    count=request.count,
                )
                continue
            counts["connects"] += request.count
            host, port = _split_authority(request.target)
            if not allowed_endpoint(host, port, profile):
                counts["not_allowed"] += request.count
                groups.add(
                    ("target", request.target),
                    Severity.VIOLATION,
                    f"CONNECT {request.target}: not an allowed endpoint ({_endpoints(profile)})",
                    capture=request.capture,
                    packets=packets,
                    flow_id=flow.flow_id,
                    count=request.count,
                )
            _judge_tunnel(flow, host, request.target, hellos.get(flow.flow_id, []), groups, counts)
    findings = groups.findings()
    entries = _target_entries(log, profile)
    findings += _log_findings(entries, log, profile, counts)
    findings += _peer_findings(entries, log, dns_names(obs, profile), counts)
    findings += _content_findings(content, counts)
    facts: dict[str, object] = {
        **counts,
        "proxy_log": log.evidence_file if log else "not available",
        "proxy_flows_without_request": opaque,
    }
    gaps: list[str] = []
    if not counts["connects"]:
        gaps.append("the capture shows no CONNECT request to the proxy: no tunnel to judge")
    if opaque:
        gaps.append(f"{plural(opaque, 'flow')} to the proxy carried no readable HTTP request")
    if counts["ech_hidden"]:
        gaps.append(
            f"{plural(counts['ech_hidden'], 'tunnel')} whose ClientHello hides its real name"
            " (Encrypted ClientHello): it cannot be compared with the CONNECT host (decision 9)"
        )
    if log is not None and log.unreadable:
        gaps.append(f"{log.evidence_file}: {plural(len(log.unreadable), 'line')} unreadable")
    violations = sum(1 for f in findings if f.severity is Severity.VIOLATION)
    return conclude(
        "PX-CONNECT",
        view,
        findings,
        passed=(
            f"{plural(counts['connects'], 'CONNECT request')} to allowed endpoints;"
            f" {counts['sni_matched']} tunnels' ClientHello SNI equals the CONNECT host;"
            " no plaintext request through the proxy"
        ),
        failed=f"{plural(violations, 'problem')} with what went through the proxy",
        facts=facts,
        gaps=gaps,
        payloads=True,
    )


def _judge_tunnel(
    flow: Flow,
    host: str,
    target: str,
    hellos: Sequence[TlsClientHello],
    groups: FindingGroups,
    counts: dict[str, int],
) -> None:
    if not hellos:
        groups.add(
            ("nohello", target, flow.flow_id),
            Severity.WARNING,
            f"CONNECT {target}: no TLS ClientHello followed in the capture (refused by the"
            f" proxy, closed, or cut by the window's end), {describe_flow(flow)}",
            capture=flow.capture,
            packets=flow_packets(flow).packets,
            flow_id=flow.flow_id,
        )
        return
    for hello in hellos:
        if real_name_hidden(hello):
            counts["ech_hidden"] += 1
            groups.add(
                ("ech", target, hello.sni),
                Severity.WARNING,
                f"CONNECT {target}, then a TLS ClientHello whose real name Encrypted"
                f" ClientHello hides (public name {hello.sni or '(none)'}): the tunnel's name"
                f" cannot be compared with the CONNECT host ({describe_flow(flow)})",
                capture=hello.capture,
                packets=(hello.packet,),
                flow_id=flow.flow_id,
            )
            continue
        sni = (hello.sni or "").lower().rstrip(".")
        if sni and sni == host:
            counts["sni_matched"] += 1
            continue
        what = f"SNI {hello.sni}" if hello.sni else "no SNI"
        groups.add(
            ("sni", target, hello.sni),
            Severity.VIOLATION,
            f"CONNECT {target}, then a TLS ClientHello with {what}: the tunnel does not carry"
            f" TLS to the CONNECT host ({describe_flow(flow)})",
            capture=hello.capture,
            packets=(hello.packet,),
            flow_id=flow.flow_id,
        )


def _log_findings(
    entries: Sequence[ProxyLogEntry],
    log: ProxyLog | None,
    profile: Profile,
    counts: dict[str, int],
) -> list[Finding]:
    """The proxy's own account: non-CONNECT requests and CONNECTs to disallowed endpoints."""
    if log is None:
        return []
    findings: list[Finding] = []
    for entry in entries:
        if entry.url == NO_REQUEST:
            findings.append(
                Finding(
                    Severity.WARNING,
                    f"proxy access.log: {entry.client} opened a connection to the proxy and it"
                    " ended before any request (closed, or cut by the window's end): nothing"
                    " passed through it",
                    evidence_file=log.evidence_file,
                    evidence_line=entry.line,
                    facts={"line": entry.text},
                )
            )
            continue
        if entry.method == "-" and entry.url.startswith("error:"):
            why = "the proxy could not read a request from it: not a CONNECT tunnel"
        elif entry.method != "CONNECT":
            why = "a plaintext request through the proxy, not a CONNECT tunnel"
        else:
            host, port = _split_authority(entry.url)
            if allowed_endpoint(host, port, profile):
                continue
            why = f"CONNECT to an endpoint that is not allowed ({_endpoints(profile)})"
        counts["proxy_log_violations"] = counts.get("proxy_log_violations", 0) + 1
        findings.append(
            Finding(
                Severity.VIOLATION,
                f"proxy access.log: {entry.client} {entry.method} {entry.url}"
                f" ({entry.action}/{entry.status}): {why}",
                evidence_file=log.evidence_file,
                evidence_line=entry.line,
                facts={"line": entry.text},
            )
        )
    return findings


def _peer_findings(
    entries: Sequence[ProxyLogEntry],
    log: ProxyLog | None,
    dns: DnsNames,
    counts: dict[str, int],
) -> list[Finding]:
    """Decision 8 through the proxy: the address squid connected to for a CONNECT host
    (`HIER_DIRECT/address`), where the capture holds DNS answers for that host.

    The proxy resolves the CONNECT host with its own resolver, which may answer otherwise
    (another view, another moment): a disagreement is shown as a warning, since the target
    did not choose that address. A tunnel forwarded to a parent proxy names no address.
    """
    if log is None:
        return []
    findings: list[Finding] = []
    for entry in entries:
        code, _, peer = entry.hierarchy.partition("/")
        if entry.method != "CONNECT" or code != DIRECT or address_of(peer) is None:
            continue
        host, _ = _split_authority(entry.url)
        if address_of(host) is not None:
            continue
        agreement, answered = dns.agreement(host, str(address_of(peer)))
        if agreement is Agreement.AGREES:
            counts["proxy_peers_agreeing"] = counts.get("proxy_peers_agreeing", 0) + 1
        elif agreement is Agreement.MISMATCH:
            counts["proxy_peers_disagreeing"] = counts.get("proxy_peers_disagreeing", 0) + 1
            findings.append(
                Finding(
                    Severity.WARNING,
                    f"proxy access.log: the proxy reached {host} at {peer}, but the capture's"
                    f" DNS answers give {host} only {', '.join(sorted(answered)[:5])}"
                    " (the proxy resolves the CONNECT host itself; its resolver may answer"
                    " otherwise)",
                    evidence_file=log.evidence_file,
                    evidence_line=entry.line,
                    facts={"line": entry.text},
                )
            )
    return findings


def _content_findings(content: ContentEvidence | None, counts: dict[str, int]) -> list[Finding]:
    """Plaintext requests the intercepting proxy saw (absolute-form, or plaintext in a tunnel)."""
    if content is None:
        return []
    findings: list[Finding] = []
    for message in content.messages:
        if message.source != DECRYPTED_REQUESTS or message.tls is not None:
            continue
        counts["plaintext_decrypted"] = counts.get("plaintext_decrypted", 0) + 1
        findings.append(
            Finding(
                Severity.VIOLATION,
                f"intercepting proxy saw {message.describe()}: plaintext through the proxy",
                evidence_file=message.evidence_file,
                evidence_line=message.line,
            )
        )
    return findings


# --- PX-DNS ----------------------------------------------------------------------------------


def dns(obs: Observations, profile: Profile) -> ControlResult:
    """PX-DNS: no DNS query of the target goes to a resolver outside the environment; queries
    for cloud names (which the proxy resolves, so the target need not) are reported as info."""
    skip = _no_proxy("PX-DNS", profile)
    if skip is not None:
        return skip
    view = target_view(obs, profile)
    groups = FindingGroups()
    total = outside = cloud = 0
    for query in obs.dns:
        if not profile.is_target(query.client):
            continue
        total += query.count
        packets = tuple(p for p in (query.packet, query.response_packet) if p is not None)
        if is_outside(query.server, profile.environment):
            outside += query.count
            groups.add(
                ("outside", query.qname, query.server),
                Severity.VIOLATION,
                f"DNS query for {query.qname} to {query.server}:{query.server_port}, a resolver"
                " outside the environment: the name leaves around the proxy",
                capture=query.capture,
                packets=packets,
                flow_id=query.flow_id,
                count=query.count,
            )
        elif is_cloud_name(query.qname):
            cloud += query.count
            groups.add(
                ("cloud", query.qname, query.server),
                Severity.INFO,
                f"DNS query for the cloud name {query.qname} at {query.server} (inside the"
                " environment; the proxy resolves cloud names, the target need not)",
                capture=query.capture,
                packets=packets,
                flow_id=query.flow_id,
                count=query.count,
            )
    facts: dict[str, object] = {
        "dns_queries": total,
        "to_outside_resolvers": outside,
        "cloud_name_queries": cloud,
    }
    passed = f"{_queries(total)} by the target, none to a resolver outside the environment"
    if cloud:
        passed += f"; {cloud} for cloud names at on-prem resolvers (reported)"
    return conclude(
        "PX-DNS",
        view,
        groups.findings(),
        passed=passed,
        failed=f"{_queries(outside)} to resolvers outside the environment",
        facts=facts,
        payloads=True,
    )


def _queries(count: int) -> str:
    return f"{count} DNS {'query' if count == 1 else 'queries'}"
