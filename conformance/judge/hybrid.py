"""The hybrid judges from captures: HY-DEST, HY-TLS, HY-INGRESS, HY-DEACTIVATED (docs/hybrid.md).

External traffic is every flow the target opens to an address outside the environment and,
with a proxy, every tunnel it asks the proxy for. A flow is named by what the client claims
(TLS SNI, HTTP Host; through the proxy, the CONNECT host), and a claim must agree with the
address (decision 8, `name_map`): when the capture holds DNS answers for the claimed name,
the flow must go to one of their addresses, or it maps to nothing ("name/address mismatch").
A flow with no claim is named by a DNS answer for its address that the target received
earlier (still within the answer's TTL), and last by the profile's `cloud.hints`; a flow
nothing names is "unexplained" and never passes. Encrypted ClientHello (decision 9) hides the
real name behind a public one: such a flow is not named by its SNI. A QUIC flow (a UDP flow
whose ClientHello came in a QUIC Initial) maps only to a `/udp` endpoint, TCP only to TCP.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from conformance.decode.ldap import is_starttls_request
from conformance.decode.tls import TLS_VERSION_NAMES, is_weak_suite, suite_name, version_name
from conformance.judge import air_gapped
from conformance.judge.common import (
    FindingGroups,
    NameIndex,
    TargetView,
    address_of,
    combine,
    conclude,
    evidence_gaps,
    flow_finding,
    host_of,
    is_outside,
    plural,
    target_view,
)
from conformance.judge.name_map import Agreement, DnsNames, name_key, real_name_hidden
from conformance.judge.result import ControlResult, Finding, Severity
from conformance.names import matches
from conformance.observe.records import (
    Flow,
    HttpRequest,
    Observations,
    PayloadKind,
    TlsClientHello,
    TlsServerHello,
)
from conformance.profile_model import Profile

LDAP_PORT = 389
TLS_APPLICATION_DATA = b"\x17"  # record content type (RFC 8446 5.1)
TLS_1_3 = 0x0304  # QUIC carries TLS 1.3 and nothing older (RFC 9001 §4.2)
# Versions whose long-header packets are QUIC (RFC 9000 v1, RFC 9369 v2); IETF drafts are
# 0xff0000NN. A long header has its two top bits set (header form, fixed bit).
QUIC_VERSIONS = frozenset({0x00000001, 0x6B3343CF})
QUIC_DRAFT_PREFIX = 0xFF000000
QUIC_LONG_HEADER = 0xC0
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
_DECISION_8 = "decision 8: domain fronting, a name resolved elsewhere, or a hard-coded address"


@dataclass(frozen=True, slots=True)
class CloudFlow:
    """One external conversation: a direct flow, or a tunnel through the proxy."""

    flow: Flow
    port: int  # the destination port the target asked for (the CONNECT port via a proxy)
    name: str | None
    basis: str  # "sni", "host", "connect", "dns", "hint", "" (unexplained or mismatched)
    address: str  # what it reached: the responder, or the CONNECT authority
    tunnel: bool  # through the declared proxy
    transport: str = "tcp"  # what the endpoint must allow: the flow's ("udp" for QUIC)
    claim_only: bool = False  # decision 8: named by a claim the capture's DNS cannot check
    mismatch: str = ""  # decision 8: the claim disagrees with the address (why)
    public_name: str | None = None  # decision 9: ECH's public name; the real name is hidden
    ech: bool = False  # decision 9: the ClientHello's real name is (or may be) hidden
    quic: bool = False  # the ClientHello came in a QUIC Initial
    dns_names: tuple[str, ...] = ()  # basis "dns": every name of the answer's CNAME chain


class _Index:
    """Per-flow TLS and HTTP facts, and what the capture's DNS says (name_map)."""

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
        self.dns = DnsNames(obs, profile)


