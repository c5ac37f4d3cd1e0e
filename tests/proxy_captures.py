"""Proxy-mode test captures the lab cannot make: a tunnel whose SNI is not the CONNECT host, no
SNI, CONNECT to a disallowed endpoint or port, DNS to an outside resolver over TCP, ...

Same topology as `tests.defects` (explicit MACs, documentation ranges, nothing sent); the
profile is the lab's proxy profile (fixtures/profiles/lab-proxy.yaml: proxy 192.0.2.80:3128,
endpoints api.imagicle.com:443, grpc.imagicle.com:443, *.imagicle.cloud:636).
"""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import TCP
from scapy.packet import Packet, Raw

from conformance.profile import load_profile
from conformance.profile_model import Profile
from tests.defects import (
    DNS_SERVER,
    OUTSIDE_DNS,
    PROXY,
    TARGET,
    _Clock,
    _frame,
    clean_onprem_traffic,
    client_hello,
    dns_lookup,
    tcp_session,
)

PROFILES = Path(__file__).resolve().parents[1] / "fixtures" / "profiles"
PROXY_PORT = 3128
API = "203.0.113.10"


def proxy_profile(name: str = "lab-proxy") -> Profile:
    return load_profile(PROFILES / f"{name}.yaml")


def tunnel(
    cport: int,
    connect: str,
    sni: str | None,
    *,
    status: bytes = b"HTTP/1.1 200 Connection established\r\n\r\n",
    inner: bytes | None = None,
) -> list[Packet]:
    """Target -> proxy: CONNECT `connect`, the proxy's answer, then a ClientHello naming `sni`
    (or `inner` bytes instead), then FIN."""
    c_seq, s_seq = 1000, 5000

    def out(flags: str, payload: bytes = b"") -> Packet:
        nonlocal c_seq
        packet = _frame(
            TARGET, PROXY, TCP(sport=cport, dport=PROXY_PORT, flags=flags, seq=c_seq, ack=s_seq)
        )
        c_seq += len(payload) + (1 if "S" in flags or "F" in flags else 0)
        return packet / Raw(payload) if payload else packet

    def back(flags: str, payload: bytes = b"") -> Packet:
        nonlocal s_seq
        packet = _frame(
            PROXY, TARGET, TCP(sport=PROXY_PORT, dport=cport, flags=flags, seq=s_seq, ack=c_seq)
        )
        s_seq += len(payload) + (1 if "S" in flags else 0)
        return packet / Raw(payload) if payload else packet

    request = f"CONNECT {connect} HTTP/1.1\r\nHost: {connect}\r\n\r\n".encode()
    packets = [out("S"), back("SA"), out("A"), out("PA", request), back("PA", status)]
    if inner is not None:
        packets.append(out("PA", inner))
    elif sni is not None:
        packets.append(out("PA", client_hello(sni)))
    packets.append(out("FA"))
    return packets


def proxied_clean() -> list[Packet]:
    """A conforming proxied target: on-prem traffic, two tunnels whose SNI is the CONNECT host."""
    return _Clock().stamp(
        [
            *clean_onprem_traffic(),
            *tunnel(50001, "api.imagicle.com:443", "api.imagicle.com"),
            *tunnel(50002, "grpc.imagicle.com:443", "grpc.imagicle.com"),
        ]
    )


def with_clean(*defect: list[Packet]) -> list[Packet]:
    return _Clock().stamp([*proxied_clean(), *(p for d in defect for p in d)])


def direct_tls() -> list[Packet]:
    """A TLS connection straight to api.imagicle.com's address, around the proxy."""
    return with_clean(
        tcp_session(TARGET, 50010, API, 443, client_hello("api.imagicle.com"), b"\x16\x03\x03")
    )


def sni_mismatch() -> list[Packet]:
    """CONNECT api.imagicle.com:443, then TLS to another name (domain fronting)."""
    return with_clean(tunnel(50011, "api.imagicle.com:443", "files.example.net"))


def no_sni() -> list[Packet]:
    return with_clean(tunnel(50012, "api.imagicle.com:443", None, inner=client_hello(None)))


def disallowed_connect() -> list[Packet]:
    return with_clean(tunnel(50013, "updates.example.net:443", "updates.example.net"))


def wrong_port_connect() -> list[Packet]:
    return with_clean(tunnel(50014, "api.imagicle.com:8443", "api.imagicle.com"))


def plaintext_get() -> list[Packet]:
    request = (
        b"GET http://api.imagicle.com/v1/licensing/poll HTTP/1.1\r\nHost: api.imagicle.com\r\n\r\n"
    )
    return with_clean(tcp_session(TARGET, 50015, PROXY, PROXY_PORT, request, b"HTTP/1.1 200 OK"))


def outside_resolver() -> list[Packet]:
    return with_clean(dns_lookup(TARGET, OUTSIDE_DNS, "api.imagicle.com", answers=[API]))


def cloud_name_onprem() -> list[Packet]:
    return with_clean(dns_lookup(TARGET, DNS_SERVER, "api.imagicle.com", answers=[API]))
