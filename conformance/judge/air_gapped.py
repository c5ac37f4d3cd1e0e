"""The air-gapped judges: AG-EGRESS, AG-INGRESS, AG-CLOUD-NAMES and AG-ONPREM (HA 2.2, 4.3, 8).

Each reads `Observations` and the `Profile` and returns one `ControlResult`; the verdict
rules shared by all of them (no capture, silent target, incomplete evidence) are in
`common.conclude`.
"""

from __future__ import annotations

from conformance.judge.common import (
    ADDRESS_RTYPES,
    WELL_KNOWN_PORT_LIMIT,
    FindingGroups,
    Findings,
    TargetView,
    address_of,
    address_text,
    combine,
    conclude,
    describe_flow,
    endpoint_text,
    internal_names,
    is_cloud_name,
    is_link_scoped_flow,
    is_local_name,
    is_outside,
    name_index,
    once,
    plural,
    request_hosts,
    reverse_address,
    target_view,
)
from conformance.judge.name_map import DnsNames, dns_names
from conformance.judge.platform import name_looks_like
from conformance.judge.result import ControlResult, Severity
from conformance.observe.records import DnsQuery, Flow, InitiatorBasis, Observations
from conformance.profile_model import Environment, IPAddress, OnPremEndpoint, Profile

RCODE_NXDOMAIN = 3  # RFC 1035 4.1.1

_PROTOCOL_TEXT = {"dns": "DNS", "mdns": "mDNS", "llmnr": "LLMNR", "nbns": "NBNS"}
_QTYPE_TEXT = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    64: "SVCB",
    65: "HTTPS",
    255: "ANY",
}
_CANNOT_TELL = "cannot tell an internal name from an external one"
_RESPONSE_FIRST = InitiatorBasis.RESPONSE_FIRST  # read once: `answer_only` runs per flow


def _networks(profile: Profile) -> str:
    return ", ".join(str(n) for n in profile.environment.networks)


# --- AG-EGRESS ------------------------------------------------------------------------


def egress(obs: Observations, profile: Profile) -> ControlResult:
    """AG-EGRESS: no flow the target initiates goes outside the Customer Environment.

    Any transport, IPv4 and IPv6, answered or not. A flow with no handshake in the
    capture counts in the direction the observers decided (decision 1); a packet from
    the target that answers a flow an outside host opened belongs to AG-INGRESS; target
    packets in a flow credited to an outside opener that sent nothing the capture holds
    (`answers_nothing_seen`) keep it inconclusive. Scope-limited destinations (decision 6)
    are not egress.
    """
    # TM-AIRGAP and HY-DEACTIVATED judge it again: judged once per run.
    return once(obs, profile, _egress)


def _egress(obs: Observations, profile: Profile) -> ControlResult:
    view = target_view(obs, profile)
    index = name_index(obs, profile)
    findings = Findings()
    outside = inside = scope = inbound = unasked = 0
    for flow, opened in zip(view.flows, view.opened, strict=True):
        if is_link_scoped_flow(flow):
            scope += 1
        elif opened and answer_only(flow) and view.outside(flow.responder):
            findings.flow(Severity.WARNING, flow, index, ANSWER_ONLY)
        elif opened:
            if view.outside(flow.responder):
                outside += 1
                findings.flow(Severity.VIOLATION, flow, index)
            elif view.scope_limited(flow.responder):
                scope += 1
            else:
                inside += 1
        elif view.outside(flow.initiator):
            inbound += 1
            if answers_nothing_seen(flow):
                unasked += 1
                findings.flow(Severity.WARNING, flow, index, ANSWERS_NOTHING)
            elif _reply_to_earlier_request(flow, view):
                findings.flow(
                    Severity.WARNING,
                    flow,
                    index,
                    f": looks like the reply to a request the target sent before the"
                    f" capture began (source port {flow.initiator_port})",
                )
        elif view.scope_limited(flow.initiator):
            scope += 1
        else:
            inside += 1
    facts: dict[str, object] = {
        "target_flows": len(view.flows),
        "outside_flows": outside,
        "inside_flows": inside,
        "scope_limited_flows": scope,
        "inbound_from_outside": inbound,
        "answering_nothing_seen": unasked,
    }
    gaps = [answers_nothing_gap(unasked)] if unasked else []
    passed = (
        f"{plural(len(view.flows), 'target flow')}: {inside} inside {_networks(profile)},"
        f" {scope} scope-limited; 0 initiated to an outside address"
    )
    if inbound:
        passed += f"; {inbound} opened from outside (judged by AG-INGRESS)"
    return conclude(
        "AG-EGRESS",
        view,
        findings,
        passed=passed,
        failed=f"{plural(outside, 'flow')} initiated to outside addresses",
        facts=facts,
        gaps=gaps,
    )