def _connect_authority(requests: Iterable[HttpRequest]) -> tuple[str, int] | None:
    for request in requests:
        if request.method.upper() == "CONNECT":
            host = host_of(request.target)
            port_text = request.target.rsplit(":", 1)[-1]
            port = int(port_text) if port_text.isdigit() else 443
            return host, port
    return None


def _host_claim(requests: Iterable[HttpRequest]) -> str | None:
    """The first name an HTTP Host header on the flow claims (not an address literal)."""
    for request in requests:
        if request.host:
            host = host_of(request.host)
            if host and address_of(host) is None:
                return host
    return None


def _claimed(base: CloudFlow, name: str, basis: str, dns: DnsNames, what: str) -> CloudFlow:
    """`base` named by a client's claim, checked against the capture's DNS (decision 8)."""
    agreement, answered = dns.agreement(name, base.address)
    if agreement is Agreement.MISMATCH:
        shown = ", ".join(sorted(answered)[:5]) + (" ..." if len(answered) > 5 else "")
        why = (
            f"{what} {name}, but the capture's DNS answers give {name} only {shown}, not "
            f"{base.address}"
        )
        return replace(base, name=None, basis="", mismatch=why)
    return replace(base, name=name, basis=basis, claim_only=agreement is Agreement.UNANSWERED)


def _by_dns_or_hint(
    base: CloudFlow, index: _Index, hints: dict[str, str], exclude: str | None
) -> CloudFlow:
    """`base` named by the target's own earlier DNS answer for its address, else a hint."""
    names = [
        n
        for n in index.dns.names_at(base.address, base.flow.first_time)
        if exclude is None or n != name_key(exclude)
    ]
    if names:
        return replace(base, name=names[0], basis="dns", dns_names=tuple(names))
    if base.address in hints:
        return replace(base, name=hints[base.address], basis="hint")
    return base


def _tunnel(
    flow: Flow, authority: tuple[str, int], index: _Index, hints: dict[str, str]
) -> CloudFlow:
    """A CONNECT tunnel: the proxy resolves a CONNECT name itself, so the name is where the
    tunnel goes; an SNI inside must name the same host (or, for an address literal, agree
    with it as a direct flow's SNI would)."""
    host, port = authority
    hello = index.client.get(flow.flow_id)
    hidden = real_name_hidden(hello)
    sni = hello.sni if hello is not None and hello.sni else None
    base = CloudFlow(
        flow, port, None, "", host, True, "tcp", ech=hidden, public_name=sni if hidden else None
    )
    if address_of(host) is None:
        if sni is not None and not hidden and name_key(sni) != name_key(host):
            why = f"SNI {sni} inside a tunnel to {host}: the proxy connects to {host}"
            return replace(base, mismatch=why)
        return replace(base, name=host, basis="connect")
    if sni is not None and not hidden:
        return _claimed(base, sni, "sni", index.dns, "SNI")
    return _by_dns_or_hint(base, index, hints, sni)


def _direct(flow: Flow, index: _Index, hints: dict[str, str]) -> CloudFlow:
    """A flow to an outside address, named by its claims, else its DNS answer or a hint."""
    hello = index.client.get(flow.flow_id)
    hidden = real_name_hidden(hello)
    sni = hello.sni if hello is not None and hello.sni else None
    quic = hello is not None and hello.quic_version is not None
    base = CloudFlow(
        flow,
        flow.responder_port,
        None,
        "",
        str(flow.responder),
        False,
        flow.transport,
        ech=hidden,
        public_name=sni if hidden else None,
        quic=quic,
    )
    if sni is not None and not hidden:
        return _claimed(base, sni, "sni", index.dns, "SNI")
    host = _host_claim(index.requests.get(flow.flow_id, ()))
    if host is not None:
        return _claimed(base, host, "host", index.dns, "HTTP Host")
    return _by_dns_or_hint(base, index, hints, sni)


