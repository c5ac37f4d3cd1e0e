"""The lab's fixed addressing plan: segments, hosts, names (docs/lab.md has the diagram).

Only documentation ranges are used (RFC 5737, RFC 3849), and only inside namespaces the lab
creates, so nothing here can ever collide with a real network. The plan is data: the lab
builds the namespaces from it, the target's config and the service configs read it, and a
JSON copy goes into the evidence so a report reader sees what each address was.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Final

PREFIX: Final = "ucxl-"
"""Every namespace the lab creates starts with this; stale-lab cleanup keys on it."""

ONPREM_V4: Final = "192.0.2.0/24"
ONPREM_V6: Final = "2001:db8:1::/64"
INTERNET_V4: Final = ("203.0.113.0/24", "198.51.100.0/24")
INTERNET_V6: Final = "2001:db8:ffff::/64"

# On-prem segment (the Customer Environment).
TARGET_V4: Final = "192.0.2.10"
TARGET_V6: Final = "2001:db8:1::10"
ROUTER_ONPREM_V4: Final = "192.0.2.1"
ROUTER_ONPREM_V6: Final = "2001:db8:1::1"
CUCM_V4: Final = "192.0.2.20"
LDAP_V4: Final = "192.0.2.30"
DNS_V4: Final = "192.0.2.53"
PROXY_V4: Final = "192.0.2.80"
PROXY_PORT: Final = 3128
NTP_V4: Final = "192.0.2.123"
ADMIN_V4: Final = "192.0.2.200"
ADMIN_PORT: Final = 8080  # the target's admin API (stimuli), on its on-prem address
UNDECLARED_V4: Final = "192.0.2.99"  # an on-prem address no lab profile declares (AG-ONPREM)

# "Internet" segment: the perimeter router's outside leg, the cloud stand-ins, canaries.
ROUTER_INET_V4: Final = "203.0.113.1"
ROUTER_INET_V4_B: Final = "198.51.100.1"
ROUTER_INET_V6: Final = "2001:db8:ffff::1"
API_V4: Final = "203.0.113.10"
API_V6: Final = "2001:db8:ffff::10"
GRPC_V4: Final = "203.0.113.11"
GRPC_V6: Final = "2001:db8:ffff::11"
LDAPS_V4: Final = "203.0.113.12"
LDAPS_V6: Final = "2001:db8:ffff::12"
SCANNER_V4: Final = "203.0.113.66"  # the outside host that tries to connect in (AG-INGRESS)
UNDOCUMENTED_V4: Final = "203.0.113.99"  # a non-Imagicle service (HY-DEST)
CANARY_V4: Final = "203.0.113.100"
CANARY_V6: Final = "2001:db8:ffff::100"
CANARY_NTP_V4: Final = "203.0.113.123"
RESOLVER_V4: Final = "198.51.100.53"

# Names. Internal names live under a zone only the on-prem resolver serves.
INTERNAL_ZONE: Final = "lab.internal"
API_NAME: Final = "api.imagicle.com"
GRPC_NAME: Final = "grpc.imagicle.com"
LDAPS_NAME: Final = "ldaps.imagicle.cloud"
UNDOCUMENTED_NAME: Final = "updates.example.net"
CLOUD_ZONES: Final = ("imagicle.com", "imagicle.cloud", "example.net")
"""Zones the on-prem resolver forwards to the outside resolver in hybrid mode."""


@dataclass(frozen=True, slots=True)
class Host:
    """One address of the lab and what plays it."""

    name: str  # DNS name (internal hosts under INTERNAL_ZONE)
    role: str
    segment: str  # "on-prem" | "internet"
    v4: str
    v6: str | None
    played_by: str  # the program answering there


HOSTS: Final[tuple[Host, ...]] = (
    Host("ucx.lab.internal", "UCX target", "on-prem", TARGET_V4, TARGET_V6, "ucx_target.py"),
    Host(
        "gw.lab.internal",
        "perimeter router",
        "on-prem",
        ROUTER_ONPREM_V4,
        ROUTER_ONPREM_V6,
        "nftables",
    ),
    Host(
        "cucm.lab.internal",
        "CUCM stand-in",
        "on-prem",
        CUCM_V4,
        "2001:db8:1::20",
        "standins.py onprem (SIP 5060 udp/tcp, HTTPS 8443)",
    ),
    Host("ad.lab.internal", "LDAP directory", "on-prem", LDAP_V4, None, "slapd (389, 636)"),
    Host("dns.lab.internal", "on-prem DNS", "on-prem", DNS_V4, None, "dnsmasq"),
    Host("proxy.lab.internal", "HTTP proxy", "on-prem", PROXY_V4, None, "squid (3128)"),
    Host("ntp.lab.internal", "on-prem NTP", "on-prem", NTP_V4, None, "standins.py onprem"),
    Host("admin.lab.internal", "admin workstation", "on-prem", ADMIN_V4, None, "stimuli"),
    Host(
        "syslog.lab.internal",
        "undeclared on-prem host",
        "on-prem",
        UNDECLARED_V4,
        None,
        "nothing (the kernel answers port unreachable)",
    ),
    Host(
        "gw-out",
        "perimeter router, outside",
        "internet",
        ROUTER_INET_V4,
        ROUTER_INET_V6,
        "nftables",
    ),
    Host(
        API_NAME,
        "Imagicle API stand-in",
        "internet",
        API_V4,
        API_V6,
        "standins.py cloud (HTTPS 443, licensing + telemetry)",
    ),
    Host(
        GRPC_NAME,
        "Imagicle gRPC stand-in",
        "internet",
        GRPC_V4,
        GRPC_V6,
        "standins.py cloud (HTTP/2 over TLS 443)",
    ),
    Host(
        LDAPS_NAME,
        "Imagicle LDAPS stand-in",
        "internet",
        LDAPS_V4,
        LDAPS_V6,
        "standins.py cloud (LDAPS 636)",
    ),
    Host(
        UNDOCUMENTED_NAME,
        "non-Imagicle service",
        "internet",
        UNDOCUMENTED_V4,
        None,
        "standins.py cloud (HTTPS 443)",
    ),
    Host("scanner", "outside scanner", "internet", SCANNER_V4, None, "standins.py cloud"),
    Host(
        "canary",
        "outside canary",
        "internet",
        CANARY_V4,
        CANARY_V6,
        "standins.py cloud (TCP 80/443, UDP 53/123, ICMP)",
    ),
    Host("canary-ntp", "public NTP canary", "internet", CANARY_NTP_V4, None, "standins.py cloud"),
    Host("resolver", "outside DNS resolver", "internet", RESOLVER_V4, None, "dnsmasq"),
)

ONPREM_SERVICE_V4: Final = (CUCM_V4, LDAP_V4, DNS_V4, PROXY_V4, NTP_V4, ADMIN_V4, UNDECLARED_V4)
ONPREM_SERVICE_V6: Final = ("2001:db8:1::20",)
INTERNET_V4_ADDRESSES: Final = tuple(
    h.v4 for h in HOSTS if h.segment == "internet" and h.v4 not in (ROUTER_INET_V4,)
)
INTERNET_V6_ADDRESSES: Final = tuple(
    h.v6 for h in HOSTS if h.segment == "internet" and h.v6 and h.v6 != ROUTER_INET_V6
)


@dataclass(frozen=True, slots=True)
class Namespaces:
    """The names of one lab run's namespaces (unique per run, all under PREFIX)."""

    run_id: str

    @property
    def target(self) -> str:
        return f"{PREFIX}{self.run_id}-target"

    @property
    def onprem(self) -> str:
        return f"{PREFIX}{self.run_id}-onprem"

    @property
    def router(self) -> str:
        return f"{PREFIX}{self.run_id}-router"

    @property
    def internet(self) -> str:
        return f"{PREFIX}{self.run_id}-inet"

    def all(self) -> tuple[str, ...]:
        return (self.target, self.onprem, self.router, self.internet)


TARGET_LINK: Final = "eth0"
"""The target's only interface, inside its namespace: the captured link."""


def describe(namespaces: Namespaces, mode: str, perimeter: str) -> str:
    """JSON text describing this run's topology (an evidence file)."""
    return json.dumps(
        {
            "run_id": namespaces.run_id,
            "mode": mode,
            "perimeter": perimeter,
            "captured_link": f"{namespaces.target}:{TARGET_LINK}",
            "namespaces": {
                "target": namespaces.target,
                "on-prem segment (bridge br0 + services)": namespaces.onprem,
                "perimeter router (nftables)": namespaces.router,
                "internet segment": namespaces.internet,
            },
            "environment": [ONPREM_V4, ONPREM_V6],
            "outside": [*INTERNET_V4, INTERNET_V6],
            "hosts": [asdict(h) for h in HOSTS],
        },
        indent=2,
    )
