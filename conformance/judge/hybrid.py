"""The hybrid judges from captures: HY-DEST, HY-TLS, HY-INGRESS, HY-DEACTIVATED (docs/hybrid.md).

External traffic is every flow the target opens to an address outside the environment and,
with a proxy, every tunnel it asks the proxy for. A flow's name comes, in this order, from its
TLS SNI, the CONNECT target it asked the proxy for, a DNS answer for its address that the
target received earlier (from the resolver it asked, still within the answer's TTL), and last
the profile's `cloud.hints`; a flow that maps to nothing is a violation ("unmapped").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from conformance.decode.ldap import is_starttls_request
from conformance.decode.tls import TLS_VERSION_NAMES, is_weak_suite, suite_name, version_name
from conformance.judge import air_gapped
from conformance.judge.common import (
    NameIndex,
    TargetView,
    address_of,
    conclude,
    evidence_gaps,
    flow_finding,
    host_of,
    is_outside,
    plural,
    target_view,
)
from conformance.judge.model import ControlResult, Finding, Severity
from conformance.names import matches
from conformance.observe.model import (
    Flow,
    HttpRequest,
    Observations,
    PayloadKind,
    TlsClientHello,
    TlsServerHello,
)
from conformance.profile_model import Profile
from conformance.verdict import Verdict, worst

# A DNS answer is still usable this long after its TTL ran out (clock skew, resolver caching).
TTL_SLACK_SECONDS = 5.0
LDAP_PORT = 389
TLS_APPLICATION_DATA = b"\x17"  # record content type (RFC 8446 5.1)
_VERSION_BY_TEXT = {"1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303, "1.3": 0x0304}
_PLAINTEXT = {
    PayloadKind.HTTP: "plaintext HTTP",
    PayloadKind.HTTP2_PREFACE: "plaintext HTTP/2 (gRPC) preface",
    PayloadKind.LDAP: "plaintext LDAP",
    PayloadKind.DNS: "plaintext DNS",
    PayloadKind.SSH: "SSH",
    PayloadKind.SIP: "plaintext SIP",
    PayloadKind.OTHER: "non-TLS bytes",
}


@dataclass(frozen=True, slots=True)
class CloudFlow:
    """One external conversation: a direct flow, or a tunnel through the proxy."""

    flow: Flow
    port: int  # the destination port the target asked for (the CONNECT port via a proxy)
    name: str | None
    basis: str  # "sni", "connect", "dns", "hint", "" (unmapped)
    address: str  # what it reached: the responder, or the CONNECT authority
    tunnel: bool  # through the declared proxy


class _Index:
    """Per-flow TLS and HTTP facts, and the target's DNS answers by address."""

    def __init__(self, obs: Observations, profile: Profile) -> None:
        self.client: dict[int, TlsClientHello] = {}
        self.server: dict[int, TlsServerHello] = {}
        self.requests: dict[int, list[HttpRequest]] = {}
        for hello in obs.client_hellos:
            self.client.setdefault(hello.flow_id, hello)
        for shello in obs.server_hellos:
            self.server.setdefault(shello.flow_id, shello)
        for request in obs.http_requests:
            self.requests.setdefault(request.flow_id, []).append(request)
        # address -> [(answer time, expiry, name)] from answers the target received
        self.answers: dict[str, list[tuple[float, float, str]]] = {}
        for query in obs.dns:
            if not profile.is_target(query.client):
                continue
            for answer in query.answers:
                address = address_of(answer.value)
                if address is not None:
                    self.answers.setdefault(str(address), []).append(
                        (query.time, query.time + answer.ttl, query.qname)
                    )

    def dns_name(self, address: str, at: float) -> tuple[str | None, str]:
        """The name a DNS answer gave `address` before `at` (within TTL), and how."""
        usable = [
            (seen, name)
            for seen, expiry, name in self.answers.get(address, ())
            if seen <= at <= expiry + TTL_SLACK_SECONDS
        ]
        if usable:
            return max(usable)[1], "dns"
        return None, ""

    def dns_names(self, address: str, at: float) -> set[str]:
        """Every name a DNS answer usable at `at` gave `address`."""
        return {
            name
            for seen, expiry, name in self.answers.get(address, ())
            if seen <= at <= expiry + TTL_SLACK_SECONDS
        }


