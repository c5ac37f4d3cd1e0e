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

import functools
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Generic, Protocol, TypeVar

from conformance.judge import air_gapped
from conformance.judge.common import (
    MAX_PARSED_TEXTS,
    FindingGroups,
    Findings,
    NameIndex,
    TargetView,
    address_of,
    address_text,
    combine,
    conclude,
    evidence_gaps,
    host_of,
    name_index,
    once,
    plural,
    target_view,
)
from conformance.judge.name_map import (
    Agreement,
    DnsNames,
    dns_names,
    name_key,
    real_name_hidden,
)
from conformance.judge.result import ControlResult, Severity
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
from conformance.tls_registry import TLS_VERSION_NAMES, is_weak_suite, suite_name, version_name

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
_CLAIM_TEXT = {"sni": "SNI", "host": "HTTP Host"}  # a claim's basis, as findings name it
_OPAQUE_PROXY_FLOW = (
    ": to the proxy, with bytes but no readable HTTP request (no CONNECT names where it goes)"
)


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


class _OfFlow(Protocol):
    @property
    def flow_id(self) -> int: ...


_R = TypeVar("_R", bound=_OfFlow)


_FLOW_ID = attrgetter("flow_id")


class FirstOfFlow(Generic[_R]):
    """The first of `records` (in their order) of each flow id, `get(flow_id)`.

    Flow ids are the 1-based rows of `obs.flows`, so an array indexed by them holds the
    answer: the record's index in `records`, which makes it when asked (an observation's
    hellos are packed out of memory, records.record_store: holding the first of each flow
    would make them all again, 8 MiB of the 2M web mix's judging, #17). An id outside the
    flows (a record of a flow not observed) is kept in a dict beside it.
    """

    __slots__ = ("_by_id", "_others", "_records")

    def __init__(self, records: Sequence[_R], flows: int) -> None:
        by_id = array("l", bytes(8 * (flows + 1)))  # the record's index + 1; 0: none
        others: dict[int, _R] = {}
        for index, flow_id in enumerate(map(_FLOW_ID, records)):
            if 0 < flow_id <= flows:
                if not by_id[flow_id]:
                    by_id[flow_id] = index + 1
            elif flow_id not in others:
                others[flow_id] = records[index]
        self._by_id = by_id
        self._others = others
        self._records = records

    def get(self, flow_id: int) -> _R | None:
        """The flow's first record, None if it has none."""
        if 0 < flow_id < len(self._by_id):
            index = self._by_id[flow_id]
            return self._records[index - 1] if index else None
        return self._others.get(flow_id)


class _Index:
    """Per-flow TLS and HTTP facts, and what the capture's DNS says (name_map): one per run."""

    def __init__(self, obs: Observations, profile: Profile) -> None:
        flows = len(obs.flows)
        self.client = FirstOfFlow[TlsClientHello](obs.client_hellos, flows)
        self.server = FirstOfFlow[TlsServerHello](obs.server_hellos, flows)
        # A flow's one request as itself, more in a list: a list per flow took 0.6 of the
        # 2M web mix's 1.1 MiB here (#17).
        self._requests: dict[int, HttpRequest | list[HttpRequest]] = {}
        requests = self._requests
        for request in obs.http_requests:
            flow_id = request.flow_id
            known = requests.get(flow_id)
            if known is None:
                requests[flow_id] = request
            elif isinstance(known, list):
                known.append(request)
            else:
                requests[flow_id] = [known, request]
        self.dns = dns_names(obs, profile)
        # How each claim names a conversation (`_claimed`, `_connected`), remembered by the
        # claim, its basis, and the address or CONNECT host it is checked against.
        self.namings: dict[tuple[str, str, str], _Naming] = {}

    def requests(self, flow_id: int) -> tuple[HttpRequest, ...]:
        """The flow's HTTP requests, in packet order."""
        known = self._requests.get(flow_id)
        if known is None:
            return ()
        return tuple(known) if isinstance(known, list) else (known,)