ANSWERS_NOTHING = (
    ": the target's packets answer nothing in the capture (no packet of the outside host is in"
    " it, only the target's refusal or reply): the outside host may have opened the flow before"
    " the capture began, or the target sent them unasked"
)


def answers_nothing_seen(flow: Flow) -> bool:
    """A flow the observers credit to an outside opener (its first packet is the target's
    SYN-ACK, reply, RST or ICMP error) in which the opener sent nothing the capture holds,
    yet the target sent packets. Decision 1 lets a target packet to an outside address stand
    only when it answers a flow an outside host opened; here nothing shows one did. Accepting
    answers are AG-INGRESS violations already; the rest (a refusal, an ICMP error quoting a
    datagram nobody saw) cannot prove absence of egress."""
    return flow.packets_out == 0 and flow.packets_in > 0 and not flow.accepted


def answers_nothing_gap(count: int) -> str:
    """Why `count` flows that `answers_nothing_seen` keep an absence claim open."""
    return (
        f"{plural(count, 'flow')} in which the target sent packets to an outside address that"
        " answer no packet in the capture (decision 1): nothing shows an outside host opened them"
    )


def unasked_outside(view: TargetView) -> list[Flow]:
    """The flows from outside addresses that `answers_nothing_seen` (HY-DEST, PX-ONLY)."""
    return [f for f in view.incoming if view.outside(f.initiator) and answers_nothing_seen(f)]


ANSWER_ONLY = (
    ": only the answer is in the capture (its first packet is a response): the request went"
    " out before the capture began, or the capture lost it"
)


def answer_only(flow: Flow) -> bool:
    """A flow the observers turned around because its first packet is a response (UDP), in
    which the initiator sent nothing: it shows that a request was made, not when. Decision 1
    judges packets, so the judges report it as a warning, as `_reply_to_earlier_request`."""
    return flow.initiator_basis is _RESPONSE_FIRST and flow.packets_out == 0


def _reply_to_earlier_request(flow: Flow, view: TargetView) -> bool:
    """A UDP flow that only shows an outside service answering the target's ephemeral port.

    The observers orient UDP by its first packet, so a reply to a query the target sent
    before the capture began looks like an inbound flow. No packet from the target is in
    it (decision 1 judges packets), so it is a warning, not a violation.
    """
    return (
        flow.transport == "udp"
        and flow.initiator_basis is InitiatorBasis.FIRST_PACKET
        and flow.packets_in == 0
        and flow.initiator_port < WELL_KNOWN_PORT_LIMIT <= flow.responder_port
        and not view.initiated(flow)
    )


# --- AG-INGRESS -----------------------------------------------------------------------


