"""Build the lab's namespaces and links from the addressing plan (topology.py).

Four namespaces per run: the target, the on-prem segment (a bridge whose own addresses are
the on-prem services), the perimeter router, and the internet segment (every outside
address on one interface). Veth pairs are created directly inside their namespaces, so no
interface ever appears in the namespace the harness runs in, and no route leads out of
the lab.
"""

from __future__ import annotations

from conformance.lab import topology as topo
from conformance.lab.netns import LabState, ip_batch, write_sysctl

V4_PREFIX = 24
V6_PREFIX = 64


def _addr(address: str, dev: str) -> str:
    if ":" in address:
        return f"address add {address}/{V6_PREFIX} dev {dev} nodad"  # no 1-2 s DAD wait
    return f"address add {address}/{V4_PREFIX} dev {dev}"


def build(state: LabState, ns: topo.Namespaces) -> None:
    """Create the namespaces, links, addresses and routes of one lab run."""
    resolvers = {
        ns.target: topo.DNS_V4,
        ns.onprem: topo.DNS_V4,
        ns.router: None,
        ns.internet: topo.RESOLVER_V4,
    }
    for namespace, resolver in resolvers.items():
        state.add_namespace(namespace, resolver)
    ip_batch(
        None,
        [
            f"link add eth0 netns {ns.target} type veth peer name p-target netns {ns.onprem}",
            f"link add onprem netns {ns.router} type veth peer name p-router netns {ns.onprem}",
            f"link add inet netns {ns.router} type veth peer name eth0 netns {ns.internet}",
        ],
    )
    ip_batch(
        ns.target,
        [
            _addr(topo.TARGET_V4, topo.TARGET_LINK),
            _addr(topo.TARGET_V6, topo.TARGET_LINK),
            f"link set {topo.TARGET_LINK} up",
            f"route add default via {topo.ROUTER_ONPREM_V4}",
            f"route add ::/0 via {topo.ROUTER_ONPREM_V6}",
        ],
    )
    ip_batch(
        ns.onprem,
        [
            "link add br0 type bridge forward_delay 0",
            "link set p-target master br0",
            "link set p-router master br0",
            "link set br0 up",
            "link set p-target up",
            "link set p-router up",
            *(_addr(a, "br0") for a in (*topo.ONPREM_SERVICE_V4, *topo.ONPREM_SERVICE_V6)),
            f"route add default via {topo.ROUTER_ONPREM_V4}",
            f"route add ::/0 via {topo.ROUTER_ONPREM_V6}",
        ],
    )
    ip_batch(
        ns.router,
        [
            _addr(topo.ROUTER_ONPREM_V4, "onprem"),
            _addr(topo.ROUTER_ONPREM_V6, "onprem"),
            _addr(topo.ROUTER_INET_V4, "inet"),
            _addr(topo.ROUTER_INET_V4_B, "inet"),
            _addr(topo.ROUTER_INET_V6, "inet"),
            "link set onprem up",
            "link set inet up",
        ],
    )
    write_sysctl(
        ns.router,
        {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"},
    )
    ip_batch(
        ns.internet,
        [
            *(_addr(a, "eth0") for a in (*topo.INTERNET_V4_ADDRESSES, *topo.INTERNET_V6_ADDRESSES)),
            "link set eth0 up",
            f"route add {topo.ONPREM_V4} via {topo.ROUTER_INET_V4}",
            f"route add {topo.ONPREM_V6} via {topo.ROUTER_INET_V6}",
        ],
    )