def _connect_authority(requests: Iterable[HttpRequest]) -> tuple[str, int] | None:
    for request in requests:
        if request.method.upper() == "CONNECT":
            return _authority(request.target)
    return None


@functools.lru_cache(maxsize=MAX_PARSED_TEXTS)
def _authority(target: str) -> tuple[str, int]:
    """A CONNECT target's host and port (443 when it gives none)."""
    port_text = target.rsplit(":", 1)[-1]
    return host_of(target), int(port_text) if port_text.isdigit() else 443


def _host_claim(requests: Iterable[HttpRequest]) -> str | None:
    """The first name an HTTP Host header on the flow claims (not an address literal)."""
    for request in requests:
        if request.host:
            host = host_of(request.host)
            if host and address_of(host) is None:
                return host
    return None


@dataclass(frozen=True, slots=True)
class _Naming:
    """How a conversation is named (the `CloudFlow` fields of the same names)."""

    name: str | None = None
    basis: str = ""
    claim_only: bool = False
    mismatch: str = ""
    dns_names: tuple[str, ...] = ()


_UNNAMED = _Naming()


def _claimed(name: str, basis: str, address: str, index: _Index) -> _Naming:
    """A conversation with `address` named by a client's claim (`basis` "sni" or "host"),
    checked against the capture's DNS (decision 8); remembered, as thousands of flows repeat
    the same few claims to the same few addresses."""
    key = (name, basis, address)
    naming = index.namings.get(key)
    if naming is None:
        naming = index.namings[key] = _checked_claim(name, basis, address, index.dns)
    return naming


def _checked_claim(name: str, basis: str, address: str, dns: DnsNames) -> _Naming:
    what = _CLAIM_TEXT[basis]
    agreement, answered = dns.agreement(name, address)
    if agreement is Agreement.MISMATCH:
        shown = ", ".join(sorted(answered)[:5]) + (" ..." if len(answered) > 5 else "")
        why = (
            f"{what} {name}, but the capture's DNS answers give {name} only {shown}, not {address}"
        )
        return _Naming(mismatch=why)
    return _Naming(name, basis, claim_only=agreement is Agreement.UNANSWERED)


def _by_dns_or_hint(
    address: str, flow: Flow, index: _Index, hints: dict[str, str], exclude: str | None
) -> _Naming:
    """`flow` to `address` named by the target's own earlier DNS answer for it, else a hint."""
    names = [
        n
        for n in index.dns.names_at(address, flow.first_time)
        if exclude is None or n != name_key(exclude)
    ]
    if names:
        return _Naming(names[0], "dns", dns_names=tuple(names))
    if address in hints:
        return _Naming(hints[address], "hint")
    return _UNNAMED


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
    if address_of(host) is None:
        naming = _connected(host, sni if sni is not None and not hidden else "", index)
    elif sni is not None and not hidden:
        naming = _claimed(sni, "sni", host, index)
    else:
        naming = _by_dns_or_hint(host, flow, index, hints, sni)
    return _conversation(flow, port, host, naming, tunnel=True, hello=hello)


def _connected(host: str, sni: str, index: _Index) -> _Naming:
    """A tunnel to the name `host`, which the proxy resolves: named so, unless the SNI inside
    (`sni`; "" when there is none or ECH hides it) names another host. Remembered."""
    key = (sni, "connect", host)
    naming = index.namings.get(key)
    if naming is None:
        if sni and name_key(sni) != name_key(host):
            why = f"SNI {sni} inside a tunnel to {host}: the proxy connects to {host}"
            naming = _Naming(mismatch=why)
        else:
            naming = _Naming(host, "connect")
        index.namings[key] = naming
    return naming


