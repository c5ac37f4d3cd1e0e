"""Captures whose frames arrive wrapped: mirror encapsulations, tunnels the target opens, and
PPPoE, MPLS and VLAN links (controls.md decision 9). Builders are named after what they do
to the frames of a `tests.defects` capture, which they take as input.

Mirror encapsulations copy whole frames from the target's switch port to a collector: the
outer header (switch -> collector) is the mirroring infrastructure's, never the target's.
The collector sits outside the environment on purpose: judging its header as the target's
traffic would fail AG-EGRESS. Tunnels the target opens carry its packets (Ethernet header
removed) from the target's own address to a tunnel endpoint.

Documentation addresses only (RFC 5737, RFC 3849). Nothing is ever sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence

from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.geneve import GENEVE
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import GRE, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet

from tests.defects import TARGET, TARGET6

MIRROR_SWITCH = "192.0.2.250"  # the switch (or cloud) copying the target's frames
MIRROR_COLLECTOR = "203.0.113.250"  # where the copies go: outside the environment
MIRROR_SWITCH6 = "2001:db8:1::250"
MIRROR_COLLECTOR6 = "2001:db8:ffff::250"
TUNNEL_ENDPOINT_INSIDE = "192.0.2.1"  # an on-prem router terminating the target's tunnel
TUNNEL_ENDPOINT_OUTSIDE = "198.51.100.9"
TUNNEL_ENDPOINT6_INSIDE = "2001:db8:1::1"
TUNNEL_ENDPOINT6_OUTSIDE = "2001:db8:ffff::9"

_SWITCH_MAC = "02:00:00:00:02:50"
_COLLECTOR_MAC = "02:00:00:00:02:51"
_TARGET_MAC = "02:00:" + ipaddress.ip_address(TARGET).packed.hex(":")  # as tests.defects
_ROUTER_MAC = "02:00:00:00:00:01"  # tests.defects' gateway

Wrap = Callable[[Packet, int], Packet]


def _rewrapped(frames: Sequence[Packet], wrap: Wrap) -> list[Packet]:
    """Each frame wrapped by `wrap(frame, index)`, keeping its timestamp."""
    out = []
    for index, frame in enumerate(frames):
        wrapped = wrap(frame, index)
        wrapped.time = frame.time
        out.append(wrapped)
    return out


def _to_collector(six: bool = False) -> Packet:
    if six:
        return Ether(src=_SWITCH_MAC, dst=_COLLECTOR_MAC) / IPv6(
            src=MIRROR_SWITCH6, dst=MIRROR_COLLECTOR6
        )
    return Ether(src=_SWITCH_MAC, dst=_COLLECTOR_MAC) / IP(src=MIRROR_SWITCH, dst=MIRROR_COLLECTOR)


# --- mirror encapsulations -----------------------------------------------------------------


def erspan_ii_mirror(frames: Sequence[Packet]) -> list[Packet]:
    """ERSPAN type II copies (GRE with sequence numbers, 8-byte ERSPAN header)."""
    return _rewrapped(
        frames,
        lambda f, i: (
            _to_collector()
            / GRE(proto=0x88BE, seqnum_present=1, seqence_number=i)
            / ERSPAN_II(session_id=7, index=i)
            / f
        ),
    )


def erspan_iii_mirror(frames: Sequence[Packet], *, platform: bool = False) -> list[Packet]:
    """ERSPAN type III copies; `platform` adds the optional platform-specific subheader."""

    def wrap(f: Packet, i: int) -> Packet:
        header = ERSPAN_III(session_id=7, timestamp=i, o=1 if platform else 0)
        if platform:
            header = header / ERSPAN_PlatformSpecific()
        return _to_collector() / GRE(proto=0x22EB, seqnum_present=1, seqence_number=i) / header / f

    return _rewrapped(frames, wrap)


def vxlan_mirror(frames: Sequence[Packet], port: int = 4789, *, six: bool = False) -> list[Packet]:
    """VXLAN copies (cloud traffic mirroring), on the IANA port or Linux's 8472."""
    return _rewrapped(
        frames,
        lambda f, i: (
            _to_collector(six)
            / UDP(sport=49152 + i % 1000, dport=port)
            / VXLAN(flags=0x08, vni=42)
            / f
        ),
    )


def geneve_mirror(frames: Sequence[Packet]) -> list[Packet]:
    """Geneve copies (AWS Gateway Load Balancer style), Ethernet payload."""
    return _rewrapped(
        frames,
        lambda f, i: (
            _to_collector()
            / UDP(sport=49152 + i % 1000, dport=6081)
            / GENEVE(vni=42, proto=0x6558)
            / f
        ),
    )


MIRRORS: dict[str, Callable[[Sequence[Packet]], list[Packet]]] = {
    "erspan-ii": erspan_ii_mirror,
    "erspan-iii": erspan_iii_mirror,
    "erspan-iii-platform": lambda frames: erspan_iii_mirror(frames, platform=True),
    "vxlan-4789": vxlan_mirror,
    "vxlan-8472": lambda frames: vxlan_mirror(frames, 8472),
    "vxlan-over-ipv6": lambda frames: vxlan_mirror(frames, six=True),
    "geneve": geneve_mirror,
}


