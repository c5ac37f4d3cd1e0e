"""Payload inspection for the few flows that need it: first payloads, names, hellos, HTTP.

The hot loop calls `PayloadInspector.inspect` only while a direction's WANT bits are
set. Every direction starts with W_FIRST (classify its first payload); name
protocols keep theirs for the whole flow (every DNS message counts); TLS hello
assembly, HTTP request heads and CONNECT tunnels keep theirs only as long as they
need, so a media stream costs one inspection in its whole life.

QUIC is recognised the same way, on any UDP port: a direction whose first payload is a
QUIC long-header packet keeps W_QUIC and feeds every payload to its Initial reader
(decode/quic.py) until the reader is done; the reverse direction of such a flow reads
the server's Initials with the keys the client's reader found. Other UDP (RTP) pays only
the look at its first byte.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, MutableSequence
from dataclasses import dataclass

from conformance.decode.classify import classify_payload
from conformance.decode.dns import (
    TYPE_HTTPS,
    TYPE_SVCB,
    DnsMessage,
    parse_dns,
    parse_nbns_name,
    parse_svcb_rdata,
    ssdp_names,
)
from conformance.decode.errors import DecodeError
from conformance.decode.hello_salvage import (
    lenient_client_hello_length,
    partial_client_hello,
    reframed_client_hello,
)
from conformance.decode.http import HttpRequestHead, parse_request_head
from conformance.decode.ip import IPPROTO_TCP, IPPROTO_UDP
from conformance.decode.ldap import is_starttls_request
from conformance.decode.quic import (
    SUPPORTED_VERSIONS,
    QuicClientReader,
    QuicServerReader,
)
from conformance.decode.tcp import TCP_HEADER, tcp_options_end
from conformance.decode.tls import (
    ClientHelloInfo,
    EchExtension,
    ServerHelloInfo,
    client_hello_length,
    parse_client_hello,
    parse_server_hello,
    quick_hello,
)
from conformance.decode.tunnel import TUNNEL_UDP_PORTS
from conformance.observe.accounting import Accounting, party_key
from conformance.observe.dnsmap import DnsMap
from conformance.observe.flows import (
    HEAD,
    KIND,
    PAYLOAD_HEAD_BYTES,
    PAYLOAD_N,
    STREAM,
    SYNACK_SEEN,
    TCP_OPEN,
    TLS_HEAD_BYTES,
    WANT,
    Entry,
    FlowIds,
    FlowRef,
    FlowRefs,
    FlowTable,
    flow_ref,
    key_parts,
    reverse_key,
)
from conformance.observe.records import (
    EchKind,
    HttpRequest,
    NameMention,
    PayloadKind,
    TlsClientHello,
    TlsServerHello,
    maker,
    record_store,
    renumbering,
)

# Every field given, in order (records.maker: the hot path makes one per hello).
_CLIENT_HELLO = maker(TlsClientHello)
_SERVER_HELLO = maker(TlsServerHello)
_HTTP_REQUEST = maker(HttpRequest)

W_FIRST = 1  # classify the first payload
W_DNS = 2  # every payload is DNS-format (TCP: with a 2-byte length prefix)
W_NBNS = 4  # NetBIOS name service
W_SSDP = 8  # SSDP (HTTP over UDP)
W_HTTP = 16  # check every segment start for an HTTP/1.x request head
W_HELLO = 32  # assembling a ClientHello or ServerHello across segments
W_SEARCH = 64  # the next few payloads may start a hello (after CONNECT, HRR)
W_TUNNEL = 128  # every payload is a VXLAN/Geneve packet: walk what it carries (layers.py)
W_QUIC = 256  # a QUIC direction: every payload goes to its Initial reader until it is done

DNS_PORTS = frozenset({53, 5353, 5355})  # DNS, mDNS (RFC 6762), LLMNR (RFC 4795)
NBNS_PORT = 137
SSDP_PORT = 1900

# A ClientHello with post-quantum key shares is ~2 KiB; 64 KiB covers any real one.
MAX_HELLO_BYTES = 65536
# Segments a hello may span: more means loss or a peer dribbling bytes.
MAX_HELLO_SEGMENTS = 16
# Payloads looked at for a hello after CONNECT (the proxy's reply, a split request
# head) or after a HelloRetryRequest.
MAX_SEARCH_SEGMENTS = 4
# A DNS message over TCP is at most 65535 bytes plus its length prefix (RFC 1035 §4.2.2).
MAX_DNS_TCP_BUFFER = 65537
# Distinct DNS message bodies (all but the 2-byte ID) whose decoding is remembered: a
# host asks the same few names all day. Bounded; the cache starts over when full.
DNS_BODY_CACHE = 2048
# First payloads of at most this many bytes have their kind and request head remembered (at
# most FIRST_PAYLOAD_CACHE of them, then forgotten): a proxy's CONNECT requests and its
# answers, or an agent's polls, repeat the same bytes on every connection, and classifying
# and parsing them was a fifth of the 2M web capture's Python inspection time (#17).
FIRST_PAYLOAD_MEMO_BYTES = 1024
FIRST_PAYLOAD_CACHE = 1024
# QUIC clients whose reader finished before their server's first datagram: their connection
# IDs wait for it (the server's Initial keys come from them, RFC 9001 §5.2). Bounded: past
# it the oldest go, and a server answering that late is counted as not understood.
MAX_QUIC_WAITING = 1024
# RFC 8999 §5.1: a long header has the header form and (for every QUIC version so far) the
# fixed bit set, then a 32-bit version. IETF drafts are 0xff0000NN (RFC 9000 §15).
QUIC_LONG_HEADER = 0xC0
QUIC_DRAFT_PREFIX = 0xFF00_0000
# A server's first datagram may be a Version Negotiation packet: any first bits, version 0
# (RFC 8999 §6). Every other packet that starts a QUIC direction has both bits above set.
_VERSION_NEGOTIATION = bytes(4)

_TLS_HANDSHAKE = 0x16
_TLS_SERVER_HELLO = 2
_RECORD_HEADER = 5
# A TLS 1.2-framed ChangeCipherSpec record (type 20, length 1, value 1), as TLS 1.3 sends it.
_CHANGE_CIPHER_SPEC = b"\x14\x03\x03\x00\x01\x01"
_CCS_BYTES = len(_CHANGE_CIPHER_SPEC)
_HANDSHAKE_HEADER = 4
_CLIENT = 1
_SERVER = 2

# Where a request line or ClientHello may start when a TCP data offset lies: the usual
# method tokens (RFC 9110 §9) and a handshake record header. Searched only in segments
# whose data offset was shown to lie.
_REQUEST_STARTS = (
    b"\x16\x03",
    b"CONNECT ",
    b"GET ",
    b"POST ",
    b"PUT ",
    b"HEAD ",
    b"OPTIONS ",
    b"DELETE ",
    b"PATCH ",
)
_HTTP_VERSION = b" HTTP/1."
_SVCB_TYPES = (TYPE_SVCB, TYPE_HTTPS)
_DNS_TYPE_NAMES = {TYPE_SVCB: "SVCB", TYPE_HTTPS: "HTTPS"}
# What a step's failure is counted as (controls.md decision 10: "<protocol>: <error>").
_STEP_BITS = {"TLS": W_HELLO | W_SEARCH, "HTTP": W_HTTP, "QUIC": W_QUIC}

# Enum members, looked up once: a member's lookup through its class is slow (3.11).
_KIND_TLS = PayloadKind.TLS
_KIND_HTTP = PayloadKind.HTTP
_KIND_OTHER = PayloadKind.OTHER
_KIND_LDAP = PayloadKind.LDAP
_ECH_NONE = EchKind.NONE
_ECH_UNKNOWN = EchKind.UNKNOWN

TunnelSink = Callable[[int, bytes, bytes, int, int, float, int], None]


def no_tunnel(port: int, key: bytes, buf: bytes, start: int, end: int, t: float, n: int) -> None:
    """Default tunnel sink: the ingest replaces it with the layer walker's."""