def cloud_flows(view: TargetView, index: _Index) -> tuple[list[CloudFlow], list[Flow]]:
    """The target's external conversations, and its flows to the proxy that carry no CONNECT.

    A flow in which the target sent nothing and only an answer is in the capture (a request
    made before it began, `air_gapped.answer_only`) is not a conversation of the window.
    """
    profile = view.profile
    env = profile.environment
    proxy = profile.proxy
    hints = {str(h.address): h.name for h in profile.cloud.hints} if profile.cloud else {}
    found: list[CloudFlow] = []
    proxy_other: list[Flow] = []
    for flow in view.flows:
        if not view.initiated(flow) or air_gapped.answer_only(flow):
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
            found.append(_tunnel(flow, authority, index, hints))
            continue
        if is_outside(flow.responder, env):
            found.append(_direct(flow, index, hints))
    return found, proxy_other


def external_conversations(obs: Observations, profile: Profile) -> tuple[CloudFlow, ...]:
    """The target's external conversations, named as HY-DEST names them (`profile draft`)."""
    return tuple(cloud_flows(target_view(obs, profile), _Index(obs, profile))[0])


def _endpoint_allows(profile: Profile, name: str, port: int, transport: str) -> bool:
    if profile.cloud is None:
        return False
    return any(
        e.port == port and e.transport == transport and matches(e.pattern, name)
        for e in profile.cloud.endpoints
    )


def _allowed_name(cloud: CloudFlow, profile: Profile) -> str | None:
    names = cloud.dns_names or ((cloud.name,) if cloud.name else ())
    return next(
        (n for n in names if _endpoint_allows(profile, n, cloud.port, cloud.transport)), None
    )


def _other_transport_allowed(cloud: CloudFlow, profile: Profile) -> bool:
    other = "tcp" if cloud.transport == "udp" else "udp"
    names = cloud.dns_names or ((cloud.name,) if cloud.name else ())
    return any(_endpoint_allows(profile, n, cloud.port, other) for n in names)


def _endpoints_text(profile: Profile) -> str:
    if profile.cloud is None or not profile.cloud.endpoints:
        return "none"
    return ", ".join(str(e) for e in profile.cloud.endpoints)


def _endpoint_key(cloud: CloudFlow, name: str | None) -> str:
    suffix = "/udp" if cloud.transport == "udp" else ""
    return f"{name or cloud.address}:{cloud.port}{suffix}"


# --- HY-DEST -------------------------------------------------------------------------------


def _sni_conflict(cloud: CloudFlow, index: _Index) -> str:
    """A note when an SNI the capture's DNS cannot check names an allowed endpoint, but the
    target's own DNS answers gave the flow's address only to other names (decision 8 maps
    the flow by the claim; the report shows the conflict)."""
    if cloud.basis != "sni" or not cloud.claim_only or cloud.name is None:
        return ""
    others = index.dns.all_names_at(cloud.address, cloud.flow.first_time)
    if not others or name_key(cloud.name) in others:
        return ""
    return (
        f": SNI {cloud.name}, but the DNS answers the target received for {cloud.address} "
        f"name only {', '.join(sorted(others))}"
    )


