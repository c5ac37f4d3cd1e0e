"""Recognise operating-system and platform traffic, so a finding says what it looks like.

controls.md decision 5: platform traffic (revocation checks, certificate-list updates,
update services, connectivity probes, time sync) is judged like any other traffic, and
the finding names what it looks like ("Windows certificate revocation fetch") so the
customer knows which component to fix. These labels never change a verdict; they only
go into `Finding.facts["looks_like"]`.

Rules are tried most specific first: a name the flow carries or resolved to, then the
HTTP request on the flow, then the transport and port.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from conformance.names import CLOUD_NAME_PATTERNS, matches
from conformance.observe.records import Flow, HttpRequest

# Distinct names whose label is remembered: a report names the same few services again and
# again; bounded for a long-lived process (`watch`).
MAX_REMEMBERED_NAMES = 4096

# (patterns, label). Order matters: the first rule with a matching pattern wins, so a
# specific name (ctldl.windowsupdate.com) comes before its parent (*.windowsupdate.com).
_NAME_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (CLOUD_NAME_PATTERNS, "Imagicle cloud service"),
    (("ctldl.windowsupdate.com",), "Windows certificate trust list update"),
    (("crl.microsoft.com", "*.crl.microsoft.com"), "Windows certificate revocation fetch"),
    (
        ("ocsp.msocsp.com", "oneocsp.microsoft.com", "*.ocsp.msocsp.com"),
        "Windows certificate revocation check (OCSP)",
    ),
    (
        (
            "windowsupdate.com",
            "*.windowsupdate.com",
            "*.windowsupdate.microsoft.com",
            "update.microsoft.com",
            "*.update.microsoft.com",
            "*.delivery.mp.microsoft.com",
            "*.prod.do.dsp.mp.microsoft.com",
        ),
        "Windows Update",
    ),
    (
        ("msftconnecttest.com", "*.msftconnecttest.com", "msftncsi.com", "*.msftncsi.com"),
        "Windows network connectivity probe (NCSI)",
    ),
    (("time.windows.com",), "Windows time sync (time.windows.com)"),
    (
        ("*.events.data.microsoft.com", "*.data.microsoft.com"),
        "Windows telemetry (Connected User Experiences)",
    ),
    (
        (
            "smartscreen.microsoft.com",
            "*.smartscreen.microsoft.com",
            "*.smartscreen-prod.microsoft.com",
        ),
        "Windows SmartScreen check",
    ),
    (
        ("dc.services.visualstudio.com", "*.applicationinsights.azure.com"),
        "Azure Application Insights telemetry",
    ),
    (
        ("login.microsoftonline.com", "login.live.com", "login.windows.net"),
        "Microsoft account / Entra ID sign-in",
    ),
    (("*.sentry.io", "sentry.io"), "Sentry error reporting"),
    (
        ("connectivitycheck.gstatic.com", "connectivitycheck.android.com", "clients3.google.com"),
        "connectivity probe (Android/ChromeOS style)",
    ),
    (
        ("connectivity-check.ubuntu.com", "nmcheck.gnome.org", "network-test.debian.org"),
        "Linux NetworkManager connectivity probe",
    ),
    (("captive.apple.com",), "Apple captive-portal probe"),
    (("detectportal.firefox.com",), "Firefox captive-portal probe"),
    (
        (
            "pool.ntp.org",
            "*.pool.ntp.org",
            "time.google.com",
            "time.apple.com",
            "time.cloudflare.com",
            "ntp.ubuntu.com",
            "*.ntp.org",
        ),
        "public NTP time sync",
    ),
    (("motd.ubuntu.com",), "Ubuntu MOTD news fetch"),
    (("changelogs.ubuntu.com",), "Ubuntu release-upgrade check"),
    (("api.snapcraft.io", "*.snapcraftcontent.com"), "snap store updates"),
    (
        (
            "archive.ubuntu.com",
            "*.archive.ubuntu.com",
            "security.ubuntu.com",
            "deb.debian.org",
            "security.debian.org",
            "cdn.redhat.com",
            "mirrors.fedoraproject.org",
        ),
        "Linux package updates",
    ),
    (("*.lencr.org",), "Let's Encrypt certificate revocation check"),
)

# First-label prefixes that certificate authorities use for revocation services
# (ocsp.digicert.com, crl3.digicert.com, ocsp.sectigo.com, crl.globalsign.com, ...).
_OCSP_PREFIX = "ocsp"
_CRL_PREFIX = "crl"

# Single-label names Windows asks for on its own: proxy and tunnel auto-discovery.
_LOCAL_DISCOVERY = {"wpad": "WPAD proxy auto-discovery", "isatap": "ISATAP tunnel discovery"}

# HTTP request-target endings and paths; checked after names.
_HTTP_PATH_RULES: tuple[tuple[str, str], ...] = (
    ("/msdownload/update/v3/static/trustedr/", "Windows certificate trust list update"),
    ("/connecttest.txt", "Windows network connectivity probe (NCSI)"),
    ("/ncsi.txt", "Windows network connectivity probe (NCSI)"),
    ("/generate_204", "connectivity probe (Android/ChromeOS style)"),
    ("/hotspot-detect.html", "Apple captive-portal probe"),
    ("/check_network_status.txt", "Linux NetworkManager connectivity probe"),
    ("/canonical.html", "Firefox captive-portal probe"),
)

# (transport, port) -> label, for either end of the flow's responder side. These name
# the service, so a finding reads "NTP time sync" rather than "udp 123".
_PORT_RULES: dict[tuple[str, int], str] = {
    ("udp", 123): "NTP time sync",
    ("udp", 53): "DNS query",
    ("tcp", 53): "DNS query",
    ("tcp", 853): "DNS over TLS",
    ("udp", 5353): "mDNS name resolution",
    ("udp", 5355): "LLMNR name resolution",
    ("tcp", 5355): "LLMNR name resolution",
    ("udp", 137): "NetBIOS name service",
    ("udp", 138): "NetBIOS datagram service",
    ("udp", 1900): "SSDP discovery",
    ("udp", 3702): "WS-Discovery",
    ("udp", 67): "DHCP",
    ("udp", 68): "DHCP",
    ("udp", 546): "DHCPv6",
    ("udp", 547): "DHCPv6",
    ("udp", 514): "syslog",
    ("udp", 161): "SNMP",
    ("udp", 162): "SNMP trap",
    ("tcp", 25): "SMTP mail",
    ("tcp", 587): "SMTP mail submission",
    ("tcp", 465): "SMTP mail submission (TLS)",
    ("tcp", 389): "LDAP",
    ("tcp", 636): "LDAPS",
    ("tcp", 88): "Kerberos",
    ("udp", 88): "Kerberos",
    ("tcp", 445): "SMB file sharing",
    ("tcp", 3389): "RDP",
    ("tcp", 22): "SSH",
    ("udp", 5060): "SIP",
    ("tcp", 5060): "SIP",
    ("tcp", 5061): "SIP over TLS",
    ("tcp", 80): "HTTP",
    ("tcp", 443): "HTTPS",
    ("udp", 443): "QUIC (HTTP/3)",
}

# Port labels of name-resolution protocols: the names their flows carry are the question.
_NAME_RESOLUTION = frozenset(
    {"DNS query", "mDNS name resolution", "LLMNR name resolution", "NetBIOS name service"}
)

# ICMP/ICMPv6 types (carried in Flow.initiator_port) worth naming.
_ICMP_TYPES: dict[tuple[str, int], str] = {
    ("icmp", 8): "ping (ICMP echo)",
    ("icmp", 13): "ICMP timestamp request",
    ("icmpv6", 128): "ping (ICMPv6 echo)",
    ("icmpv6", 133): "IPv6 router discovery",
    ("icmpv6", 135): "IPv6 neighbour discovery",
    ("icmpv6", 143): "IPv6 multicast listener report",
}


@functools.lru_cache(maxsize=MAX_REMEMBERED_NAMES)
def name_looks_like(name: str) -> str | None:
    """What a DNS name is used for, when it is a known platform or cloud service name."""
    # `matches` normalises (decision 4); the prefix checks below only need lower case.
    text = name.strip().lower().rstrip(".")
    if not text:
        return None
    for patterns, label in _NAME_RULES:
        if any(matches(pattern, text) for pattern in patterns):
            return label
    first, _, rest = text.partition(".")
    if not rest:
        return _LOCAL_DISCOVERY.get(first)
    if first.startswith(_OCSP_PREFIX):
        return "certificate revocation check (OCSP)"
    if first.startswith(_CRL_PREFIX):
        return "certificate revocation list (CRL) fetch"
    return None


def request_looks_like(request: HttpRequest) -> str | None:
    """What an HTTP request is for, judged by its host and request target."""
    if request.host:
        label = name_looks_like(request.host.rsplit(":", 1)[0])
        if label:
            return label
    path = request.target.lower()
    if "://" in path:  # absolute form (a proxy request): look at the path part only
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    path = path.split("?", 1)[0]
    for needle, label in _HTTP_PATH_RULES:
        if needle in path:
            return label
    if path.endswith(".crl"):
        return "certificate revocation list (CRL) fetch"
    if path.endswith((".crt", ".cer", ".p7c")):
        return "CA certificate fetch (AIA)"
    # An OCSP GET carries the DER request base64-encoded in the path (RFC 6960 A.1):
    # a SEQUENCE, so it starts with "MF" or "ME" for the usual sizes.
    if request.method == "GET" and path.startswith(("/mf", "/me")) and len(path) > 40:
        return "certificate revocation check (OCSP)"
    return None


def looks_like(
    flow: Flow, names: Iterable[str] = (), requests: Iterable[HttpRequest] = ()
) -> str | None:
    """A short label for what a flow looks like, or None when nothing is recognised.

    `names` are the names tied to the flow (TLS SNI, HTTP Host, DNS names that resolved
    to its responder, or the names a DNS flow asked for); `requests` are its HTTP requests.
    """
    named = next(filter(None, map(name_looks_like, names)), None)
    port_label = _PORT_RULES.get((flow.transport, flow.responder_port))
    if port_label in _NAME_RESOLUTION:
        # A DNS flow's names are what it asked for, not what it is: "DNS query for: Windows Update".
        return f"{port_label} for: {named}" if named else port_label
    if named:
        return named
    for request in requests:
        label = request_looks_like(request)
        if label:
            return label
    if flow.transport in ("icmp", "icmpv6"):
        return _ICMP_TYPES.get((flow.transport, flow.initiator_port))
    return port_label or _PORT_RULES.get((flow.transport, flow.initiator_port))
