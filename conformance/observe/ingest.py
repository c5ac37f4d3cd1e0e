"""The per-packet step: link and network headers to flow-table entries, fast.

Every reader (pcap, pcapng: decode/capture_reader.py) calls the one step `CaptureIngest.step`
for each packet record, whatever the format or block it came from.

Most packets of a UC capture are RTP over UDP over IPv4 over Ethernet. For those the
step reads the Ethernet type and the IPv4 fields it needs with one `unpack_from`,
uses the 12 bytes of addresses and ports (IPv4 bytes 12..24, with the UDP/TCP ports
right behind) as the direction key, and updates the entry in place. IPv6 without
extension headers takes the same road with a 36-byte key. Everything else (VLAN
tags, other link types, IP options, extension headers, fragments, ICMP, other
protocols, damaged headers) goes through the general path (layers.py), which decodes
properly and settles every frame it takes in the capture's accounting (decision 10).

Payloads are looked at only while a direction's WANT bits ask for it (see payloads.py).
Every packet's time is checked against the previous one's (timeline.py: silences and
backward steps, decision 11) with one chained comparison.
"""

from __future__ import annotations

import struct

from conformance.decode import compiled
from conformance.decode.capture_reader import CaptureReader, PacketStep
from conformance.decode.ip import IPPROTO_TCP, IPPROTO_UDP
from conformance.decode.link import ETHERTYPE_IPV4, ETHERTYPE_IPV6, LINKTYPE_ETHERNET
from conformance.observe.accounting import MAX_SENDERS, Accounting
from conformance.observe.flows import (
    BYTES,
    DIRS,
    N_LAST,
    PKTS,
    T_LAST,
    TCP_FLAGS,
    WANT,
    FlowTable,
    add_sample,
    tcp_control,
)
from conformance.observe.frame_owner import frame_owner
from conformance.observe.layers import LayerWalker
from conformance.observe.payloads import PayloadInspector, initial_want, no_tunnel
from conformance.observe.records import SAMPLE_PACKETS_PER_FLOW, SILENCE_SECONDS
from conformance.observe.timeline import Timeline

# Ethernet type, then IPv4 version/IHL, total length, flags/fragment offset, protocol.
_ETH_IPV4 = struct.Struct("!12xHBxHxxHxB")
_ETH = 14
_IPV4_FAST_L4 = _ETH + 20
_IPV6_FAST_L4 = _ETH + 40
_UDP_HEADER = 8
_TCP_FLAGS_END = 14  # TCP bytes up to and including the flags
_FRAG_MASK = 0x3FFF  # MF flag and fragment offset
# A TCP header whose options fit in this many bytes (timestamps: 12) and whose data offset
# ends exactly at the segment's end carries no data; anything else is shown to the payload
# inspector while it still wants payloads, which checks the offset (payloads.py).
_PLAIN_TCP_HEADER = 32
_COMPILED = compiled.load(compiled.MODULES[1])
_COMPILED_FLOWS = compiled.load(compiled.MODULES[4])  # FlowTable.finish's twin
# Where the compiled step puts closed connections (observe/_spill.pyx); it cimports the step.
COMPILED_SPILL = compiled.load(compiled.MODULES[6]) if _COMPILED is not None else None


def _read_already(
    _ts: float, _buf: bytes, _off: int, _cap: int, _orig: int, _lt: int, _dirf: int, _n: int
) -> None:
    """The step of an ingest whose capture was read: there is no packet left to step."""
    raise RuntimeError("this capture was read already")


