"""Names, hellos and requests taken from payloads."""

from __future__ import annotations

import hashlib
import random
import struct
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP

from conformance.decode import tls
from conformance.decode.http import HttpRequestHead, parse_request_head
from conformance.observe import payloads
from conformance.observe.accounting import Accounting
from conformance.observe.builder import observe_captures
from conformance.observe.flows import FlowIds, FlowTable, new_entry
from conformance.observe.records import PayloadKind
from tests.capture_files import write_pcap
from tests.compiled_paths import pure_python
from tests.observe.conftest import Observe, facts
from tests.observe.frames import (
    CLIENT,
    CLIENT6,
    SERVER,
    SERVER6,
    client_hello,
    eth,
    handshake,
    server_hello,
    tcp,
    tcp6,
    timed,
    udp,
)

RESOLVER = "192.0.2.53"
PROXY = "192.0.2.80"


def dns_query(
    qid: int, name: str, sport: int = 40000, dst: str = RESOLVER, dport: int = 53
) -> bytes:
    return eth(
        IP(src=CLIENT, dst=dst)
        / UDP(sport=sport, dport=dport)
        / DNS(id=qid, rd=1, qd=DNSQR(qname=name))
    )


def dns_answer(
    qid: int, name: str, address: str | None, sport: int = 40000, src: str = RESOLVER
) -> bytes:
    an = DNSRR(rrname=name, type="A", rdata=address, ttl=60) if address else None
    reply = DNS(id=qid, qr=1, rcode=0 if address else 3, qd=DNSQR(qname=name), an=an)
    return eth(IP(src=src, dst=CLIENT) / UDP(sport=53, dport=sport) / reply)


def test_dns_query_matched_to_its_response(observe: Observe) -> None:
    obs = observe(
        [dns_query(7, "api.imagicle.com"), dns_answer(7, "api.imagicle.com", "203.0.113.25")]
    )
    (q,) = obs.dns
    (flow,) = obs.flows
    assert (q.packet, q.response_packet, q.flow_id) == (1, 2, flow.flow_id)
    assert (str(q.client), q.client_port, str(q.server), q.server_port) == (
        CLIENT,
        40000,
        RESOLVER,
        53,
    )
    assert (q.transport, q.protocol, q.qname, q.qtype, q.rcode) == (
        "udp",
        "dns",
        "api.imagicle.com",
        1,
        0,
    )
    assert [(a.name, a.rtype, a.value) for a in q.answers] == [
        ("api.imagicle.com", 1, "203.0.113.25")
    ]
    assert q.count == 1
    assert flow.payload_out is PayloadKind.DNS and flow.payload_in is PayloadKind.DNS


def test_identical_repeats_are_merged(observe: Observe) -> None:
    frames = []
    for i in range(5):
        frames += [
            dns_query(100 + i, "cucm.acme.example"),
            dns_answer(100 + i, "cucm.acme.example", "192.0.2.20"),
        ]
    obs = observe(frames)
    (q,) = obs.dns
    assert q.count == 5
    assert (q.packet, q.last_packet) == (1, 9)


def test_unanswered_and_nxdomain_are_kept_apart(observe: Observe) -> None:
    obs = observe(
        [
            dns_query(1, "telemetry.imagicle.cloud"),
            dns_query(1, "telemetry.imagicle.cloud"),  # retransmission
            dns_query(2, "nothere.acme.example"),
            dns_answer(2, "nothere.acme.example", None),
        ]
    )
    by_name = {q.qname: q for q in obs.dns}
    lost = by_name["telemetry.imagicle.cloud"]
    assert (lost.response_packet, lost.rcode, lost.count, lost.last_packet) == (None, None, 2, 2)
    nx = by_name["nothere.acme.example"]
    assert (nx.response_packet, nx.rcode, nx.answers) == (4, 3, ())


def test_response_without_its_query(observe: Observe) -> None:
    (q,) = observe([dns_answer(9, "api.imagicle.com", "203.0.113.25")]).dns
    assert (q.packet, q.response_packet) == (1, 1)
    assert str(q.client) == CLIENT