def counted_again(record: HttpRequest) -> HttpRequest:
    """The record of a request head seen once more on its connection (repeats are few: a
    copy each, rather than a counter beside every record, 0.5 MiB of the 2M web mix, #17)."""
    return dataclasses.replace(record, count=record.count + 1)


@dataclass(slots=True)
class QuicDirection:
    """QUIC Initial reading of one UDP direction (in its entry's STREAM while W_QUIC is set)."""

    client: QuicClientReader | None = None  # the direction is the client's
    server: QuicServerReader | None = None  # the direction is the server's
    packet: int = 0  # the last packet fed
    failed: bool = False  # an error was counted: an incomplete hello is not counted again


class _FinishedClient(QuicClientReader):
    """A freed client reader's connection IDs: all a server reader needs of its client.

    Lets the client's reader (keys, CRYPTO stream) go when it is done, however late the
    server answers.
    """

    def __init__(self, dcids: tuple[bytes, ...]) -> None:
        super().__init__()
        self._dcids = dcids

    @property
    def key_dcids(self) -> tuple[bytes, ...]:
        """The connection IDs the client's Initial keys came from, oldest first."""
        return self._dcids


@dataclass(slots=True)
class Stream:
    """Reassembly state of one TCP direction (only for directions that need it)."""

    hello: bytearray | None = None
    hello_kind: int = 0  # _CLIENT or _SERVER
    hello_segments: int = 0
    search: int = 0  # payloads left to look at for a hello start
    dns: bytearray | None = None
    lenient: bool = False  # the hello's record length lied: go by its handshake header
    hello_packet: int = 0  # the last packet added to the hello
    hello_time: float = 0.0
    tunnel: bool = False  # a CONNECT was sent on this direction (see `_http_head`)


def initial_want(proto: int, key: bytes) -> int:
    """What a new direction needs inspected, from its protocol and ports (the compiled step
    answers the same from a port-flag table: observe/_step.pyx `_initial_want`)."""
    if proto not in (IPPROTO_TCP, IPPROTO_UDP):
        return 0
    sport = (key[-4] << 8) | key[-3]
    dport = (key[-2] << 8) | key[-1]
    want = W_FIRST
    if proto == IPPROTO_UDP and dport in TUNNEL_UDP_PORTS:
        return want | W_TUNNEL
    if sport in DNS_PORTS or dport in DNS_PORTS:
        want |= W_DNS
    if proto == IPPROTO_UDP:
        if NBNS_PORT in (sport, dport):
            want |= W_NBNS
        if SSDP_PORT in (sport, dport):
            want |= W_SSDP
    return want


def shared_head(values: dict[bytes, bytes], head: bytes) -> bytes:
    """`head`, or the equal bytes object `values` already holds (kept there for the next
    direction; forgotten when the table is full, as the other memos)."""
    known = values.get(head)
    if known is not None:
        return known
    if len(values) >= FIRST_PAYLOAD_CACHE:
        values.clear()
    values[head] = head
    return head


