"""HY-DEST, HY-TLS, HY-INGRESS, HY-DEACTIVATED on captures built here, read by the observers."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from scapy.layers.inet import TCP
from scapy.packet import Packet, Raw

from conformance.judge import hybrid
from conformance.judge.result import ControlResult
from conformance.observe.builder import observe_captures
from conformance.observe.records import Observations
from conformance.profile import load_profile
from conformance.profile_model import Profile
from conformance.verdict import Verdict
from tests import defects
from tests.defects import DNS_SERVER, TARGET

API = "203.0.113.10"
OTHER = "198.51.100.7"
PROXY = "192.0.2.80"
P, F, I = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE  # noqa: E741

PROFILE = """\
name: hybrid-site
mode: hybrid
target:
  addresses: [192.0.2.10]
environment:
  networks: [192.0.2.0/24, "2001:db8:1::/64"]
  endpoints:
    - {{name: dns, address: 192.0.2.53, ports: [53/udp]}}
cloud:
  services: [{services}]
  endpoints: ["api.imagicle.com:443", "*.imagicle.cloud:636"]
  hints: [{{address: 203.0.113.20, name: api.imagicle.com}}]
telemetry: disabled
{proxy}
"""


def server_hello(version: int = 0x0304, suite: int = 0x1301) -> bytes:
    """A ServerHello record; TLS 1.3 says its version in supported_versions (RFC 8446 4.2.1)."""
    extensions = struct.pack("!HHH", 43, 2, version) if version >= 0x0304 else b""
    legacy = 0x0303 if version >= 0x0304 else version
    body = (
        struct.pack("!H", legacy)
        + bytes(range(32))
        + b"\x00"
        + struct.pack("!H", suite)
        + b"\x00"
        + struct.pack("!H", len(extensions))
        + extensions
    )
    handshake = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16" + struct.pack("!HH", legacy, len(handshake)) + handshake


def tls_to(
    server: str,
    sni: str | None,
    version: int = 0x0304,
    suite: int = 0x1301,
    cport: int = 40001,
    port: int = 443,
) -> list[Packet]:
    hello = defects.client_hello(sni or None)
    return defects.tcp_session(TARGET, cport, server, port, hello, server_hello(version, suite))


def lookup(name: str, address: str, cport: int = 53001) -> list[Packet]:
    return defects.dns_lookup(TARGET, DNS_SERVER, name, answers=[address], cport=cport)


def via_proxy(authority: str, hello: bytes | None, cport: int = 41001) -> list[Packet]:
    connect = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    packets = defects.tcp_session(
        TARGET, cport, PROXY, 3128, connect, b"HTTP/1.1 200 Connection established\r\n\r\n"
    )
    if hello is not None:
        fin = packets.pop()
        seq = 1001 + len(connect)
        established = b"HTTP/1.1 200 Connection established\r\n\r\n"
        segment = TCP(sport=cport, dport=3128, flags="PA", seq=seq, ack=5001 + len(established))
        packets.append(defects._frame(TARGET, PROXY, segment) / Raw(hello))
        answer = TCP(
            sport=3128, dport=cport, flags="PA", seq=5001 + len(established), ack=seq + len(hello)
        )
        packets.append(defects._frame(PROXY, TARGET, answer) / Raw(server_hello()))
        packets.append(fin)
    return packets


def scenario(*parts: list[Packet]) -> list[Packet]:
    packets = [p for part in parts for p in part]
    return defects._Clock().stamp(packets)


CAPTURES: dict[str, Callable[[], list[Packet]]] = {
    "clean": lambda: scenario(lookup("api.imagicle.com", API), tls_to(API, "api.imagicle.com")),
    "unmapped": lambda: scenario(tls_to(OTHER, None)),
    "undocumented": lambda: scenario(tls_to(OTHER, "updates.example.net")),
    "plaintext": lambda: scenario(
        lookup("api.imagicle.com", API),
        defects.tcp_session(TARGET, 40002, API, 443, defects.http_get("api.imagicle.com", "/v1")),
    ),
    "tls10": lambda: scenario(tls_to(API, "api.imagicle.com", version=0x0301, suite=0x002F)),
    "rc4": lambda: scenario(tls_to(API, "api.imagicle.com", version=0x0303, suite=0x0005)),
    "no_sni_hint": lambda: scenario(tls_to("203.0.113.20", None)),
    "hint_only": lambda: scenario(
        defects.tcp_session(TARGET, 40003, "203.0.113.20", 443, b"", b"")
    ),
    "udp_out": lambda: scenario(defects.udp_exchange(TARGET, 40004, API, 443, b"quic?", None)),
    "no_external": lambda: scenario(lookup("cucm.corp.example", "192.0.2.20")),
    "proxy_clean": lambda: scenario(
        via_proxy("api.imagicle.com:443", defects.client_hello("api.imagicle.com"))
    ),
    "proxy_other": lambda: scenario(
        via_proxy("updates.example.net:443", defects.client_hello("updates.example.net"))
    ),
    "proxy_refused": lambda: scenario(
        defects.tcp_session(
            TARGET,
            41003,
            PROXY,
            3128,
            b"CONNECT api.imagicle.com:443 HTTP/1.1\r\nHost: api.imagicle.com:443\r\n\r\n",
            b"HTTP/1.1 403 Forbidden\r\n\r\n",
        )
    ),
    "proxy_get": lambda: scenario(
        defects.tcp_session(
            TARGET, 41002, PROXY, 3128, b"GET http://api.imagicle.com/v1 HTTP/1.1\r\n\r\n"
        )
    ),
    "inbound": lambda: scenario(
        defects.tcp_session("203.0.113.66", 50000, TARGET, 8080, b"GET / HTTP/1.1\r\n\r\n", b"ok")
    ),
}

# capture -> (HY-DEST, HY-TLS, HY-INGRESS), proxy profile when the name starts with "proxy"
EXPECTED: dict[str, tuple[Verdict, Verdict, Verdict]] = {
    "clean": (P, P, P),
    "unmapped": (F, F, P),  # no SNI, no DNS, no hint: "unexplained"; and no SNI fails HY-TLS
    "undocumented": (F, P, P),
    "plaintext": (P, F, P),
    "tls10": (P, F, P),
    "rc4": (P, F, P),
    "no_sni_hint": (P, F, P),  # the hint names it; the missing SNI still fails HY-TLS
    "hint_only": (P, I, P),  # no data sent: nothing for HY-TLS to see
    "udp_out": (F, F, P),
    "no_external": (I, I, P),
    "proxy_clean": (P, P, P),
    "proxy_other": (F, P, P),
    "proxy_get": (I, F, P),
    "proxy_refused": (P, I, P),  # a refused tunnel is neither TLS nor plaintext: not proven
    "inbound": (I, I, F),
}


def profile_for(tmp_path: Path, name: str, services: str = "licensing") -> Profile:
    proxy = "proxy: 192.0.2.80:3128" if name.startswith("proxy") else ""
    path = tmp_path / "hybrid.yaml"
    path.write_text(PROFILE.format(services=services, proxy=proxy))
    return load_profile(path)


def observe(tmp_path: Path, packets: list[Packet]) -> Observations:
    from scapy.utils import wrpcap

    path = tmp_path / "c.pcap"
    wrpcap(str(path), packets, linktype=1)
    return observe_captures([path])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_capture_gets_its_verdicts(tmp_path: Path, name: str) -> None:
    obs = observe(tmp_path, CAPTURES[name]())
    profile = profile_for(tmp_path, name)
    results: tuple[ControlResult, ...] = (
        hybrid.dest(obs, profile),
        hybrid.tls(obs, profile),
        hybrid.ingress(obs, profile),
    )
    got = tuple(r.verdict for r in results)
    assert got == EXPECTED[name], [f"{r.control_id} {r.verdict}: {r.reason}" for r in results]


def test_unmapped_flow_says_unexplained_and_points_at_the_flow(tmp_path: Path) -> None:
    obs = observe(tmp_path, CAPTURES["unmapped"]())
    result = hybrid.dest(obs, profile_for(tmp_path, "unmapped"))
    (finding,) = result.violations
    assert "unexplained" in finding.summary and finding.flow_id is not None
    assert finding.packets is not None and finding.packets.packets


def test_endpoint_facts_show_version_and_suite(tmp_path: Path) -> None:
    obs = observe(tmp_path, CAPTURES["clean"]())
    result = hybrid.tls(obs, profile_for(tmp_path, "clean"))
    assert result.facts["endpoints"] == {
        "api.imagicle.com:443": {
            "version": "TLS 1.3",
            "suite": "TLS_AES_128_GCM_SHA256",
            "sni": "api.imagicle.com",
        }
    }


def test_dns_answer_past_its_ttl_does_not_name_a_later_flow(tmp_path: Path) -> None:
    packets = lookup("api.imagicle.com", API)
    later = tls_to(API, None)
    clock = defects._Clock()
    stamped = clock.stamp(packets)
    clock.now += 3600  # an hour later: the 300 s answer has expired
    stamped += clock.stamp(later)
    result = hybrid.dest(observe(tmp_path, stamped), profile_for(tmp_path, "ttl"))
    assert result.verdict is F and "unexplained" in result.violations[0].summary


def test_deactivated_is_judged_like_air_gapped(tmp_path: Path) -> None:
    profile = profile_for(tmp_path, "off", services="")
    clean = observe(tmp_path, CAPTURES["no_external"]())
    assert hybrid.deactivated(clean, profile).verdict is P
    leak = observe(tmp_path, CAPTURES["clean"]())
    result = hybrid.deactivated(leak, profile)
    assert result.verdict is F
    assert any("api.imagicle.com" in f.summary for f in result.violations)


# --- cases the lab cannot make: StartTLS, HelloRetryRequest, tunnels without SNI, ordering ---

STARTTLS = bytes.fromhex("301d02010177188016") + b"1.3.6.1.4.1.1466.20037"
STARTTLS_OK = bytes.fromhex("300c02010178070a010004000400")
BIND = (
    bytes.fromhex("302002010260")
    + bytes([27])
    + bytes.fromhex("020103040d")
    + (b"cn=sync,o=ucx" + bytes.fromhex("8007") + b"s3cr3t!")
)
BIND_OK = bytes.fromhex("300c02010261070a010004000400")


def conversation(
    server: str, sport: int, turns: list[tuple[str, bytes]], cport: int
) -> list[Packet]:
    """A TCP conversation with several data segments: turns of ("c" | "s", payload)."""
    seq = {"c": 1001, "s": 5001}
    ends = {"c": (TARGET, cport, server, sport), "s": (server, sport, TARGET, cport)}
    packets = defects.tcp_session(TARGET, cport, server, sport)[:3]  # SYN, SYN-ACK, ACK
    for side, data in turns:
        src, s_port, dst, d_port = ends[side]
        other = "s" if side == "c" else "c"
        segment = TCP(sport=s_port, dport=d_port, flags="PA", seq=seq[side], ack=seq[other])
        packets.append(defects._frame(src, dst, segment) / Raw(data))
        seq[side] += len(data)
    fin = TCP(sport=cport, dport=sport, flags="FA", seq=seq["c"], ack=seq["s"])
    packets.append(defects._frame(TARGET, server, fin))
    return packets


def hello_retry(suite: int = 0x0005) -> bytes:
    """A HelloRetryRequest: a ServerHello whose random is the RFC 8446 §4.1.3 constant."""
    from conformance.decode.tls import HELLO_RETRY_RANDOM

    record = bytearray(server_hello(0x0304, suite))
    record[11:43] = HELLO_RETRY_RANDOM  # 5 record + 4 handshake + 2 legacy version bytes
    return bytes(record)


LDAP_CLOUD = "203.0.113.12"
HELLO = defects.client_hello("ldaps.imagicle.cloud")


def test_starttls_before_any_bind_is_tls(tmp_path: Path) -> None:
    turns = [("c", STARTTLS), ("s", STARTTLS_OK), ("c", HELLO), ("s", server_hello())]
    packets = scenario(conversation(LDAP_CLOUD, 389, turns, 40010))
    obs = observe(tmp_path, packets)
    result = hybrid.tls(obs, profile_for(tmp_path, "starttls"))
    assert result.verdict is P, result
    endpoints = result.facts["endpoints"]
    assert isinstance(endpoints, dict)
    assert endpoints["ldaps.imagicle.cloud:389"]["version"] == "TLS 1.3"  # after StartTLS


def test_bind_before_starttls_is_plaintext(tmp_path: Path) -> None:
    turns = [("c", BIND), ("s", BIND_OK), ("c", STARTTLS), ("s", STARTTLS_OK), ("c", HELLO)]
    packets = scenario(conversation(LDAP_CLOUD, 389, turns, 40011))
    result = hybrid.tls(observe(tmp_path, packets), profile_for(tmp_path, "bind"))
    assert result.verdict is F
    assert "plaintext LDAP" in result.violations[0].summary


def test_starttls_on_another_port_is_not_accepted(tmp_path: Path) -> None:
    turns = [("c", STARTTLS), ("s", STARTTLS_OK), ("c", HELLO), ("s", server_hello())]
    packets = scenario(conversation(LDAP_CLOUD, 3268, turns, 40012))
    assert hybrid.tls(observe(tmp_path, packets), profile_for(tmp_path, "gc")).verdict is F


def test_hello_retry_request_is_not_the_negotiated_choice(tmp_path: Path) -> None:
    # The HRR names RC4 (0x0005); the real ServerHello after it chooses TLS_AES_128_GCM_SHA256.
    turns = [
        ("c", defects.client_hello("api.imagicle.com")),
        ("s", hello_retry()),
        ("c", defects.client_hello("api.imagicle.com")),
        ("s", server_hello()),
    ]
    packets = scenario(lookup("api.imagicle.com", API), conversation(API, 443, turns, 40013))
    result = hybrid.tls(observe(tmp_path, packets), profile_for(tmp_path, "hrr"))
    assert result.verdict is P, result
    endpoints = result.facts["endpoints"]
    assert isinstance(endpoints, dict)
    assert endpoints["api.imagicle.com:443"]["suite"] == "TLS_AES_128_GCM_SHA256"


def test_plaintext_is_found_by_payload_on_any_port(tmp_path: Path) -> None:
    grpc = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    packets = scenario(
        lookup("api.imagicle.com", API),
        defects.tcp_session(TARGET, 40014, API, 443, grpc),
        defects.tcp_session(TARGET, 40015, API, 8443, b"\x00\x01binary-licence-blob"),
    )
    result = hybrid.tls(observe(tmp_path, packets), profile_for(tmp_path, "grpc"))
    assert result.verdict is F
    summaries = " | ".join(f.summary for f in result.violations)
    assert "HTTP/2 (gRPC) preface" in summaries and "non-TLS bytes" in summaries


def test_tunnel_without_sni_is_named_by_its_connect_target(tmp_path: Path) -> None:
    hello = defects.client_hello(None)
    packets = scenario(via_proxy("api.imagicle.com:443", hello))
    obs = observe(tmp_path, packets)
    profile = profile_for(tmp_path, "proxy_nosni")
    dest = hybrid.dest(obs, profile)
    assert dest.verdict is P and dest.facts["endpoints_reached"] == {"api.imagicle.com:443": 1}
    tls_result = hybrid.tls(obs, profile)
    assert tls_result.verdict is F and "no SNI" in tls_result.violations[0].summary


def test_dns_answer_after_the_flow_does_not_name_it(tmp_path: Path) -> None:
    packets = scenario(tls_to(API, None), lookup("api.imagicle.com", API))
    result = hybrid.dest(observe(tmp_path, packets), profile_for(tmp_path, "late"))
    assert result.verdict is F and "unexplained" in result.violations[0].summary


def test_answer_another_host_received_does_not_name_the_targets_flow(tmp_path: Path) -> None:
    other = defects.dns_lookup("192.0.2.77", DNS_SERVER, "api.imagicle.com", answers=[API])
    packets = scenario(other, tls_to(API, None))
    result = hybrid.dest(observe(tmp_path, packets), profile_for(tmp_path, "other"))
    assert result.verdict is F and "unexplained" in result.violations[0].summary


def test_first_of_flow_keeps_each_flows_first_record() -> None:
    """#17: the judges' per-flow hellos are a list indexed by flow id (the flows' rows), not
    a dict; a record naming no flow of the observation is still found, and the first of a
    flow's records is the one kept."""

    class Record:
        def __init__(self, flow_id: int, n: int) -> None:
            self.flow_id = flow_id
            self.n = n

    records = [Record(f, n) for n, f in enumerate([2, 3, 2, 0, -1, 9, 9, 3])]
    table = hybrid.FirstOfFlow(records, flows=4)
    assert [getattr(table.get(f), "n", None) for f in range(-1, 11)] == [
        4, 3, None, 0, 1, None, None, None, None, None, 5, None,
    ]  # fmt: skip