def test_malformed_dns_is_an_anomaly_not_a_crash(observe: Observe) -> None:
    obs = observe(
        [udp(CLIENT, RESOLVER, 40000, 53, b"\x00\x01garbage"), dns_query(3, "ok.example")]
    )
    summary = obs.captures[0]
    assert summary.malformed == 1
    assert summary.anomalies[0].packet == 1
    assert summary.anomalies[0].reason.startswith("DNS: ")
    (unread,) = summary.payload_not_understood
    assert (unread.count, unread.frames) == (1, (1,))
    assert summary.not_understood == ()  # the packet itself was decoded
    assert [q.qname for q in obs.dns] == ["ok.example"]
    (flow,) = obs.flows
    assert flow.packets_out == 2  # the damaged message still counts in its flow


def test_dns_over_tcp_with_length_prefix_across_segments(observe: Observe) -> None:
    query = bytes(DNS(id=5, rd=1, qd=DNSQR(qname="api.imagicle.com")))
    framed = struct.pack("!H", len(query)) + query
    reply = bytes(
        DNS(
            id=5,
            qr=1,
            qd=DNSQR(qname="api.imagicle.com"),
            an=DNSRR(rrname="api.imagicle.com", rdata="203.0.113.25"),
        )
    )
    frames = [
        *handshake(CLIENT, RESOLVER, 41000, 53),
        tcp(CLIENT, RESOLVER, 41000, 53, "PA", framed[:10], seq=1001, ack=5001),
        tcp(CLIENT, RESOLVER, 41000, 53, "PA", framed[10:], seq=1011, ack=5001),
        tcp(RESOLVER, CLIENT, 53, 41000, "PA", struct.pack("!H", len(reply)) + reply, seq=5001),
    ]
    (q,) = observe(frames).dns
    assert (q.transport, q.packet, q.response_packet) == ("tcp", 5, 6)
    assert q.answers[0].value == "203.0.113.25"


def test_mdns_and_llmnr_protocols(observe: Observe) -> None:
    mdns = eth(
        IP(src=CLIENT, dst="224.0.0.251")
        / UDP(sport=5353, dport=5353)
        / DNS(qr=1, aa=1, qd=[], an=DNSRR(rrname="ucx.local", rdata=CLIENT, ttl=120))
    )
    llmnr = dns_query(8, "wpad", sport=50000, dst="224.0.0.252", dport=5355)
    obs = observe([mdns, mdns, llmnr])
    by_protocol = {q.protocol: q for q in obs.dns}
    assert by_protocol["mdns"].qname == "ucx.local"
    assert by_protocol["mdns"].count == 2
    assert by_protocol["llmnr"].qname == "wpad"


def test_nbns_and_ssdp_names(observe: Observe) -> None:
    nbns = bytes(
        DNS(id=1, opcode=0, rd=1, qd=DNSQR(qname=b"FHEPFCELEHFCEPFFFACACACACACACAAA", qtype=32))
    )
    ssdp = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nLOCATION: http://updates.imagicle.com/desc.xml\r\n\r\n"
    obs = observe(
        [
            udp(CLIENT, "192.0.2.255", 137, 137, nbns),
            udp(CLIENT, "192.0.2.255", 137, 137, nbns),
            udp(CLIENT, "239.255.255.250", 50000, 1900, ssdp),
        ]
    )
    names = {(m.protocol, m.name) for m in obs.names}
    assert ("nbns", "workgroup") in names
    assert ("ssdp", "updates.imagicle.com") in names
    assert len([m for m in obs.names if m.protocol == "nbns"]) == 1  # repeats kept once


def test_client_hello_split_over_two_segments(observe: Observe) -> None:
    hello = client_hello("api.imagicle.com", padding=1500)
    frames = [
        *handshake(),
        tcp(CLIENT, SERVER, 51000, 443, "A", hello[:1000], seq=1001, ack=5001),
        tcp(CLIENT, SERVER, 51000, 443, "PA", hello[1000:], seq=2001, ack=5001),
        tcp(SERVER, CLIENT, 443, 51000, "PA", server_hello() + b"\x17\x03\x03\x00\x01x", seq=5001),
    ]
    obs = observe(frames)
    (flow,) = obs.flows
    (ch,) = obs.client_hellos
    assert (ch.flow_id, ch.packet, ch.segments, ch.sni) == (flow.flow_id, 5, 2, "api.imagicle.com")
    assert ch.versions == (0x0304, 0x0303)
    assert ch.alpn == ("h2", "http/1.1")
    (sh,) = obs.server_hellos
    assert (sh.flow_id, sh.packet, sh.version, sh.cipher_suite) == (flow.flow_id, 6, 0x0304, 0x1301)
    assert flow.payload_out is PayloadKind.TLS and flow.payload_in is PayloadKind.TLS
    assert flow.first_payload_packet == 4