def _connect_authority(requests: Iterable[HttpRequest]) -> tuple[str, int] | None:
    for request in requests:
        if request.method.upper() == "CONNECT":
            host = host_of(request.target)
            port_text = request.target.rsplit(":", 1)[-1]
            port = int(port_text) if port_text.isdigit() else 443
            return host, port
    return None


def cloud_flows(view: TargetView, index: _Index) -> tuple[list[CloudFlow], list[Flow]]:
    """The target's external conversations, and its flows to the proxy that carry no CONNECT."""
    profile = view.profile
    env = profile.environment
    proxy = profile.proxy
    hints = {str(h.address): h.name for h in profile.cloud.hints} if profile.cloud else {}
    found: list[CloudFlow] = []
    proxy_other: list[Flow] = []
    for flow in view.flows:
        if not view.initiated(flow):
            continue
        to_proxy = (
            proxy is not None
            and flow.responder == proxy.address
            and flow.responder_port == proxy.port
        )
        if to_proxy:
            authority = _connect_authority(index.requests.get(flow.flow_id, ()))
            if authority is None:
                if index.requests.get(flow.flow_id):
                    proxy_other.append(flow)
                continue
            host, port = authority
            hello = index.client.get(flow.flow_id)
            name: str | None = host if address_of(host) is None else None
            basis = "connect" if name else ""
            if hello is not None and hello.sni:
                name, basis = hello.sni, "sni"
            found.append(CloudFlow(flow, port, name, basis, host, True))
            continue
        if not is_outside(flow.responder, env):
            continue
        address = str(flow.responder)
        hello = index.client.get(flow.flow_id)
        if hello is not None and hello.sni:
            name, basis = hello.sni, "sni"
        else:
            name, basis = index.dns_name(address, flow.first_time)
            if name is None and address in hints:
                name, basis = hints[address], "hint"
        found.append(CloudFlow(flow, flow.responder_port, name, basis, address, False))
    return found, proxy_other


def _allowed(cloud: CloudFlow, profile: Profile) -> bool:
    if profile.cloud is None or cloud.name is None or cloud.flow.transport != "tcp":
        return False
    return any(
        e.port == cloud.port and matches(e.pattern, cloud.name) for e in profile.cloud.endpoints
    )


def _endpoints_text(profile: Profile) -> str:
    if profile.cloud is None or not profile.cloud.endpoints:
        return "none"
    return ", ".join(str(e) for e in profile.cloud.endpoints)


def _describe(cloud: CloudFlow) -> str:
    via = " via the proxy" if cloud.tunnel else ""
    name = f"{cloud.name} ({cloud.basis})" if cloud.name else "unmapped"
    return f"{cloud.address}:{cloud.port}{via} -> {name}"


# --- HY-DEST -------------------------------------------------------------------------------


def _sni_conflict(cloud: CloudFlow, index: _Index) -> str:
    """A note when the SNI names an allowed endpoint but the target's own DNS answers gave
    the flow's address only to other names (an SNI is the client's claim; the verdict still
    follows it, by the mapping order, and the report shows the conflict)."""
    if cloud.basis != "sni" or cloud.tunnel or cloud.name is None:
        return ""
    others = index.dns_names(cloud.address, cloud.flow.first_time)
    if not others or cloud.name.lower() in {n.lower() for n in others}:
        return ""
    return (
        f": SNI {cloud.name}, but the DNS answers the target received for {cloud.address} "
        f"name only {', '.join(sorted(others))}"
    )