def quic_long_header_version(payload: bytes) -> int | None:
    """The version of a UDP payload that starts with a QUIC long header, else None.

    A version is one QUIC defines (v1, v2, an IETF draft) or one decode/quic.py reads;
    version 0 (Version Negotiation) is only ever a reply and not counted here.
    """
    if len(payload) < 5 or payload[0] & QUIC_LONG_HEADER != QUIC_LONG_HEADER:
        return None
    version = int.from_bytes(payload[1:5], "big")
    if version in SUPPORTED_VERSIONS or version & 0xFFFF_FF00 == QUIC_DRAFT_PREFIX:
        return version
    return None


def dns_protocol(sport: int, dport: int) -> str:
    """The name protocol of a DNS-format flow, by its ports (alike for both directions)."""
    if sport == 53 or dport == 53:
        return "dns"
    if sport == 5355 or dport == 5355:
        return "llmnr"
    if sport == 5353 or dport == 5353:
        return "mdns"
    return "dns"


class PayloadInspector:
    """Turns payloads into name, hello and request records for one capture."""

    def __init__(self, capture: int, table: FlowTable, accounting: Accounting) -> None:
        self.capture = capture
        self.table = table
        self.accounting = accounting
        self.tunnel: TunnelSink = no_tunnel
        self.dns = DnsMap(capture)
        # The hellos, and the flow each names (client_refs[i] is client_hellos[i]'s): not a
        # list of pairs, which cost a tuple each (#17: 8 MiB of the web mix's 129k hellos
        # while the walk goes on), the hellos packed out of memory (records.record_store) and
        # the references packed (flows.FlowRefs).
        self.client_hellos: MutableSequence[TlsClientHello] = record_store(TlsClientHello)
        self.client_refs = FlowRefs()
        self.server_hellos: MutableSequence[TlsServerHello] = record_store(TlsServerHello)
        self.server_refs = FlowRefs()
        # The ECH extension of client_hellos[i], for the capture-wide classification
        # (observe/ech_kinds.py); those hellos are recorded as EchKind.UNKNOWN until then.
        self.ech_extensions: dict[int, EchExtension] = {}
        # HelloRetryRequests that carried the ECH confirmation (RFC 9849 §7.2.1): (flow, packet)
        self.ech_confirmed: list[tuple[FlowRef, int]] = []
        self._quic_waiting: dict[FlowRef, tuple[bytes, ...]] = {}
        self.quic_waiting_high = 0  # most ever waiting at once (capture_parts checks it)
        self._quic_seen = False  # a QUIC client direction started: a reply may be QUIC
        self._http: dict[tuple[FlowRef, int, str, str, str, str | None], HttpRequest] = {}
        self._names: dict[tuple[FlowRef, int, str, str], NameMention] = {}
        self._dns_bodies: dict[bytes, tuple[bytes, DnsMessage, str | None]] = {}
        self._ints: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._strs: dict[tuple[str, ...], tuple[str, ...]] = {}
        # The request head `_first` found in a direction's first payload, for `_http_head`
        # to record from the same payload object without parsing it again.
        self._first_head: tuple[bytes, HttpRequestHead] | None = None
        # classify_payload and parse_request_head of short payloads seen before (pure
        # functions of the bytes): payload -> kind; (payload, lenient) -> head
        self._kinds: dict[bytes, PayloadKind] = {}
        self._heads: dict[tuple[bytes, bool], HttpRequestHead | None] = {}
        # The first bytes each direction keeps (`HEAD`), one object per value: the web mix's
        # 130k directions keep 354 values, and a copy each cost 4 MiB (#17).
        self._head_values: dict[bytes, bytes] = {}

    # -- entry point from the hot loop ----------------------------------------------------

    def inspect(  # noqa: C901, PLR0912 (per packet with payload: inlined on purpose)
        self,
        e: Entry,
        proto: int,
        key: bytes,
        buf: bytes,
        l4: int,
        end: int,
        time: float,
        packet: int,
    ) -> None:
        """Look at one packet's payload; l4 is its transport header, end the datagram's end.

        The compiled step reads the commonest payloads itself, with these steps
        (observe/_step.pyx: `_usual_hello`, `_hello_begins`, `_hello_more`, `_known_first`,
        `_request`): a change to `_first`, `_search`, `_start_hello`, `_continue_hello`,
        `_try_hello`, `_http_head`, `_record_client_hello` or `_server_hello` is made there
        too.

        Any parser that breaks on the packet costs that packet only: it is counted as a
        payload not understood ("<protocol>: <error>") and the run goes on (decision 10).
        """
        step = "TCP" if proto == IPPROTO_TCP else "UDP"
        try:
            if proto == IPPROTO_TCP:
                start = l4 + (buf[l4 + 12] >> 4) * 4
                if (
                    start < l4 + TCP_HEADER
                    or start > end
                    or (
                        start > l4 + TCP_HEADER
                        and tcp_options_end(buf, l4 + TCP_HEADER, start) < start
                    )
                ):
                    start = self._lying_offset(key, buf, l4, start, end, packet)
            else:
                start = l4 + 8
                udp_end = l4 + ((buf[l4 + 4] << 8) | buf[l4 + 5])
                if udp_end < start:
                    self._unread(key, packet, "UDP length lies")
                    return
                end = min(end, udp_end)
            if start >= end:
                return
            want = e[WANT]
            if want & W_TUNNEL:
                step = "tunnel"
                self.tunnel((key[-2] << 8) | key[-1], key, buf, start, end, time, packet)
                if want == W_TUNNEL:  # every packet of a mirror's flow: nothing else to read
                    return
            payload = buf[start:end]
            if want & W_QUIC:
                step = "QUIC"
                self._quic(e, key, payload, time, packet)
            if want & W_HELLO:
                step = "TLS"
                self._continue_hello(e, proto, key, payload, time, packet)
            if want & W_FIRST:
                step = "payload"
                self._first(e, proto, key, payload, time, packet)
            if want & W_SEARCH:
                step = "TLS"
                self._search(e, proto, key, payload, time, packet)
            if e[WANT] & W_HTTP:
                step = "HTTP"
                self._http_head(e, proto, key, payload, time, packet)
            if want & W_DNS:
                step = "DNS"
                self._dns(e, proto, key, payload, time, packet)
            if want & W_NBNS:
                step = "NBNS"
                name = parse_nbns_name(payload)
                if name:
                    self._name(proto, key, "nbns", name, packet)
            if want & W_SSDP:
                step = "SSDP"
                for name in ssdp_names(payload):
                    self._name(proto, key, "ssdp", name, packet)
        except Exception as err:  # decision 10: one packet never stops the run
            if step == "payload" and e[KIND] is not PayloadKind.NONE:
                step = str(e[KIND]).upper()  # _first names what it found before parsing it
            what = err.what if isinstance(err, DecodeError) else type(err).__name__
            self._unread(key, packet, f"{step}: {what}")
            e[WANT] &= ~_STEP_BITS.get(step, 0)
            if step == "TLS" and isinstance(e[STREAM], Stream):
                e[STREAM].hello = None
            if step == "QUIC":
                e[STREAM] = None
        if not e[WANT]:
            e[STREAM] = None  # nothing more to reassemble on this direction: free it

    def finish(self) -> None:
        """The capture ended: read what hellos still waiting for bytes hold (decision 10)."""
        for proto, key, e in self.table.entries():
            stream = e[STREAM]
            if stream is None:
                continue
            if isinstance(stream, QuicDirection):
                self._quic_incomplete(key, stream)
                continue
            if proto != IPPROTO_TCP or not isinstance(stream, Stream) or stream.hello is None:
                continue
            try:
                self._give_up_hello(e, stream, proto, key)
            except Exception as err:  # decision 10
                self._unread(key, stream.hello_packet, f"TLS: {type(err).__name__}")

    def _unread(self, key: bytes, packet: int, reason: str) -> None:
        """Count a packet whose payload was not (fully) understood; it stays in its flow."""
        half = (len(key) - 4) // 2
        self.accounting.payload_not_understood(
            packet, reason, party_key((key[:half], key[half : 2 * half]))
        )

    def _lying_offset(
        self, key: bytes, buf: bytes, l4: int, start: int, end: int, packet: int
    ) -> int:
        """Where to read a segment whose data offset lies (decision 10), counting it.

        The offset is below the fixed header, past the segment, or over bytes that are
        no options. A request line or ClientHello hidden behind it is still looked for:
        where the options stop parsing, then the first request or handshake start.
        """
        self._unread(key, packet, "TCP data offset lies")
        base = l4 + TCP_HEADER
        stop = tcp_options_end(buf, base, min(max(start, base), end))
        region = buf[base:end]
        candidates = {stop - base}
        for token in _REQUEST_STARTS:
            found = region.find(token)
            if found >= 0:
                candidates.add(found)
        version = region.find(_HTTP_VERSION)
        if version >= 0:
            candidates.add(region.rfind(b"\n", 0, version) + 1)
        ordered = sorted(candidates)
        for offset in ordered:  # a whole request line or record header first
            if classify_payload(region[offset:]) in (PayloadKind.TLS, PayloadKind.HTTP):
                return base + offset
        for offset in ordered:  # then a damaged line with a Host header after it
            if parse_request_head(region[offset:], lenient=True) is not None:
                return base + offset
        return start if base <= start < end else end

    # -- results --------------------------------------------------------------------------

    def http_requests(self, ids: FlowIds) -> list[HttpRequest]:
        """HTTP request heads with repeats merged, flow ids filled in. The inspector lets go
        of its own as they are numbered (the capture has ended: nothing adds to them)."""
        renumbered = renumbering(HttpRequest)
        requests = []
        seen_requests = self._http
        while seen_requests:
            identity, seen = seen_requests.popitem()
            requests.append(renumbered(seen, ids.get(identity[0], seen.packet)))
        requests.reverse()  # popitem takes the last first
        return requests

    def names(self, ids: FlowIds) -> list[NameMention]:
        """Names carried by NBNS and SSDP, once per flow and name (let go as numbered)."""
        renumbered = renumbering(NameMention)
        named = [renumbered(m, ids.get(ref, m.packet)) for (ref, _, _, _), m in self._names.items()]
        self._names.clear()
        return named

    # -- steps ----------------------------------------------------------------------------

    def _first(
        self, e: Entry, proto: int, key: bytes, payload: bytes, time: float, packet: int
    ) -> None:
        if e[WANT] & W_DNS and proto == IPPROTO_UDP:
            kind = PayloadKind.DNS  # _dns below re-classifies it if it does not parse
        elif (
            proto == IPPROTO_UDP
            and (
                payload[0] >= QUIC_LONG_HEADER
                or (self._quic_seen and payload[1:5] == _VERSION_NEGOTIATION)
            )
            and self._quic_start(e, key, payload, packet)
        ):
            kind = PayloadKind.QUIC
        else:
            kind = self._kind(payload)
        e[KIND] = kind
        e[PAYLOAD_N] = packet
        if e[TCP_OPEN] != SYNACK_SEEN:  # a SYN-ACK's sender responds: its head is never shown
            e[HEAD] = shared_head(
                self._head_values,
                payload[: TLS_HEAD_BYTES if kind is _KIND_TLS else PAYLOAD_HEAD_BYTES],
            )
        e[WANT] &= ~W_FIRST
        if proto != IPPROTO_TCP:
            if e[WANT] & W_QUIC:  # an int test: enum members are slow to look up (3.11)
                self._quic(e, key, payload, time, packet)
            return
        if kind is _KIND_TLS and not e[WANT] & W_SEARCH:
            # (A direction searching for its hello after CONNECT has `_search` read it: read
            # here too, it would be recorded twice.)
            self._start_hello(e, proto, key, payload, time, packet)
        elif (kind is _KIND_HTTP or kind is _KIND_OTHER) and (
            (head := self._request_head(payload, True)) is not None
        ):
            # A damaged method does not hide the Host header that follows it (decision 10).
            e[WANT] |= W_HTTP
            self._first_head = (payload, head)  # _http_head reads the same payload next
        elif kind is _KIND_LDAP and is_starttls_request(payload):
            # RFC 4511 §4.14: after the server's ExtendedResponse both sides start TLS.
            self._search_both(e, key)

    def _kind(self, payload: bytes) -> PayloadKind:
        """classify_payload, remembered for short payloads."""
        if len(payload) > FIRST_PAYLOAD_MEMO_BYTES:
            return classify_payload(payload)
        kind = self._kinds.get(payload)
        if kind is None:
            if len(self._kinds) >= FIRST_PAYLOAD_CACHE:
                self._kinds.clear()
            kind = self._kinds[payload] = classify_payload(payload)
        return kind

    def _request_head(self, payload: bytes, lenient: bool) -> HttpRequestHead | None:
        """parse_request_head, remembered for short payloads."""
        if len(payload) > FIRST_PAYLOAD_MEMO_BYTES:
            return parse_request_head(payload, lenient=lenient)
        heads = self._heads
        memo = (payload, lenient)
        if memo in heads:
            return heads[memo]
        if len(heads) >= FIRST_PAYLOAD_CACHE:
            heads.clear()
        head = heads[memo] = parse_request_head(payload, lenient=lenient)
        return head

    def _http_head(
        self, e: Entry, proto: int, key: bytes, payload: bytes, time: float, packet: int
    ) -> None:
        first = self._first_head
        if first is not None and first[0] is payload:  # _first parsed it, also leniently
            head: HttpRequestHead | None = first[1]
        else:
            head = self._request_head(payload, packet == e[PAYLOAD_N])
        self._first_head = None
        if head is None:
            stream = e[STREAM]
            if isinstance(stream, Stream) and stream.tunnel and not e[WANT] & W_SEARCH:
                e[WANT] &= ~W_HTTP  # the tunnel carries what its first payloads showed
            return
        rkey = reverse_key(key)
        ref = (proto, key if key <= rkey else rkey)  # flow_ref(proto, key)
        # one record per connection: a reused 5-tuple's requests are not merged into the old
        identity = (
            ref,
            self.table.generation(ref),
            head.method,
            head.target,
            head.version,
            head.host,
        )
        seen = self._http.get(identity)
        if seen is None:
            record = _HTTP_REQUEST(
                self.capture, packet, time, 0, head.method, head.target, head.version, head.host, 1
            )
            self._http[identity] = record
        else:
            self._http[identity] = counted_again(seen)
        if head.method == "CONNECT":
            # RFC 9110 §9.3.6: after a 2xx the connection is a tunnel; the client's next
            # bytes are the inner protocol (TLS), the proxy's reply comes first. Requests are
            # still looked for while the hello is: after a refusal (407) the client asks again
            # on the same connection, and plain HTTP inside a tunnel is a request too.
            e[WANT] |= W_SEARCH
            stream = self._stream(e)
            stream.search = MAX_SEARCH_SEGMENTS
            stream.tunnel = True
            peer = self.table.tables[IPPROTO_TCP].get(rkey)
            if peer is not None:
                peer[WANT] |= W_SEARCH
                self._stream(peer).search = MAX_SEARCH_SEGMENTS

    def _search_both(self, e: Entry, key: bytes) -> None:
        """Look for a hello in the next few payloads of this direction and its peer."""
        e[WANT] |= W_SEARCH
        self._stream(e).search = MAX_SEARCH_SEGMENTS
        peer = self.table.tables[IPPROTO_TCP].get(reverse_key(key))
        if peer is not None:
            peer[WANT] |= W_SEARCH
            self._stream(peer).search = MAX_SEARCH_SEGMENTS

    def _search(
        self, e: Entry, proto: int, key: bytes, payload: bytes, time: float, packet: int
    ) -> None:
        stream = self._stream(e)
        left = stream.search - 1
        # Where a hello starts, the search is over; unless it is a HelloRetryRequest, whose
        # reading begins a new search for the real ServerHello (`_server_hello_read`).
        stream.search = 0
        if payload[:_CCS_BYTES] == _CHANGE_CIPHER_SPEC:
            # RFC 8446 Appendix D.4: in middlebox compatibility mode a client sends a
            # ChangeCipherSpec record just before its second ClientHello.
            payload = payload[_CCS_BYTES:]
        if (
            e[WANT] & W_HELLO
            or not payload
            or not self._start_hello(e, proto, key, payload, time, packet)
        ):
            stream.search = left
        if stream.search <= 0:
            e[WANT] &= ~W_SEARCH

    def _start_hello(
        self, e: Entry, proto: int, key: bytes, payload: bytes, time: float, packet: int
    ) -> bool:
        """If a hello starts this payload, collect it (now or over the next segments)."""
        if (quick := quick_hello(payload)) is not None:
            # The usual payload: one sound record holding a whole hello that reads plainly.
            # The steps below would frame it the same (client_hello_length, the lenient
            # length and _handshake_length all agree on it) and read the same.
            if isinstance(quick, ClientHelloInfo):
                self._record_client_hello(proto, key, quick, time, packet, 1)
            else:
                self._server_hello_read(e, proto, key, quick, time, packet)
            return True
        need = client_hello_length(payload)
        lenient = False
        if need is not None:
            kind = _CLIENT
        elif (loose := lenient_client_hello_length(payload)) is not None:
            # A handshake record whose length lies (0, or short of the ClientHello):
            # the handshake header says how long the message is (decision 10).
            kind, need, lenient = _CLIENT, loose, True
        elif (
            len(payload) > _RECORD_HEADER
            and payload[0] == _TLS_HANDSHAKE
            and payload[_RECORD_HEADER] == _TLS_SERVER_HELLO
        ):
            kind = _SERVER
            need = _handshake_length(payload)
        else:
            return False
        stream = self._stream(e)
        stream.hello_kind = kind
        stream.hello_segments = 1
        stream.lenient = lenient
        stream.hello_packet, stream.hello_time = packet, time
        if need is not None and need <= len(payload):  # the usual case: one segment
            self._parse_hello(e, stream, proto, key, payload, need, time, packet)
            return True
        stream.hello = bytearray(payload)
        e[WANT] |= W_HELLO
        return True

    def _continue_hello(
        self, e: Entry, proto: int, key: bytes, payload: bytes, time: float, packet: int
    ) -> None:
        stream = self._stream(e)
        if stream.hello is None:
            e[WANT] &= ~W_HELLO
            return
        stream.hello += payload
        stream.hello_segments += 1
        stream.hello_packet, stream.hello_time = packet, time
        self._try_hello(e, stream, proto, key, time, packet)

    def _try_hello(
        self, e: Entry, stream: Stream, proto: int, key: bytes, time: float, packet: int
    ) -> None:
        """Parse the hello if it is complete; give up past the bounds."""
        buf = stream.hello
        assert buf is not None
        data = bytes(buf)
        if stream.hello_kind == _SERVER:
            need = _handshake_length(data)
        elif stream.lenient:
            need = lenient_client_hello_length(data)
        else:
            need = client_hello_length(data)
        if need is None or need <= len(data):
            self._end_hello(e, stream)
            self._parse_hello(e, stream, proto, key, data, need, time, packet)
            return
        if len(data) > MAX_HELLO_BYTES or stream.hello_segments >= MAX_HELLO_SEGMENTS:
            self._give_up_hello(e, stream, proto, key)

    def _parse_hello(
        self,
        e: Entry,
        stream: Stream,
        proto: int,
        key: bytes,
        data: bytes,
        need: int | None,
        time: float,
        packet: int,
    ) -> None:
        """Record the hello `data` starts with (`need` bytes of it, by its framing)."""
        try:
            if stream.hello_kind != _CLIENT:
                self._record_server_hello(e, proto, key, data[:need], time, packet)
                return
            info = self._client_hello_info(e, stream, key, data, need, packet)
            if info is not None:
                self._record_client_hello(proto, key, info, time, packet, stream.hello_segments)
        except DecodeError as err:
            self._unread(key, packet, f"TLS: {err.what}")

    def _client_hello_info(
        self, e: Entry, stream: Stream, key: bytes, data: bytes, need: int | None, packet: int
    ) -> ClientHelloInfo | None:
        """The ClientHello, read through its records, or by its handshake header if they lie.

        None when the record lengths lied and the rest of the message is still to come
        (collection goes on). Raises DecodeError when it cannot be read either way.
        """
        if not stream.lenient:
            # A hello reassembled from segments is most often one sound record: the
            # compiled one-pass reader takes it (parse_client_hello reads it the same).
            if isinstance(quick := quick_hello(data[:need]), ClientHelloInfo):
                return quick
            try:
                return parse_client_hello(data[:need])
            except DecodeError:
                loose = lenient_client_hello_length(data)
                if loose is None:
                    raise
                if loose > len(data):  # the handshake header says more is coming
                    stream.lenient = True
                    stream.hello = bytearray(data)
                    e[WANT] |= W_HELLO
                    return None
                reframed = reframed_client_hello(data)
                if reframed is None:
                    raise
                info = parse_client_hello(reframed)
        else:
            reframed = reframed_client_hello(data)
            if reframed is None:
                raise DecodeError("ClientHello: record length lies and the message is cut", 0)
            info = parse_client_hello(reframed)
        self._unread(key, packet, "TLS record length lies")
        return info

    def _give_up_hello(self, e: Entry, stream: Stream, proto: int, key: bytes) -> None:
        """A hello whose end never came: counted, and its server name read if it is there."""
        data = bytes(stream.hello or b"")
        self._end_hello(e, stream)
        client = stream.hello_kind == _CLIENT
        what = "ClientHello" if client else "ServerHello"
        self._unread(key, stream.hello_packet, f"TLS: {what} incomplete")
        if client:
            info = partial_client_hello(data)
            if info is not None and info.sni is not None:
                self._record_client_hello(
                    proto, key, info, stream.hello_time, stream.hello_packet, stream.hello_segments
                )

    def _end_hello(self, e: Entry, stream: Stream) -> None:
        stream.hello = None
        e[WANT] &= ~W_HELLO

    def _record_client_hello(
        self,
        proto: int,
        key: bytes,
        info: ClientHelloInfo,
        time: float,
        packet: int,
        segments: int,
        quic_version: int | None = None,
    ) -> None:
        """Record a ClientHello; one with ECH is UNKNOWN until observe/ech_kinds.py decides."""
        # One object per distinct list: clients repeat the same suite lists all day.
        record = _CLIENT_HELLO(
            self.capture,
            packet,
            time,
            0,
            info.sni,
            self._ints.setdefault(info.versions, info.versions),
            self._ints.setdefault(info.cipher_suites, info.cipher_suites),
            self._strs.setdefault(info.alpn, info.alpn),
            segments,
            quic_version,
            _ECH_NONE if info.ech is None else _ECH_UNKNOWN,
        )
        if info.ech is not None:
            self.ech_extensions[len(self.client_hellos)] = info.ech
        self.client_hellos.append(record)
        self.client_refs.add(proto, key)

    def _record_server_hello(
        self, e: Entry, proto: int, key: bytes, data: bytes, time: float, packet: int
    ) -> None:
        self._server_hello_read(e, proto, key, parse_server_hello(data), time, packet)

    def _server_hello_read(
        self, e: Entry, proto: int, key: bytes, info: ServerHelloInfo, time: float, packet: int
    ) -> None:
        """Record a ServerHello read from a TCP payload; after a HelloRetryRequest, look on."""
        if info.hello_retry:
            # RFC 8446 §4.1.4: not the server's choice yet; the real ServerHello follows,
            # after the client's second ClientHello (which may name another server).
            self._search_both(e, key)
        self._server_hello(proto, key, info, time, packet)

    def _server_hello(
        self,
        proto: int,
        key: bytes,
        info: ServerHelloInfo,
        time: float,
        packet: int,
        quic_version: int | None = None,
    ) -> None:
        """Record a ServerHello; of a HelloRetryRequest only its ECH confirmation."""
        if info.hello_retry:
            if info.ech_confirmation:
                self.ech_confirmed.append((flow_ref(proto, key), packet))
            return
        record = _SERVER_HELLO(
            self.capture, packet, time, 0, info.version, info.cipher_suite, quic_version
        )
        self.server_hellos.append(record)
        self.server_refs.add(proto, key)

    # -- QUIC -----------------------------------------------------------------------------

    def _quic_start(self, e: Entry, key: bytes, payload: bytes, packet: int) -> bool:
        """Whether a UDP direction's first payload is QUIC; if it is read, give it a reader.

        The reverse direction of a flow whose client is being read is the server's, whatever
        its first packet (Initial, Retry, Version Negotiation); otherwise a long header of a
        QUIC version makes the direction a client. A direction that is in fact a server
        whose client was not seen gets a client reader too: no key opens its Initials, and
        each is counted as not understood (fail closed).
        """
        rkey = reverse_key(key)
        peer = self.table.tables[IPPROTO_UDP].get(rkey) if rkey != key else None
        state = peer[STREAM] if peer is not None else None
        client: QuicClientReader | None = None
        if isinstance(state, QuicDirection) and state.client is not None:
            client = state.client
        elif self._quic_waiting:
            dcids = self._quic_waiting.pop(flow_ref(IPPROTO_UDP, key), None)
            client = _FinishedClient(dcids) if dcids is not None else None
        if client is not None:
            e[STREAM] = QuicDirection(server=QuicServerReader(client))
            e[WANT] |= W_QUIC
            return True
        version = quic_long_header_version(payload)
        if version is None:
            return False
        if version in SUPPORTED_VERSIONS:
            e[STREAM] = QuicDirection(client=QuicClientReader())
            e[WANT] |= W_QUIC
            self._quic_seen = True
        else:
            self._unread(key, packet, f"QUIC: version 0x{version:08x} is not read")
        return True

    def _quic(self, e: Entry, key: bytes, payload: bytes, time: float, packet: int) -> None:
        """Feed one datagram to the direction's Initial reader; record the hellos it completes."""
        state = e[STREAM]
        if not isinstance(state, QuicDirection):  # freed by a failure: nothing more to read
            e[WANT] &= ~W_QUIC
            return
        state.packet = packet
        if state.client is not None:
            reader: QuicClientReader | QuicServerReader = state.client
            sent = state.client.feed(payload)
            error = sent.error
            for found in sent.hellos:
                segments = len(found.datagrams)
                self._record_client_hello(
                    IPPROTO_UDP, key, found.hello, time, packet, segments, found.version
                )
        else:
            assert state.server is not None
            reader = state.server
            answered = state.server.feed(payload)
            error = answered.error
            for reply in answered.hellos:
                self._server_hello(IPPROTO_UDP, key, reply.hello, time, packet, reply.version)
        if error is not None:
            state.failed = True
            self._unread(key, packet, f"QUIC: {error.what}")
        if reader.done:
            self._quic_done(e, key, state)

    def _quic_done(self, e: Entry, key: bytes, state: QuicDirection) -> None:
        """A reader that can read no more: free it; keep a client's connection IDs for a
        server that has not spoken yet."""
        e[WANT] &= ~W_QUIC
        e[STREAM] = None
        self._quic_incomplete(key, state)
        client = state.client
        if client is None or not client.key_dcids:
            return
        rkey = reverse_key(key)
        peer = self.table.tables[IPPROTO_UDP].get(rkey) if rkey != key else None
        if peer is not None and peer[PAYLOAD_N]:
            return  # the server's first payload came: it has its reader (or is no QUIC)
        waiting = self._quic_waiting
        if len(waiting) >= MAX_QUIC_WAITING:
            del waiting[next(iter(waiting))]
        waiting[flow_ref(IPPROTO_UDP, key)] = client.key_dcids
        self.quic_waiting_high = max(self.quic_waiting_high, len(waiting))

    def _quic_incomplete(self, key: bytes, state: QuicDirection) -> None:
        """Count a hello whose CRYPTO data began but never completed (decision 10)."""
        reader = state.client or state.server
        if reader is not None and reader.incomplete and not state.failed:
            what = "ClientHello" if state.client is not None else "ServerHello"
            self._unread(key, state.packet, f"QUIC: {what} incomplete")

    def _dns(
        self, e: Entry, proto: int, key: bytes, payload: bytes, time: float, packet: int
    ) -> None:
        src, dst, sport, dport = key_parts(key)
        protocol = dns_protocol(sport, dport)
        if proto == IPPROTO_UDP:
            messages = [payload]
            transport = "udp"
        else:
            transport = "tcp"
            stream = self._stream(e)
            if stream.dns is None:
                stream.dns = bytearray()
            stream.dns += payload
            messages = []
            while len(stream.dns) >= 2:
                size = (stream.dns[0] << 8) | stream.dns[1]
                if len(stream.dns) < 2 + size:
                    break
                messages.append(bytes(stream.dns[2 : 2 + size]))
                del stream.dns[: 2 + size]
            if len(stream.dns) > MAX_DNS_TCP_BUFFER:
                stream.dns = None
                e[WANT] &= ~W_DNS
        ends = (src, sport, dst, dport, transport, protocol)
        ref = flow_ref(proto, key)
        for message in messages:
            body = message[2:]
            try:
                body, msg, svcb_problem = self._parse_dns(message, body)
            except DecodeError as err:
                self._unread(key, packet, f"{protocol.upper()}: {err.what}")
                if e[PAYLOAD_N] == packet and proto == IPPROTO_UDP:
                    e[KIND] = classify_payload(payload)
                if proto == IPPROTO_TCP:  # the stream cannot be resynchronised
                    e[WANT] &= ~W_DNS
                    self._stream(e).dns = None
                continue
            if e[PAYLOAD_N] == packet:
                e[KIND] = PayloadKind.DNS  # the classifier leaves DNS to callers
            if svcb_problem is not None:  # the message's other answers still count
                self._unread(key, packet, f"{protocol.upper()}: {svcb_problem}")
            txid = (message[0] << 8) | message[1]
            self.dns.add(msg, txid, body, ref, ends, time, packet)

    def _parse_dns(self, message: bytes, body: bytes) -> tuple[bytes, DnsMessage, str | None]:
        """parse_dns, once per distinct body (all but the ID): repeats differ only in the ID.

        Returns the first-seen copy of the body too, so repeats share one object, and what
        is wrong with an SVCB/HTTPS answer's RDATA, if anything: ECH is classified from
        them (observe/ech_kinds.py), so one that does not decode is counted.
        """
        known = self._dns_bodies.get(body)
        if known is None:
            msg = parse_dns(message)
            known = (body, msg, _svcb_problem(msg))
            if len(self._dns_bodies) >= DNS_BODY_CACHE:
                self._dns_bodies.clear()
            self._dns_bodies[body] = known
        return known

    def _name(self, proto: int, key: bytes, protocol: str, name: str, packet: int) -> None:
        ref = flow_ref(proto, key)
        identity = (ref, self.table.generation(ref), protocol, name)
        if identity not in self._names:
            self._names[identity] = NameMention(self.capture, packet, 0, protocol, name)

    def _stream(self, e: Entry) -> Stream:
        stream = e[STREAM]
        if stream is None:
            stream = e[STREAM] = Stream()
        assert isinstance(stream, Stream)
        return stream