def test_truncated_client_hello_is_counted_and_its_name_still_read(observe: Observe) -> None:
    hello = client_hello(padding=1500)
    frames = [*handshake()]
    frames += [tcp(CLIENT, SERVER, 51000, 443, "A", hello[:100], seq=1001 + i) for i in range(16)]
    obs = observe(frames)
    assert obs.captures[0].anomalies[0].reason == "TLS: ClientHello incomplete"
    (ch,) = obs.client_hellos  # decision 10: what the bytes show is still read
    assert (ch.sni, ch.packet, ch.segments) == ("api.imagicle.com", 19, 16)


def test_connect_then_tls_inside_the_tunnel(observe: Observe) -> None:
    connect = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    established = b"HTTP/1.1 200 Connection established\r\n\r\n"
    frames = [
        *handshake(CLIENT, PROXY, 52000, 3128, connect, established),
        tcp(CLIENT, PROXY, 52000, 3128, "PA", client_hello("api.imagicle.com"), seq=2000),
        tcp(PROXY, CLIENT, 3128, 52000, "PA", server_hello(0x0303, 0xC02F), seq=6000),
    ]
    obs = observe(frames)
    (flow,) = obs.flows
    (req,) = obs.http_requests
    assert (req.method, req.target, req.host, req.flow_id) == (
        "CONNECT",
        "api.imagicle.com:443",
        "api.imagicle.com:443",
        flow.flow_id,
    )
    (ch,) = obs.client_hellos
    assert (ch.flow_id, ch.sni, ch.packet) == (flow.flow_id, "api.imagicle.com", 6)
    (sh,) = obs.server_hellos
    assert (sh.flow_id, sh.version, sh.cipher_suite) == (flow.flow_id, 0x0303, 0xC02F)
    assert flow.payload_out is PayloadKind.HTTP


def test_a_second_connect_after_a_refusal_is_read(observe: Observe) -> None:
    """After a 407 the client asks again on the same connection: the second CONNECT (here to
    another authority, with a hello naming the first) is a request like the first."""
    first = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    refused = b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
    second = b"CONNECT evil.example.net:443 HTTP/1.1\r\nHost: evil.example.net:443\r\n\r\n"
    hello = client_hello("api.imagicle.com")
    frames = [
        *handshake(CLIENT, PROXY, 52002, 3128, first, refused),
        tcp(CLIENT, PROXY, 52002, 3128, "PA", second, seq=2000),
        tcp(PROXY, CLIENT, 3128, 52002, "PA", b"HTTP/1.1 200 OK\r\n\r\n", seq=6000),
        tcp(CLIENT, PROXY, 52002, 3128, "PA", hello, seq=2000 + len(second)),
        tcp(CLIENT, PROXY, 52002, 3128, "PA", b"\x17\x03\x03\x00\x05hello", seq=9000),
    ]
    obs = observe(frames)
    targets = [(r.method, r.target) for r in obs.http_requests]
    assert targets == [("CONNECT", "api.imagicle.com:443"), ("CONNECT", "evil.example.net:443")]
    assert [h.sni for h in obs.client_hellos] == ["api.imagicle.com"]


def test_plain_http_inside_a_tunnel_is_a_request(observe: Observe) -> None:
    connect = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    established = b"HTTP/1.1 200 Connection established\r\n\r\n"
    get = b"GET /beat HTTP/1.1\r\nHost: api.imagicle.com\r\n\r\n"
    frames = [
        *handshake(CLIENT, PROXY, 52003, 3128, connect, established),
        tcp(CLIENT, PROXY, 52003, 3128, "PA", get, seq=2000),
    ]
    obs = observe(frames)
    targets = [(r.method, r.target, r.host) for r in obs.http_requests]
    assert targets == [
        ("CONNECT", "api.imagicle.com:443", "api.imagicle.com:443"),
        ("GET", "/beat", "api.imagicle.com"),
    ]


