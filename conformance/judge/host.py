"""Judgements from a live host's facts (docs/hosts.md).

They feed the same controls as the capture (a socket to an outside address fails AG-EGRESS
like a packet would; the plugin keeps the worse verdict of the two) plus the HOST-* controls.
Every finding points at the raw output of the command it comes from, `evidence/host/<name>.txt`,
and its line.
"""

from __future__ import annotations

import ipaddress

from conformance.host.facts import HostFacts, Socket, raw_output_name
from conformance.judge.common import is_cloud_name, is_outside, is_scope_limited
from conformance.judge.result import ControlResult, Finding, Severity
from conformance.observe.records import Observations
from conformance.profile_model import Mode, Profile, Telemetry
from conformance.verdict import Verdict


def _where(sock: Socket) -> tuple[str, int]:
    return raw_output_name(sock.command), sock.line


def _endpoint(address: object, port: int) -> str:
    if address is None:
        return f"*:{port}"
    text = str(address)
    return f"[{text}]:{port}" if ":" in text else f"{text}:{port}"


def _describe(sock: Socket) -> str:
    process = f" {sock.process}" if sock.process else ""
    return (
        f"{sock.transport} {sock.state} {_endpoint(sock.local, sock.local_port)} -> "
        f"{_endpoint(sock.peer, sock.peer_port)}{process}"
    )


def _gaps(facts: HostFacts) -> str:
    return "; ".join(facts.problems[:3]) or "no socket listing"


def _local(profile: Profile, sock: Socket) -> bool:
    return sock.local is None or profile.is_target(sock.local) or sock.local.is_loopback


def _listener_ports(facts: HostFacts) -> set[tuple[str, int]]:
    return {(s.transport, s.local_port) for s in facts.listeners}


def socket_egress(facts: HostFacts, profile: Profile) -> ControlResult | None:
    """AG-EGRESS (air-gapped) or PX-ONLY (hybrid with a proxy) from connected sockets.

    A connected socket whose peer is outside the environment and whose local port is not a
    listening one (the host opened it) is a violation. Hybrid without a proxy: None (host
    sockets carry no names; HY-DEST is judged from the capture).
    """
    if profile.mode is Mode.AIR_GAPPED:
        control = "AG-EGRESS"
    elif profile.proxy is not None:
        control = "PX-ONLY"
    else:
        return None
    if facts.samples == 0:
        return ControlResult(control, Verdict.INCONCLUSIVE, f"host {facts.url}: {_gaps(facts)}")
    env = profile.environment
    listening = _listener_ports(facts)
    findings: list[Finding] = []
    for sock in facts.connections:
        if sock.peer is None or (sock.transport, sock.local_port) in listening:
            continue
        if is_outside(sock.peer, env):
            file, line = _where(sock)
            findings.append(
                Finding(
                    Severity.VIOLATION,
                    f"host socket to an outside address: {_describe(sock)}",
                    evidence_file=file,
                    evidence_line=line,
                )
            )
    findings += _egress_context(facts, profile)
    facts_out: dict[str, object] = {
        "samples": facts.samples,
        "connections": len(facts.connections),
        "firewall": facts.firewall or "unknown",
        "firewall_output_default_drop": facts.firewall_output_restricted,
        "resolvers": list(facts.resolvers),
    }
    violations = [f for f in findings if f.severity is Severity.VIOLATION]
    if violations:
        return ControlResult(
            control,
            Verdict.FAIL,
            f"host {facts.url}: {len(violations)} socket(s) to outside addresses; "
            f"{violations[0].summary}",
            tuple(findings),
            facts_out,
        )
    return ControlResult(
        control,
        Verdict.PASS,
        f"host {facts.url}: {len(facts.connections)} connected sockets in {facts.samples} "
        "samples, none opened to an outside address",
        tuple(findings),
        facts_out,
    )


def _egress_context(facts: HostFacts, profile: Profile) -> list[Finding]:
    """Warnings, not violations: what would let a connection out, though none was seen.

    The outbound firewall and the resolvers are the customer's (HA 5: network and firewalls
    are the customer's responsibility), so they never fail the product's promise.
    """
    found: list[Finding] = []
    if facts.firewall_output_restricted is False:
        found.append(
            Finding(
                Severity.WARNING,
                f"the host firewall ({facts.firewall or 'none'}) has no default-drop output "
                "policy: nothing on the host stops a connection out",
                evidence_file=raw_output_name(facts.firewall or "nftables"),
            )
        )
    record = facts.record("resolv.conf")
    lines = record.stdout.splitlines() if record is not None else []
    for resolver in facts.resolvers:
        try:
            address = ipaddress.ip_address(resolver.split("%", 1)[0])
        except ValueError:
            continue
        if address.is_loopback or not is_outside(address, profile.environment):
            continue
        line = next((n for n, text in enumerate(lines, 1) if resolver in text), None)
        found.append(
            Finding(
                Severity.WARNING,
                f"resolver {resolver} is outside the environment (no query to it was sampled)",
                evidence_file=raw_output_name("resolv.conf"),
                evidence_line=line,
            )
        )
    return found


