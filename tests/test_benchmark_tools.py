"""The benchmark's own tools: the capture generator, tshark's fact normaliser, the comparison."""

from __future__ import annotations

import ipaddress
import re
import shutil
import struct
import sys
from collections import Counter
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import gen_capture  # noqa: E402
import run_benchmark  # noqa: E402
import tshark_facts  # noqa: E402
from tshark_facts import Facts, flow_key, parse_fields  # noqa: E402

SMALL = 2000


@pytest.fixture(scope="module")
def small_capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, gen_capture.Summary]:
    path = tmp_path_factory.mktemp("gen") / "small.pcapng"
    return path, gen_capture.generate(SMALL, path, "pcapng", seed=7)


# ---------------------------------------------------------------------------------------------
# A minimal frame walker (raw bytes, independent of the generator's code)
# ---------------------------------------------------------------------------------------------
def _sum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


class Frame:
    """What the tests need from one Ethernet frame, with lengths and checksums verified."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.dst_mac, self.src_mac = raw[0:6], raw[6:12]
        self.ethertype = struct.unpack("!H", raw[12:14])[0]
        self.version = 0
        self.proto = -1
        self.src: str = ""
        self.dst: str = ""
        self.sport = self.dport = 0
        self.tcp_flags = 0
        self.payload = b""
        if self.ethertype == 0x0800:
            ip = raw[14:]
            total = struct.unpack("!H", ip[2:4])[0]
            assert total <= len(ip), "IPv4 total length beyond the frame"
            assert _sum16(ip[:20]) == 0xFFFF, "IPv4 header checksum"
            ip = ip[:total]  # drop Ethernet padding
            self.version, self.proto, l4 = 4, ip[9], ip[20:]
            src, dst = ip[12:16], ip[16:20]
            pseudo = src + dst + struct.pack("!BBH", 0, self.proto, len(l4))
        elif self.ethertype == 0x86DD:
            ip = raw[14:]
            plen = struct.unpack("!H", ip[4:6])[0]
            assert 40 + plen == len(ip) or len(raw) == 60, "IPv6 payload length"
            self.version, self.proto, l4 = 6, ip[6], ip[40 : 40 + plen]
            src, dst = ip[8:24], ip[24:40]
            pseudo = src + dst + struct.pack("!IxxxB", len(l4), self.proto)
        else:
            return
        self.src = str(ipaddress.ip_address(src))
        self.dst = str(ipaddress.ip_address(dst))
        if self.proto == 17:
            self.sport, self.dport, ulen, csum = struct.unpack("!HHHH", l4[:8])
            assert ulen == len(l4), "UDP length"
            if csum or self.version == 6:
                assert _sum16(pseudo + l4) == 0xFFFF, "UDP checksum"
            self.payload = l4[8:]
        elif self.proto == 6:
            self.sport, self.dport = struct.unpack("!HH", l4[:4])
            self.tcp_flags = l4[13]
            assert _sum16(pseudo + l4) == 0xFFFF, "TCP checksum"
            self.payload = l4[(l4[12] >> 4) * 4 :]
        elif self.proto == 1:
            assert _sum16(l4) == 0xFFFF, "ICMP checksum"
            self.payload = l4
        elif self.proto == 58:
            assert _sum16(pseudo + l4) == 0xFFFF, "ICMPv6 checksum"
            self.payload = l4

    @property
    def transport(self) -> str:
        return {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6"}.get(self.proto, f"ip-{self.proto}")

    @property
    def key(self) -> tshark_facts.FlowKey:
        return flow_key(self.transport, self.src, self.sport, self.dst, self.dport)

    @property
    def is_rtp(self) -> bool:
        return (
            self.proto == 17
            and all(16384 <= p <= 32767 and p % 2 == 0 for p in (self.sport, self.dport))
            and len(self.payload) == 172
            and self.payload[0] == 0x80
        )


def _frames(path: Path) -> list[tuple[float, Frame]]:
    from scapy.utils import rdpcap

    return [(float(p.time), Frame(bytes(p))) for p in rdpcap(str(path))]


def _client_hello_sni(record: bytes) -> str | None:
    """SNI of a complete ClientHello record, or None."""
    if len(record) < 5 or record[0] != 0x16 or record[5] != 1:
        return None
    body = record[9:]
    pos = 2 + 32
    pos += 1 + body[pos]
    pos += 2 + struct.unpack("!H", body[pos : pos + 2])[0]
    pos += 1 + body[pos]
    end = pos + 2 + struct.unpack("!H", body[pos : pos + 2])[0]
    pos += 2
    while pos < end:
        ext, length = struct.unpack("!HH", body[pos : pos + 4])
        if ext == 0:
            name_len = struct.unpack("!H", body[pos + 7 : pos + 9])[0]
            return body[pos + 9 : pos + 9 + name_len].decode()
        pos += 4 + length
    return None


# ---------------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "c.pcap"
    gen_capture.generate(SMALL, a, "pcap", seed=11)
    gen_capture.generate(SMALL, b, "pcap", seed=11)
    gen_capture.generate(SMALL, c, "pcap", seed=12)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_exact_packet_count_in_both_formats(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"x.{fmt}"
    summary = gen_capture.generate(SMALL, path, fmt, seed=3)
    frames = _frames(path)
    assert summary.packets == len(frames) == SMALL
    assert summary.bytes == path.stat().st_size
    times = [t for t, _ in frames]
    assert times == sorted(times)


def test_every_frame_is_on_the_targets_link_with_right_lengths_and_checksums(
    small_capture: tuple[Path, gen_capture.Summary],
) -> None:
    target_mac = gen_capture.Link().target_mac
    for _, frame in _frames(small_capture[0]):  # Frame() asserts lengths and checksums
        assert target_mac in (frame.src_mac, frame.dst_mac)


def test_flows_in_the_summary_are_the_flows_in_the_file(
    small_capture: tuple[Path, gen_capture.Summary],
) -> None:
    path, summary = small_capture
    keys = {f.key for _, f in _frames(path) if f.version}
    assert keys == summary.flow_keys
    assert summary.flows == len(keys)


def test_the_promised_mix_is_there(small_capture: tuple[Path, gen_capture.Summary]) -> None:
    path, summary = small_capture
    frames = [f for _, f in _frames(path)]
    ip = [f for f in frames if f.version]

    rtp = [f for f in ip if f.is_rtp]
    assert 0.80 <= len(rtp) / len(frames) <= 0.92
    assert summary.rtp_packets == len(rtp)
    assert {f.src for f in rtp} >= {"192.0.2.10"}
    assert len({f.key for f in rtp}) >= 40  # many concurrent calls

    sip = [f for f in ip if 5060 in (f.sport, f.dport) and f.payload[:4] in (b"INVI", b"SIP/")]
    assert any(f.payload.startswith(b"INVITE sip:") for f in sip)
    assert {f.dst for f in sip} | {f.src for f in sip} >= {"192.0.2.20"}
    assert any(5061 in (f.sport, f.dport) for f in ip)

    dns = [f for f in ip if f.proto == 17 and 53 in (f.sport, f.dport)]
    assert sum(1 for f in dns if f.dport == 53 and f.dst == "192.0.2.53") >= 3
    assert any(f.proto == 6 and f.dport == 53 for f in ip)  # DNS over TCP

    # ClientHellos with SNI, one of them split over two TCP segments.
    streams: dict[tuple[str, int, str, int], bytes] = {}
    snis = []
    split = 0
    for f in ip:
        if f.proto != 6 or not f.payload:
            continue
        side = (f.src, f.sport, f.dst, f.dport)
        buf = streams.get(side, b"") + f.payload
        if buf[:1] == b"\x16" and len(buf) >= 6 and buf[5] == 1:
            need = 5 + struct.unpack("!H", buf[3:5])[0]
            if len(buf) < need:
                streams[side] = buf  # wait for the rest
                continue
            if side in streams:
                split += 1
            sni = _client_hello_sni(buf[:need])
            if sni:
                snis.append(sni)
        streams.pop(side, None)
    assert "api.imagicle.com" in snis
    assert "cucm.corp.example" in snis or "cucm-sub.corp.example" in snis
    assert split >= 1
    assert len(snis) == summary.client_hellos

    connects = [f for f in ip if f.payload.startswith(b"CONNECT api.imagicle.com:443 HTTP/1.1")]
    assert connects and connects[0].dst == "192.0.2.80" and connects[0].dport == 3128
    assert any(f.payload.startswith(b"HTTP/1.1 200") for f in ip)

    v6 = [f for f in ip if f.version == 6]
    assert any(ipaddress.ip_address(f.dst) in ipaddress.ip_network("2001:db8:1::/64") for f in v6)
    assert any(
        ipaddress.ip_address(f.dst) in ipaddress.ip_network("2001:db8:ffff::/64") for f in v6
    )
    assert any(f.dst.startswith("203.0.113.") for f in ip)

    icmp_types = Counter((f.proto, f.payload[0]) for f in ip if f.proto in (1, 58))
    assert icmp_types[(1, 8)] and icmp_types[(1, 0)]  # echo request and reply
    assert icmp_types[(58, 128)] or icmp_types[(58, 135)]

    # TCP flows already open when the capture began: data, but no SYN at all.
    tcp_keys = {f.key for f in ip if f.proto == 6}
    syn_keys = {f.key for f in ip if f.proto == 6 and f.tcp_flags & 0x02}
    assert len(tcp_keys - syn_keys) >= 4
    assert summary.midstream_tcp_flows == len(tcp_keys - syn_keys)


def test_a_scan_share_adds_one_flow_per_probe_from_outside(tmp_path: Path) -> None:
    """`--scan-share`: SYNs from one outside address to the target's ports in turn, each a
    flow of its own; the open ports answer SYN-ACK (and the scanner resets), the rest RST."""
    path = tmp_path / "scan.pcapng"
    summary = gen_capture.generate(3000, path, "pcapng", seed=5, rtp_share=0.02, scan_share=0.6)
    ip = [f for _, f in _frames(path) if f.version]
    scanner = str(gen_capture.SCANNER_V4)
    probes = [f for f in ip if f.src == scanner and f.tcp_flags == 0x02]
    answers = [f for f in ip if f.dst == scanner]
    assert len(probes) >= 500
    assert all(f.dst == "192.0.2.10" for f in probes)
    ports = sorted(f.dport for f in probes)  # port after port (those due after the end: cut)
    assert ports[0] == 1 and len(set(ports)) == len(ports)
    assert len({f.key for f in probes}) == len(probes)  # one flow each
    by_port = {f.sport: f.tcp_flags for f in answers}
    assert by_port[443] == 0x12 and by_port[22] == 0x12  # SYN-ACK from the open ports
    assert all(
        flags == 0x14 for port, flags in by_port.items() if port not in (22, 443, 5060, 5061, 8443)
    )
    assert {f.key for f in ip} == summary.flow_keys  # the summary counts them
    assert summary.flows >= len(probes)


def test_generation_is_fast_and_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "fast.pcap"
    summary = gen_capture.generate(100_000, path, "pcap", seed=1)
    assert summary.seconds < 10  # ~0.4 s here; 2M packets take ~7 s
    data = path.read_bytes()
    pos, last, count = 24, 0, 0
    while pos < len(data):
        sec, usec, caplen, origlen = struct.unpack_from("<IIII", data, pos)
        assert caplen == origlen
        stamp = sec * 1_000_000 + usec
        assert stamp >= last, f"record {count + 1} goes back in time"
        last, pos, count = stamp, pos + 16 + caplen, count + 1
    assert count == summary.packets == 100_000
    assert 10 < (last / 1e6 - summary.first_time) < 30  # ~15 s of traffic at 64 calls


# ---------------------------------------------------------------------------------------------
# tshark's facts, normalised
# ---------------------------------------------------------------------------------------------
# One line per frame, FIELDS in order, as `tshark -T fields -E separator=, -E occurrence=a
# -E aggregator=; -E quote=d` prints them (empty fields are empty quotes).
def _line(**values: str) -> str:
    return ",".join(f'"{values.get(name.replace(".", "_"), "")}"' for name in tshark_facts.FIELDS)


T = "192.0.2.10"
TSHARK_OUTPUT = "\n".join(
    [
        # DNS query and its answer (two A records)
        _line(ip_src=T, ip_dst="192.0.2.53", udp_srcport="50000", udp_dstport="53",
              dns_flags_response="0", dns_qry_name="API.imagicle.com."),
        _line(ip_src="192.0.2.53", ip_dst=T, udp_srcport="53", udp_dstport="50000",
              dns_flags_response="1", dns_qry_name="api.imagicle.com",
              dns_a="203.0.113.10;203.0.113.11"),
        # TLS 1.3 to the cloud: SYN, ClientHello, ServerHello with supported_versions
        _line(ip_src=T, ip_dst="203.0.113.10", tcp_srcport="49200", tcp_dstport="443",
              tcp_flags="0x0002"),
        _line(ip_src="203.0.113.10", ip_dst=T, tcp_srcport="443", tcp_dstport="49200",
              tcp_flags="0x0012"),
        _line(ip_src=T, ip_dst="203.0.113.10", tcp_srcport="49200", tcp_dstport="443",
              tcp_flags="0x0018", tls_handshake_type="1",
              tls_handshake_extensions_server_name="api.imagicle.com",
              tls_handshake_extensions_supported_version="0x0304;0x0303",
              tls_handshake_version="0x0303", tls_handshake_ciphersuite="0x1301;0x1302"),
        _line(ip_src="203.0.113.10", ip_dst=T, tcp_srcport="443", tcp_dstport="49200",
              tcp_flags="0x0018", tls_handshake_type="2",
              tls_handshake_extensions_supported_version="0x0304",
              tls_handshake_version="0x0303", tls_handshake_ciphersuite="0x1302"),
        # TLS 1.2 ServerHello (no supported_versions) on a flow open before the capture
        _line(ipv6_src="2001:db8:1::20", ipv6_dst="2001:db8:1::10", tcp_srcport="8443",
              tcp_dstport="50001", tcp_flags="0x0018", tls_handshake_type="2;14",
              tls_handshake_version="0x0303", tls_handshake_ciphersuite="0xc030"),
        # CONNECT through the proxy
        _line(ip_src=T, ip_dst="192.0.2.80", tcp_srcport="49300", tcp_dstport="3128",
              tcp_flags="0x0018", http_request_method="CONNECT",
              http_request_uri="api.imagicle.com:443"),
        # ICMP echo request and reply: one flow, ports 0
        _line(ip_src=T, ip_dst="192.0.2.1", icmp_type="8"),
        _line(ip_src="192.0.2.1", ip_dst=T, icmp_type="0"),
        # ARP: no IP fields at all
        _line(),
    ]
)  # fmt: skip

CLOUD_FLOW = ("tcp", "192.0.2.10", 49200, "203.0.113.10", 443)
V6_FLOW = ("tcp", "2001:db8:1::10", 50001, "2001:db8:1::20", 8443)
PROXY_FLOW = ("tcp", "192.0.2.10", 49300, "192.0.2.80", 3128)


def test_parse_fields_normalises_each_fact_kind() -> None:
    facts = parse_fields(TSHARK_OUTPUT.splitlines())
    assert facts.packets == 11
    assert facts.flows == {
        ("udp", "192.0.2.10", 50000, "192.0.2.53", 53),
        CLOUD_FLOW,
        V6_FLOW,
        PROXY_FLOW,
        ("icmp", "192.0.2.1", 0, "192.0.2.10", 0),
    }
    assert facts.tcp_syn == {("tcp", "192.0.2.10", 49200, "203.0.113.10", 443)}
    assert facts.dns_queries == {("192.0.2.10", "192.0.2.53", "api.imagicle.com")}
    assert facts.dns_answers == {
        ("api.imagicle.com", "203.0.113.10"),
        ("api.imagicle.com", "203.0.113.11"),
    }
    assert facts.sni == {(CLOUD_FLOW, "api.imagicle.com")}
    assert facts.server_hellos == {(CLOUD_FLOW, 0x0304, 0x1302), (V6_FLOW, 0x0303, 0xC030)}
    assert facts.http_requests == {(PROXY_FLOW, "CONNECT", "api.imagicle.com:443")}


def test_flow_key_is_the_same_from_either_side() -> None:
    assert flow_key("udp", "192.0.2.53", 53, "192.0.2.10", 50000) == flow_key(
        "udp", "192.0.2.10", 50000, "192.0.2.53", 53
    )
    assert flow_key("tcp", "2001:DB8:1:0::10", 1, "192.0.2.1", 2)[1] == "192.0.2.1"


# ---------------------------------------------------------------------------------------------
# The harness's evidence, read by column name, and the comparison
# ---------------------------------------------------------------------------------------------
FLOWS_CSV = """\
flow_id,capture,community_id,transport,initiator,initiator_port,responder,responder_port,initiator_basis
1,capture-0.pcapng,x,udp,192.0.2.10,50000,192.0.2.53,53,first-packet
2,capture-0.pcapng,x,tcp,192.0.2.10,49200,203.0.113.10,443,syn
3,capture-0.pcapng,x,tcp,2001:db8:1::10,50001,2001:db8:1::20,8443,port-heuristic
4,capture-0.pcapng,x,tcp,192.0.2.10,49300,192.0.2.80,3128,syn
5,capture-0.pcapng,x,icmp,192.0.2.10,8,192.0.2.1,0,icmp-type
"""
DNS_CSV = """\
capture,packet,flow_id,protocol,transport,client,client_port,server,server_port,qname,qtype,answers
capture-0.pcapng,1,1,dns,udp,192.0.2.10,50000,192.0.2.53,53,api.imagicle.com,A,\
api.imagicle.com A 203.0.113.10 ttl=300; api.imagicle.com A 203.0.113.11 ttl=300
"""
TLS_CSV = """\
capture,packet,flow_id,message,sni,versions,cipher_suites,alpn,segments
capture-0.pcapng,5,2,client-hello,api.imagicle.com,TLS1.3 TLS1.2,0x1301 0x1302,h2,1
capture-0.pcapng,6,2,server-hello,,TLS1.3,0x1302,,
capture-0.pcapng,7,3,server-hello,,TLS1.2,0xc030,,
"""
HTTP_CSV = """\
capture,packet,flow_id,method,target,version,host,count
capture-0.pcapng,8,4,CONNECT,api.imagicle.com:443,HTTP/1.1,api.imagicle.com:443,1
"""


def _report(tmp_path: Path, **tables: str) -> Path:
    evidence = tmp_path / "report" / "evidence"
    evidence.mkdir(parents=True)
    defaults = {"flows": FLOWS_CSV, "dns": DNS_CSV, "tls": TLS_CSV, "http": HTTP_CSV}
    for name, text in (defaults | tables).items():
        if text:
            (evidence / f"{name}.csv").write_text(text)
    return tmp_path / "report"


def _statuses(tshark: Facts, report: Path) -> dict[str, str]:
    results = run_benchmark.compare_facts(tshark, run_benchmark.read_harness_facts(report))
    return {c.kind: c.status for c in results}


def test_matching_evidence_agrees_on_every_fact_kind(tmp_path: Path) -> None:
    tshark = parse_fields(TSHARK_OUTPUT.splitlines())
    statuses = _statuses(tshark, _report(tmp_path))
    assert set(statuses.values()) == {"AGREE"}, statuses


def test_a_missing_sni_and_a_flipped_flow_disagree_and_are_shown(tmp_path: Path) -> None:
    tshark = parse_fields(TSHARK_OUTPUT.splitlines())
    flipped = FLOWS_CSV.replace(
        "2,capture-0.pcapng,x,tcp,192.0.2.10,49200,203.0.113.10,443",
        "2,capture-0.pcapng,x,tcp,203.0.113.10,443,192.0.2.10,49200",
    )
    no_sni = TLS_CSV.replace("client-hello,api.imagicle.com", "client-hello,")
    report = _report(tmp_path, flows=flipped, tls=no_sni)
    results = {
        c.kind: c
        for c in run_benchmark.compare_facts(tshark, run_benchmark.read_harness_facts(report))
    }
    assert results["flows"].status == "AGREE"  # same bidirectional 5-tuple
    assert results["tcp_syn"].status == "DISAGREE"
    assert results["sni"].status == "DISAGREE"
    assert results["sni"].only_tshark == (str((CLOUD_FLOW, "api.imagicle.com")),)
    assert not run_benchmark.print_comparisons(SMALL, list(results.values()), lambda _: None)


def test_missing_columns_fail_required_kinds_and_skip_optional_ones(tmp_path: Path) -> None:
    tshark = parse_fields(TSHARK_OUTPUT.splitlines())
    dns_no_answers = (
        "capture,flow_id,client,server,qname\nc,1,192.0.2.10,192.0.2.53,api.imagicle.com\n"
    )
    report = _report(tmp_path, dns=dns_no_answers, http="")
    statuses = _statuses(tshark, report)
    assert statuses["dns_queries"] == "AGREE"
    assert statuses["dns_answers"] == "SKIPPED"
    assert statuses["http_requests"] == "MISSING"  # http.csv absent


def test_tls_version_and_answer_parsing() -> None:
    assert run_benchmark.tls_version("TLS1.3") == 0x0304
    assert run_benchmark.tls_version("TLSv1.2") == 0x0303
    assert run_benchmark.tls_version("0x0301") == 0x0301
    assert run_benchmark.tls_version("SSL3.0") == 0x0300
    assert run_benchmark.answer_addresses(
        "a.example A 192.0.2.1 ttl=300; a.example AAAA 2001:db8::1"
    ) == [
        "192.0.2.1",
        "2001:db8::1",
    ]


def test_profile_for_the_generated_environment_loads(tmp_path: Path) -> None:
    from conformance.profile import load_profile

    for cloud in (True, False):
        path = tmp_path / f"profile-{cloud}.yaml"
        path.write_text(run_benchmark.profile_yaml(cloud))
        profile = load_profile(path)
        assert profile.is_target(ipaddress.ip_address("192.0.2.10"))
        assert (profile.cloud is not None) is cloud


def test_an_unusable_harness_command_is_a_clear_setup_error() -> None:
    with pytest.raises(run_benchmark.SetupError, match="not on PATH"):
        run_benchmark.check_harness(["ucx-conformance-does-not-exist"])
    with pytest.raises(run_benchmark.SetupError, match="not usable yet"):
        run_benchmark.check_harness([sys.executable, "-c", "raise SystemExit(1)"])


def test_each_measurement_sees_only_its_own_child(tmp_path: Path) -> None:
    big = [sys.executable, "-c", "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096])"]
    small = [sys.executable, "-c", "pass"]
    first = tshark_facts.measure(big, tmp_path / "o", tmp_path / "e")
    second = tshark_facts.measure(small, tmp_path / "o", tmp_path / "e")
    assert first.returncode == second.returncode == 0
    assert first.peak_mib >= 200
    # RUSAGE_CHILDREN would still say >= 200 here, and a child spawned straight from this
    # process would start from pytest's own high-water mark (> 100 MiB) at exec.
    assert second.peak_mib < 60


# ---------------------------------------------------------------------------------------------
# tshark itself (CI installs it; skipped only where it is absent)
# ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(tshark_facts.tshark_path() is None, reason="tshark is not installed")
def test_tshark_sees_what_the_generator_wrote(
    small_capture: tuple[Path, gen_capture.Summary], tmp_path: Path
) -> None:
    path, summary = small_capture
    run = tshark_facts.run_tshark(path, tmp_path)
    assert run.measurement.returncode == 0, run.stderr_tail
    facts = run.facts
    assert facts.packets == SMALL
    assert facts.flows == summary.flow_keys
    assert len(facts.sni) == summary.client_hellos
    assert {sni for _, sni in facts.sni} >= {"api.imagicle.com"}
    assert len(facts.server_hellos) == summary.server_hellos
    assert {v for _, v, _ in facts.server_hellos} == {0x0303, 0x0304}
    assert len(facts.http_requests) == summary.connects
    assert ("cucm.corp.example", "192.0.2.20") in facts.dns_answers
    assert run.measurement.peak_mib > 0 and run.measurement.wall_seconds > 0


def test_captures_are_generated_once_and_regenerated_when_anything_changed(
    tmp_path: Path,
) -> None:
    path, line = run_benchmark.capture_for(tmp_path, SMALL, "pcapng", 5, 0.3, False)
    assert "generated in" in line
    first = path.read_bytes()
    again, line = run_benchmark.capture_for(tmp_path, SMALL, "pcapng", 5, 0.3, False)
    assert again == path and "reused" in line and path.read_bytes() == first
    _, line = run_benchmark.capture_for(tmp_path, SMALL, "pcapng", 6, 0.3, False)  # other seed
    assert "generated in" in line and path.read_bytes() != first
    path.write_bytes(path.read_bytes()[:-4])  # the file changed under the sidecar
    _, line = run_benchmark.capture_for(tmp_path, SMALL, "pcapng", 6, 0.3, False)
    assert "generated in" in line
    _, line = run_benchmark.capture_for(tmp_path, SMALL, "pcapng", 6, 0.3, True)
    assert "generated in" in line


def test_the_speed_target_is_judged_at_the_largest_size() -> None:
    m = tshark_facts.Measurement(("x",), 0, 1.0, 1024, 0.0, 0.0)
    slow = tshark_facts.Measurement(("x",), 0, 20.0, 1024, 0.0, 0.0)
    rows = [
        run_benchmark.Row(100, 1, harness=m, tshark=m),  # 1x: information only
        run_benchmark.Row(1000, 1, harness=m, tshark=slow),  # 20x
    ]
    lines: list[str] = []
    assert run_benchmark.targets(rows, lines.append)
    assert "information" in lines[0] and "PASS" in lines[1]


def test_argus_and_peak_targets_are_judged_at_the_largest_size() -> None:
    def m(seconds: float, mib: int = 50) -> tshark_facts.Measurement:
        return tshark_facts.Measurement(("x",), 0, seconds, mib * 1024, 0.0, 0.0)

    small = run_benchmark.Row(100, 1, harness=m(1.0), tshark=m(30.0), argus=m(0.1))
    large = run_benchmark.Row(1000, 1, harness=m(1.0, 55), tshark=m(30.0), argus=m(2.0))
    lines: list[str] = []
    assert run_benchmark.targets([small, large], lines.append)
    assert large.ratio_to(large.argus) == pytest.approx(2.0)
    assert any("2.00x argus" in line and "PASS" in line for line in lines)
    assert not any(line.startswith("speed at 100:") and "argus" in line for line in lines)
    slower = run_benchmark.Row(1000, 1, harness=m(3.0, 120), tshark=m(90.0), argus=m(2.0))
    lines.clear()
    assert not run_benchmark.targets([small, slower], lines.append)
    assert any("argus" in line and "MISS" in line for line in lines)
    assert any("120 MiB" in line and "MISS" in line for line in lines)


def test_web_mix_and_dumpcap_captures_are_named_and_cached_apart(tmp_path: Path) -> None:
    rtp, _ = run_benchmark.capture_for(tmp_path, SMALL, "pcapng", 5, 0.3, False)
    web, line = run_benchmark.capture_for(tmp_path, SMALL, "pcapng", 5, 0.3, False, mix="web")
    assert web.name == f"capture-{SMALL}-web.pcapng" and "generated in" in line
    assert web.read_bytes() != rtp.read_bytes()
    if shutil.which("dumpcap") is None:
        pytest.skip("dumpcap is not installed")
    dumped, line = run_benchmark.capture_for(
        tmp_path, SMALL, "pcapng", 5, 0.3, False, writer="dumpcap"
    )
    assert dumped.name == f"capture-{SMALL}.dumpcap.pcapng" and "dumpcap" in line
    assert not dumped.with_name(dumped.name + ".gen").exists()
    again, line = run_benchmark.capture_for(
        tmp_path, SMALL, "pcapng", 5, 0.3, False, writer="dumpcap"
    )
    assert again == dumped and "reused" in line


def test_the_benchmark_says_which_code_the_harness_ran(tmp_path: Path) -> None:
    assert run_benchmark.decoder_of(tmp_path).startswith("unknown")
    (tmp_path / "report.json").write_text('{"harness": {"tools": {}}}')
    assert run_benchmark.decoder_of(tmp_path).startswith("not said")
    (tmp_path / "report.json").write_text(
        '{"harness": {"tools": {"decoder": "compiled (Cython): a, b"}}}'
    )
    assert run_benchmark.decoder_of(tmp_path) == "compiled (Cython): a, b"


def test_memory_census_reports_every_stage_and_the_records(
    small_capture: tuple[Path, gen_capture.Summary],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import memory_census

    path, summary = small_capture
    assert memory_census.main([str(path), "--types"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if " RSS " in line]
    assert [line.split()[0] for line in lines] == [
        "start",
        "walk",
        "numbering",
        "flows",
        "observed",
    ]
    # each stage's own high mark where Linux resets it (clear_refs), never below its RSS
    for line in lines:
        rss, high = (
            float(n) for n in re.findall(r"RSS +([0-9.]+) MiB \(high [a-z ]+ +([0-9.]+)\)", line)[0]
        )
        assert high >= rss - 0.1
    assert all("(high since last" in line for line in lines) or all(
        "(high so far" in line for line in lines
    )
    assert "live objects by type" in out
    flows_line = next(
        line for line in out.splitlines() if line.split()[:1] == ["flows"] and "records" in line
    )
    assert int(flows_line.split()[1].replace(",", "")) == summary.flows
    # the measurement leaves the observation as it found it
    assert memory_census.flows.FlowTable.finish.__qualname__ == "FlowTable.finish"


def test_memory_census_says_a_missing_capture_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import memory_census

    assert memory_census.main([str(tmp_path / "none.pcap")]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