def test_http_requests_on_a_keep_alive_flow(observe: Observe) -> None:
    get = b"GET http://updates.example/x HTTP/1.1\r\nHost: updates.example\r\n\r\n"
    frames = [
        *handshake(
            CLIENT, PROXY, 52001, 3128, get, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        ),
        tcp(CLIENT, PROXY, 52001, 3128, "PA", get, seq=3000),
        tcp(
            CLIENT,
            PROXY,
            52001,
            3128,
            "PA",
            b"POST /t HTTP/1.1\r\nHost: t.example\r\n\r\n",
            seq=4000,
        ),
        tcp(CLIENT, PROXY, 52001, 3128, "PA", b"body bytes, not a request", seq=5000),
    ]
    obs = observe(frames)
    got = sorted((r.method, r.target, r.host, r.count, r.packet) for r in obs.http_requests)
    assert got == [
        ("GET", "http://updates.example/x", "updates.example", 2, 4),
        ("POST", "/t", "t.example", 1, 7),
    ]


def test_http_only_when_the_first_payload_is_http(observe: Observe) -> None:
    frames = [
        *handshake(request=b"\x00binary first"),
        tcp(CLIENT, SERVER, 51000, 443, "PA", b"GET / HTTP/1.1\r\n\r\n", seq=3000),
    ]
    assert observe(frames).http_requests == ()


def test_bad_tcp_data_offset_is_counted_and_the_segment_still_counts(observe: Observe) -> None:
    bad = eth(
        IP(src=CLIENT, dst=SERVER) / TCP(sport=51000, dport=443, flags="PA", dataofs=3) / b"data"
    )
    obs = observe([*handshake(), bad])
    assert obs.captures[0].malformed == 1
    assert obs.captures[0].anomalies[0].reason == "TCP data offset lies"
    (flow,) = obs.flows
    assert flow.packets_out == 3


def test_server_hello_split_over_two_segments(observe: Observe) -> None:
    hello = server_hello(0x0303, 0xC030)
    frames = [
        *handshake(request=client_hello()),
        tcp(SERVER, CLIENT, 443, 51000, "A", hello[:20], seq=5001),
        tcp(SERVER, CLIENT, 443, 51000, "PA", hello[20:], seq=5021),
    ]
    obs = observe(frames)
    (sh,) = obs.server_hellos
    assert (sh.packet, sh.version, sh.cipher_suite) == (6, 0x0303, 0xC030)
    assert len(obs.client_hellos) == 1


def test_hello_retry_request_waits_for_the_real_server_hello(observe: Observe) -> None:
    import hashlib

    hrr = bytearray(server_hello())
    hrr[11:43] = hashlib.sha256(b"HelloRetryRequest").digest()  # RFC 8446 §4.1.3
    frames = [
        *handshake(request=client_hello()),
        tcp(SERVER, CLIENT, 443, 51000, "PA", bytes(hrr), seq=5001),
        tcp(CLIENT, SERVER, 51000, 443, "PA", client_hello(), seq=3000),
        tcp(SERVER, CLIENT, 443, 51000, "PA", server_hello(0x0304, 0x1302), seq=6000),
    ]
    obs = observe(frames)
    (sh,) = obs.server_hellos
    assert (sh.packet, sh.cipher_suite) == (7, 0x1302)
    # The client's second ClientHello (RFC 8446 §4.1.2) is a hello of the flow too.
    assert [h.packet for h in obs.client_hellos] == [4, 6]


