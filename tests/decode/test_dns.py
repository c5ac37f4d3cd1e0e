"""DNS, NBNS and SSDP name decoding: scapy-built messages and hand-made damage."""

from __future__ import annotations

import struct

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR, DNSRRHTTPS, DNSRRSVCB, SvcParam
from scapy.layers.netbios import NBNSHeader, NBNSQueryRequest

from conformance.decode.dns import (
    TYPE_HTTPS,
    TYPE_SVCB,
    DnsMessage,
    SvcbRecord,
    parse_dns,
    parse_nbns_name,
    parse_svcb_rdata,
    ssdp_names,
)
from conformance.decode.ech import EchConfig
from conformance.decode.errors import DecodeError
from conformance.observe.records import DnsAnswer

A, NS, CNAME, PTR, TXT, AAAA = 1, 2, 5, 12, 16, 28


def header(qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0, flags: int = 0x0100) -> bytes:
    """A DNS header with transaction id 0x1234."""
    return struct.pack("!6H", 0x1234, flags, qd, an, ns, ar)


def name(*labels: bytes) -> bytes:
    """An uncompressed wire-format name."""
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"


def pointer(offset: int) -> bytes:
    """A compression pointer to `offset` (RFC 1035 §4.1.4)."""
    return struct.pack("!H", 0xC000 | offset)


def question(wire_name: bytes, qtype: int = A) -> bytes:
    """A question entry, class IN."""
    return wire_name + struct.pack("!HH", qtype, 1)


def record(wire_name: bytes, rtype: int, rdata: bytes, ttl: int = 300) -> bytes:
    """A resource record, class IN."""
    return wire_name + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


# --- well-formed messages -----------------------------------------------------------


def test_query_built_by_scapy() -> None:
    payload = bytes(DNS(id=0xBEEF, rd=1, qd=[DNSQR(qname="API.Imagicle.COM.", qtype="AAAA")]))
    assert parse_dns(payload) == DnsMessage(
        txid=0xBEEF,
        is_response=False,
        opcode=0,
        rcode=0,
        questions=(("api.imagicle.com", AAAA),),
        answers=(),
    )


def test_cname_then_aaaa_answer() -> None:
    response = DNS(
        id=7,
        qr=1,
        qd=[DNSQR(qname="www.imagicle.com", qtype="AAAA")],
        an=[
            DNSRR(rrname="www.imagicle.com", type="CNAME", rdata="Edge.Imagicle.cloud", ttl=30),
            DNSRR(rrname="edge.imagicle.cloud", type="AAAA", rdata="2001:db8::1", ttl=60),
        ],
    )
    expected = (
        DnsAnswer("www.imagicle.com", CNAME, 30, "edge.imagicle.cloud"),
        DnsAnswer("edge.imagicle.cloud", AAAA, 60, "2001:db8::1"),
    )
    assert parse_dns(bytes(response)).answers == expected
    assert parse_dns(bytes(response.compress())).answers == expected


def test_a_ns_ptr_and_other_answers() -> None:
    response = DNS(
        qr=1,
        qd=[DNSQR(qname="imagicle.com", qtype=255)],
        an=[
            DNSRR(rrname="imagicle.com", type="A", rdata="192.0.2.7"),
            DNSRR(rrname="imagicle.com", type="NS", rdata="ns1.example.net"),
            DNSRR(rrname="7.2.0.192.in-addr.arpa", type="PTR", rdata="host.imagicle.com"),
            DNSRR(rrname="imagicle.com", type="TXT", rdata=[b"v=spf1"]),
        ],
    )
    values = [(a.rtype, a.value) for a in parse_dns(bytes(response)).answers]
    assert values == [
        (A, "192.0.2.7"),
        (NS, "ns1.example.net"),
        (PTR, "host.imagicle.com"),
        (TXT, b"\x06v=spf1".hex()),
    ]


def test_compression_pointers_in_names_and_rdata() -> None:
    # Question at 12; the answer names point back into it, the CNAME target too.
    payload = (
        header(qd=1, an=2, flags=0x8180)
        + question(name(b"www", b"imagicle", b"com"))  # "imagicle.com" starts at 16
        + record(pointer(12), CNAME, b"\x04edge" + pointer(16))
        + record(b"\x04edge" + pointer(16), A, bytes([198, 51, 100, 1]))
    )
    message = parse_dns(payload)
    assert message.is_response
    assert message.answers == (
        DnsAnswer("www.imagicle.com", CNAME, 300, "edge.imagicle.com"),
        DnsAnswer("edge.imagicle.com", A, 300, "198.51.100.1"),
    )