def dest(obs: Observations, profile: Profile) -> ControlResult:
    """HY-DEST: every external flow maps to an allowed endpoint name, port and transport."""
    view = target_view(obs, profile)
    index = _Index(obs, profile)
    names = NameIndex(obs)
    flows, _ = cloud_flows(view, index)
    findings: list[Finding] = []
    notes = FindingGroups()
    allowed = unexplained = mismatched = 0
    reached: dict[str, int] = {}
    claimed_only: dict[str, int] = {}
    hidden: list[CloudFlow] = []
    for cloud in flows:
        if cloud.mismatch:
            mismatched += 1
            why = f": name/address mismatch: {cloud.mismatch} ({_DECISION_8})"
            findings.append(flow_finding(Severity.VIOLATION, cloud.flow, names, why))
            continue
        name = _allowed_name(cloud, profile)
        if name is not None:
            allowed += 1
            key = _endpoint_key(cloud, name)
            reached[key] = reached.get(key, 0) + 1
            _allowed_notes(cloud, name, index, names, findings, notes, claimed_only)
            continue
        if cloud.name is None and cloud.ech:
            public = cloud.public_name
            if public is not None and _endpoint_allows(
                profile, public, cloud.port, cloud.transport
            ):
                hidden.append(cloud)
                findings.append(
                    flow_finding(
                        Severity.WARNING,
                        cloud.flow,
                        names,
                        f": the real name is hidden by Encrypted ClientHello behind the public"
                        f" name {public}; nothing else names the flow (decision 9)",
                    )
                )
                continue
            why = (
                f"the real name is hidden by Encrypted ClientHello, its public name"
                f" {public or '(none)'} is not an allowed endpoint, and no earlier DNS answer"
                " or hint names the address (decision 9)"
            )
        elif cloud.name is None:
            unexplained += 1
            why = (
                "unexplained: no SNI, CONNECT host, HTTP Host, earlier DNS answer or hint names it"
            )
        elif cloud.transport in ("tcp", "udp") and _other_transport_allowed(cloud, profile):
            other = "TCP" if cloud.transport == "udp" else "QUIC (/udp)"
            what = "QUIC" if cloud.quic else cloud.transport.upper()
            why = (
                f"{cloud.name}:{cloud.port} is allowed for {other} only, not {what}"
                f" ({_endpoints_text(profile)})"
            )
        else:
            why = (
                f"{_endpoint_key(cloud, cloud.name)} is not an allowed endpoint"
                f" ({_endpoints_text(profile)})"
            )
        findings.append(flow_finding(Severity.VIOLATION, cloud.flow, names, f": {why}"))
    for flow in view.flows:
        if (
            view.initiated(flow)
            and air_gapped.answer_only(flow)
            and is_outside(flow.responder, profile.environment)
        ):
            findings.append(flow_finding(Severity.WARNING, flow, names, air_gapped.ANSWER_ONLY))
    findings += notes.findings()
    facts: dict[str, object] = {
        "external_flows": len(flows),
        "allowed": allowed,
        "endpoints_reached": reached,
        "unexplained": unexplained,
        "name_address_mismatches": mismatched,
        "named_by_claim_alone": claimed_only,
        "real_name_hidden": len([c for c in flows if c.ech]),
    }
    gaps: list[str] = []
    if not flows and view.sent:
        gaps.append("the target opened no external connection in this capture: nothing shows")
    if hidden:
        gaps.append(
            f"{plural(len(hidden), 'flow')} whose real name Encrypted ClientHello hides behind"
            " an allowed public name: it cannot pass on that name alone (decision 9)"
        )
    violations = len(flows) - allowed - len(hidden)
    passed = f"{plural(len(flows), 'external flow')}, all to allowed endpoints: " + ", ".join(
        f"{k} ({v})" for k, v in sorted(reached.items())
    )
    return conclude(
        "HY-DEST",
        view,
        findings,
        passed=passed,
        failed=f"{plural(violations, 'external flow')} to no allowed endpoint",
        facts=facts,
        gaps=gaps,
        payloads=True,  # a name in a payload nobody could read may be the one that maps a flow
    )