@pytest.mark.parametrize("split", [False, True])
def test_second_client_hello_after_a_ccs_is_read(observe: Observe, split: bool) -> None:
    """Middlebox compatibility mode (RFC 8446 Appendix D.4): the client's ChangeCipherSpec
    comes just before its second ClientHello, in its segment or in one of its own; the second
    hello may name another server than the first, and is judged as any hello is."""
    hrr = bytearray(server_hello())
    hrr[11:43] = hashlib.sha256(b"HelloRetryRequest").digest()  # RFC 8446 §4.1.3
    ccs = b"\x14\x03\x03\x00\x01\x01"
    second = client_hello("other.example.net")
    flight = [ccs, second] if split else [ccs + second]
    frames = [
        *handshake(request=client_hello()),
        tcp(SERVER, CLIENT, 443, 51000, "PA", bytes(hrr) + ccs, seq=5001),
    ]
    seq = 3000
    for data in flight:
        frames.append(tcp(CLIENT, SERVER, 51000, 443, "PA", data, seq=seq))
        seq += len(data)
    frames.append(tcp(SERVER, CLIENT, 443, 51000, "PA", server_hello(0x0304, 0x1302), seq=6000))
    obs = observe(frames)
    assert [(h.packet, h.sni) for h in obs.client_hellos] == [
        (4, "api.imagicle.com"),
        (6 + split, "other.example.net"),
    ]
    (sh,) = obs.server_hellos
    assert (sh.packet, sh.cipher_suite) == (7 + split, 0x1302)


def test_hello_retry_request_in_a_tunnel_waits_for_the_real_server_hello(
    observe: Observe,
) -> None:
    """Inside a CONNECT tunnel the ServerHello is found by the search CONNECT began: a
    HelloRetryRequest found so must begin a new one, as on a direct connection."""
    connect = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    established = b"HTTP/1.1 200 Connection established\r\n\r\n"
    hrr = bytearray(server_hello())
    hrr[11:43] = hashlib.sha256(b"HelloRetryRequest").digest()  # RFC 8446 §4.1.3
    hello = client_hello()
    frames = [
        *handshake(CLIENT, PROXY, 52010, 3128, connect, established),
        tcp(CLIENT, PROXY, 52010, 3128, "PA", hello, seq=2000),
        tcp(PROXY, CLIENT, 3128, 52010, "PA", bytes(hrr), seq=6000),
        tcp(CLIENT, PROXY, 52010, 3128, "PA", hello, seq=2000 + len(hello)),
        tcp(PROXY, CLIENT, 3128, 52010, "PA", server_hello(0x0304, 0x1302), seq=7000),
    ]
    obs = observe(frames)
    (sh,) = obs.server_hellos
    assert (sh.packet, sh.cipher_suite) == (9, 0x1302)
    assert [h.packet for h in obs.client_hellos] == [6, 8]


def test_a_proxys_hello_as_its_first_payload_is_recorded_once(observe: Observe) -> None:
    """The proxy's answer to CONNECT is not in the capture: its first payload is the
    ServerHello, which the search CONNECT began reads (and `_first` then does not)."""
    connect = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    hello = client_hello()
    frames = [
        *handshake(CLIENT, PROXY, 52011, 3128, connect),
        tcp(CLIENT, PROXY, 52011, 3128, "PA", hello, seq=1001 + len(connect)),
        tcp(PROXY, CLIENT, 3128, 52011, "PA", server_hello(0x0303, 0xC02F), seq=5001),
    ]
    obs = observe(frames)
    assert [(h.packet, h.cipher_suite) for h in obs.server_hellos] == [(6, 0xC02F)]
    assert [h.packet for h in obs.client_hellos] == [5]
    (flow,) = obs.flows
    assert (flow.payload_out, flow.payload_in) == (PayloadKind.HTTP, PayloadKind.TLS)


def test_malformed_client_hello_is_an_anomaly(observe: Observe) -> None:
    broken = bytearray(client_hello())
    broken[43] = 200  # legacy_session_id longer than 32 bytes
    obs = observe([*handshake(request=bytes(broken))])
    assert obs.client_hellos == ()
    assert obs.captures[0].anomalies[0].reason.startswith("TLS: ClientHello: ")