def test_opcode_and_rcode() -> None:
    payload = bytes(DNS(qr=1, opcode=0, rcode=3, qd=[DNSQR(qname="nope.imagicle.com")]))
    message = parse_dns(payload)
    assert (message.opcode, message.rcode) == (0, 3)
    assert parse_dns(bytes(DNS(opcode=5, qd=[DNSQR(qname="x.lan")]))).opcode == 5


def test_ttl_with_top_bit_is_zero() -> None:
    payload = header(qd=0, an=1) + record(name(b"a"), A, bytes(4), ttl=0x8000_0001)
    assert parse_dns(payload).answers[0].ttl == 0


def test_idna_label_stays_ascii() -> None:
    payload = header() + question(name(b"xn--bcher-kva", b"Example"))
    assert parse_dns(payload).questions == (("xn--bcher-kva.example", A),)


def test_root_name() -> None:
    assert parse_dns(header() + question(b"\x00", NS)).questions == (("", NS),)


def test_dot_inside_a_label_cannot_pass_for_two_labels() -> None:
    payload = header() + question(name(b"api.imagicle", b"com"))
    assert parse_dns(payload).questions[0][0] == "api\\.imagicle.com"


def test_non_ascii_label_is_escaped() -> None:
    payload = header() + question(name(b"Caf\xc3\xa9", b"local"))
    assert parse_dns(payload).questions[0][0] == "caf\\195\\169.local"


def test_mdns_style_label_with_space() -> None:
    payload = header(flags=0) + question(name(b"My Printer", b"_ipp", b"_tcp", b"local"), PTR)
    assert parse_dns(payload).questions[0][0] == "my printer._ipp._tcp.local"


# --- malformed messages -------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 11])
def test_short_header(size: int) -> None:
    with pytest.raises(DecodeError, match="header") as caught:
        parse_dns((header() + question(name(b"a")))[:size])
    assert caught.value.offset == 0


def test_counts_exceed_payload() -> None:
    with pytest.raises(DecodeError, match="counts exceed") as caught:
        parse_dns(header(qd=1, an=40) + question(name(b"a")))
    assert caught.value.offset == 4


def test_label_past_end() -> None:
    with pytest.raises(DecodeError, match="label of 63 bytes runs past end") as caught:
        parse_dns(header() + b"\x3fabc" + b"\x00" * 6)
    assert caught.value.offset == 12


def test_name_without_terminator() -> None:
    with pytest.raises(DecodeError, match="runs past end"):
        parse_dns(header() + b"\x01a\x01b\x01c")


def test_pointer_to_itself() -> None:
    with pytest.raises(DecodeError, match="pointer loop"):
        parse_dns(header() + pointer(12) + b"\x00\x01\x00\x01")


def test_pointer_loop_through_labels() -> None:
    # 12: "a" then pointer to 16; 16: "b" then pointer back to 12.
    payload = header() + b"\x01a" + pointer(16) + b"\x01b" + pointer(12) + b"\x00\x01\x00\x01"
    with pytest.raises(DecodeError, match=r"longer than 255|pointer loop"):
        parse_dns(payload)


def test_pointer_chain_without_labels_is_bounded() -> None:
    # 200 pointers, each to the previous one: no labels, so only the jump bound stops it.
    chain = b"".join(pointer(12 + 2 * max(i - 1, 0)) for i in range(200))
    with pytest.raises(DecodeError, match="pointer loop"):
        parse_dns(header() + chain[2:] + pointer(12) + b"\x00\x01\x00\x01")


def test_pointer_past_end() -> None:
    with pytest.raises(DecodeError, match="runs past end"):
        parse_dns(header() + pointer(0x3FFF) + b"\x00\x01\x00\x01")


def test_truncated_pointer() -> None:
    with pytest.raises(DecodeError, match="pointer truncated") as caught:
        parse_dns(header() + b"\x01a\x01b\xc0")
    assert caught.value.offset == 16


def test_name_longer_than_255() -> None:
    payload = header() + question(name(*[b"x" * 63] * 4))
    with pytest.raises(DecodeError, match="longer than 255"):
        parse_dns(payload)


def test_extended_label_type() -> None:
    with pytest.raises(DecodeError, match="label type 0x41"):
        parse_dns(header() + b"\x41\x00" + b"\x00" * 4)