def _direct(flow: Flow, index: _Index, hints: dict[str, str]) -> CloudFlow:
    """A flow to an outside address, named by its claims, else its DNS answer or a hint."""
    hello = index.client.get(flow.flow_id)
    sni = hello.sni if hello is not None and hello.sni else None
    address = address_text(flow.responder)
    if sni is not None and not real_name_hidden(hello):
        naming = _claimed(sni, "sni", address, index)
    elif (host := _host_claim(index.requests(flow.flow_id))) is not None:
        naming = _claimed(host, "host", address, index)
    else:
        naming = _by_dns_or_hint(address, flow, index, hints, sni)
    return _conversation(flow, flow.responder_port, address, naming, tunnel=False, hello=hello)


def _conversation(
    flow: Flow,
    port: int,
    address: str,
    naming: _Naming,
    *,
    tunnel: bool,
    hello: TlsClientHello | None,
) -> CloudFlow:
    """`flow` as a conversation with `address`:`port`, named by `naming`, its ClientHello
    `hello` telling whether ECH hides the real name (decision 9) and whether it is QUIC."""
    hidden = real_name_hidden(hello)
    sni = hello.sni if hello is not None and hello.sni else None
    return CloudFlow(
        flow,
        port,
        naming.name,
        naming.basis,
        address,
        tunnel,
        "tcp" if tunnel else flow.transport,
        claim_only=naming.claim_only,
        mismatch=naming.mismatch,
        public_name=sni if hidden else None,
        ech=hidden,
        quic=not tunnel and hello is not None and hello.quic_version is not None,
        dns_names=naming.dns_names,
    )


@dataclass(frozen=True, slots=True)
class _External:
    """What HY-DEST and HY-TLS both judge, derived once per run (`common.once`)."""

    view: TargetView
    index: _Index
    flows: tuple[CloudFlow, ...]  # the target's external conversations (`cloud_flows`)
    proxy_other: tuple[Flow, ...]  # its flows to the proxy that carry requests but no CONNECT
    answers: tuple[Flow, ...]  # its flows to outside addresses that hold only an answer
    proxy_opaque: tuple[Flow, ...] = ()  # its flows to the proxy with bytes but no request


def _external(obs: Observations, profile: Profile) -> _External:
    view = target_view(obs, profile)
    index = _Index(obs, profile)
    found = cloud_flows(view, index)
    return _External(view, index, *found, proxy_opaque=_opaque_proxy_flows(view, index))


def _opaque_proxy_flows(view: TargetView, index: _Index) -> tuple[Flow, ...]:
    """The target's flows to the declared proxy that carried bytes but no HTTP request the
    observers read (SOCKS, TLS straight to the proxy port, a damaged request): where the
    proxy took them is not known, so no external flow of the window can be shown allowed."""
    proxy = view.profile.proxy
    if proxy is None:
        return ()
    return tuple(
        flow
        for flow in view.outgoing
        if flow.responder == proxy.address
        and flow.responder_port == proxy.port
        and flow.first_payload_packet is not None
        and not index.requests(flow.flow_id)
    )


def cloud_flows(
    view: TargetView, index: _Index
) -> tuple[tuple[CloudFlow, ...], tuple[Flow, ...], tuple[Flow, ...]]:
    """The target's external conversations, its flows to the proxy that carry no CONNECT, and
    its flows to outside addresses in which only an answer is in the capture.

    A flow in which the target sent nothing and only an answer is in the capture (a request
    made before it began, `air_gapped.answer_only`) is not a conversation of the window.
    """
    profile = view.profile
    proxy = profile.proxy
    hints = {str(h.address): h.name for h in profile.cloud.hints} if profile.cloud else {}
    found: list[CloudFlow] = []
    proxy_other: list[Flow] = []
    answers: list[Flow] = []
    answer_only, outside = air_gapped.answer_only, view.outside
    for flow in view.outgoing:
        if answer_only(flow):
            if outside(flow.responder):
                answers.append(flow)
            continue
        to_proxy = (
            proxy is not None
            and flow.responder_port == proxy.port
            and flow.responder == proxy.address
        )
        if to_proxy:
            authority = _connect_authority(index.requests(flow.flow_id))
            if authority is None:
                if index.requests(flow.flow_id):
                    proxy_other.append(flow)
                continue
            found.append(_tunnel(flow, authority, index, hints))
            continue
        if outside(flow.responder):
            found.append(_direct(flow, index, hints))
    return tuple(found), tuple(proxy_other), tuple(answers)