def _svcb_problem(msg: DnsMessage) -> str | None:
    """What is wrong with the first SVCB/HTTPS answer that does not decode, else None."""
    for answer in msg.answers:
        if answer.rtype in _SVCB_TYPES:
            try:
                parse_svcb_rdata(bytes.fromhex(answer.value))
            except DecodeError as err:
                return f"{_DNS_TYPE_NAMES[answer.rtype]} RDATA: {err.what}"
    return None


def _handshake_length(buf: bytes) -> int | None:
    """Bytes needed to hold the first handshake message (across records), or None if not TLS.

    Used for the ServerHello; like `client_hello_length`, a result above len(buf)
    means "wait for more" and may be an estimate until the record headers arrive.
    """
    head = bytearray()
    need: int | None = None
    got = 0
    pos = 0
    while True:
        if pos + _RECORD_HEADER > len(buf):
            missing = (_HANDSHAKE_HEADER if need is None else need) - got
            return pos + _RECORD_HEADER + missing
        if buf[pos] != _TLS_HANDSHAKE:
            return None if pos == 0 else pos  # framing broke: let the parser say why
        length = (buf[pos + 3] << 8) | buf[pos + 4]
        body = pos + _RECORD_HEADER
        if need is None:
            take = min(length, _HANDSHAKE_HEADER - len(head))
            head += buf[body : body + take]
            if len(head) == _HANDSHAKE_HEADER:
                need = _HANDSHAKE_HEADER + int.from_bytes(head[1:], "big")
            elif body + take > len(buf):
                return body + _HANDSHAKE_HEADER
        if need is not None and got + length >= need:
            return body + (need - got)
        got += length
        pos = body + length
