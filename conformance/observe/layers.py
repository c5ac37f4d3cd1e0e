"""The general path: a frame the hot loop did not take, layer by layer, to every flow it carries.

Link layers (Ethernet with VLAN tags and LLC/SNAP, cooked, loopback, raw IP), then
whatever the EtherType or IP protocol says: IP (fragments reassembled), PPPoE, MPLS,
GRE (keys, sequence numbers, Ethernet bridging, ERSPAN I-III, PPTP), VXLAN, VXLAN-GPE,
Geneve, IP-in-IP, 6in4, 4in6, nested in any order up to MAX_ENCAPSULATION_DEPTH.

Decision 9: every IP header met makes (or extends) a flow, outer ones too. A tunnel the
target opens is therefore a flow to its endpoint, and every inner flow is judged as well;
the outer header of a mirror encapsulation (ERSPAN, VXLAN, Geneve carrying frames copied
from the target's port) is a flow between the mirroring devices, which no target-flow
selection includes. Inner flows carry `Flow.encapsulation` and `Flow.ip_layer`.

Decision 10: every frame that enters here is settled exactly once in the capture's
`Accounting`: decoded to its transport, link-layer control, or not understood with a
stable reason and the addresses it showed. A header that does not parse, an unknown
EtherType or IP protocol, a fragment set that never completed: all counted. When an IP
header parsed but what follows did not, the IP header still makes a flow (transport
"ip-<protocol>" when no ports could be read), so a packet to an outside address is seen
even when the rest of it is not.
"""

from __future__ import annotations

from collections.abc import Callable

from conformance.decode.errors import DecodeError
from conformance.decode.icmp import (
    ICMP_HEADER,
    is_error,
    is_rejection,
    port_equivalents,
    quoted_packet,
)
from conformance.decode.ip import (
    INCOMPLETE,
    IPPROTO_AH,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IpPacket,
    Packets,
    PendingDatagram,
    Reassembler,
    decode_ip,
    ipv6_extensions,
)
from conformance.decode.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_LLC,
    ETHERTYPE_MACSEC,
    ETHERTYPE_MPLS,
    ETHERTYPE_MPLS_MULTICAST,
    ETHERTYPE_PBB,
    ETHERTYPE_PPPOE_SESSION,
    ETHERTYPE_SLOW,
    ETHERTYPE_TEB,
    LINK_CONTROL_ETHERTYPES,
    LINKTYPE_ETHERNET,
    SUPPORTED_LINK_TYPES,
    cooked_source,
    ethernet_header,
    llc_payload,
    network_layer,
    slow_protocol_kind,
)
from conformance.decode.tunnel import (
    GENEVE_PORT,
    GRE_ERSPAN_II,
    GRE_ERSPAN_III,
    GRE_PPP,
    TUNNEL_UDP_PORTS,
    VXLAN_GPE_PORT,
    VXLAN_LINUX_PORT,
    VXLAN_PORT,
    Inner,
    gre_payload,
    mpls,
    pppoe_session,
    udp_tunnel,
)
from conformance.observe.accounting import Accounting, PartyKey, party_key
from conformance.observe.flows import (
    BYTES,
    ICMP_CODE,
    N_LAST,
    PKTS,
    PORTLESS,
    T_LAST,
    TCP_FLAGS,
    WANT,
    FlowTable,
    add_sample,
    tcp_control,
)
from conformance.observe.payloads import PayloadInspector
from conformance.observe.records import SAMPLE_PACKETS_PER_FLOW

# Encapsulations nested in one frame (each tunnel, mirror, PPPoE or MPLS layer counts one):
# real captures nest two or three (VLAN in VXLAN in IPv6 in a mirror); past this it is a
# crafted frame, and saying so beats walking on.
MAX_ENCAPSULATION_DEPTH = 8
# `LayerWalker.frame` settles the commonest simple frames without the walk (`_quick`); the
# tests turn it off to compare the two.
QUICK_FRAMES = True
TOO_DEEP = f"encapsulation deeper than {MAX_ENCAPSULATION_DEPTH}"
UNSUPPORTED_LINK = "unsupported link type"