def dest(obs: Observations, profile: Profile) -> ControlResult:
    """HY-DEST: every external flow maps to an allowed endpoint name and port."""
    view = target_view(obs, profile)
    index = _Index(obs, profile)
    names = NameIndex(obs)
    flows, _ = cloud_flows(view, index)
    findings: list[Finding] = []
    allowed = 0
    reached: dict[str, int] = {}
    for cloud in flows:
        if _allowed(cloud, profile):
            allowed += 1
            key = f"{cloud.name}:{cloud.port}"
            reached[key] = reached.get(key, 0) + 1
            conflict = _sni_conflict(cloud, index)
            if conflict:
                findings.append(flow_finding(Severity.WARNING, cloud.flow, names, conflict))
            continue
        if cloud.name is None:
            why = "unmapped: no SNI, CONNECT name, earlier DNS answer or hint names it"
        elif cloud.flow.transport != "tcp":
            why = f"{cloud.name}: {cloud.flow.transport} is not an allowed transport"
        else:
            why = (
                f"{cloud.name}:{cloud.port} is not an allowed endpoint ({_endpoints_text(profile)})"
            )
        findings.append(flow_finding(Severity.VIOLATION, cloud.flow, names, f": {why}"))
    facts: dict[str, object] = {
        "external_flows": len(flows),
        "allowed": allowed,
        "endpoints_reached": reached,
    }
    gaps: list[str] = []
    if not flows and view.sent:
        gaps.append("the target opened no external connection in this capture: nothing shows")
    passed = f"{plural(len(flows), 'external flow')}, all to allowed endpoints: " + ", ".join(
        f"{k} ({v})" for k, v in sorted(reached.items())
    )
    return conclude(
        "HY-DEST",
        view,
        findings,
        passed=passed,
        failed=f"{plural(len(findings), 'external flow')} to no allowed endpoint",
        facts=facts,
        gaps=gaps,
    )


# --- HY-TLS --------------------------------------------------------------------------------


def _min_version(profile: Profile) -> int:
    text = profile.cloud.min_tls if profile.cloud is not None else "1.2"
    return _VERSION_BY_TEXT.get(text, 0x0303)


def _starttls_first(flow: Flow) -> bool:
    """LDAP on 389 whose first message is the StartTLS request: no bind before the upgrade."""
    return flow.responder_port == LDAP_PORT and is_starttls_request(flow.payload_head_out)


def _records_without_handshake(flow: Flow) -> bool:
    """The connection's opening is in the capture, yet its first payload is an application-data
    record: no real TLS stack sends one before a handshake (decision 1 covers flows that began
    before the capture, whose handshake is simply not in it)."""
    return flow.handshake_seen and flow.payload_head_out[:1] == TLS_APPLICATION_DATA