def _allowed_notes(
    cloud: CloudFlow,
    name: str,
    index: _Index,
    names: NameIndex,
    findings: list[Finding],
    notes: FindingGroups,
    claimed_only: dict[str, int],
) -> None:
    """What the report says about an allowed flow: a claim DNS cannot check, a conflict with
    the target's own answers, a real name hidden by ECH."""
    conflict = _sni_conflict(cloud, index)
    if conflict:
        findings.append(flow_finding(Severity.WARNING, cloud.flow, names, conflict))
    flow = cloud.flow
    if cloud.claim_only:
        what = {"sni": "SNI", "host": "HTTP Host"}.get(cloud.basis, cloud.basis)
        claimed_only[name] = claimed_only.get(name, 0) + 1
        notes.add(
            ("claim", name, cloud.address),
            Severity.INFO,
            f"{cloud.address}:{cloud.port} named {name} by its {what} alone: the capture holds"
            f" no DNS answer for {name} to check it against (decision 8)",
            capture=flow.capture,
            packets=flow.sample_packets,
            flow_id=flow.flow_id,
            unit="flow",
        )
    if cloud.ech:
        notes.add(
            ("ech", name, cloud.address),
            Severity.INFO,
            f"{cloud.address}:{cloud.port}: the real name is hidden by Encrypted ClientHello"
            f" (public name {cloud.public_name or '(none)'}); named {name} by its"
            f" {'CONNECT host' if cloud.basis == 'connect' else cloud.basis} (decision 9)",
            capture=flow.capture,
            packets=flow.sample_packets,
            flow_id=flow.flow_id,
            unit="flow",
        )


def is_quic_long_header(head: bytes) -> bool:
    """Whether a UDP payload starts like a QUIC long-header packet of a known version
    (RFC 8999 §5.1: header form and fixed bit set, then the 32-bit version)."""
    if len(head) < 5 or head[0] & QUIC_LONG_HEADER != QUIC_LONG_HEADER:
        return False
    version = int.from_bytes(head[1:5], "big")
    return version in QUIC_VERSIONS or version & 0xFFFFFF00 == QUIC_DRAFT_PREFIX


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
    complete = not evidence_gaps(obs, payloads=True, profile=profile)
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
    unreadable_quic: list[CloudFlow] = []
    for cloud in flows:
        flow = cloud.flow
        hello = index.client.get(flow.flow_id)
        quic = hello is not None and hello.quic_version is not None
        # QUIC is TLS 1.3 from its first packet (RFC 9001): its Initial carried the hello.
        first = PayloadKind.TLS if cloud.tunnel or quic else flow.payload_out
        if hello is None and flow.transport == "udp" and is_quic_long_header(flow.payload_head_out):
            # QUIC whose Initial the observers could not read (decision 11): protected, but
            # neither its version nor its name is known.
            unreadable_quic.append(cloud)
            continue
        if cloud.tunnel and hello is None:
            # No ClientHello after the CONNECT: the proxy may have refused the tunnel, or
            # what went through it was not seen. Neither proves TLS nor plaintext (PX-CONNECT
            # reports the tunnel); the flow stays open below, so HY-TLS cannot pass on it.
            unknown_tunnels.append(cloud)
            continue
        if first is PayloadKind.NONE and hello is None:
            continue  # nothing sent: no data to protect
        checked += 1
        key = _endpoint_key(cloud, cloud.name)
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
        if server is None and quic:
            # QUIC negotiates TLS 1.3 and nothing older (RFC 9001 §4.2), whose suites are
            # all AEAD: the version is known without the ServerHello.
            shown[key] = max(shown.get(key, 0), TLS_1_3)
            endpoint_facts[key] = {
                "version": f"{version_name(TLS_1_3)} (QUIC)",
                "suite": "not in the capture (QUIC Handshake packets are encrypted)",
                "sni": hello.sni or "" if hello else "",
            }
            continue
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
            "version": version_name(server.version) + (" (QUIC)" if quic else ""),
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
    unresolved = [c for c in unknown_version if _endpoint_key(c, c.name) not in shown]
    if unresolved:
        gaps.append(
            f"{plural(len(unresolved), 'TLS flow')} without a ServerHello in the capture and no "
            "other flow to the same endpoint shows the version (decision 1)"
        )
    if unreadable_quic:
        gaps.append(
            f"{plural(len(unreadable_quic), 'QUIC flow')} whose Initial packets could not be"
            " read: its TLS version and name are not known (decision 11)"
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
    return combine(
        "HY-DEACTIVATED", parts, "no Cloud-Connected Service activated and none attempted; "
    )