def ingress(obs: Observations, profile: Profile, control_id: str = "AG-INGRESS") -> ControlResult:
    """AG-INGRESS (and HY-INGRESS): no flow from outside the environment is accepted.

    Accepted means a SYN-ACK or responder payload (TCP), a reply (UDP), a reply type
    (ICMP). Refused and unanswered attempts are shown as info: they prove the target
    did not accept them.
    """
    view = target_view(obs, profile)
    index = name_index(obs, profile)
    findings = Findings()
    attempts = accepted = 0
    for flow in view.incoming:
        if not view.outside(flow.initiator):
            continue
        attempts += 1
        if flow.accepted:
            accepted += 1
            findings.flow(Severity.VIOLATION, flow, index, ": opened from outside")
        else:
            findings.flow(Severity.INFO, flow, index, ": opened from outside, not accepted")
    facts: dict[str, object] = {
        "target_flows": len(view.flows),
        "inbound_from_outside": attempts,
        "accepted_from_outside": accepted,
    }
    if attempts:
        passed = (
            f"{plural(attempts, 'flow')} from outside addresses reached the target;"
            f" none was accepted ({len(view.flows)} target flows)"
        )
    else:
        passed = f"{plural(len(view.flows), 'target flow')}; none opened from outside"
    return conclude(
        control_id,
        view,
        findings,
        passed=passed,
        failed=f"{plural(accepted, 'flow')} from outside accepted by the target",
        facts=facts,
    )


# --- AG-CLOUD-NAMES -------------------------------------------------------------------


def cloud_names(obs: Observations, profile: Profile) -> ControlResult:
    """AG-CLOUD-NAMES: the target seeks no Imagicle cloud name and no external name.

    Judged on every name the target sends: DNS-format queries on any path and protocol
    (unicast DNS, mDNS, LLMNR, NBNS: decision 6), TLS SNI, HTTP Host, CONNECT and
    proxy request targets, and names in other scope-limited messages (SSDP, ...).

    What "external" means in an air-gapped site, with no list of internal zones:
    - an Imagicle cloud name, or an answer chain leading to one: violation, whoever resolves it;
    - any query to a resolver outside the environment: violation (also an AG-EGRESS one);
    - unicast DNS to an on-prem resolver: internal when every address answer is inside
      the environment (or another query showed the name so); an address answer outside
      it makes the name external (violation); NXDOMAIN, no answer, no address: warning,
      since the resolver alone cannot tell internal from external;
    - mDNS/LLMNR/NBNS: single-label and `.local` names are local; others are violations;
    - SNI/Host on a flow to an on-prem server names that server when a resolver showed it
      internal; when the capture's DNS answers give it an outside address it is external
      (violation: an on-prem relay is asked for it); otherwise a warning, as for DNS. On a flow
      leaving the environment it is external (violation); CONNECT or a proxy request asks the
      proxy to reach somewhere: violation unless the name or address is shown to be internal.
    """
    # TM-AIRGAP and HY-DEACTIVATED judge it again: judged once per run.
    return once(obs, profile, _cloud_names)


def _cloud_names(obs: Observations, profile: Profile) -> ControlResult:
    view = target_view(obs, profile)
    judge = _NameJudge(view)
    judge.dns()
    judge.tls()
    judge.http()
    judge.mentions()
    checked, counts = judge.checked, judge.counts
    findings = judge.groups.findings()
    violations = [f for f in findings if f.severity is Severity.VIOLATION]
    warnings = [f for f in findings if f.severity is Severity.WARNING]
    facts: dict[str, object] = {
        "target_flows": len(view.flows),
        "names_checked": len(checked),
        **counts,
        "cloud_names": sorted(n for n in checked if is_cloud_name(n)),
        "unresolved_names": len(warnings),
    }
    sources = (
        f"{counts['dns_queries']} DNS queries, {counts['tls_sni']} TLS SNI,"
        f" {counts['http_requests']} HTTP requests, {counts['other_mentions']} other mentions"
    )
    passed = (
        f"{plural(len(checked), 'name')} checked ({sources}) in"
        f" {plural(len(view.flows), 'target flow')}: none is an Imagicle cloud or external name"
    )
    if warnings:
        passed += (
            f"; {plural(len(warnings), 'name')} the on-prem resolver could not show internal"
            " (warnings)"
        )
    return conclude(
        "AG-CLOUD-NAMES",
        view,
        findings,
        passed=passed,
        failed=f"{plural(len(violations), 'cloud or external name')} sought",
        facts=facts,
        payloads=True,
    )


