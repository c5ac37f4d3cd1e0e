"""The customer's perimeter, played by nftables in the router namespace.

Policies (`lab: {perimeter: ...}` in a profile, default from the mode):
- `closed` (air-gapped): nothing from the environment leaves;
- `cloud` (hybrid): TCP 443/636 from the target (or only the proxy, when one is configured)
  and DNS from the on-prem resolver to the outside resolver;
- `open`: everything leaves (a broken perimeter, to show AG-PERIMETER failing).
In every policy one pinhole lets the outside scanner (203.0.113.66) reach the target over
TCP: a real perimeter may have one too, and without it AG-INGRESS would only ever see the
perimeter's behaviour, never the target's. Counters (not kernel log lines, which a
non-initial namespace does not get by default) record what was dropped; they are read at
teardown into evidence/lab/perimeter.json.
"""

from __future__ import annotations

import json
from typing import Final

from conformance.lab import topology as topo
from conformance.lab.netns import in_netns, run
from conformance.profile_model import PERIMETER_POLICIES

POLICIES: Final = PERIMETER_POLICIES  # the words of `lab.perimeter`
TABLE: Final = "ucxl_perimeter"
CLOUD_PORTS: Final = "{ 443, 636 }"  # CT 2, 6: HTTPS and LDAPS to the Imagicle cloud


def ruleset(policy: str, proxied: bool) -> str:
    """The nftables script for `policy` (one of POLICIES)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown perimeter policy {policy!r}; one of {', '.join(POLICIES)}")
    allow: list[str] = []
    if policy == "cloud":
        sources_v4 = topo.PROXY_V4 if proxied else f"{topo.TARGET_V4}, {topo.PROXY_V4}"
        allow.append(
            f"ip saddr {{ {sources_v4} }} tcp dport {CLOUD_PORTS}"
            " counter name egress_allowed accept"
        )
        if not proxied:
            allow.append(
                f"ip6 saddr {topo.TARGET_V6} tcp dport {CLOUD_PORTS}"
                " counter name egress_allowed accept"
            )
        allow.append(
            f"ip saddr {topo.DNS_V4} ip daddr {topo.RESOLVER_V4} meta l4proto {{ udp, tcp }}"
            " th dport 53 counter name egress_allowed accept"
        )
    elif policy == "open":
        allow.append("counter name egress_allowed accept")
    egress = "\n".join(f'    iifname "onprem" oifname "inet" {rule}' for rule in allow)
    return f"""
table inet {TABLE} {{
  counter egress_allowed {{ }}
  counter egress_dropped {{ }}
  counter scanner_allowed {{ }}
  counter ingress_dropped {{ }}
  chain forward {{
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
{egress}
    iifname "inet" oifname "onprem" ip saddr {topo.SCANNER_V4} ip daddr {topo.TARGET_V4} \
meta l4proto tcp counter name scanner_allowed accept
    iifname "onprem" counter name egress_dropped drop
    counter name ingress_dropped drop
  }}
}}
"""


def install(namespace: str, policy: str, proxied: bool) -> None:
    """Load the perimeter into the router namespace."""
    run(in_netns(namespace, ["nft", "-f", "-"]), stdin=ruleset(policy, proxied))


def counters(namespace: str) -> str:
    """The perimeter's counters as JSON text (packets and bytes per counter)."""
    out = run(in_netns(namespace, ["nft", "-j", "list", "counters"]), check=False)
    result: dict[str, dict[str, int]] = {}
    try:
        for item in json.loads(out).get("nftables", []):
            counter = item.get("counter")
            if isinstance(counter, dict):
                result[str(counter["name"])] = {
                    "packets": int(counter.get("packets", 0)),
                    "bytes": int(counter.get("bytes", 0)),
                }
    except (ValueError, KeyError, TypeError, AttributeError):
        return json.dumps({"error": "could not read nftables counters", "raw": out[:2000]})
    return json.dumps(result, indent=2)