def test_truncated_answer() -> None:
    payload = bytes(DNS(qr=1, qd=[DNSQR(qname="a.b")], an=[DNSRR(rrname="a.b", rdata="1.2.3.4")]))
    with pytest.raises(DecodeError, match="RDATA of 4 bytes runs past end"):
        parse_dns(payload[:-1])


def test_truncated_question() -> None:
    with pytest.raises(DecodeError, match="question truncated"):
        parse_dns(header(qd=1) + name(b"a", b"b") + b"\x00\x01")


def test_address_of_wrong_size() -> None:
    with pytest.raises(DecodeError, match="RDATA is 3 bytes, not 4"):
        parse_dns(header(qd=0, an=1) + record(name(b"a"), A, b"\x01\x02\x03"))


def test_cname_that_does_not_fill_its_rdata() -> None:
    with pytest.raises(DecodeError, match="does not fill"):
        parse_dns(header(qd=0, an=1) + record(name(b"a"), CNAME, name(b"b") + b"\x00\x00"))


# --- NetBIOS name service -----------------------------------------------------------


def nbns_encode(netbios: bytes, suffix: int) -> bytes:
    """RFC 1002 §4.1 first-level encoding of a 15-byte name plus suffix, as a label."""
    raw = netbios.ljust(15, b" ") + bytes([suffix])
    return b"\x20" + bytes(c for b in raw for c in (0x41 + (b >> 4), 0x41 + (b & 0xF)))


def test_nbns_query_built_by_scapy() -> None:
    payload = bytes(NBNSHeader() / NBNSQueryRequest(QUESTION_NAME="WPAD"))
    assert parse_nbns_name(payload) == "wpad"


def test_nbns_name_with_scope_and_suffix() -> None:
    payload = header() + nbns_encode(b"UCX-SERVER", 0x20) + b"\x04corp\x00" + b"\x00\x20\x00\x01"
    assert parse_nbns_name(payload) == "ucx-server.corp"


def test_nbns_response_name_is_in_the_answer() -> None:
    payload = header(qd=0, an=1, flags=0x8500) + nbns_encode(b"LICENSE", 0) + b"\x00"
    assert parse_nbns_name(payload + b"\x00\x20\x00\x01" + bytes(6)) == "license"


def test_nbns_special_bytes_are_escaped() -> None:
    payload = header() + nbns_encode(b"\x01\x02__MSBROWSE__\x02", 0x01) + b"\x00"
    assert parse_nbns_name(payload) == "\\001\\002__msbrowse__\\002"


def test_nbns_without_any_name() -> None:
    assert parse_nbns_name(header(qd=0)) is None


@pytest.mark.parametrize(
    "payload",
    [
        header()[:6],
        header() + b"\x04WPAD\x00\x00\x20\x00\x01",  # not first-level encoded
        header() + b"\x20" + b"Z" * 32 + b"\x00",  # letters outside A-P
        header() + b"\x20" + b"A" * 20,  # truncated
    ],
)
def test_nbns_malformed(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        parse_nbns_name(payload)


# --- SSDP ---------------------------------------------------------------------------


def test_ssdp_search_to_the_multicast_address_names_nothing() -> None:
    payload = (
        b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
        b'MAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n'
    )
    assert ssdp_names(payload) == ()


def test_ssdp_notify_location_and_al() -> None:
    payload = (
        b"NOTIFY * HTTP/1.1\r\n"
        b"Host: Discovery.Imagicle.COM.:1900\r\n"
        b"Location: http://Telemetry.Imagicle.com:8080/desc.xml\r\n"
        b"AL: <http://a.imagicle.cloud/x><http://[2001:db8::1]:80/y> <https://b.example.net/>\r\n"
        b"NT: upnp:rootdevice\r\n\r\n"
        b"LOCATION: http://after-the-head.example/\r\n"
    )
    assert ssdp_names(payload) == (
        "discovery.imagicle.com",
        "telemetry.imagicle.com",
        "a.imagicle.cloud",
        "b.example.net",
    )


def test_ssdp_response_with_lf_only_and_repeats() -> None:
    payload = (
        b"HTTP/1.1 200 OK\nLOCATION: http://nas.lan/d.xml\nlocation: http://NAS.lan:49152/\n"
        b"HOST: [ff02::c]:1900\n"
    )
    assert ssdp_names(payload) == ("nas.lan",)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x01binary",
        b"LOCATION: http://x.example/\r\n",
        b"NOTIFY * HTTP/1.1\r\nAL: <http://[::1/>",
    ],
)
def test_ssdp_not_ssdp_or_no_names(payload: bytes) -> None:
    assert ssdp_names(payload) == ()