class _NameJudge:
    """Collects the names the target sends, by source, into grouped findings."""

    def __init__(self, view: TargetView) -> None:
        self.view = view
        self.env = view.profile.environment
        self.internal = internal_names(view.obs, self.env)
        self.answers: DnsNames | None = None  # the capture's DNS answers, when a name needs them
        self.groups = FindingGroups()
        self.checked: set[str] = set()
        self.counts = {"dns_queries": 0, "tls_sni": 0, "http_requests": 0, "other_mentions": 0}

    def dns(self) -> None:
        """DNS-format queries the target sent, any protocol, any resolver."""
        for query in self.view.obs.dns:
            if not self.view.profile.is_target(query.client):
                continue
            self.counts["dns_queries"] += query.count
            self.checked.add(query.qname)
            judged = _judge_query(query, self.env, self.internal)
            if judged is None:
                continue
            severity, why = judged
            self.groups.add(
                (query.capture, "dns", query.protocol, query.qname, query.server, why),
                severity,
                f"{_query_text(query)}: {why}",
                capture=query.capture,
                packets=_query_packets(query),
                flow_id=query.flow_id,
                count=query.count,
                facts=_name_facts(query.qname),
            )

    def tls(self) -> None:
        """SNI of the ClientHellos the target sent."""
        view, groups = self.view, self.groups
        for hello in view.obs.client_hellos:
            flow = view.obs.flow(hello.flow_id)
            sni = hello.sni
            if not view.initiated(flow) or not sni:
                continue
            self.counts["tls_sni"] += 1
            self.checked.add(sni)
            judged = self._carried(sni, flow, proxied=False)
            if judged is None:
                continue
            severity, why = judged
            key = (hello.capture, "sni", sni, _address_key(flow.responder), flow.responder_port)
            if not groups.add_again(key, packets=(hello.packet,)):
                groups.add(
                    key,
                    severity,
                    f"TLS ClientHello with SNI {sni}, {_flow_ends(flow)}: {why}",
                    capture=hello.capture,
                    packets=(hello.packet,),
                    flow_id=flow.flow_id,
                    facts=_name_facts(sni),
                )

    def http(self) -> None:
        """Host headers, CONNECT targets and proxy (absolute-form) targets the target sent."""
        view, groups = self.view, self.groups
        for request in view.obs.http_requests:
            flow = view.obs.flow(request.flow_id)
            if not view.initiated(flow):
                continue
            self.counts["http_requests"] += request.count
            for name, proxied in request_hosts(request):
                if address_of(name) is None:
                    self.checked.add(name)
                judged = self._carried(name, flow, proxied=proxied)
                if judged is None:
                    continue
                severity, why = judged
                what = "target" if proxied else "Host"
                key = (
                    request.capture,
                    "http",
                    what,
                    name,
                    _address_key(flow.responder),
                    flow.responder_port,
                )
                if groups.add_again(key, packets=(request.packet,), count=request.count):
                    continue
                groups.add(
                    key,
                    severity,
                    f"HTTP {request.method} {request.target} ({what} {name}),"
                    f" {_flow_ends(flow)}: {why}",
                    capture=request.capture,
                    packets=(request.packet,),
                    flow_id=flow.flow_id,
                    count=request.count,
                    facts=_name_facts(name),
                )

    def _carried(self, name: str, flow: Flow, *, proxied: bool) -> tuple[Severity, str] | None:
        """`_judge_carried_name` with this run's internal names and DNS answers."""
        if self.answers is None:
            self.answers = dns_names(self.view.obs, self.view.profile)
        return _judge_carried_name(
            name, flow, self.view, self.internal, self.answers, proxied=proxied
        )

    def mentions(self) -> None:
        """Names in other scope-limited messages (SSDP, NBNS, ...) on target flows."""
        profile = self.view.profile
        for mention in self.view.obs.names:
            flow = self.view.obs.flow(mention.flow_id)
            # Mentions carry no sender: any on a flow with the target at one end is counted.
            if not (profile.is_target(flow.initiator) or profile.is_target(flow.responder)):
                continue
            self.counts["other_mentions"] += 1
            self.checked.add(mention.name)
            if is_cloud_name(mention.name):
                self.groups.add(
                    (mention.capture, "mention", mention.protocol, mention.name, flow.flow_id),
                    Severity.VIOLATION,
                    f"{mention.protocol.upper()} message names {mention.name},"
                    f" {_flow_ends(flow)}: Imagicle cloud name",
                    capture=mention.capture,
                    packets=(mention.packet,),
                    flow_id=flow.flow_id,
                    facts=_name_facts(mention.name),
                )


