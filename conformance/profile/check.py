"""`profile check`: what a loaded profile means, in plain words, and mistakes that are not errors.

The loader refuses what is wrong (exit 3, one line); this module reads a profile that loaded
and says what counts as inside, what each endpoint allows, which controls the mode and
settings make applicable and what each needs, then warns about what is legal but likely a
mistake. Each warning has a code (`overlap`, `enormous-network`, ...), the key path it
concerns and one sentence; docs/profile.md lists them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from conformance.catalog import EvidenceKind, applies_when, load_catalog
from conformance.profile_model import (
    TLS_VERSIONS,
    CloudEndpoint,
    IPNetwork,
    Mode,
    Profile,
    Telemetry,
)

# A network this large is more than a site: everything in it counts as on-prem, so a leak to
# any of its addresses passes AG-EGRESS. RFC 1918's 172.16.0.0/12 is the largest private
# block below a /8; a /16 (65,536 addresses) is already a campus.
ENORMOUS_IPV4_PREFIX: Final = 16
# RFC 6177: a site gets a /48 (65,536 /64 subnets); a shorter prefix is more than a site.
ENORMOUS_IPV6_PREFIX: Final = 48
LOWEST_SOUND_TLS: Final = "1.2"  # RFC 8996 deprecates TLS 1.0 and 1.1
PROXY_PORTS: Final = frozenset({3128, 8080, 8888, 8118})  # squid, common HTTP proxy ports

# Without the Public Suffix List: two-label suffixes under a country code that are public
# (co.uk, com.au, ...), so `*.co.uk` is flagged as broader than one registrable domain.
_PUBLIC_SECOND_LEVEL: Final = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or"})


@dataclass(frozen=True, slots=True)
class ProfileWarning:
    """A legal profile entry that is likely a mistake."""

    code: str
    key: str  # the key path it concerns, as errors name them
    message: str

    def __str__(self) -> str:
        return f"warning: {self.key}: {self.message} [{self.code}]"


def warnings(profile: Profile) -> tuple[ProfileWarning, ...]:
    """Every warning about `profile`, in the order of its keys."""
    return (
        *_network_warnings(profile),
        *_duplicates(profile),
        *_proxy_warnings(profile),
        *_cloud_warnings(profile),
    )


def _network_warnings(profile: Profile) -> Iterator[ProfileWarning]:
    networks = profile.environment.networks
    for index, network in enumerate(networks):
        key = f"environment.networks[{index}]"
        limit = ENORMOUS_IPV4_PREFIX if network.version == 4 else ENORMOUS_IPV6_PREFIX
        if network.prefixlen == 0:
            yield ProfileWarning(
                "enormous-network",
                key,
                f"{network} makes every IPv{network.version} address on-prem:"
                " no flow to one can ever fail AG-EGRESS or HY-DEST",
            )
        elif network.prefixlen < limit:
            yield ProfileWarning(
                "enormous-network",
                key,
                f"{network} holds {_count(network)} addresses, more than one site"
                f" (/{limit}); a leak to any of them counts as on-prem and passes AG-EGRESS",
            )
        for other_index, other in enumerate(networks[:index]):
            if other.version != network.version or not network.overlaps(other):
                continue
            where = f"environment.networks[{other_index}] {other}"
            if network == other:
                text = f"{network} is listed twice (first as {where})"
            elif network.subnet_of(other):  # type: ignore[arg-type]
                text = f"{network} lies inside {where}; it adds nothing"
            elif other.subnet_of(network):  # type: ignore[arg-type]
                text = f"{network} holds {where}; the smaller one adds nothing"
            else:  # pragma: no cover - CIDR blocks either nest or do not overlap
                text = f"{network} overlaps {where}"
            yield ProfileWarning("overlap", key, text)


def _count(network: IPNetwork) -> str:
    return f"{network.num_addresses:,}" if network.version == 4 else f"2^{128 - network.prefixlen}"


def _duplicates(profile: Profile) -> Iterator[ProfileWarning]:
    seen: dict[object, int] = {}
    for index, address in enumerate(profile.target.addresses):
        if address in seen:
            yield ProfileWarning(
                "duplicate",
                f"target.addresses[{index}]",
                f"{address} is listed twice (first as target.addresses[{seen[address]}])",
            )
        seen.setdefault(address, index)
    endpoints = profile.environment.endpoints
    by_address: dict[object, int] = {}
    names: dict[str, list[int]] = defaultdict(list)
    for index, endpoint in enumerate(endpoints):
        key = f"environment.endpoints[{index}]"
        if endpoint.address in profile.target.addresses:
            yield ProfileWarning(
                "endpoint-is-target",
                f"{key}.address",
                f"{endpoint.address} is the target itself: the target talking to itself is"
                " never judged, so this endpoint allows nothing",
            )
        if endpoint.address in by_address:
            first = by_address[endpoint.address]
            yield ProfileWarning(
                "duplicate",
                f"{key}.address",
                f"{endpoint.address} is also environment.endpoints[{first}]"
                f" ({endpoints[first].name}); findings name the first entry that matches,"
                " so merge their ports into one endpoint",
            )
        by_address.setdefault(endpoint.address, index)
        names[endpoint.name].append(index)
        repeated = [str(port) for port, count in Counter(endpoint.ports).items() if count > 1]
        if repeated:
            yield ProfileWarning("duplicate", f"{key}.ports", f"{', '.join(repeated)} listed twice")
    for name, indexes in names.items():
        if len(indexes) > 1:
            yield ProfileWarning(
                "duplicate",
                f"environment.endpoints[{indexes[-1]}].name",
                f'"{name}" names {len(indexes)} endpoints'
                f" ({', '.join(str(endpoints[i].address) for i in indexes)}); fine for two"
                " servers of one service (two domain controllers), else rename one so"
                " findings say which",
            )


def _proxy_warnings(profile: Profile) -> Iterator[ProfileWarning]:
    proxy = profile.proxy
    for index, endpoint in enumerate(profile.environment.endpoints):
        key = f"environment.endpoints[{index}]"
        if proxy is not None and endpoint.address == proxy.address:
            yield ProfileWarning(
                "proxy-in-endpoints",
                key,
                f"{endpoint.name} ({endpoint.address}) is the proxy, declared by `proxy:`:"
                " PX-ONLY and PX-CONNECT judge the traffic to it; as an on-prem endpoint it"
                " only repeats it, and a port listed here is not a second proxy",
            )
        elif proxy is None and profile.mode is Mode.HYBRID and _looks_like_proxy(endpoint.name):
            ports = ", ".join(str(p) for p in endpoint.ports)
            yield ProfileWarning(
                "proxy-in-endpoints",
                key,
                f"{endpoint.name} ({endpoint.address}, {ports}) looks like a proxy but the"
                " profile has no `proxy:`; if cloud traffic must go through it, write"
                " `proxy: address:port`, so PX-ONLY fails any direct connection",
            )


def _looks_like_proxy(name: str) -> bool:
    return "proxy" in name.lower() or "squid" in name.lower()


def _cloud_warnings(profile: Profile) -> Iterator[ProfileWarning]:
    cloud = profile.cloud
    if cloud is None:
        return
    if TLS_VERSIONS.index(cloud.min_tls) < TLS_VERSIONS.index(LOWEST_SOUND_TLS):
        yield ProfileWarning(
            "weak-tls",
            "cloud.min_tls",
            f"{cloud.min_tls} lets HY-TLS pass TLS {cloud.min_tls} connections; RFC 8996"
            f" deprecates TLS 1.0 and 1.1, and Imagicle's cloud offers {LOWEST_SOUND_TLS}"
            " and later",
        )
    seen: dict[str, int] = {}
    for index, endpoint in enumerate(cloud.endpoints):
        key = f"cloud.endpoints[{index}]"
        if str(endpoint) in seen:
            yield ProfileWarning(
                "duplicate",
                key,
                f"{endpoint} is listed twice (first as cloud.endpoints[{seen[str(endpoint)]}])",
            )
        seen.setdefault(str(endpoint), index)
        broad = _broader_than_one_domain(endpoint)
        if broad is not None:
            yield ProfileWarning("broad-wildcard", key, broad)


def _broader_than_one_domain(endpoint: CloudEndpoint) -> str | None:
    """Why `*.base` spans more than one registrable domain, or None."""
    if not endpoint.pattern.startswith("*."):
        return None
    base = endpoint.pattern[2:]
    if _is_public_suffix(base):
        return (
            f"{endpoint} matches names under the public suffix {base}, which belong to"
            f" anyone who registers one (a.{base} and b.{base} have different owners);"
            f" name the registrable domain: *.example.{base}"
        )
    return None


def _is_public_suffix(name: str) -> bool:
    """Whether `name` is a public suffix (co.uk, cloudfront.net): names under it are others'.

    Uses the Public Suffix List bundled with publicsuffix2 (a dependency of mitmproxy, which
    the harness depends on), ICANN and private sections both; without it, a two-label name
    of a public second-level word under a country code (co.uk, com.au).
    """
    try:
        import publicsuffix2  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - mitmproxy brings it
        labels = name.split(".")
        return len(labels) == 2 and labels[0] in _PUBLIC_SECOND_LEVEL and len(labels[1]) == 2
    found: Any = publicsuffix2.get_tld(name, strict=True)
    return isinstance(found, str) and found == name


# --- what the profile means ---------------------------------------------------------------

_EVIDENCE_WORDS: Final = {
    EvidenceKind.CAPTURE: "a capture",
    EvidenceKind.LAB: "the lab",
    EvidenceKind.PROBE: "active probes",
    EvidenceKind.CONTENT: "content-level evidence (key log, HAR or the lab's interceptor)",
    EvidenceKind.REPORT: "the report itself",
    EvidenceKind.HOST: "--host",
}


def explain(profile: Profile) -> tuple[str, ...]:
    """What `profile` says, as lines of plain text (no markup)."""
    env = profile.environment
    lines = [f'{profile.source}: "{profile.name}", {profile.mode.value} mode']
    if profile.draft:
        lines.append(
            "  DRAFT: `run` refuses it until every entry is reviewed and `draft: true` removed"
        )
    lines += ["", "Inside (the Customer Environment, HA 1):"]
    for network in env.networks:
        lines.append(f"  {network}  ({_count(network)} addresses)")
    lines += [
        "  Every other address is outside, except link-local, multicast, loopback and broadcast"
        " addresses, which never leave the segment (controls.md decision 6).",
        "",
        f"The target: {', '.join(str(a) for a in profile.target.addresses)}"
        " (only its traffic is judged).",
        "",
        "On-prem endpoints (the integrations the target may open inside, AG-ONPREM):",
    ]
    for endpoint in env.endpoints:
        ports = ", ".join(str(p) for p in endpoint.ports)
        lines.append(f"  {endpoint.name}  {endpoint.address}  {ports}")
    if profile.mode is Mode.HYBRID:
        lines.append(
            "  In hybrid mode they document the site: no hybrid control judges flows inside."
        )
    elif not env.endpoints:
        lines.append("  none: AG-ONPREM is inconclusive (an empty allow-list proves nothing)")
    else:
        undeclared = "fails AG-ONPREM" if env.strict else "is a warning (strict: false)"
        lines.append(f"  A flow the target opens to any other inside address {undeclared}.")
    lines += ["", *_promises(profile), "", "Controls that apply, and what each needs:"]
    for control in load_catalog():
        if not control.applies_to(profile):
            continue
        needs = " and ".join(_EVIDENCE_WORDS[kind] for kind in control.requires)
        extra = ""
        if control.optional:
            enabled = profile.probes.perimeter
            extra = " (enabled: probes.perimeter)" if enabled else " (off: probes.perimeter)"
        when = applies_when(control)
        condition = f", because {when}" if when != "always" else ""
        lines.append(f"  {control.id:<15} {control.title}: needs {needs}{extra}{condition}")
    if profile.minimum_window_seconds is not None:
        lines += [
            "",
            f"A capture window shorter than {profile.minimum_window_seconds:g} s makes every"
            " absence claim inconclusive (observation.minimum_window).",
        ]
    return tuple(lines)


def _promises(profile: Profile) -> list[str]:
    if profile.mode is Mode.AIR_GAPPED:
        return [
            "What air-gapped mode promises (HA 2.2):",
            "  no connection from the target to an outside address, none accepted from outside,",
            "  no Imagicle cloud name looked up or sent, no telemetry, no cloud licensing.",
        ]
    cloud = profile.cloud
    lines = ["What hybrid mode promises here (HA 2.3, CT):"]
    if cloud is None or not cloud.services:
        lines.append(
            "  no Cloud-Connected Service is activated: judged like air-gapped (HY-DEACTIVATED)."
        )
        return lines
    lines.append(f"  activated services: {', '.join(cloud.services)}")
    lines.append("  the target may connect outside only to (HY-DEST):")
    for endpoint in cloud.endpoints:
        transport = "QUIC (HTTP/3) over UDP" if endpoint.transport == "udp" else "TLS over TCP"
        why = f"; justified: {endpoint.justification}" if endpoint.justification else ""
        lines.append(f"    {endpoint}  {transport}{why}")
    lines.append(f"  with TLS {cloud.min_tls} or later, certificates checked (HY-TLS, HY-CERT);")
    if profile.proxy is not None:
        lines.append(
            f"  only through the proxy {profile.proxy}, as CONNECT tunnels, names resolved by"
            " the proxy (PX-ONLY, PX-CONNECT, PX-DNS);"
        )
    else:
        lines.append("  directly (no proxy declared);")
    if profile.telemetry is Telemetry.ENABLED:
        lines.append(
            "  telemetry enabled: only documented fields, in the licensing channel (TM-MINIMAL,"
            " TM-CHANNEL)."
        )
    else:
        lines.append("  telemetry disabled: no telemetry message at all (TM-OPTOUT).")
    for hint in cloud.hints:
        lines.append(f"  {hint.address} is named {hint.name} when nothing else names it (hint)")
    return lines