def _hello_variants(rng: random.Random) -> list[tuple[bytes, bytes]]:
    """(client payload, server payload) pairs: usual hellos, damaged ones, record lengths
    that lie, hellos cut or followed by more, HelloRetryRequests."""
    hrr = bytearray(server_hello())
    hrr[11:43] = hashlib.sha256(b"HelloRetryRequest").digest()  # RFC 8446 §4.1.3
    clients = [client_hello(), client_hello(None), client_hello("a.example", padding=300)]
    servers = [server_hello(), server_hello(0x0303, 0xC02F), bytes(hrr)]
    pairs = [(c, s) for c in clients for s in servers]
    for hello in (*clients, *servers):
        pairs += [
            (hello[:3] + b"\x00\x00" + hello[5:], servers[0]),  # record length 0 (lies)
            (hello[:3] + b"\x00\x20" + hello[5:], servers[1]),  # short of the message
            (hello[:-1], hello[:-1]),  # cut: waits, then counted
            (hello + b"\x17\x03\x03\x00\x02ab", hello + b"\x16\x03\x03\x00\x04\x0b\x00\x00\x00"),
        ]
    for _ in range(60):
        damaged = [bytearray(rng.choice(clients)), bytearray(rng.choice(servers))]
        for payload in damaged:
            for _ in range(rng.randrange(1, 3)):
                at = rng.randrange(len(payload))
                payload[at] = rng.randrange(256) if at > 9 else payload[at] ^ 1
        pairs.append((bytes(damaged[0]), bytes(damaged[1])))
    return pairs