def external_conversations(obs: Observations, profile: Profile) -> tuple[CloudFlow, ...]:
    """The target's external conversations, named as HY-DEST names them (`profile draft`)."""
    return once(obs, profile, _external).flows


def _endpoint_allows(profile: Profile, name: str, port: int, transport: str) -> bool:
    if profile.cloud is None:
        return False
    return any(
        e.port == port and e.transport == transport and matches(e.pattern, name)
        for e in profile.cloud.endpoints
    )


def _allowed_name(
    cloud: CloudFlow, profile: Profile, known: dict[tuple[tuple[str, ...], int, str], str | None]
) -> str | None:
    """The first of the conversation's names an endpoint allows (on its port and transport),
    remembered in `known`: thousands of conversations repeat the same few."""
    names = cloud.dns_names or ((cloud.name,) if cloud.name else ())
    key = (names, cloud.port, cloud.transport)
    if key not in known:
        known[key] = next(
            (n for n in names if _endpoint_allows(profile, n, cloud.port, cloud.transport)), None
        )
    return known[key]


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
    external = once(obs, profile, _external)
    view, index, flows = external.view, external.index, external.flows
    names = name_index(obs, profile)
    findings = Findings()
    notes = FindingGroups()
    allowed = unexplained = mismatched = 0
    reached: dict[str, int] = {}
    claimed_only: dict[str, int] = {}
    hidden: list[CloudFlow] = []
    allowed_names: dict[tuple[tuple[str, ...], int, str], str | None] = {}
    for cloud in flows:
        if cloud.mismatch:
            mismatched += 1
            why = f": name/address mismatch: {cloud.mismatch} ({_DECISION_8})"
            findings.flow(Severity.VIOLATION, cloud.flow, names, why)
            continue
        name = _allowed_name(cloud, profile, allowed_names)
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
                findings.flow(
                    Severity.WARNING,
                    cloud.flow,
                    names,
                    f": the real name is hidden by Encrypted ClientHello behind the public"
                    f" name {public}; nothing else names the flow (decision 9)",
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
        findings.flow(Severity.VIOLATION, cloud.flow, names, f": {why}")
    for flow in external.answers:
        findings.flow(Severity.WARNING, flow, names, air_gapped.ANSWER_ONLY)
    unasked = air_gapped.unasked_outside(view)
    for flow in unasked:
        findings.flow(Severity.WARNING, flow, names, air_gapped.ANSWERS_NOTHING)
    for flow in external.proxy_opaque:
        findings.flow(Severity.WARNING, flow, names, _OPAQUE_PROXY_FLOW)
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
    if unasked:
        gaps.append(air_gapped.answers_nothing_gap(len(unasked)))
    if external.proxy_opaque:
        gaps.append(
            f"{plural(len(external.proxy_opaque), 'flow')} to the proxy carried bytes but no"
            " readable HTTP request: where the proxy took them is not known"
        )
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
    findings: Findings,
    notes: FindingGroups,
    claimed_only: dict[str, int],
) -> None:
    """What the report says about an allowed flow: a claim DNS cannot check, a conflict with
    the target's own answers, a real name hidden by ECH."""
    conflict = _sni_conflict(cloud, index)
    if conflict:
        findings.flow(Severity.WARNING, cloud.flow, names, conflict)
    flow = cloud.flow
    if cloud.claim_only:
        what = _CLAIM_TEXT.get(cloud.basis, cloud.basis)
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


def _records_without_handshake(flow: Flow) -> bool:
    """The connection's opening is in the capture, yet its first payload is an application-data
    record: no real TLS stack sends one before a handshake (decision 1 covers flows that began
    before the capture, whose handshake is simply not in it)."""
    return flow.handshake_seen and flow.payload_head_out[:1] == TLS_APPLICATION_DATA