IPPROTO_IPIP = 4  # IPv4 in IP (RFC 2003); in IPv6 that is 4in6 (RFC 2473)
IPPROTO_IPV6 = 41  # IPv6 in IP: 6in4 (RFC 4213), or IPv6 in IPv6
IPPROTO_GRE = 47
IPPROTO_MPLS = 137  # MPLS in IP (RFC 4023)
# IP protocols whose IP header is all there is to decode: no ports, no payload the
# judges read (IGMP, ESP, no next header, OSPF, PIM, VRRP/CARP). Any other protocol the
# observers do not decode is filed as a flow and counted as not understood.
PORTLESS_PROTOCOLS = frozenset({2, 50, 59, 89, 103, 112})
# IP protocols that carry other packets: the payload's owners are not the outer addresses.
_CARRIER_PROTOCOLS = frozenset({IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_GRE, IPPROTO_MPLS})
_AH_MIN = 12  # RFC 4302 §2: next header, payload length, reserved, SPI, sequence number

# How one walk ended: decoded to a transport, link-layer control, not understood, or
# already settled (or deferred: a fragment waiting for its datagram).
DECODED = 0
LINK = 1
NOT_UNDERSTOOD = 2
SETTLED = 3
Outcome = tuple[int, str]
_DECODED: Outcome = (DECODED, "")
_SETTLED: Outcome = (SETTLED, "")
_PORTS_ZERO = b"\0\0\0\0"
_ETHERNET = 14
_PLAIN_IP = frozenset({ETHERTYPE_IPV4, ETHERTYPE_IPV6})
_VXLAN = 8  # VXLAN header (RFC 7348 §5)
_VXLAN_PORTS = frozenset({VXLAN_PORT, VXLAN_LINUX_PORT})
_ETHER_IPV4_PLAIN = b"\x08\x00\x45"  # EtherType IPv4, then version 4 with a 20-byte header
_INNER_MIN = _ETHERNET + 20 + 8  # Ethernet, IPv4, a UDP header (TCP is checked on its own)
_FRAG_MASK = 0x3FFF  # MF flag and fragment offset
_VXLAN_CARRIED = {True: ("ipv4>udp>vxlan>eth", 2), False: ("ipv6>udp>vxlan>eth", 1)}
_ICMP_NAMES = {IPPROTO_ICMP: "ICMP", IPPROTO_ICMPV6: "ICMPv6"}
_TUNNEL_NAMES = {GENEVE_PORT: "geneve", VXLAN_GPE_PORT: "vxlan-gpe"}


def _not_understood(reason: str) -> Outcome:
    return (NOT_UNDERSTOOD, reason)


class _Walk:
    """What one walk through a frame has seen so far."""

    __slots__ = ("addressed", "depth", "mac", "partial", "parties", "path", "v4", "v6")

    def __init__(self) -> None:
        self.path: list[str] = []  # headers entered, outermost first
        self.v4 = 0  # IPv4 headers met (Wireshark's layer count for `ip.*#N`)
        self.v6 = 0
        self.parties: list[bytes] = []  # every MAC and IP address met, any layer
        self.addressed = False  # the innermost layer entered has shown an address
        self.mac = b""  # source MAC of the innermost Ethernet header
        self.depth = 0
        # inside the start of a datagram whose other fragments never came: what it carries
        # is read for the evidence, but settled with the datagram (layers._incomplete)
        self.partial = False

    def enter(self, *names: str) -> bool:
        """Step into an encapsulation's payload; False past MAX_ENCAPSULATION_DEPTH."""
        self.depth += 1
        self.path.extend(names)
        self.addressed = False
        self.mac = b""
        return self.depth <= MAX_ENCAPSULATION_DEPTH

    def party_key(self) -> PartyKey | None:
        """The addresses seen, or None when the innermost layer had none (anyone's)."""
        return party_key(self.parties) if self.addressed else None

    def carried(self, version: int) -> tuple[str, int] | None:
        """(encapsulation, IP layer) for a flow whose IP header of `version` was the last met."""
        if not self.path:
            return None
        return ">".join(self.path), self.v4 if version == 4 else self.v6

    def copy(self) -> _Walk:
        other = _Walk()
        other.path = list(self.path)
        other.v4, other.v6 = self.v4, self.v6
        other.parties = list(self.parties)
        other.addressed, other.mac, other.depth = self.addressed, self.mac, self.depth
        other.partial = self.partial
        return other


