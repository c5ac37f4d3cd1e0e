"""The per-packet loop: link and network headers to flow-table entries, fast.

Most packets of a UC capture are RTP over UDP over IPv4 over Ethernet. For those the
loop reads the Ethernet type and the IPv4 fields it needs with one `unpack_from`,
uses the 12 bytes of addresses and ports (IPv4 bytes 12..24, with the UDP/TCP ports
right behind) as the direction key, and updates the entry in place. IPv6 without
extension headers takes the same road with a 36-byte key. Everything else (VLAN
tags, other link types, IP options, extension headers, fragments, ICMP, other
protocols, damaged headers) goes through `_slow`, which decodes properly.

Payloads are looked at only while a direction's WANT bits ask for it (see payloads.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from conformance.decode.capture import EPB_BLOCK_TYPE, EPB_HEADER_BYTES, CaptureReader, PacketRecord
from conformance.decode.errors import DecodeError
from conformance.decode.icmp import (
    ICMP_HEADER,
    is_error,
    is_rejection,
    port_equivalents,
    quoted_packet,
)
from conformance.decode.ip import (
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IpPacket,
    PendingDatagram,
    Reassembler,
    decode_ip,
    ipv6_extensions,
)
from conformance.decode.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    LINKTYPE_ETHERNET,
    SUPPORTED_LINK_TYPES,
    network_layer,
)
from conformance.observe.flows import (
    BYTES,
    DIRS,
    ICMP_CODE,
    N_LAST,
    PKTS,
    SAMPLES,
    T_LAST,
    TCP_FLAGS,
    WANT,
    FlowTable,
    tcp_control,
)
from conformance.observe.model import ANOMALY_SAMPLES, SAMPLE_PACKETS_PER_FLOW, Anomaly
from conformance.observe.payloads import PayloadInspector, initial_want

# Ethernet type, then IPv4 version/IHL, total length, flags/fragment offset, protocol.
_ETH_IPV4 = struct.Struct("!12xHBxHxxHxB")
_TCP_PORTS = struct.Struct("!HH")
_ETH = 14
_IPV4_FAST_L4 = _ETH + 20
_IPV6_FAST_L4 = _ETH + 40
_UDP_HEADER = 8
_TCP_FLAGS_END = 14  # TCP bytes up to and including the flags
_FRAG_MASK = 0x3FFF  # MF flag and fragment offset
_PORTS_ZERO = b"\0\0\0\0"


class CaptureIngest:
    """Feeds one capture's packet records into its flow table and payload inspector."""

    def __init__(self, capture: int) -> None:
        self.capture = capture
        self.table = FlowTable(capture, initial_want)
        self.inspector = PayloadInspector(capture, self.table, self.anomaly)
        self.reassembler = Reassembler()
        self.packets = 0
        self.malformed = 0
        self.anomalies: list[Anomaly] = []
        self.unsupported_link_packets = 0
        self.fragments = 0
        self.reassembled = 0

    def anomaly(self, packet: int, reason: str) -> None:
        """Count a packet that could not be decoded and keep the first few as examples."""
        self.malformed += 1
        if len(self.anomalies) < ANOMALY_SAMPLES:
            self.anomalies.append(Anomaly(self.capture, packet, reason))

    def finish(self) -> None:
        """Account for datagrams whose fragments never all arrived."""
        for datagram in self.reassembler.drain():
            self._incomplete(datagram)

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
        min_cap = _IPV4_FAST_L4 + _UDP_HEADER
        tcp_cap = _IPV4_FAST_L4 + _TCP_FLAGS_END
        scan = reader.pcapng_scan()
        step = reader.pcapng_step
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
                                e = new_direction(udp, proto_udp, key, ts, n)
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
                                e = new_direction(tcp, proto_tcp, key, ts, n)
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
                            if e[8] and tot > 20 + ((buf[off + 46] >> 4) << 2):
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
                    record_one(record, n)
        finally:
            reader.pcapng_finish(scan)
            self.packets = base_n + scan.packets

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
        n = self.packets
        try:
            for ts, buf, off, cap, _orig, lt, dirf in records:
                n += 1
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
                        e = new_direction(udp, proto_udp, key, ts, n)
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
                        e = new_direction(tcp, proto_tcp, key, ts, n)
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
                    # WANT, and a payload behind the TCP header (data offset * 4)
                    if e[8] and tot > 20 + ((buf[off + 46] >> 4) << 2):
                        end = min(off + _ETH + tot, off + cap)
                        inspect(e, proto_tcp, key, buf, off + _IPV4_FAST_L4, end, ts, n)
                else:
                    slow(ts, buf, off, cap, lt, dirf, n)
        finally:
            self.packets = n

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
            e = self.table.new_direction(table, proto, key, ts, n)
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

    def _slow(self, ts: float, buf: bytes, off: int, cap: int, lt: int, dirf: int, n: int) -> None:
        """Decode a packet the fast path does not take."""
        if lt not in SUPPORTED_LINK_TYPES:
            if lt < 0:
                self.anomaly(n, "packet block names an interface no IDB described")
            else:
                self.unsupported_link_packets += 1
            return
        end = off + cap
        try:
            ethertype, l3, link_dir = network_layer(lt, buf, off, end)
            if ethertype not in (ETHERTYPE_IPV4, ETHERTYPE_IPV6):
                return  # ARP, LLDP, ...: not IP, not a flow
            ip = decode_ip(buf, l3, end, ethertype)
        except DecodeError as err:
            self.anomaly(n, err.what)
            return
        dirf = dirf or link_dir
        if ip.fragment is not None:
            self._fragment(ip, buf, ts, n, dirf)
            return
        self._transport(ip, ip.proto, buf, ip.l4, ip.end, ((ts, n, ip.length, dirf),))

    def _transport(
        self,
        ip: IpPacket | PendingDatagram,
        proto: int,
        buf: bytes,
        l4: int,
        end: int,
        packets: tuple[tuple[float, int, int, int], ...] | list[tuple[float, int, int, int]],
        inspect: bool = True,
    ) -> None:
        """Count a datagram (one packet, or the fragments it came in) under its flow."""
        ts, n = packets[-1][0], packets[-1][1]
        table = self.table
        src, dst = ip.src, ip.dst
        flags = 0
        isn = b""
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            need = 20 if proto == IPPROTO_TCP else _UDP_HEADER
            if l4 + need > end:
                name = "TCP" if proto == IPPROTO_TCP else "UDP"
                for _, number, _, _ in packets:
                    self.anomaly(number, f"truncated {name} header")
                return
            key = src + dst + buf[l4 : l4 + 4]
            if proto == IPPROTO_TCP:
                flags = buf[l4 + 13]
                isn = buf[l4 + 4 : l4 + 8]
                if (buf[l4 + 12] >> 4) < 5:
                    for _, number, _, _ in packets:
                        self.anomaly(number, "bad TCP header length")
                    return
        elif proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            if l4 + 4 > end:
                for _, number, _, _ in packets:
                    self.anomaly(number, "truncated ICMP header")
                return
            v6 = proto == IPPROTO_ICMPV6
            icmp_type, code = buf[l4], buf[l4 + 1]
            if is_error(icmp_type, v6) and self._icmp_error(
                ip, buf, l4, end, packets, icmp_type, code, v6
            ):
                return
            sport, dport, _ = port_equivalents(icmp_type, code, v6)
            key = src + dst + bytes((0, sport, 0, dport))
            if key not in table.tables.get(proto, {}):
                table.entry(proto, key, ts, n)[ICMP_CODE] = code
        else:
            key = src + dst + _PORTS_ZERO
        e = None
        for t, number, size, direction in packets:
            e = table.account(proto, key, t, number, size, flags, direction, isn)
        if inspect and e is not None and e[WANT]:
            self.inspector.inspect(e, proto, key, buf, l4, end, ts, n)

    def _icmp_error(
        self,
        ip: IpPacket | PendingDatagram,
        buf: bytes,
        l4: int,
        end: int,
        packets: tuple[tuple[float, int, int, int], ...] | list[tuple[float, int, int, int]],
        icmp_type: int,
        code: int,
        v6: bool,
    ) -> bool:
        """File an ICMP error under the flow it quotes; False if it quotes too little."""
        try:
            proto, src, dst, sport, dport = quoted_packet(buf, l4 + ICMP_HEADER, end, v6)
        except DecodeError:
            return False
        if proto in (IPPROTO_ICMP, IPPROTO_ICMPV6):
            sport, dport, _ = port_equivalents(sport, dport, proto == IPPROTO_ICMPV6)
            key = src + dst + bytes((0, sport, 0, dport))
        elif proto in (IPPROTO_TCP, IPPROTO_UDP):
            key = src + dst + _TCP_PORTS.pack(sport, dport)
        else:
            key = src + dst + _PORTS_ZERO
        rejected = is_rejection(icmp_type, code, v6)
        for t, number, size, _ in packets:
            self.table.icmp_error(proto, key, t, number, size, rejected, ip.src == dst)
        return True

    def _fragment(self, ip: IpPacket, buf: bytes, ts: float, n: int, dirf: int) -> None:
        self.fragments += 1
        done = self.reassembler.add(ip, buf, ts, n, dirf)
        for stale in self.reassembler.take_stale():
            self._incomplete(stale)
        if done is None:
            return
        datagram, payload = done
        self.reassembled += 1
        proto, l4 = datagram.proto, 0
        if datagram.version == 6:
            try:
                proto, l4, again = ipv6_extensions(payload, 0, len(payload), proto)
            except DecodeError as err:
                for _, number, _, _ in datagram.packets:
                    self.anomaly(number, err.what)
                return
            if again is not None:
                for _, number, _, _ in datagram.packets:
                    self.anomaly(number, "fragment header inside a reassembled datagram")
                return
        self._transport(datagram, proto, payload, l4, len(payload), datagram.packets)

    def _incomplete(self, datagram: PendingDatagram) -> None:
        """A datagram given up on: count its fragments under its flow if the first arrived.

        The first fragment names the flow (it carries the transport header), so the
        packets are not lost to the flow table; their payload is not inspected.
        """
        first = datagram.pieces.get(0)
        if first is not None:
            proto, l4 = datagram.proto, 0
            try:
                if datagram.version == 6:
                    proto, l4, _ = ipv6_extensions(first, 0, len(first), proto)
            except DecodeError:
                proto = -1
            if proto >= 0:
                self._transport(datagram, proto, first, l4, len(first), datagram.packets, False)
                return
        reason = datagram.damaged or "fragments of a datagram whose first fragment never arrived"
        for _, number, _, _ in datagram.packets:
            self.anomaly(number, f"IP fragment not reassembled: {reason}")
