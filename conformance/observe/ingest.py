"""The per-packet loop: link and network headers to flow-table entries, fast.

Most packets of a UC capture are RTP over UDP over IPv4 over Ethernet. For those the
loop reads the Ethernet type and the IPv4 fields it needs with one `unpack_from`,
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
from collections.abc import Iterable

from conformance.decode.capture import EPB_BLOCK_TYPE, EPB_HEADER_BYTES, CaptureReader, PacketRecord
from conformance.decode.ip import IPPROTO_TCP, IPPROTO_UDP
from conformance.decode.link import ETHERTYPE_IPV4, ETHERTYPE_IPV6, LINKTYPE_ETHERNET
from conformance.observe.accounting import MAX_SENDERS, Accounting
from conformance.observe.flows import (
    BYTES,
    DIRS,
    N_LAST,
    PKTS,
    SAMPLES,
    T_LAST,
    TCP_FLAGS,
    WANT,
    FlowTable,
    tcp_control,
)
from conformance.observe.layers import LayerWalker
from conformance.observe.payloads import PayloadInspector, initial_want
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


class CaptureIngest:
    """Feeds one capture's packet records into its flow table and payload inspector."""

    def __init__(self, capture: int) -> None:
        self.capture = capture
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

    @property
    def fragments(self) -> int:
        return self.walker.fragments

    @property
    def reassembled(self) -> int:
        return self.walker.reassembled

    @property
    def decoded(self) -> int:
        """Frames decoded to their transport: the hot loop's, and the general path's."""
        acc = self.accounting
        return self.packets - acc.entered + acc.decoded

    def finish(self) -> None:
        """Settle what waits for more packets: fragment sets, hellos cut short."""
        self.walker.finish()
        self.inspector.finish()

    def run_reader(self, reader: CaptureReader) -> None:
        """Consume every packet of an open capture."""
        if reader.format == "pcapng":
            self._run_pcapng(reader)
        else:
            self.run(reader.packets())

    def _run_pcapng(self, reader: CaptureReader) -> None:
        """`run` fused with the pcapng block walk (see PcapngScan): the same steps, inline.

        Most packets of a UC capture are whole Ethernet frames in option-less EPBs of one
        interface; for those this loop is the whole decoder. Anything else goes through
        `reader.pcapng_step` and the general per-record path, as in `run`. Keep the
        IPv4 UDP/TCP steps below identical to those of `run`.
        """
        tcp = self.table.tables[IPPROTO_TCP]
        udp = self.table.tables[IPPROTO_UDP]
        new_direction = self.table.new_direction
        syn = self.table.syn
        inspect = self.inspector.inspect
        slow = self._slow
        fast6 = self._ipv6
        record_one = self._record
        unpack = _ETH_IPV4.unpack_from
        samples = SAMPLE_PACKETS_PER_FLOW
        ethernet, frag_mask, ipv4, ipv6, epb_type = (
            LINKTYPE_ETHERNET,
            _FRAG_MASK,
            ETHERTYPE_IPV4,
            ETHERTYPE_IPV6,
            EPB_BLOCK_TYPE,
        )
        proto_udp, proto_tcp = IPPROTO_UDP, IPPROTO_TCP
        header, eth_len, l4_at = EPB_HEADER_BYTES, _ETH, _IPV4_FAST_L4
        plain = 20 + _PLAIN_TCP_HEADER
        min_cap = _IPV4_FAST_L4 + _UDP_HEADER
        tcp_cap = _IPV4_FAST_L4 + _TCP_FLAGS_END
        scan = reader.pcapng_scan()
        step = reader.pcapng_step
        timeline = self.timeline
        time_step, silence = timeline.step, SILENCE_SECONDS
        low, high = timeline.low, timeline.high
        n = self.packets
        base_n = n - scan.packets  # packets of earlier captures fed to this ingest
        try:
            while not scan.done:
                buf, pos = scan.buf, scan.pos
                n = base_n + scan.packets
                ts = scan.time
                if scan.linktype == ethernet:
                    end = len(buf) - header
                    epb = scan.epb
                    cur_if, cur_hi, base_ts, scale = (
                        scan.iface,
                        scan.hi,
                        scan.base_ts,
                        scan.scale_lo,
                    )
                    while pos <= end:
                        btype, blen, iface, hi, lo, cap, orig = epb(buf, pos)
                        nxt = pos + blen
                        # whole, no options (padding + trailing length < 8), one interface
                        # and hour, not snap-truncated: anything else takes the general step
                        if (
                            btype != epb_type
                            or not 3 < blen - header - cap < 8
                            or blen & 3
                            or nxt > end + header
                            or iface != cur_if
                            or hi != cur_hi
                            or cap != orig
                        ):
                            break
                        n += 1
                        ts = base_ts + lo * scale
                        if not low <= ts <= high:
                            time_step(low, ts, n)
                        low = ts
                        high = ts + silence
                        off = pos + header
                        pos = nxt
                        if cap < min_cap:
                            slow(ts, buf, off, cap, ethernet, 0, n)
                            continue
                        et, vihl, tot, frag, proto = unpack(buf, off)
                        if et != ipv4 or vihl != 0x45 or frag & frag_mask:
                            if et == ipv6:
                                fast6(ts, buf, off, cap, ethernet, 0, n)
                            else:
                                slow(ts, buf, off, cap, ethernet, 0, n)
                            continue
                        if proto == proto_udp and tot >= 28:  # IPv4 + UDP headers
                            key = buf[off + 26 : off + 38]  # src, dst, sport, dport
                            e = udp.get(key)
                            if e is None:
                                e = new_direction(
                                    udp, proto_udp, key, ts, n, buf[off + 6 : off + 12]
                                )
                            count = e[0] + 1
                            e[0] = count  # PKTS
                            e[1] += tot  # BYTES
                            e[3] = ts  # T_LAST
                            e[5] = n  # N_LAST
                            if count <= samples:
                                e[7].append(n)  # SAMPLES
                            if e[8]:  # WANT
                                stop = min(off + eth_len + tot, off + cap)
                                inspect(e, proto_udp, key, buf, off + l4_at, stop, ts, n)
                        elif proto == proto_tcp and tot >= 40 and cap >= tcp_cap:
                            key = buf[off + 26 : off + 38]
                            flags = buf[off + 47]
                            e = tcp.get(key)
                            if e is None:
                                e = new_direction(
                                    tcp, proto_tcp, key, ts, n, buf[off + 6 : off + 12]
                                )
                            if flags & 2 and not flags & 16:  # SYN: maybe a new connection
                                e = syn(key, e, ts, n, buf[off + 38 : off + 42])
                            count = e[0] + 1
                            e[0] = count
                            e[1] += tot
                            e[3] = ts
                            e[5] = n
                            e[6] |= flags  # TCP_FLAGS
                            if count <= samples:
                                e[7].append(n)
                            if flags & 6:  # SYN or RST
                                tcp_control(e, flags)
                            # WANT, and data (or a data offset that may lie) behind the header
                            if e[8] and (tot != 20 + ((buf[off + 46] >> 4) << 2) or tot > plain):
                                stop = min(off + eth_len + tot, off + cap)
                                inspect(e, proto_tcp, key, buf, off + l4_at, stop, ts, n)
                        else:
                            slow(ts, buf, off, cap, ethernet, 0, n)
                scan.pos = pos
                scan.packets = n - base_n
                scan.time = ts
                step(scan)
                record = scan.record
                if record is not None:
                    n = base_n + scan.packets
                    ts = record[0]
                    if not low <= ts <= high:
                        time_step(low, ts, n)
                    low = ts
                    high = ts + silence
                    record_one(record, n)
        finally:
            reader.pcapng_finish(scan)
            self.packets = base_n + scan.packets
            timeline.low, timeline.high = low, high

    def _record(self, record: PacketRecord, n: int) -> None:
        """One packet record the scan did not take inline (the general path)."""
        ts, buf, off, cap, _orig, lt, dirf = record
        self._slow(ts, buf, off, cap, lt, dirf, n)

    def run(self, records: Iterable[PacketRecord]) -> None:
        """Consume every record (the hot loop: Ethernet, IPv4 without options, UDP/TCP)."""
        tcp = self.table.tables[IPPROTO_TCP]
        udp = self.table.tables[IPPROTO_UDP]
        new_direction = self.table.new_direction
        syn = self.table.syn
        inspect = self.inspector.inspect
        slow = self._slow
        fast6 = self._ipv6
        unpack = _ETH_IPV4.unpack_from
        samples = SAMPLE_PACKETS_PER_FLOW
        # Constants as locals: LOAD_FAST beats a global lookup in a loop this hot.
        ethernet, frag_mask, ipv4, ipv6 = (
            LINKTYPE_ETHERNET,
            _FRAG_MASK,
            ETHERTYPE_IPV4,
            ETHERTYPE_IPV6,
        )
        proto_udp, proto_tcp = IPPROTO_UDP, IPPROTO_TCP
        min_cap = _IPV4_FAST_L4 + _UDP_HEADER  # Ethernet, IPv4, UDP header
        tcp_cap = _IPV4_FAST_L4 + _TCP_FLAGS_END
        plain = 20 + _PLAIN_TCP_HEADER
        timeline = self.timeline
        time_step, silence = timeline.step, SILENCE_SECONDS
        low, high = timeline.low, timeline.high
        n = self.packets
        try:
            for ts, buf, off, cap, _orig, lt, dirf in records:
                n += 1
                if not low <= ts <= high:
                    time_step(low, ts, n)
                low = ts
                high = ts + silence
                if lt != ethernet or cap < min_cap:
                    slow(ts, buf, off, cap, lt, dirf, n)
                    continue
                et, vihl, tot, frag, proto = unpack(buf, off)
                if et != ipv4 or vihl != 0x45 or frag & frag_mask:
                    if et == ipv6:
                        fast6(ts, buf, off, cap, lt, dirf, n)
                    else:
                        slow(ts, buf, off, cap, lt, dirf, n)
                    continue
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
                    if count <= samples:
                        e[7].append(n)  # SAMPLES
                    if dirf:
                        e[11] |= dirf  # DIRS
                    if e[8]:  # WANT
                        end = min(off + _ETH + tot, off + cap)
                        inspect(e, proto_udp, key, buf, off + _IPV4_FAST_L4, end, ts, n)
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
                    if count <= samples:
                        e[7].append(n)
                    if flags & 6:  # SYN or RST
                        tcp_control(e, flags)
                    if dirf:
                        e[11] |= dirf
                    # WANT, and data (or a data offset that may lie) behind the header
                    if e[8] and (tot != 20 + ((buf[off + 46] >> 4) << 2) or tot > plain):
                        end = min(off + _ETH + tot, off + cap)
                        inspect(e, proto_tcp, key, buf, off + _IPV4_FAST_L4, end, ts, n)
                else:
                    slow(ts, buf, off, cap, lt, dirf, n)
        finally:
            self.packets = n
            timeline.low, timeline.high = low, high

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
            e[SAMPLES].append(n)
        if proto == IPPROTO_TCP:
            flags = buf[l4 + 13]
            e[TCP_FLAGS] |= flags
            if flags & 6:  # SYN or RST
                tcp_control(e, flags)
        if dirf:
            e[DIRS] |= dirf
        if e[WANT]:
            self.inspector.inspect(e, proto, key, buf, l4, min(l4 + span, end), ts, n)