class LayerWalker:
    """Decodes the frames the hot loop hands over, into the capture's flow table."""

    def __init__(
        self, table: FlowTable, inspector: PayloadInspector, accounting: Accounting
    ) -> None:
        self.table = table
        self.inspector = inspector
        self.acc = accounting
        self.reassembler = Reassembler()
        self.fragments = 0
        self.reassembled = 0
        self._busy = False  # inside a walk: tunnels the inspector meets are walked here

    # -- entry points ---------------------------------------------------------------------

    def frame(self, ts: float, buf: bytes, off: int, cap: int, lt: int, dirf: int, n: int) -> None:
        """Decode one frame the hot loop did not take, and settle it.

        The same steps as `_walk`, inline: most frames that come here (ICMP, ARP,
        neighbour discovery) are simple, and this path runs for every one of them.
        """
        if (
            lt == LINKTYPE_ETHERNET
            and QUICK_FRAMES
            and self._quick(ts, buf, off, off + cap, dirf, n)
        ):
            return
        acc = self.acc
        acc.entered += 1
        w = _Walk()
        packets = ((ts, n, 0, dirf),)
        self._busy = True
        try:
            if lt == LINKTYPE_ETHERNET:
                outcome = self._ethernet(buf, off, off + cap, packets, w)
            else:
                outcome = self._link(lt, buf, off, off + cap, packets, w)
        except Exception as err:  # decision 10: one packet never stops the run
            outcome = _not_understood(f"decoder error: {type(err).__name__}")
        finally:
            self._busy = False
            self.table.carried = None
        if outcome is _DECODED:
            acc.decoded += 1
        else:
            self._settle(outcome, packets, w)

    def _quick(self, ts: float, buf: bytes, off: int, end: int, dirf: int, n: int) -> bool:
        """`frame`'s outcome, without its walk, for the frames most common here: untagged
        link-layer control (ARP, LLDP, ...) and ICMP/ICMPv6 that is not an error, behind a
        plain IPv4 header or an IPv6 header without extensions. False: anything else, or
        anything `frame` could find wrong (a length that lies, a header cut short), which
        then takes the walk. The same effects, in the same order (tests/observe/
        test_quick_frames.py compares both on every case). The compiled step settles these
        frames with a twin of this method (observe/_step.pyx `_quick`) before calling `frame`."""
        if end - off < _ETHERNET:
            return False
        ethertype = (buf[off + 12] << 8) | buf[off + 13]
        l3 = off + _ETHERNET
        if ethertype == ETHERTYPE_IPV4:
            if end - l3 < 24 or buf[l3] != 0x45 or buf[l3 + 9] != IPPROTO_ICMP:
                return False
            if ((buf[l3 + 6] << 8) | buf[l3 + 7]) & _FRAG_MASK:
                return False
            length = (buf[l3 + 2] << 8) | buf[l3 + 3]
            if length < 24:  # 0 (offload) and lengths that lie take the walk
                return False
            proto, l4, half = IPPROTO_ICMP, l3 + 20, 4
        elif ethertype == ETHERTYPE_IPV6:
            if end - l3 < 44 or buf[l3] >> 4 != 6 or buf[l3 + 6] != IPPROTO_ICMPV6:
                return False
            payload = (buf[l3 + 4] << 8) | buf[l3 + 5]  # 0 (a jumbogram) fails below
            proto, l4, half, length = IPPROTO_ICMPV6, l3 + 40, 16, 40 + payload
        else:
            kind = LINK_CONTROL_ETHERTYPES.get(ethertype)
            if kind is None:
                return False
            self.acc.entered += 1
            self.acc.link_control(kind, 1)
            return True
        if l3 + length < l4 + 4:  # the ICMP header reaches past the datagram
            return False
        v6 = proto == IPPROTO_ICMPV6
        icmp_type, code = buf[l4], buf[l4 + 1]
        if is_error(icmp_type, v6):
            return False
        acc = self.acc
        acc.entered += 1
        at = l3 + (8 if v6 else 12)
        src = buf[at : at + half]
        acc.learn(buf[off + 6 : l3 - 2], src)
        sport, dport, _ = port_equivalents(icmp_type, code, v6)
        key = src + buf[at + half : at + 2 * half] + bytes((0, sport, 0, dport))
        table = self.table
        known = table.tables.get(proto)
        if known is None or key not in known:
            table.entry(proto, key, ts, n)[ICMP_CODE] = code
        table.account(proto, key, ts, n, length, 0, dirf)
        acc.decoded += 1
        return True

    def tunnel(
        self, port: int, key: bytes, buf: bytes, start: int, end: int, ts: float, n: int
    ) -> None:
        """A UDP payload to a tunnel port on a direction of the hot loop: walk what it carries.

        The hot loop has counted the outer datagram in its flow; the frame now enters
        the general path, which settles it by what is inside. Called by the payload
        inspector; ignored while a walk is under way (that walk looks at tunnels itself).
        """
        if self._busy:
            return
        half = (len(key) - 4) // 2
        if port in _VXLAN_PORTS and self._plain_inner(
            _VXLAN_CARRIED[half == 4], buf, start + _VXLAN, end, ts, n
        ):
            return
        outer = "ipv4" if half == 4 else "ipv6"

        def inner(w: _Walk, packets: Packets) -> Outcome:
            w.parties += (key[:half], key[half : 2 * half])
            if half == 4:
                w.v4 = 1
            else:
                w.v6 = 1
            return self._udp_tunnel(port, outer, buf, start, end, packets, w)

        self._walk(inner, ((ts, n, 0, 0),))

    def _plain_inner(
        self, carried: tuple[str, int], buf: bytes, off: int, end: int, ts: float, n: int
    ) -> bool:
        """The hot loop's steps for an Ethernet/IPv4/UDP-TCP frame inside an encapsulation.

        Mirror captures (VXLAN, Geneve, ERSPAN) are mostly this: without it every frame
        of one would take the whole general path. Anything else (tags, options, fragments,
        other protocols, a tunnel inside the tunnel) returns False and is walked in full.
        `carried` is the flow's (encapsulation, IP layer) should its direction be new.
        """
        if end - off < _INNER_MIN or buf[off + 12 : off + 15] != _ETHER_IPV4_PLAIN:
            return False
        if ((buf[off + 20] << 8) | buf[off + 21]) & _FRAG_MASK:
            return False
        proto, tot = buf[off + 23], (buf[off + 16] << 8) | buf[off + 17]
        l4 = off + _ETHERNET + 20
        if proto == IPPROTO_UDP:
            if tot < 28 or ((buf[l4 + 2] << 8) | buf[l4 + 3]) in TUNNEL_UDP_PORTS:
                return False
        elif proto != IPPROTO_TCP or tot < 40 or l4 + 14 > end:
            return False
        table = self.table
        entries = table.tables[proto]
        key = buf[off + 26 : off + 38]
        e = entries.get(key)
        if e is None and table.reloaded(proto, key):
            e = entries.get(key)
        flags = buf[l4 + 13] if proto == IPPROTO_TCP else 0
        if e is None or flags & 0x12 == 2:  # new, or a SYN that may open a new connection
            table.carried = carried
            if e is None:
                e = table.new_direction(entries, proto, key, ts, n, buf[off + 6 : off + 12])
            if flags & 0x12 == 2:
                e = table.syn(key, e, ts, n, buf[l4 + 4 : l4 + 8])
            table.carried = None
        count = e[PKTS] + 1
        e[PKTS] = count
        e[BYTES] += tot
        e[T_LAST] = ts
        e[N_LAST] = n
        if count <= SAMPLE_PACKETS_PER_FLOW:
            add_sample(e, n)
        if flags:
            e[TCP_FLAGS] |= flags
            if flags & 6:  # SYN or RST
                tcp_control(e, flags)
        if e[WANT]:
            busy, self._busy = self._busy, True  # a tunnel its payload names is not walked
            try:
                self.inspector.inspect(
                    e, proto, key, buf, l4, min(off + _ETHERNET + tot, end), ts, n
                )
            finally:
                self._busy = busy
        return True

    def finish(self) -> None:
        """The capture ended: settle every datagram whose fragments never all arrived."""
        for datagram in self.reassembler.drain():
            try:
                self._incomplete(datagram)
            except Exception as err:  # decision 10: never an error for the run
                reason = f"decoder error: {type(err).__name__}"
                self.acc.not_understood([p[1] for p in datagram.packets], reason, None)

    def pending(self) -> int:
        """Frames entered and not settled yet (fragments waiting for their datagram)."""
        return self.reassembler.pending_packets()

    def _walk(self, walk: Callable[[_Walk, Packets], Outcome], packets: Packets) -> None:
        self.acc.entered += 1
        w = _Walk()
        self._busy = True
        try:
            outcome = walk(w, packets)
        except Exception as err:  # decision 10: one packet never stops the run
            outcome = _not_understood(f"decoder error: {type(err).__name__}")
        finally:
            self._busy = False
            self.table.carried = None
        self._settle(outcome, packets, w)

    def _settle(
        self,
        outcome: Outcome,
        packets: Packets,
        w: _Walk,
    ) -> None:
        code, text = outcome
        if code == DECODED:
            self.acc.decoded += len(packets)
        elif code == LINK:
            self.acc.link_control(text, len(packets))
        elif code == NOT_UNDERSTOOD:
            self.acc.not_understood([p[1] for p in packets], text, w.party_key())

    # -- link layers ----------------------------------------------------------------------

    def _link(self, lt: int, buf: bytes, off: int, end: int, packets: Packets, w: _Walk) -> Outcome:
        if lt == LINKTYPE_ETHERNET:
            return self._ethernet(buf, off, end, packets, w)
        if lt < 0:
            return _not_understood("packet block names an interface no IDB described")
        if lt not in SUPPORTED_LINK_TYPES:
            return _not_understood(f"{UNSUPPORTED_LINK} {lt}")
        try:
            ethertype, l3, direction = network_layer(lt, buf, off, end)
        except DecodeError as err:
            return _not_understood(err.what)
        mac = cooked_source(lt, buf, off, end)
        if mac:
            w.parties.append(mac)
            w.mac = mac
            w.addressed = True
        if direction and not packets[0][3]:
            t, n, size, _ = packets[0]
            packets = ((t, n, size, direction),)
        return self._ethertype(ethertype, buf, l3, end, packets, w)

    def _ethernet(self, buf: bytes, off: int, end: int, packets: Packets, w: _Walk) -> Outcome:
        ethertype = (buf[off + 12] << 8) | buf[off + 13] if end - off >= _ETHERNET else 0
        if ethertype in _PLAIN_IP:  # no tags: the common case, without the general reader
            pos = off + _ETHERNET
            src = buf[off + 6 : pos - 2]
            w.parties += (buf[off : off + 6], src)
        else:
            try:
                dst, src, ethertype, pos = ethernet_header(buf, off, end)
            except DecodeError as err:
                return _not_understood(err.what)
            w.parties += (dst, src)
        w.mac = src
        w.addressed = True
        if ethertype in _PLAIN_IP:
            return self._ip(ethertype, buf, pos, end, packets, w)
        return self._ethertype(ethertype, buf, pos, end, packets, w)

    def _ethertype(
        self, ethertype: int, buf: bytes, off: int, end: int, packets: Packets, w: _Walk
    ) -> Outcome:
        if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
            return self._ip(ethertype, buf, off, end, packets, w)
        kind = LINK_CONTROL_ETHERTYPES.get(ethertype)
        if kind is not None:
            return (LINK, kind)
        if ethertype == ETHERTYPE_LLC:
            try:
                inner, kind, pos = llc_payload(buf, off, end)
            except DecodeError as err:
                return _not_understood(err.what)
            if kind is not None:
                return (LINK, kind)
            if inner < 0x0600:  # an 802.3 length inside SNAP: no EtherType to go on
                return _not_understood(f"unknown SNAP protocol 0x{inner:04x}")
            return self._ethertype(inner, buf, pos, end, packets, w)
        if ethertype == ETHERTYPE_SLOW:
            return (LINK, slow_protocol_kind(buf, off, end))
        if ethertype == ETHERTYPE_PPPOE_SESSION:
            return self._decapsulate(pppoe_session, ("pppoe",), buf, off, end, packets, w)
        if ethertype in (ETHERTYPE_MPLS, ETHERTYPE_MPLS_MULTICAST):
            return self._decapsulate(mpls, ("mpls",), buf, off, end, packets, w)
        if ethertype == ETHERTYPE_PBB:
            if not w.enter("pbb", "eth"):
                return _not_understood(TOO_DEEP)
            return self._ethernet(buf, off + 4, end, packets, w)  # after the 4-byte I-tag
        if ethertype == ETHERTYPE_MACSEC:
            return _not_understood("MACsec-protected frame")
        return _not_understood(f"unknown EtherType 0x{ethertype:04x}")

    def _decapsulate(
        self,
        header: Callable[[bytes, int, int], Inner],
        names: tuple[str, ...],
        buf: bytes,
        off: int,
        end: int,
        packets: Packets,
        w: _Walk,
    ) -> Outcome:
        """Step through one encapsulation header (`header` is a decode.tunnel reader)."""
        if not w.enter(*names):
            return _not_understood(TOO_DEEP)
        try:
            inner = header(buf, off, end)
        except DecodeError as err:
            return _not_understood(err.what)
        return self._inner(inner, buf, end, packets, w)

    def _inner(self, inner: Inner, buf: bytes, end: int, packets: Packets, w: _Walk) -> Outcome:
        ethertype, pos, kind = inner
        if kind is not None:
            return (LINK, kind)
        if ethertype == ETHERTYPE_TEB:
            w.path.append("eth")
            if len(packets) == 1 and not w.partial:
                carried = (">".join(w.path), w.v4 + 1)
                if self._plain_inner(carried, buf, pos, end, packets[0][0], packets[0][1]):
                    return _DECODED
            return self._ethernet(buf, pos, end, packets, w)
        return self._ethertype(ethertype, buf, pos, end, packets, w)

    # -- IP -------------------------------------------------------------------------------

    def _ip(
        self, ethertype: int, buf: bytes, off: int, end: int, packets: Packets, w: _Walk
    ) -> Outcome:
        try:
            ip = decode_ip(buf, off, end, ethertype)
        except DecodeError as err:
            _header_addresses(ethertype, buf, off, end, w)
            return _not_understood(err.what)
        w.parties += (ip.src, ip.dst)
        w.addressed = True
        if ip.version == 4:
            w.v4 += 1
        else:
            w.v6 += 1
        if w.mac:
            self.acc.learn(w.mac, ip.src)
        if len(packets) == 1:
            t, n, _, d = packets[0]
            packets = ((t, n, ip.length, d),)
        else:
            packets = _sized(packets, ip.length)
        if ip.fragment is not None:
            return self._fragment(ip, buf, packets, w)
        return self._transport(ip, ip.proto, buf, ip.l4, ip.end, packets, w)

    def _transport(
        self,
        ip: IpPacket | PendingDatagram,
        proto: int,
        buf: bytes,
        l4: int,
        end: int,
        packets: Packets,
        w: _Walk,
    ) -> Outcome:
        """File a datagram (one packet, or the fragments it came in) under its flow."""
        table = self.table
        table.carried = w.carried(ip.version)
        ts, n = packets[-1][0], packets[-1][1]
        src, dst = ip.src, ip.dst
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            if l4 + (20 if proto == IPPROTO_TCP else 8) > end:
                self._portless(proto, src, dst, packets)
                return _not_understood(
                    f"truncated {'TCP' if proto == IPPROTO_TCP else 'UDP'} header"
                )
            key = src + dst + buf[l4 : l4 + 4]
            flags = buf[l4 + 13] if proto == IPPROTO_TCP else 0
            isn = buf[l4 + 4 : l4 + 8] if proto == IPPROTO_TCP else b""
            e = None
            for t, number, size, direction in packets:
                e = table.account(proto, key, t, number, size, flags, direction, isn)
            outcome = _DECODED
            dport = (buf[l4 + 2] << 8) | buf[l4 + 3]
            if proto == IPPROTO_UDP and dport in TUNNEL_UDP_PORTS:
                udp_end = l4 + ((buf[l4 + 4] << 8) | buf[l4 + 5])
                stop = udp_end if l4 + 8 <= udp_end <= end else end
                version = "ipv4" if ip.version == 4 else "ipv6"
                outcome = self._udp_tunnel(dport, version, buf, l4 + 8, stop, packets, w)
            if e is not None and e[WANT]:
                self.inspector.inspect(e, proto, key, buf, l4, end, ts, n)
            return outcome
        if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            return self._icmp(ip, proto, buf, l4, end, packets)
        if proto == IPPROTO_AH and ip.version == 4 and l4 + _AH_MIN <= end:
            # RFC 4302: authenticated, not encrypted; the transport follows (IPv6 AH is an
            # extension header, skipped by decode_ip). One AH; a second is not read.
            inner, l4 = buf[l4], l4 + (buf[l4 + 1] + 2) * 4
            if inner != IPPROTO_AH:
                return self._transport(ip, inner, buf, l4, end, packets, w)
        key = src + dst + _PORTS_ZERO
        for t, number, size, direction in packets:
            table.account(proto, key, t, number, size, 0, direction)
        version = "ipv4" if ip.version == 4 else "ipv6"
        if proto in (IPPROTO_IPIP, IPPROTO_IPV6):
            if not w.enter(version):
                return _not_understood(TOO_DEEP)
            inner = ETHERTYPE_IPV4 if proto == IPPROTO_IPIP else ETHERTYPE_IPV6
            return self._ip(inner, buf, l4, end, _inner_packets(packets), w)
        if proto == IPPROTO_GRE:
            names = (version, "gre", *_gre_carries(buf, l4, end))
            return self._decapsulate(gre_payload, names, buf, l4, end, _inner_packets(packets), w)
        if proto == IPPROTO_MPLS:
            return self._decapsulate(
                mpls, (version, "mpls"), buf, l4, end, _inner_packets(packets), w
            )
        if proto in PORTLESS_PROTOCOLS or proto in (
            IPPROTO_IPIP,
            IPPROTO_IPV6,
            IPPROTO_GRE,
            IPPROTO_MPLS,
        ):
            return _DECODED
        return _not_understood(f"unknown IP protocol {proto}")

    def _udp_tunnel(
        self,
        port: int,
        outer: str,
        buf: bytes,
        start: int,
        end: int,
        packets: Packets,
        w: _Walk,
    ) -> Outcome:
        """What a VXLAN, VXLAN-GPE or Geneve datagram carries (the UDP flow is filed already)."""
        if not w.enter(outer, "udp", _TUNNEL_NAMES.get(port, "vxlan")):
            return _not_understood(TOO_DEEP)
        try:
            inner = udp_tunnel(port, buf, start, end)
        except DecodeError as err:
            return _not_understood(err.what)
        return self._inner(inner, buf, end, _inner_packets(packets), w)

    def _portless(self, proto: int, src: bytes, dst: bytes, packets: Packets) -> None:
        """File the IP header of a packet whose transport header could not be read."""
        key = src + dst + _PORTS_ZERO
        for t, number, size, direction in packets:
            self.table.account(PORTLESS + proto, key, t, number, size, 0, direction)

    def _icmp(
        self,
        ip: IpPacket | PendingDatagram,
        proto: int,
        buf: bytes,
        l4: int,
        end: int,
        packets: Packets,
    ) -> Outcome:
        if l4 + 4 > end:
            self._portless(proto, ip.src, ip.dst, packets)
            return _not_understood(f"truncated {_ICMP_NAMES[proto]} header")
        v6 = proto == IPPROTO_ICMPV6
        icmp_type, code = buf[l4], buf[l4 + 1]
        if is_error(icmp_type, v6) and self._icmp_error(
            ip, buf, l4, end, packets, icmp_type, code, v6
        ):
            return _DECODED
        sport, dport, _ = port_equivalents(icmp_type, code, v6)
        key = ip.src + ip.dst + bytes((0, sport, 0, dport))
        ts, n = packets[-1][0], packets[-1][1]
        table = self.table
        known = table.tables.get(proto)
        if known is None or key not in known:
            table.entry(proto, key, ts, n)[ICMP_CODE] = code
        for t, number, size, direction in packets:
            table.account(proto, key, t, number, size, 0, direction)
        return _DECODED

    def _icmp_error(
        self,
        ip: IpPacket | PendingDatagram,
        buf: bytes,
        l4: int,
        end: int,
        packets: Packets,
        icmp_type: int,
        code: int,
        v6: bool,
    ) -> bool:
        """File an ICMP error under the flow it quotes; False if it quotes too little, or is
        not sent back to the quoted packet's source: every error answers that source (RFC 792,
        RFC 4443 §2.4), so one sent elsewhere is a message of its own (its own ICMP flow),
        or an egress could hide behind a quote of some inside conversation."""
        try:
            proto, src, dst, sport, dport = quoted_packet(buf, l4 + ICMP_HEADER, end, v6)
        except DecodeError:
            return False
        if ip.dst != src:
            return False
        if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            sport, dport, _ = port_equivalents(sport, dport, proto == IPPROTO_ICMPV6)
            key = src + dst + bytes((0, sport, 0, dport))
        elif proto in (IPPROTO_TCP, IPPROTO_UDP):
            key = src + dst + bytes(((sport >> 8), sport & 0xFF, (dport >> 8), dport & 0xFF))
        else:
            key = src + dst + _PORTS_ZERO
        rejected = is_rejection(icmp_type, code, v6)
        for t, number, size, _ in packets:
            self.table.icmp_error(proto, key, t, number, size, rejected, ip.src == dst)
        return True

    # -- fragments ------------------------------------------------------------------------

    def _fragment(self, ip: IpPacket, buf: bytes, packets: Packets, w: _Walk) -> Outcome:
        if w.partial:
            # A fragment inside an incomplete datagram: its own IP header still counts, but
            # its frames are settled with the outer datagram, never queued twice.
            self._portless(ip.proto, ip.src, ip.dst, packets)
            return _not_understood(INCOMPLETE)
        self.fragments += 1
        try:
            done = self.reassembler.add(ip, buf, packets, w.copy())
        except DecodeError as err:
            return _not_understood(err.what)
        for stale in self.reassembler.take_stale():
            self._incomplete(stale)
        if done is None:
            return _SETTLED  # waiting for the rest of the datagram (or settled as stale above)
        datagram, payload = done
        self.reassembled += 1
        context = datagram.context
        whole = context.copy() if isinstance(context, _Walk) else w.copy()
        outcome = self._datagram(datagram, payload, whole)
        self.table.carried = None
        self._settle(outcome, datagram.packets, whole)
        if datagram.conflict:
            # Linux keeps the first bytes; a stack that keeps the later ones reads another
            # datagram, which may name something this one does not.
            self.acc.payload_not_understood(
                datagram.packets[-1][1], "conflicting duplicate fragments", party_key(whole.parties)
            )
        return _SETTLED

    def _datagram(self, datagram: PendingDatagram, payload: bytes, w: _Walk) -> Outcome:
        proto, l4 = datagram.proto, 0
        if datagram.version == 6:
            try:
                proto, l4, again = ipv6_extensions(payload, 0, len(payload), proto)
            except DecodeError as err:
                return _not_understood(err.what)
            if again is not None:
                return _not_understood("fragment header inside a reassembled datagram")
        return self._transport(datagram, proto, payload, l4, len(payload), datagram.packets, w)

    def _incomplete(self, datagram: PendingDatagram) -> None:
        """A datagram given up on: its IP header still counts (decision 10).

        With its first fragment, the flow is named by its transport header and the bytes
        that did arrive from the start are read (names, and the packets a tunnel carries
        in them); without it, the flow is "ip-<protocol>". Every fragment is counted as
        not understood; when the datagram is a tunnel's or a mirror's, nothing tells whose
        its missing part is.
        """
        context = datagram.context
        w = context.copy() if isinstance(context, _Walk) else _Walk()
        w.partial = True
        prefix = _leading_bytes(datagram)
        carrier = datagram.proto in _CARRIER_PROTOCOLS
        filed = False
        if prefix:
            proto, l4 = datagram.proto, 0
            try:
                if datagram.version == 6:
                    proto, l4, _ = ipv6_extensions(prefix, 0, len(prefix), proto)
                carrier = (
                    carrier or proto in _CARRIER_PROTOCOLS or _to_tunnel_port(prefix, proto, l4)
                )
                self._transport(datagram, proto, prefix, l4, len(prefix), datagram.packets, w)
                filed = True
            except DecodeError:
                pass
        if not filed:
            self.table.carried = w.carried(datagram.version)
            self._portless(datagram.proto, datagram.src, datagram.dst, datagram.packets)
        self.table.carried = None
        reason = datagram.damaged or INCOMPLETE
        parties = None if carrier else w.party_key()
        self.acc.not_understood([p[1] for p in datagram.packets], reason, parties)