def tls(obs: Observations, profile: Profile) -> ControlResult:
    """HY-TLS: every external flow is TLS from its first byte, sound version and suite, SNI."""
    view = target_view(obs, profile)
    index = _Index(obs, profile)
    names = NameIndex(obs)
    flows, proxy_other = cloud_flows(view, index)
    minimum = _min_version(profile)
    complete = not evidence_gaps(obs, payloads=True)
    findings: list[Finding] = []
    endpoint_facts: dict[str, dict[str, str]] = {}
    shown: dict[str, int] = {}  # endpoint -> a version another flow showed
    unknown_version: list[CloudFlow] = []
    unknown_tunnels: list[CloudFlow] = []
    checked = 0
    for flow in proxy_other:
        for request in index.requests.get(flow.flow_id, ()):
            findings.append(
                flow_finding(
                    Severity.VIOLATION,
                    flow,
                    names,
                    f": plaintext {request.method} {request.target} through the proxy",
                )
            )
    for cloud in flows:
        flow = cloud.flow
        first = PayloadKind.TLS if cloud.tunnel else flow.payload_out
        hello = index.client.get(flow.flow_id)
        if cloud.tunnel and hello is None:
            # No ClientHello after the CONNECT: the proxy may have refused the tunnel, or
            # what went through it was not seen. Neither proves TLS nor plaintext (PX-CONNECT
            # reports the tunnel); the flow stays open below, so HY-TLS cannot pass on it.
            unknown_tunnels.append(cloud)
            continue
        if first is PayloadKind.NONE and hello is None:
            continue  # nothing sent: no data to protect
        checked += 1
        key = f"{cloud.name or cloud.address}:{cloud.port}"
        if first is not PayloadKind.TLS and not (
            first is PayloadKind.LDAP and _starttls_first(flow)
        ):
            head = flow.payload_head_out[:40].decode("ascii", "backslashreplace")
            findings.append(
                flow_finding(
                    Severity.VIOLATION,
                    flow,
                    names,
                    f": {_PLAINTEXT.get(first, 'not TLS')} to {key} (first bytes {head!r})",
                )
            )
            continue
        if hello is None and not cloud.tunnel and _records_without_handshake(flow) and complete:
            # Only on complete evidence: a dropped ClientHello would look the same.
            findings.append(
                flow_finding(
                    Severity.VIOLATION,
                    flow,
                    names,
                    f": TLS application-data records to {key} with no handshake on a connection "
                    "opened in the capture: not a TLS session",
                )
            )
            continue
        if hello is not None and not hello.sni:
            findings.append(flow_finding(Severity.VIOLATION, flow, names, f": no SNI to {key}"))
        server = index.server.get(flow.flow_id)
        if server is None:
            offered = hello.versions if hello is not None else ()
            if offered and max(offered) < minimum:
                # No ServerHello, but whatever the server chose would be below the minimum.
                findings.append(
                    flow_finding(
                        Severity.VIOLATION,
                        flow,
                        names,
                        f": {key} offered at most {version_name(max(offered))}, below the "
                        f"minimum {TLS_VERSION_NAMES.get(minimum, hex(minimum))}",
                    )
                )
                continue
            unknown_version.append(cloud)
            continue
        shown[key] = max(shown.get(key, 0), server.version)
        weak = is_weak_suite(server.cipher_suite)
        endpoint_facts[key] = {
            "version": version_name(server.version),
            "suite": suite_name(server.cipher_suite),
            "sni": hello.sni or "" if hello else "",
        }
        if server.version < minimum:
            findings.append(
                flow_finding(
                    Severity.VIOLATION,
                    flow,
                    names,
                    f": {key} negotiated {version_name(server.version)}, below the minimum "
                    f"{TLS_VERSION_NAMES.get(minimum, hex(minimum))}",
                )
            )
        if weak:
            findings.append(
                flow_finding(
                    Severity.VIOLATION,
                    flow,
                    names,
                    f": {key} negotiated {suite_name(server.cipher_suite)} ({weak})",
                )
            )
    gaps: list[str] = []
    unresolved = [c for c in unknown_version if f"{c.name or c.address}:{c.port}" not in shown]
    if unresolved:
        gaps.append(
            f"{plural(len(unresolved), 'TLS flow')} without a ServerHello in the capture and no "
            "other flow to the same endpoint shows the version (decision 1)"
        )
    if unknown_tunnels:
        gaps.append(
            f"{plural(len(unknown_tunnels), 'CONNECT tunnel')} with no ClientHello seen after "
            "the CONNECT (refused by the proxy, or its content not in the capture)"
        )
    if checked == 0 and view.sent:
        gaps.append("no external flow carried data in this capture: nothing shows")
    facts: dict[str, object] = {"external_flows": len(flows), "endpoints": endpoint_facts}
    passed = f"{plural(checked, 'external flow')} with data, all TLS: " + "; ".join(
        f"{k} {v['version']} {v['suite']}" for k, v in sorted(endpoint_facts.items())
    )
    return conclude(
        "HY-TLS",
        view,
        findings,
        passed=passed,
        failed=f"{plural(len(findings), 'problem')} with the protection of cloud traffic",
        facts=facts,
        gaps=gaps,
        payloads=True,
    )


# --- HY-INGRESS, HY-DEACTIVATED ------------------------------------------------------------


def ingress(obs: Observations, profile: Profile) -> ControlResult:
    """HY-INGRESS: as AG-INGRESS (CT 2: the cloud connection is outbound only)."""
    return air_gapped.ingress(obs, profile, "HY-INGRESS")


def deactivated(obs: Observations, profile: Profile) -> ControlResult:
    """HY-DEACTIVATED: no service activated, so judged exactly as AG-EGRESS + AG-CLOUD-NAMES."""
    parts = (air_gapped.egress(obs, profile), air_gapped.cloud_names(obs, profile))
    verdict = worst(p.verdict for p in parts)
    reason = "; ".join(f"as {p.control_id}: {p.verdict.value}: {p.reason}" for p in parts)
    findings = tuple(f for p in parts for f in p.findings)
    facts: dict[str, object] = {p.control_id: p.facts for p in parts}
    if verdict is Verdict.PASS:
        reason = "no Cloud-Connected Service activated and none attempted; " + reason
    return ControlResult("HY-DEACTIVATED", verdict, reason, findings, facts)