def socket_ingress(facts: HostFacts, profile: Profile) -> ControlResult:
    """AG-INGRESS / HY-INGRESS from listeners, the host firewall and accepted connections.

    Violations: a connection accepted on a listening port from an outside address; a
    listener reachable on a non-loopback address while the host firewall is known to let
    everything in. With the firewall unknown, such a listener is a warning.
    """
    control = "AG-INGRESS" if profile.mode is Mode.AIR_GAPPED else "HY-INGRESS"
    if facts.samples == 0:
        return ControlResult(control, Verdict.INCONCLUSIVE, f"host {facts.url}: {_gaps(facts)}")
    env = profile.environment
    listening = _listener_ports(facts)
    findings: list[Finding] = []
    for sock in facts.connections:
        if sock.peer is None or (sock.transport, sock.local_port) not in listening:
            continue
        if is_outside(sock.peer, env):
            file, line = _where(sock)
            findings.append(
                Finding(
                    Severity.VIOLATION,
                    f"host accepted a connection from outside: {_describe(sock)}",
                    evidence_file=file,
                    evidence_line=line,
                )
            )
    exposed = [
        s
        for s in facts.listeners
        if s.local is None or not (s.local.is_loopback or is_scope_limited(s.local, env))
    ]
    restricted = facts.firewall_input_restricted
    for sock in exposed:
        file, line = _where(sock)
        where = "all interfaces" if sock.local is None else str(sock.local)
        if restricted is False:
            findings.append(
                Finding(
                    Severity.VIOLATION,
                    f"listener on {where} and the host firewall ({facts.firewall or 'none'}) "
                    f"lets every source in: {_describe(sock)}",
                    evidence_file=file,
                    evidence_line=line,
                )
            )
        elif restricted is None:
            findings.append(
                Finding(
                    Severity.WARNING,
                    f"listener on {where}; the host firewall could not be read: {_describe(sock)}",
                    evidence_file=file,
                    evidence_line=line,
                )
            )
    summary: dict[str, object] = {
        "listeners": len(facts.listeners),
        "exposed_listeners": len(exposed),
        "firewall": facts.firewall or "unknown",
        "firewall_input_default_drop": restricted,
    }
    violations = [f for f in findings if f.severity is Severity.VIOLATION]
    if violations:
        return ControlResult(
            control,
            Verdict.FAIL,
            f"host {facts.url}: {len(violations)} exposure(s); {violations[0].summary}",
            tuple(findings),
            summary,
        )
    firewall = (
        f"host firewall ({facts.firewall}) drops inbound by default"
        if restricted
        else "host firewall unknown"
    )
    return ControlResult(
        control,
        Verdict.PASS,
        f"host {facts.url}: {len(exposed)} listener(s) beyond loopback, {firewall}; "
        "no connection from outside accepted",
        tuple(findings),
        summary,
    )


NO_HOST = "no live host in this run (give --host URL)"


def hosts_file(obs: Observations, profile: Profile) -> ControlResult:
    """HOST-HOSTS: no hosts-file entry for an Imagicle cloud name."""
    facts = obs.host
    if facts is None:
        return ControlResult("HOST-HOSTS", Verdict.NOT_APPLICABLE, NO_HOST)
    record = facts.record("hosts")
    if record is None or not record.ok:
        why = record.error if record is not None and record.error else "not read"
        return ControlResult("HOST-HOSTS", Verdict.INCONCLUSIVE, f"hosts file: {why}")
    findings = [
        Finding(
            Severity.VIOLATION,
            f"hosts file line {entry.line}: {entry.address} {' '.join(entry.names)}",
            evidence_file=raw_output_name("hosts"),
            evidence_line=entry.line,
        )
        for entry in facts.hosts_entries
        if any(is_cloud_name(name) for name in entry.names)
    ]
    if findings:
        return ControlResult(
            "HOST-HOSTS",
            Verdict.FAIL,
            f"the hosts file redirects cloud names: {findings[0].summary}",
            tuple(findings),
        )
    return ControlResult(
        "HOST-HOSTS",
        Verdict.PASS,
        f"{len(facts.hosts_entries)} hosts-file entries, none for an Imagicle cloud name",
    )