def _to_tunnel_port(buf: bytes, proto: int, l4: int) -> bool:
    """Whether a UDP header at `l4` goes to a VXLAN/Geneve port."""
    if proto != IPPROTO_UDP or l4 + 4 > len(buf):
        return False
    return ((buf[l4 + 2] << 8) | buf[l4 + 3]) in TUNNEL_UDP_PORTS


def _gre_carries(buf: bytes, l4: int, end: int) -> tuple[str, ...]:
    """The header GRE's protocol type puts between it and the packet, for the flow's path."""
    if l4 + 4 > end:
        return ()
    proto = (buf[l4 + 2] << 8) | buf[l4 + 3]
    if proto in (GRE_ERSPAN_II, GRE_ERSPAN_III):
        return ("erspan",)
    return ("ppp",) if proto == GRE_PPP else ()


def _sized(packets: Packets, length: int) -> Packets:
    """The packets of a datagram with their IP size set: this IP header's own length.

    An inner packet of a reassembled outer datagram counts its length once, on the frame
    that completed it.
    """
    if len(packets) == 1:
        t, n, _, d = packets[0]
        return ((t, n, length, d),)
    last = len(packets) - 1
    return [(t, n, length if i == last else 0, d) for i, (t, n, _, d) in enumerate(packets)]


def _inner_packets(
    packets: Packets,
) -> Packets:
    """Capture direction flags describe the outer frame, never an encapsulated one."""
    return [(t, n, size, 0) for t, n, size, _ in packets]


def _leading_bytes(datagram: PendingDatagram) -> bytes:
    """The payload bytes that arrived from offset 0 without a gap."""
    out = bytearray()
    for offset in sorted(datagram.pieces):
        if offset > len(out):
            break
        piece = datagram.pieces[offset]
        out += piece[len(out) - offset :]
    return bytes(out)


def _header_addresses(ethertype: int, buf: bytes, off: int, end: int, w: _Walk) -> None:
    """The addresses at their fixed places in an IP header that did not parse (best effort)."""
    if ethertype == ETHERTYPE_IPV4 and end - off >= 20:
        w.parties += (buf[off + 12 : off + 16], buf[off + 16 : off + 20])
        w.addressed = True
    elif ethertype == ETHERTYPE_IPV6 and end - off >= 40:
        w.parties += (buf[off + 8 : off + 24], buf[off + 24 : off + 40])
        w.addressed = True