# --- SVCB / HTTPS (RFC 9460) --------------------------------------------------------

# An ECHConfigList of the shape Cloudflare publishes: one X25519 / HKDF-SHA256 /
# AES-128-GCM config for public_name cloudflare-ech.com.
ECH_CONFIG_LIST = bytes.fromhex(
    "0045fe0d0041a5002000207f454e211d6ab746ae66f098f48821269af28760868505a930fb941482de5c20"
    "0004000100010012636c6f7564666c6172652d6563682e636f6d0000"
)
CLOUDFLARE_ECH = EchConfig(0xA5, 0x0020, ((1, 1),), 0, "cloudflare-ech.com")


def svc_param(key: int, value: bytes) -> bytes:
    """One SvcParam in wire form (RFC 9460 §2.2)."""
    return struct.pack("!HH", key, len(value)) + value


def test_https_answer_built_by_scapy() -> None:
    response = DNS(
        id=1,
        qr=1,
        qd=DNSQR(qname="crypto.example.com", qtype="HTTPS"),
        an=DNSRRHTTPS(
            rrname="crypto.example.com",
            svc_priority=1,
            target_name=".",
            svc_params=[
                SvcParam(key="alpn", value=[b"h3", b"h2"]),
                SvcParam(key="port", value=8443),
                SvcParam(key="ech", value=ECH_CONFIG_LIST),
            ],
        ),
    )
    (answer,) = parse_dns(bytes(response)).answers
    assert answer.rtype == TYPE_HTTPS
    assert parse_svcb_rdata(bytes.fromhex(answer.value)) == SvcbRecord(
        priority=1,
        target="",
        keys=(1, 3, 5),
        alpn=("h3", "h2"),
        port=8443,
        ech=(CLOUDFLARE_ECH,),
    )


def test_svcb_alias_mode_built_by_scapy() -> None:
    response = DNS(
        id=2,
        qr=1,
        qd=DNSQR(qname="_dns.resolver.arpa", qtype="SVCB"),
        an=DNSRRSVCB(rrname="_dns.resolver.arpa", svc_priority=0, target_name="Svc.Example.NET."),
    )
    (answer,) = parse_dns(bytes(response)).answers
    assert answer.rtype == TYPE_SVCB
    record_ = parse_svcb_rdata(bytes.fromhex(answer.value))
    assert (record_.priority, record_.target, record_.ech) == (0, "svc.example.net", None)


def test_alias_mode_params_are_ignored() -> None:
    rdata = b"\x00\x00" + name(b"x", b"example") + svc_param(5, b"junk")
    assert parse_svcb_rdata(rdata) == SvcbRecord(0, "x.example", (5,))


def test_https_without_ech() -> None:
    rdata = b"\x00\x01" + b"\x00" + svc_param(1, b"\x02h3")
    assert parse_svcb_rdata(rdata).ech is None


@pytest.mark.parametrize(
    ("rdata", "problem", "offset"),
    [
        (b"\x00", "SVCB RDATA of 1 bytes", 0),
        (b"\x00\x01" + pointer(12), "compressed", 2),
        (b"\x00\x01\x05abc", "label of 5 bytes runs past end", 2),
        (b"\x00\x01\x03abc", "TargetName runs past end", 6),
        (b"\x00\x01\x00\x00\x01", "SvcParam header truncated", 3),
        (b"\x00\x01\x00" + struct.pack("!HH", 1, 9) + b"\x02h3", "runs past end", 5),
        (b"\x00\x01\x00" + svc_param(3, b"\x01\xbb") + svc_param(1, b"\x02h3"), "increasing", 9),
        (b"\x00\x01\x00" + svc_param(1, b"\x02h3") + svc_param(1, b"\x02h2"), "increasing", 10),
        (b"\x00\x01\x00" + svc_param(1, b"\x05h3"), "alpn id of 5 bytes", 7),
        (b"\x00\x01\x00" + svc_param(1, b""), "alpn is empty", 7),
        (b"\x00\x01\x00" + svc_param(3, b"\x01"), "port of 1 bytes", 5),
        (b"\x00\x01\x00" + svc_param(5, ECH_CONFIG_LIST[:-1]), "SvcParam ech: ECHConfigList", 7),
    ],
)
def test_malformed_svcb(rdata: bytes, problem: str, offset: int) -> None:
    with pytest.raises(DecodeError, match=problem) as caught:
        parse_svcb_rdata(rdata)
    assert caught.value.offset == offset