@dataclass
class _TlsTally:
    """What HY-TLS learns flow by flow: findings, per-endpoint facts, and the open flows."""

    obs_names: NameIndex
    minimum: int
    complete: bool
    findings: Findings = field(default_factory=Findings)
    endpoint_facts: dict[str, dict[str, str]] = field(default_factory=dict)
    shown: dict[str, int] = field(default_factory=dict)  # endpoint -> a version a flow showed
    unknown_version: list[CloudFlow] = field(default_factory=list)
    unknown_tunnels: list[CloudFlow] = field(default_factory=list)
    unreadable_quic: list[CloudFlow] = field(default_factory=list)
    checked: int = 0
    # What each endpoint's facts say of a negotiation (version, suite, QUIC, SNI), and why its
    # suite is weak: thousands of flows repeat the same few.
    negotiations: dict[tuple[str, int, int, bool, str], tuple[dict[str, str], str | None]] = field(
        default_factory=dict
    )

    def violation(self, flow: Flow, text: str) -> None:
        self.findings.flow(Severity.VIOLATION, flow, self.obs_names, text)

    def negotiated(
        self, key: str, server: TlsServerHello, quic: bool, sni: str
    ) -> tuple[dict[str, str], str | None]:
        """The endpoint's facts for this negotiation, and why its suite is weak (or None)."""
        known = (key, server.version, server.cipher_suite, quic, sni)
        found = self.negotiations.get(known)
        if found is None:
            facts = {
                "version": version_name(server.version) + (" (QUIC)" if quic else ""),
                "suite": suite_name(server.cipher_suite),
                "sni": sni,
            }
            found = self.negotiations[known] = (facts, is_weak_suite(server.cipher_suite))
        return found

    def gaps(self, sent: bool) -> list[str]:
        gaps: list[str] = []
        unresolved = [c for c in self.unknown_version if _endpoint_key(c, c.name) not in self.shown]
        if unresolved:
            gaps.append(
                f"{plural(len(unresolved), 'TLS flow')} without a ServerHello in the capture and"
                " no other flow to the same endpoint shows the version (decision 1)"
            )
        if self.unreadable_quic:
            gaps.append(
                f"{plural(len(self.unreadable_quic), 'QUIC flow')} whose Initial packets could"
                " not be read: its TLS version and name are not known (decision 11)"
            )
        if self.unknown_tunnels:
            gaps.append(
                f"{plural(len(self.unknown_tunnels), 'CONNECT tunnel')} with no ClientHello seen"
                " after the CONNECT (refused by the proxy, or its content not in the capture)"
            )
        if self.checked == 0 and sent:
            gaps.append("no external flow carried data in this capture: nothing shows")
        return gaps


def _tls_flow(cloud: CloudFlow, index: _Index, tally: _TlsTally) -> None:
    """HY-TLS on one cloud flow: TLS from the first byte, then the hello and the negotiation."""
    flow = cloud.flow
    hello = index.client.get(flow.flow_id)
    quic = hello is not None and hello.quic_version is not None
    # QUIC is TLS 1.3 from its first packet (RFC 9001): its Initial carried the hello.
    first = PayloadKind.TLS if cloud.tunnel or quic else flow.payload_out
    if hello is None and flow.transport == "udp" and is_quic_long_header(flow.payload_head_out):
        # QUIC whose Initial the observers could not read (decision 11): protected, but
        # neither its version nor its name is known.
        tally.unreadable_quic.append(cloud)
        return
    if cloud.tunnel and hello is None:
        # No ClientHello after the CONNECT: the proxy may have refused the tunnel, or
        # what went through it was not seen. Neither proves TLS nor plaintext (PX-CONNECT
        # reports the tunnel); the flow stays open below, so HY-TLS cannot pass on it.
        tally.unknown_tunnels.append(cloud)
        return
    if first is PayloadKind.NONE and hello is None:
        return  # nothing sent: no data to protect
    tally.checked += 1
    key = _endpoint_key(cloud, cloud.name)
    if first is not PayloadKind.TLS and not (
        first is PayloadKind.LDAP and flow.opens_with_starttls()
    ):
        head = flow.payload_head_out[:40].decode("ascii", "backslashreplace")
        tally.violation(
            flow, f": {_PLAINTEXT.get(first, 'not TLS')} to {key} (first bytes {head!r})"
        )
        return
    if hello is None and not cloud.tunnel and _records_without_handshake(flow) and tally.complete:
        # Only on complete evidence: a dropped ClientHello would look the same.
        tally.violation(
            flow,
            f": TLS application-data records to {key} with no handshake on a connection "
            "opened in the capture: not a TLS session",
        )
        return
    if hello is not None and not hello.sni:
        tally.violation(flow, f": no SNI to {key}")
    _tls_negotiated(cloud, key, hello, index.server.get(flow.flow_id), tally)


