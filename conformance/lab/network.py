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


def _veth(name: str, namespace: str, peer: str, peer_ns: str) -> str:
    return f"link add name {name} netns {namespace} type veth peer name {peer} netns {peer_ns}"


def build(state: LabState, ns: topo.Namespaces) -> None:
    """Create the namespaces, links, addresses and routes of one lab run.

    Every device is named by keyword (`name`, `dev`): iproute2 7 reads a bare `inet` after
    `link add` as a keyword of its own ("Command line is not complete", Debian testing).
    """
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
            _veth("eth0", ns.target, "p-target", ns.onprem),
            _veth("onprem", ns.router, "p-router", ns.onprem),
            _veth("inet", ns.router, "eth0", ns.internet),
        ],
    )
    ip_batch(
        ns.target,
        [
            _addr(topo.TARGET_V4, topo.TARGET_LINK),
            _addr(topo.TARGET_V6, topo.TARGET_LINK),
            f"link set dev {topo.TARGET_LINK} up",
            f"route add default via {topo.ROUTER_ONPREM_V4}",
            f"route add ::/0 via {topo.ROUTER_ONPREM_V6}",
        ],
    )
    ip_batch(
        ns.onprem,
        [
            "link add name br0 type bridge forward_delay 0",
            "link set dev p-target master br0",
            "link set dev p-router master br0",
            "link set dev br0 up",
            "link set dev p-target up",
            "link set dev p-router up",
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
            "link set dev onprem up",
            "link set dev inet up",
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
            "link set dev eth0 up",
            f"route add {topo.ONPREM_V4} via {topo.ROUTER_INET_V4}",
            f"route add {topo.ONPREM_V6} via {topo.ROUTER_INET_V6}",
        ],
    )