def test_usual_hellos_are_read_as_the_general_steps_read_them(
    observe: Observe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tls.quick_hello (and the one-pass readers behind parse_*) change no conclusion:
    hellos, their counts and the payloads not understood come out the same without them."""
    frames = []
    for i, (request, response) in enumerate(_hello_variants(random.Random(8446))):
        frames += handshake(cport=20000 + i, request=request, response=response)
    quick = facts(observe(frames))
    monkeypatch.setattr(payloads, "quick_hello", lambda _: None)
    monkeypatch.setattr(tls, "_one_record_end", lambda *_: None)
    monkeypatch.setattr(tls, "_one_record_length", lambda _: tls._WALK)
    assert facts(observe(frames)) == quick


def test_split_hellos_are_read_as_the_general_steps_read_them(
    observe: Observe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for hellos that arrive in two or three segments (reassembled, then read by
    quick_hello where it takes them): the facts are those of the general steps."""
    rng = random.Random(9121)
    frames = []
    for i, (request, response) in enumerate(_hello_variants(random.Random(8447))):
        frames += handshake(cport=24000 + i)
        for src, dst, sport, dport, payload, seq in (
            (CLIENT, SERVER, 24000 + i, 443, request, 1001),
            (SERVER, CLIENT, 443, 24000 + i, response, 5001),
        ):
            cuts = sorted(
                rng.sample(range(1, len(payload)), min(rng.randrange(1, 3), len(payload) - 1))
            )
            for start, end in zip([0, *cuts], [*cuts, len(payload)], strict=True):
                frames.append(
                    tcp(src, dst, sport, dport, "PA", payload[start:end], seq=seq + start)
                )
    split = facts(observe(frames))
    monkeypatch.setattr(payloads, "quick_hello", lambda _: None)
    monkeypatch.setattr(tls, "_one_record_end", lambda *_: None)
    monkeypatch.setattr(tls, "_one_record_length", lambda _: tls._WALK)
    assert facts(observe(frames)) == split


def test_a_first_request_head_is_parsed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = b"GET /a HTTP/1.1\r\nHost: api.example\r\n\r\n"
    damaged = b"GE\x01T /b HTTP/1.1\r\nHost: b.example\r\n\r\n"  # read leniently
    later = b"GET /c HTTP/1.1\r\nHost: api.example\r\n\r\n"
    frames = [
        *handshake(CLIENT, PROXY, 52001, 80, first),
        tcp(CLIENT, PROXY, 52001, 80, "PA", later, seq=2000),
        *handshake(CLIENT, PROXY, 52002, 80, damaged),
    ]
    parsed: list[bytes] = []

    def counted(payload: bytes, *, lenient: bool = False) -> HttpRequestHead | None:
        parsed.append(payload)
        return parse_request_head(payload, lenient=lenient)

    monkeypatch.setattr(payloads, "parse_request_head", counted)
    obs = observe_captures([write_pcap(tmp_path / "http.pcap", timed(frames))])
    got = sorted((r.target, r.host, r.packet) for r in obs.http_requests)
    assert got == [("/a", "api.example", 4), ("/b", "b.example", 9), ("/c", "api.example", 5)]
    assert sorted(parsed) == sorted([first, damaged, later])


def test_a_head_parsed_for_another_payload_is_not_used() -> None:
    """The head `_first` keeps is used only for the payload it was read from (a failure
    between the two steps may leave it behind)."""
    inspector = payloads.PayloadInspector(0, FlowTable(0, payloads.initial_want), Accounting(0))
    old = b"GET /old HTTP/1.1\r\nHost: old.example\r\n\r\n"
    new = b"GET /new HTTP/1.1\r\nHost: new.example\r\n\r\n"
    head = parse_request_head(old)
    assert head is not None
    inspector._first_head = (old, head)
    key = bytes(4) + bytes(4) + struct.pack("!HH", 52001, 80)
    entry = new_entry(0.0, 1, payloads.W_HTTP)
    inspector._http_head(entry, 6, key, new, 0.0, 2)
    assert [r.target for r in inspector.http_requests(FlowIds())] == ["/new"]


def test_the_inspector_lets_go_of_its_requests_and_names_once_numbered() -> None:
    """Numbering hands the records over (in the order they were first seen) and the
    inspector keeps none: they would pin the allocator's pools while the flows are built."""
    inspector = payloads.PayloadInspector(0, FlowTable(0, payloads.initial_want), Accounting(0))
    for port, target in ((52001, "/a"), (52002, "/b"), (52003, "/c")):
        key = bytes(4) + bytes(4) + struct.pack("!HH", port, 80)
        entry = new_entry(0.0, 1, payloads.W_HTTP)
        request = f"GET {target} HTTP/1.1\r\nHost: h.example\r\n\r\n".encode()
        inspector._http_head(entry, 6, key, request, 0.0, port - 52000)
    inspector._name(17, bytes(12), "nbns", "HOST", 9)
    assert [r.target for r in inspector.http_requests(FlowIds())] == ["/a", "/b", "/c"]
    assert [m.name for m in inspector.names(FlowIds())] == ["HOST"]
    assert inspector.http_requests(FlowIds()) == [] and inspector.names(FlowIds()) == []


def test_remembered_kinds_and_heads_change_no_conclusion(
    observe: Observe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Short first payloads' kinds and request heads are remembered (a proxy's CONNECT
    requests and answers repeat on every connection): the facts are those of parsing every
    payload, for repeats, near-repeats, damaged heads and payloads past the memo's size."""
    connect = b"CONNECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n"
    answer = b"HTTP/1.1 200 Connection established\r\n\r\n"
    variants = [
        connect,
        connect.replace(b"api", b"cdn"),
        b"CONNECT api.example:443 HTTP/1.1\r\n\r\n",  # no Host header
        b"CONN\x01ECT api.example:443 HTTP/1.1\r\nHost: api.example:443\r\n\r\n",  # lenient
        b"GET /poll HTTP/1.1\r\nHost: api.example\r\n" + b"X-Pad: " + b"a" * 1100 + b"\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"GET /poll HTTP/1.1\r\nHost: api.example\r\n\r\n",  # an agent's poll
        b"HTTP/1.1 200 OK\r\n\r\n",  # text with no request head, from the client
    ]
    damaged = b"GE\x01T /b HTTP/1.1\r\nHost: b.example\r\n\r\n"
    frames = []
    for i in range(24):
        request = variants[i % len(variants)]
        frames += handshake(CLIENT, PROXY, 30000 + i, 3128, request, answer)
    for i in range(3):  # the same damaged head read leniently first, then strictly (no record)
        frames += handshake(CLIENT, PROXY, 31000 + i, 80, damaged)
        frames.append(tcp(CLIENT, PROXY, 31000 + i, 80, "PA", damaged, seq=2000))
    remembered = facts(observe(frames))
    monkeypatch.setattr(payloads, "FIRST_PAYLOAD_MEMO_BYTES", -1)  # nothing remembered
    assert facts(observe(frames)) == remembered
    monkeypatch.setattr(payloads, "FIRST_PAYLOAD_MEMO_BYTES", 4096)
    monkeypatch.setattr(payloads, "FIRST_PAYLOAD_CACHE", 2)  # forgotten over and over
    assert facts(observe(frames)) == remembered


def test_the_memo_of_first_payloads_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(payloads, "FIRST_PAYLOAD_CACHE", 8)
    inspector = payloads.PayloadInspector(0, FlowTable(0, payloads.initial_want), Accounting(0))
    for i in range(100):
        payload = b"GET /%d HTTP/1.1\r\nHost: h.example\r\n\r\n" % i
        assert inspector._request_head(payload, False) == parse_request_head(payload)
        assert inspector._kind(payload) is PayloadKind.HTTP
        assert len(inspector._heads) <= 8
        assert len(inspector._kinds) <= 8
    long = b"GET /x HTTP/1.1\r\nHost: h.example\r\n" + b"X: " + b"y" * 2000 + b"\r\n\r\n"
    inspector._heads.clear()
    assert inspector._request_head(long, True) == parse_request_head(long, lenient=True)
    assert not inspector._heads  # past FIRST_PAYLOAD_MEMO_BYTES: parsed, not remembered


def test_a_proxys_answer_counts_against_the_hello_search_each_time(observe: Observe) -> None:
    """After CONNECT both sides look for a hello in their next MAX_SEARCH_SEGMENTS payloads,
    the proxy's answer among them. The same answer repeats on every connection (its kind and
    head are remembered, and the compiled step takes it then): the ServerHello is found only
    within the search, whether the answer was read by the inspector or by the step."""
    connect = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    answer = b"HTTP/1.1 200 Connection established\r\n\r\n"
    frames: list[bytes] = []
    found = 0
    port = 40000
    for extra in range(payloads.MAX_SEARCH_SEGMENTS + 1):
        for _ in range(3):
            port += 1
            frames += handshake(CLIENT, PROXY, port, 3128)
            frames.append(tcp(CLIENT, PROXY, port, 3128, "PA", connect, seq=1001))
            seq = 5001
            for payload in [answer] + [b"x-padding: %d\r\n" % i for i in range(extra)]:
                frames.append(tcp(PROXY, CLIENT, 3128, port, "PA", payload, seq=seq))
                seq += len(payload)
            frames.append(tcp(PROXY, CLIENT, 3128, port, "PA", server_hello(), seq=seq))
            found += extra + 1 < payloads.MAX_SEARCH_SEGMENTS
    obs = observe(frames)
    assert len(obs.server_hellos) == found


def test_a_proxys_answer_over_ipv6_is_read_as_over_ipv4(observe: Observe) -> None:
    connect = b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n"
    answer = b"HTTP/1.1 200 Connection established\r\n\r\n"
    frames: list[bytes] = []
    for port in range(41000, 41004):
        frames += [
            tcp6(CLIENT6, SERVER6, port, 3128, "S"),
            tcp6(SERVER6, CLIENT6, 3128, port, "SA"),
            tcp6(CLIENT6, SERVER6, port, 3128, "PA", connect),
            tcp6(SERVER6, CLIENT6, 3128, port, "PA", answer),
            tcp6(SERVER6, CLIENT6, 3128, port, "PA", server_hello()),
        ]
    obs = observe(frames)
    assert len(obs.server_hellos) == 4
    assert all(f.payload_in is PayloadKind.HTTP for f in obs.flows)


def test_directions_with_equal_first_bytes_share_one_object(
    observe: Observe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """#17: each direction keeps its first payload's head (`payload_head_out`), and equal
    heads are one object (the web mix's 130k directions keep 354 values), in the compiled
    step and in the Python one alike, and with the table forgotten over and over."""
    hello = client_hello("api.imagicle.com")
    poll = b"GET /poll HTTP/1.1\r\nHost: api.example\r\n\r\n"
    frames = []
    for i in range(6):
        frames += handshake(CLIENT, SERVER, 40000 + i, 443, hello, server_hello())
        frames += handshake(CLIENT, PROXY, 41000 + i, 8080, poll)
    path = write_pcap(tmp_path / "heads.pcap", timed(frames))
    for cache in (payloads.FIRST_PAYLOAD_CACHE, 1):
        monkeypatch.setattr(payloads, "FIRST_PAYLOAD_CACHE", cache)
        observe(frames)  # every fact alike in both steps, whole and in parts
        with pure_python():
            pure = observe_captures([path])
        for obs in (observe_captures([path]), pure):
            heads = [flow.payload_head_out for flow in obs.flows]
            assert sorted(heads) == sorted([hello[:5]] * 6 + [poll] * 6), heads
            if cache > 1:
                assert len({id(head) for head in heads}) == 2, "equal heads are one object"