class CaptureIngest:
    """Feeds one capture's packet records into its flow table and payload inspector."""

    def __init__(self, capture: int, part: int = 0, parts: int = 1) -> None:
        self.capture = capture
        # Observing one capture in `parts` processes: this one steps only the frames whose
        # owner (observe/frame_owner.py) is `part`; every frame's time is still checked.
        self.part = part
        self.parts = parts
        self._skipped = [0]  # frames another part steps (the Python step's count)
        self.accounting = Accounting(capture)
        self.table = FlowTable(capture, initial_want)
        self.table.senders = self.accounting.senders
        self.table.max_senders = MAX_SENDERS
        self.inspector = PayloadInspector(capture, self.table, self.accounting)
        self.walker = LayerWalker(self.table, self.inspector, self.accounting)
        self.inspector.tunnel = self.walker.tunnel
        self._slow = self.walker.frame
        self.timeline = Timeline()
        self.packets = 0
        # The compiled twin of the step when it is built (decode.compiled), else this module's.
        self.step: PacketStep = (
            _COMPILED.FastStep(self) if _COMPILED is not None else self._make_step()
        )
        if _COMPILED_FLOWS is not None:
            self.table.compiled_finish = _COMPILED_FLOWS.finish

    @property
    def fragments(self) -> int:
        return self.walker.fragments

    @property
    def reassembled(self) -> int:
        return self.walker.reassembled

    @property
    def skipped(self) -> int:
        """Frames left to the other parts of a capture observed in parts."""
        step = self.step
        return int(getattr(step, "skipped", self._skipped[0]))

    @property
    def decoded(self) -> int:
        """Frames decoded to their transport: the hot loop's, and the general path's."""
        acc = self.accounting
        return self.packets - self.skipped - acc.entered + acc.decoded

    def finish(self) -> None:
        """Settle what waits for more packets: fragment sets, hellos cut short.

        Then the inspector lets go of the walker: the two name each other, and a pair in a
        cycle would keep the whole flow table and every pending record alive until the cyclic
        collector, paused while reading (observe.builder), next runs, and then costs it a
        scan of everything read (0.5 s after a 2M-packet web capture).
        """
        self.walker.finish()
        self.inspector.finish()
        self.inspector.tunnel = no_tunnel

    def run_reader(self, reader: CaptureReader) -> None:
        """Consume every packet of an open capture, whatever its format."""
        try:
            reader.walk(self.step)
        finally:
            self.packets = reader.packets_read
            close = getattr(self.step, "close", None)  # the compiled step's cache (_step.pyx)
            if close is not None:
                close()
            else:
                # The Python step's closure names this ingest's own methods: a cycle that
                # would keep everything read until the cyclic collector ran.
                self.step = _read_already

    def _make_step(self) -> PacketStep:  # noqa: C901, PLR0915 (builds the hot loop's closure)
        """The per-packet step every reader calls (the hot loop: Ethernet, IPv4 without
        options, UDP/TCP inline; IPv6 UDP/TCP in `_ipv6`; everything else to the general path).
        """
        tcp = self.table.tables[IPPROTO_TCP]
        udp = self.table.tables[IPPROTO_UDP]
        new_direction = self.table.new_direction
        syn = self.table.syn
        inspect = self.inspector.inspect
        slow = self._slow
        fast6 = self._ipv6
        unpack = _ETH_IPV4.unpack_from
        samples = SAMPLE_PACKETS_PER_FLOW
        # Constants as cell variables: LOAD_DEREF beats a global lookup in a step this hot.
        ethernet, frag_mask, ipv4, ipv6 = (
            LINKTYPE_ETHERNET,
            _FRAG_MASK,
            ETHERTYPE_IPV4,
            ETHERTYPE_IPV6,
        )
        proto_udp, proto_tcp = IPPROTO_UDP, IPPROTO_TCP
        eth_len, l4_at = _ETH, _IPV4_FAST_L4
        min_cap = _IPV4_FAST_L4 + _UDP_HEADER  # Ethernet, IPv4, UDP header
        tcp_cap = _IPV4_FAST_L4 + _TCP_FLAGS_END
        plain = 20 + _PLAIN_TCP_HEADER
        timeline = self.timeline
        time_step, silence = timeline.step, SILENCE_SECONDS
        # The bounds for the next packet's time live in the closure (one chained comparison
        # per packet); the timeline's are only their starting values.
        low, high = timeline.low, timeline.high
        part, parts, skipped = self.part, self.parts, self._skipped

        def step(  # noqa: C901, PLR0912 (the per-packet hot loop: inlined on purpose)
            ts: float, buf: bytes, off: int, cap: int, orig: int, lt: int, dirf: int, n: int
        ) -> None:
            nonlocal low, high
            if not low <= ts <= high:
                time_step(low, ts, n)
            low = ts
            high = ts + silence
            if parts > 1 and frame_owner(buf, off, cap, lt, parts) != part:
                skipped[0] += 1
                return
            if lt != ethernet or cap < min_cap:
                slow(ts, buf, off, cap, lt, dirf, n)
                return
            et, vihl, tot, frag, proto = unpack(buf, off)
            if et != ipv4 or vihl != 0x45 or frag & frag_mask:
                if et == ipv6:
                    fast6(ts, buf, off, cap, lt, dirf, n)
                else:
                    slow(ts, buf, off, cap, lt, dirf, n)
                return
            if proto == proto_udp and tot >= 28:  # IPv4 + UDP headers
                key = buf[off + 26 : off + 38]  # src, dst, sport, dport
                e = udp.get(key)
                if e is None:
                    e = new_direction(udp, proto_udp, key, ts, n, buf[off + 6 : off + 12])
                count = e[0] + 1
                e[0] = count  # PKTS
                e[1] += tot  # BYTES
                e[3] = ts  # T_LAST
                e[5] = n  # N_LAST
                if count <= samples and len(e[7]) < samples:  # flows.add_sample
                    e[7].append(n)  # SAMPLES
                if dirf:
                    e[11] |= dirf  # DIRS
                if e[8]:  # WANT
                    end = min(off + eth_len + tot, off + cap)
                    inspect(e, proto_udp, key, buf, off + l4_at, end, ts, n)
            elif proto == proto_tcp and tot >= 40 and cap >= tcp_cap:
                key = buf[off + 26 : off + 38]
                flags = buf[off + 47]
                e = tcp.get(key)
                if e is None:
                    e = new_direction(tcp, proto_tcp, key, ts, n, buf[off + 6 : off + 12])
                if flags & 2 and not flags & 16:  # SYN: maybe a new connection
                    e = syn(key, e, ts, n, buf[off + 38 : off + 42])
                count = e[0] + 1
                e[0] = count
                e[1] += tot
                e[3] = ts
                e[5] = n
                e[6] |= flags  # TCP_FLAGS
                if count <= samples and len(e[7]) < samples:
                    e[7].append(n)
                if flags & 6:  # SYN or RST
                    tcp_control(e, flags)
                if dirf:
                    e[11] |= dirf
                # WANT, and data (or a data offset that may lie) behind the header
                if e[8] and (tot != 20 + ((buf[off + 46] >> 4) << 2) or tot > plain):
                    end = min(off + eth_len + tot, off + cap)
                    inspect(e, proto_tcp, key, buf, off + l4_at, end, ts, n)
            else:
                slow(ts, buf, off, cap, lt, dirf, n)

        return step

    # -- the general path -----------------------------------------------------------------

    def _ipv6(self, ts: float, buf: bytes, off: int, cap: int, lt: int, dirf: int, n: int) -> None:
        """Ethernet + IPv6 straight to UDP/TCP: the 36-byte key is one slice too."""
        proto = buf[off + 20]
        l4 = off + _IPV6_FAST_L4
        span = (buf[off + 18] << 8) | buf[off + 19]
        end = off + cap
        if buf[off + 14] >> 4 != 6 or not (
            (proto == IPPROTO_UDP and span >= _UDP_HEADER and l4 + _UDP_HEADER <= end)
            or (proto == IPPROTO_TCP and span >= 20 and l4 + _TCP_FLAGS_END <= end)
        ):
            self._slow(ts, buf, off, cap, lt, dirf, n)
            return
        key = buf[off + 22 : off + 58]  # src, dst, sport, dport
        table = self.table.tables[proto]
        e = table.get(key)
        if e is None:
            e = self.table.new_direction(table, proto, key, ts, n, buf[off + 6 : off + 12])
        if proto == IPPROTO_TCP and buf[l4 + 13] & 0x12 == 0x02:  # SYN: maybe a new connection
            e = self.table.syn(key, e, ts, n, buf[l4 + 4 : l4 + 8])
        # FlowTable.account's steps, inline (packets arrive in order here)
        count = e[PKTS] + 1
        e[PKTS] = count
        e[BYTES] += span + 40
        e[T_LAST] = ts
        e[N_LAST] = n
        if count <= SAMPLE_PACKETS_PER_FLOW:
            add_sample(e, n)
        if proto == IPPROTO_TCP:
            flags = buf[l4 + 13]
            e[TCP_FLAGS] |= flags
            if flags & 6:  # SYN or RST
                tcp_control(e, flags)
        if dirf:
            e[DIRS] |= dirf
        if e[WANT]:
            self.inspector.inspect(e, proto, key, buf, l4, min(l4 + span, end), ts, n)