def _address_key(address: IPAddress) -> str:
    """An address in a grouping key: its text, equal exactly when the addresses are, and
    quicker to hash than the address."""
    return address_text(address)


def _judge_query(
    query: DnsQuery, env: Environment, internal: frozenset[str]
) -> tuple[Severity, str] | None:
    """Severity and reason for one DNS-format query of the target, or None when it is fine."""
    name = query.qname
    if is_cloud_name(name):
        return Severity.VIOLATION, "Imagicle cloud name"
    chained = next(
        (
            a.value
            for a in query.answers
            if a.rtype not in ADDRESS_RTYPES and is_cloud_name(a.value)
        ),
        None,
    )
    if chained:
        return Severity.VIOLATION, f"the answer leads to the Imagicle cloud name {chained}"
    if is_outside(query.server, env):
        return Severity.VIOLATION, "resolver outside the environment"
    reversed_address = reverse_address(name)
    if reversed_address is not None and not is_outside(reversed_address, env):
        return None  # the name of an address inside the environment or the segment
    if query.protocol != "dns":
        if is_local_name(name):
            return None
        if reversed_address is not None:
            return Severity.WARNING, "reverse lookup of an outside address"
        return Severity.VIOLATION, "external name asked by multicast name resolution"
    # Unicast DNS to an on-prem (or link-local) resolver.
    addresses = [address_of(a.value) for a in query.answers if a.rtype in ADDRESS_RTYPES]
    foreign = [str(a) for a in addresses if a is None or not env.contains(a)]
    if foreign:
        return Severity.VIOLATION, f"answered with {foreign[0]}, not inside the environment"
    if addresses or name in internal:
        return None
    if reversed_address is not None:
        return Severity.WARNING, "reverse lookup of an outside address"
    if query.response_packet is None:
        return Severity.WARNING, f"no answer seen: {_CANNOT_TELL}"
    if query.rcode == RCODE_NXDOMAIN:
        return Severity.WARNING, f"NXDOMAIN from the on-prem resolver: {_CANNOT_TELL}"
    if query.rcode:
        return Severity.WARNING, f"rcode {query.rcode} from the on-prem resolver: {_CANNOT_TELL}"
    return Severity.WARNING, f"answered without addresses: {_CANNOT_TELL}"


def _judge_carried_name(
    name: str,
    flow: Flow,
    view: TargetView,
    internal: frozenset[str],
    dns: DnsNames,
    *,
    proxied: bool,
) -> tuple[Severity, str] | None:
    """Severity and reason for a name the target sent in TLS/HTTP, or None when it is fine.

    `proxied`: the name is what a CONNECT or absolute-form request asks a proxy to reach. An
    SNI or Host on a flow to an on-prem server names that server, unless the capture's DNS
    answers (any client) give the name an outside address: then an on-prem relay (an SNI or
    transparent proxy) is being asked for an external name. A name neither shown internal
    nor shown external is a warning, as for DNS (`_judge_query`).
    """
    literal = address_of(name)
    if literal is not None:
        if proxied and view.outside(literal):
            return Severity.VIOLATION, "asks a proxy for an address outside the environment"
        return None
    if is_cloud_name(name):
        return Severity.VIOLATION, "Imagicle cloud name"
    if view.outside(flow.responder):
        return Severity.VIOLATION, "external name on a flow leaving the environment"
    if name in internal or is_local_name(name):
        return None
    outside = sorted(a for a in dns.answered(name) if _is_outside_text(a, view))
    if outside:
        return Severity.VIOLATION, (
            f"external name: the capture's DNS answers give it {outside[0]}, outside the"
            " environment, yet it is sent to an on-prem server"
        )
    if proxied:
        return Severity.VIOLATION, "asks a proxy for a name no on-prem resolver showed internal"
    return Severity.WARNING, (
        f"no on-prem resolver showed this name internal: {_CANNOT_TELL} (a server that relays"
        " it outward, such as an SNI proxy, would make it an external name)"
    )