def nested_vxlan(frames: Sequence[Packet], depth: int) -> list[Packet]:
    """Each frame wrapped in `depth` VXLAN layers (a crafted capture past any real nesting)."""
    out = list(frames)
    for _ in range(depth):
        out = vxlan_mirror(out)
    return out


# --- tunnels the target opens --------------------------------------------------------------


def _ip_of(frame: Packet) -> Packet:
    """The IP packet inside an Ethernet frame of `tests.defects`."""
    return frame.payload if isinstance(frame, Ether) else frame


def _from_target(frame: Packet) -> bool:
    ip = _ip_of(frame)
    return bool(getattr(ip, "src", None) in (TARGET, TARGET6))


def _tunnelled(
    frames: Sequence[Packet], near: str, far: str, carrier: Callable[[Packet], Packet]
) -> list[Packet]:
    """Every packet of `frames` carried between the target (`near`) and `far`."""
    six = ":" in near

    def wrap(f: Packet, i: int) -> Packet:
        outbound = _from_target(f)
        src, dst = (near, far) if outbound else (far, near)
        macs = (_TARGET_MAC, _ROUTER_MAC) if outbound else (_ROUTER_MAC, _TARGET_MAC)
        outer = IPv6(src=src, dst=dst) if six else IP(src=src, dst=dst)
        return Ether(src=macs[0], dst=macs[1]) / outer / carrier(_ip_of(f))

    return _rewrapped(frames, wrap)


def gre_tunnel(frames: Sequence[Packet], endpoint: str, *, key: int | None = None) -> list[Packet]:
    """The target's GRE tunnel (RFC 2784, with an RFC 2890 key when given) to `endpoint`."""
    return _tunnelled(
        frames,
        TARGET,
        endpoint,
        lambda p: GRE(key_present=key is not None, key=key or 0, proto=_ethertype(p)) / p,
    )


def gre_bridge(frames: Sequence[Packet], endpoint: str) -> list[Packet]:
    """The target's GRE tunnel bridging whole Ethernet frames (transparent Ethernet bridging)."""
    return _rewrapped(
        frames,
        lambda f, i: (
            Ether(src=_TARGET_MAC, dst=_ROUTER_MAC)
            / IP(src=TARGET, dst=endpoint)
            / GRE(proto=0x6558, seqnum_present=1, seqence_number=i)
            / f
        ),
    )


def ipip_tunnel(frames: Sequence[Packet], endpoint: str) -> list[Packet]:
    """IPv4 packets in IPv4 (RFC 2003) from the target to `endpoint`."""
    return _tunnelled(frames, TARGET, endpoint, lambda p: p)


def six_in_four_tunnel(frames: Sequence[Packet], endpoint: str) -> list[Packet]:
    """IPv6 packets in IPv4, protocol 41 (RFC 4213), from the target to `endpoint`."""
    return _tunnelled(frames, TARGET, endpoint, lambda p: p)


def four_in_six_tunnel(frames: Sequence[Packet], endpoint6: str) -> list[Packet]:
    """IPv4 packets in IPv6 (RFC 2473) from the target's IPv6 address to `endpoint6`."""
    return _tunnelled(frames, TARGET6, endpoint6, lambda p: p)


def _ethertype(packet: Packet) -> int:
    return 0x86DD if isinstance(packet, IPv6) else 0x0800


# --- link layers ---------------------------------------------------------------------------


def _relinked(
    frames: Sequence[Packet], middle: Callable[[Packet], Packet], ethertype: int
) -> list[Packet]:
    def wrap(f: Packet, i: int) -> Packet:
        return Ether(src=f.src, dst=f.dst, type=ethertype) / middle(_ip_of(f))

    return _rewrapped(frames, wrap)


def pppoe_session(frames: Sequence[Packet]) -> list[Packet]:
    """Every packet in a PPPoE session (RFC 2516), as on a DSL uplink."""
    return _relinked(
        frames,
        lambda p: PPPoE(sessionid=0x11) / PPP(proto=0x0057 if isinstance(p, IPv6) else 0x0021) / p,
        0x8864,
    )


def mpls_labelled(frames: Sequence[Packet]) -> list[Packet]:
    """Every packet under a two-label MPLS stack (RFC 3032), payload type left to guessing."""
    return _relinked(frames, lambda p: MPLS(label=100, s=0) / MPLS(label=200, s=1) / p, 0x8847)


def vlan_tagged(frames: Sequence[Packet]) -> list[Packet]:
    """Every frame with an 802.1Q tag."""
    return _relinked(frames, lambda p: Dot1Q(vlan=10) / p, 0x8100)


LINKS: dict[str, Callable[[Sequence[Packet]], list[Packet]]] = {
    "pppoe": pppoe_session,
    "mpls": mpls_labelled,
    "vlan": vlan_tagged,
}