def _tls_negotiated(
    cloud: CloudFlow,
    key: str,
    hello: TlsClientHello | None,
    server: TlsServerHello | None,
    tally: _TlsTally,
) -> None:
    """The version and suite a cloud flow negotiated, against the profile's minimum."""
    flow = cloud.flow
    quic = hello is not None and hello.quic_version is not None
    sni = hello.sni or "" if hello else ""
    if server is None and quic:
        # QUIC negotiates TLS 1.3 and nothing older (RFC 9001 §4.2), whose suites are
        # all AEAD: the version is known without the ServerHello.
        tally.shown[key] = max(tally.shown.get(key, 0), TLS_1_3)
        tally.endpoint_facts[key] = {
            "version": f"{version_name(TLS_1_3)} (QUIC)",
            "suite": "not in the capture (QUIC Handshake packets are encrypted)",
            "sni": sni,
        }
        return
    if server is None:
        offered = hello.versions if hello is not None else ()
        if offered and max(offered) < tally.minimum:
            # No ServerHello, but whatever the server chose would be below the minimum.
            tally.violation(
                flow,
                f": {key} offered at most {version_name(max(offered))}, below the minimum "
                f"{_minimum_name(tally.minimum)}",
            )
            return
        tally.unknown_version.append(cloud)
        return
    tally.shown[key] = max(tally.shown.get(key, 0), server.version)
    tally.endpoint_facts[key], weak = tally.negotiated(key, server, quic, sni)
    if server.version < tally.minimum:
        tally.violation(
            flow,
            f": {key} negotiated {version_name(server.version)}, below the minimum"
            f" {_minimum_name(tally.minimum)}",
        )
    if weak:
        tally.violation(flow, f": {key} negotiated {suite_name(server.cipher_suite)} ({weak})")


def _minimum_name(minimum: int) -> str:
    return TLS_VERSION_NAMES.get(minimum, hex(minimum))


def tls(obs: Observations, profile: Profile) -> ControlResult:
    """HY-TLS: every external flow is TLS from its first byte, sound version and suite, SNI."""
    external = once(obs, profile, _external)
    view, index, flows = external.view, external.index, external.flows
    tally = _TlsTally(
        obs_names=name_index(obs, profile),
        minimum=_min_version(profile),
        complete=not evidence_gaps(obs, payloads=True, profile=profile),
    )
    for flow in external.proxy_other:
        for request in index.requests(flow.flow_id):
            tally.violation(
                flow, f": plaintext {request.method} {request.target} through the proxy"
            )
    for cloud in flows:
        _tls_flow(cloud, index, tally)
    facts: dict[str, object] = {"external_flows": len(flows), "endpoints": tally.endpoint_facts}
    passed = f"{plural(tally.checked, 'external flow')} with data, all TLS: " + "; ".join(
        f"{k} {v['version']} {v['suite']}" for k, v in sorted(tally.endpoint_facts.items())
    )
    return conclude(
        "HY-TLS",
        view,
        tally.findings,
        passed=passed,
        failed=f"{plural(len(tally.findings), 'problem')} with the protection of cloud traffic",
        facts=facts,
        gaps=tally.gaps(view.sent),
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