def _is_outside_text(text: str, view: TargetView) -> bool:
    address = address_of(text)
    return address is not None and view.outside(address)


def _query_text(query: DnsQuery) -> str:
    protocol = _PROTOCOL_TEXT.get(query.protocol, query.protocol)
    qtype = _QTYPE_TEXT.get(query.qtype, f"type {query.qtype}")
    server = endpoint_text(query.server, query.server_port)
    return f"{protocol} query for {query.qname} ({qtype}) to {server} {query.transport}"


def _query_packets(query: DnsQuery) -> tuple[int, ...]:
    packets = [query.packet]
    if query.response_packet is not None:
        packets.append(query.response_packet)
    if query.last_packet is not None:
        packets.append(query.last_packet)
    return tuple(dict.fromkeys(packets))


def _flow_ends(flow: Flow) -> str:
    return (
        f"{endpoint_text(flow.initiator)} -> {endpoint_text(flow.responder, flow.responder_port)}"
        f" {flow.transport}"
    )


def _name_facts(name: str) -> dict[str, str]:
    facts = {"name": name}
    label = name_looks_like(name)
    if label:
        facts["looks_like"] = label
    return facts


# --- AG-ONPREM ------------------------------------------------------------------------


def onprem(obs: Observations, profile: Profile) -> ControlResult:
    """AG-ONPREM: the target's on-prem integrations use declared endpoints and ports.

    A flow the target initiates to an address inside the environment must match a
    declared endpoint: address and `N/tcp` or `N/udp` (decision 2); ICMP and other
    port-less transports need the address only. An undeclared one is a warning, a
    violation with `environment.strict`. Flows on-prem clients open to the target (an
    admin's browser, CUCM calling in) are not integrations the target reaches: info.
    Scope-limited flows (decision 6) are not endpoints and are only counted.
    """
    view = target_view(obs, profile)
    env = profile.environment
    strict = env.strict
    groups = FindingGroups()
    initiated = declared = undeclared = inbound = scope = 0
    used: dict[str, None] = {}
    declared_at = _by_address(env.endpoints)
    matched: dict[tuple[int, int, str], tuple[OnPremEndpoint | None, str]] = {}
    for flow, opened in zip(view.flows, view.opened, strict=True):
        if opened and view.is_target(flow.responder):
            continue  # the target talking to itself
        peer = flow.responder if opened else flow.initiator
        if view.scope_limited(peer) or is_link_scoped_flow(flow):
            scope += 1
            continue
        if view.outside(peer):
            continue  # outside: AG-EGRESS and AG-INGRESS judge it
        key_port = flow.responder_port if flow.transport in ("tcp", "udp") else flow.initiator_port
        if not opened:
            inbound += 1
            key = ("in", flow.capture, _address_key(peer), flow.transport, key_port)
            if not groups.add_again(key, packets=flow.sample_packets):
                groups.add(
                    key,
                    Severity.INFO,
                    f"{_flow_ends(flow)}: on-prem client of the target, not an integration",
                    capture=flow.capture,
                    packets=flow.sample_packets,
                    flow_id=flow.flow_id,
                    unit="flow",
                )
            continue
        initiated += 1
        endpoint, why = _declared_endpoint(flow, declared_at, matched)
        if endpoint is not None:
            declared += 1
            used[endpoint.name] = None
            continue
        undeclared += 1
        key = ("out", flow.capture, _address_key(peer), flow.transport, key_port)
        if not groups.add_again(key, packets=flow.sample_packets):
            groups.add(
                key,
                Severity.VIOLATION if strict else Severity.WARNING,
                describe_flow(flow, f": {why}"),
                capture=flow.capture,
                packets=flow.sample_packets,
                flow_id=flow.flow_id,
                unit="flow",
            )
    findings = groups.findings()
    facts: dict[str, object] = {
        "target_flows": len(view.flows),
        "onprem_initiated": initiated,
        "to_declared_endpoints": declared,
        "to_undeclared_endpoints": undeclared,
        "inbound_from_onprem": inbound,
        "scope_limited_flows": scope,
        "endpoints_used": list(used),
        "strict": strict,
    }
    gaps: list[str] = []
    if not env.endpoints:
        gaps.append("the profile declares no on-prem endpoints: an empty allow-list proves nothing")
    if not initiated:
        gaps.append("the target initiated no flow inside the environment: no integration to judge")
    passed = f"{plural(initiated, 'on-prem flow')} initiated by the target"
    if undeclared:
        passed += (
            f"; {undeclared} to undeclared endpoints (warnings: declare them in the profile;"
            " with environment.strict they fail)"
        )
    else:
        passed += f", all to declared endpoints ({', '.join(used)})"
    if inbound:
        passed += f"; {inbound} opened by on-prem clients (info)"
    return conclude(
        "AG-ONPREM",
        view,
        findings,
        passed=passed,
        failed=(
            f"{plural(undeclared, 'flow')} to undeclared on-prem endpoints (environment.strict)"
        ),
        facts=facts,
        gaps=gaps,
    )