def _proxy_text(value: object) -> str:
    text = str(value).strip()
    for prefix in ("http://", "https://"):
        text = text.removeprefix(prefix)
    return text.rstrip("/")


def _same_proxy(value: object, profile: Profile) -> bool:
    if profile.proxy is None:
        return _proxy_text(value) in ("", "none", "off", "false", "null")
    host, _, port = _proxy_text(value).rpartition(":")
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address == profile.proxy.address and port == str(profile.proxy.port)


def proxy_setting(obs: Observations, profile: Profile) -> ControlResult:
    """HOST-PROXY: the product's and the environment's proxy equal the profile's."""
    facts = obs.host
    if facts is None:
        return ControlResult("HOST-PROXY", Verdict.NOT_APPLICABLE, NO_HOST)
    seen: dict[str, object] = {
        key: value for key, value in facts.proxy_settings.items() if "no_proxy" not in key.lower()
    }
    if facts.product_settings is not None and "proxy" in facts.product_settings:
        seen["settings:proxy"] = facts.product_settings["proxy"]
    declared = str(profile.proxy) if profile.proxy is not None else "none"
    if not seen and facts.product_settings is None:
        return ControlResult(
            "HOST-PROXY",
            Verdict.INCONCLUSIVE,
            "no proxy setting could be read (no product settings file, no proxy variables)",
        )
    findings = [
        Finding(
            Severity.VIOLATION,
            f"{key} = {value!s} but the profile declares proxy {declared}",
            evidence_file=raw_output_name(key.split(":", 1)[0]),
        )
        for key, value in sorted(seen.items())
        if not _same_proxy(value, profile)
    ]
    if profile.proxy is not None and "settings:proxy" not in seen:
        findings.append(
            Finding(
                Severity.VIOLATION,
                f"the product settings name no proxy; the profile declares {declared}",
                evidence_file=raw_output_name("settings"),
            )
        )
    if findings:
        return ControlResult(
            "HOST-PROXY", Verdict.FAIL, findings[0].summary, tuple(findings), {"seen": seen}
        )
    return ControlResult(
        "HOST-PROXY",
        Verdict.PASS,
        f"proxy settings match the profile ({declared}): "
        + (", ".join(f"{k}={v}" for k, v in sorted(seen.items())) or "none configured"),
        (),
        {"seen": seen},
    )


def _flag(value: object) -> str:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "enabled"):
        return "enabled"
    if text in ("0", "false", "no", "off", "disabled"):
        return "disabled"
    return text


def product_settings(obs: Observations, profile: Profile) -> ControlResult:
    """HOST-TELEMETRY: the product's settings state the profile's mode and telemetry."""
    if obs.host is None:
        return ControlResult("HOST-TELEMETRY", Verdict.NOT_APPLICABLE, NO_HOST)
    settings = obs.host.product_settings
    if settings is None:
        return ControlResult(
            "HOST-TELEMETRY",
            Verdict.INCONCLUSIVE,
            "no product settings file was read (set host.settings in the profile)",
        )
    evidence = raw_output_name("settings")
    findings: list[Finding] = []
    mode = settings.get("mode")
    if mode is not None and str(mode).strip().lower() != profile.mode.value:
        findings.append(
            Finding(
                Severity.VIOLATION,
                f"settings mode = {mode} but the profile is {profile.mode.value}",
                evidence_file=evidence,
            )
        )
    expected = "disabled" if profile.mode is Mode.AIR_GAPPED else profile.telemetry.value
    telemetry = settings.get("telemetry")
    if telemetry is None:
        findings.append(
            Finding(
                Severity.VIOLATION if expected == Telemetry.DISABLED.value else Severity.WARNING,
                "the settings do not state telemetry (the product's default is on, CT 3)",
                evidence_file=evidence,
            )
        )
    elif _flag(telemetry) != expected:
        findings.append(
            Finding(
                Severity.VIOLATION,
                f"settings telemetry = {telemetry} but the profile expects {expected}",
                evidence_file=evidence,
            )
        )
    violations = [f for f in findings if f.severity is Severity.VIOLATION]
    if violations:
        return ControlResult("HOST-TELEMETRY", Verdict.FAIL, violations[0].summary, tuple(findings))
    return ControlResult(
        "HOST-TELEMETRY",
        Verdict.PASS,
        f"settings state mode {mode or '(not stated)'}, telemetry {telemetry}",
        tuple(findings),
    )