def _by_address(endpoints: tuple[OnPremEndpoint, ...]) -> dict[IPAddress, list[OnPremEndpoint]]:
    """The declared endpoints at each address, in the profile's order."""
    found: dict[IPAddress, list[OnPremEndpoint]] = {}
    for endpoint in endpoints:
        found.setdefault(endpoint.address, []).append(endpoint)
    return found


def _declared_endpoint(
    flow: Flow,
    declared_at: dict[IPAddress, list[OnPremEndpoint]],
    known: dict[tuple[int, int, str], tuple[OnPremEndpoint | None, str]],
) -> tuple[OnPremEndpoint | None, str]:
    """`_match_endpoint` of the flow's responder, port and transport, remembered in `known`
    by the responder's identity (its flow holds it): thousands of flows repeat a few."""
    key = (id(flow.responder), flow.responder_port, flow.transport)
    found = known.get(key)
    if found is None:
        found = known[key] = _match_endpoint(flow, declared_at.get(flow.responder, []))
    return found


def _match_endpoint(
    flow: Flow, candidates: list[OnPremEndpoint]
) -> tuple[OnPremEndpoint | None, str]:
    """The declared endpoint `flow` goes to among `candidates` (those at its responder's
    address), or None and why it matches none."""
    if not candidates:
        return None, f"{flow.responder} is not a declared endpoint"
    if flow.transport not in ("tcp", "udp"):
        return candidates[0], ""  # ICMP has no port: the declared address is enough
    for endpoint in candidates:
        if any(
            (p.number, p.transport) == (flow.responder_port, flow.transport) for p in endpoint.ports
        ):
            return endpoint, ""
    first = candidates[0]
    declared = ", ".join(str(p) for e in candidates for p in e.ports)
    return None, (
        f"{first.name} ({first.address}) does not declare"
        f" {flow.responder_port}/{flow.transport} (declares {declared})"
    )


# --- TM-AIRGAP ------------------------------------------------------------------------


def tm_airgap(obs: Observations, profile: Profile) -> ControlResult:
    """TM-AIRGAP (HA 2.2, 8): no telemetry and no remote update push in air-gapped mode,
    judged as AG-EGRESS and AG-CLOUD-NAMES together (controls.md)."""
    return combine("TM-AIRGAP", (egress(obs, profile), cloud_names(obs, profile)))
