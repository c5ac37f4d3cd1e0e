"""Extract, with tshark, the facts the harness also produces, and measure what it costs.

One tshark pass (`-T fields`) prints one line per frame with every field below; the lines are
then normalised into sets that can be compared with the harness's evidence/*.csv:

- flows: canonical bidirectional 5-tuples (transport, lower endpoint, higher endpoint);
  ICMP/ICMPv6 flows carry ports 0, because tools key echo flows differently (id, type, code)
- TCP orientation: the (initiator -> responder) 5-tuple of every TCP flow whose SYN was seen
- DNS: (client, server, qname) for every query or response, and (qname, address) answers
- TLS: (flow, SNI) per ClientHello, (flow, version, cipher suite) per ServerHello; the version
  is supported_versions when the ServerHello carries it (TLS 1.3, RFC 8446 4.2.1), else its
  legacy version
- HTTP: (flow, method, request target) per request, e.g. CONNECT api.imagicle.com:443

One pass is the cheapest way to get all of them from tshark, so the speed ratio against the
harness is conservative. tshark runs with its defaults otherwise (TCP reassembly on, so a
ClientHello split over two segments is seen whole) and with `-n` (no name resolution: it must
never look anything up).

Each measurement runs tshark in a fresh child process (under a small measuring parent, see
`measure`) and reads that child's own resource usage from wait4(2): wall time and peak RSS
(ru_maxrss, KiB on Linux) of that run alone.

    python benchmarks/tshark_facts.py /tmp/ucx.pcapng
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

FlowKey = tuple[str, str, int, str, int]  # (transport, address, port, address, port)
Oriented = tuple[str, str, int, str, int]  # (transport, initiator, port, responder, port)

FIELDS = (
    "frame.number",
    "ip.src",
    "ip.dst",
    "ipv6.src",
    "ipv6.dst",
    "ip.proto",
    "ipv6.nxt",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "udp.srcport",
    "udp.dstport",
    "icmp.type",
    "icmpv6.type",
    "dns.flags.response",
    "dns.qry.name",
    "dns.a",
    "dns.aaaa",
    "tls.handshake.type",
    "tls.handshake.extensions_server_name",
    "tls.handshake.extensions.supported_version",
    "tls.handshake.version",
    "tls.handshake.ciphersuite",
    "http.request.method",
    "http.request.uri",
)
SEPARATOR = ","
AGGREGATOR = ";"  # joins repeated occurrences; must differ from the separator
TCP_SYN = 0x02
TCP_ACK = 0x10


def tshark_path() -> str | None:
    """The tshark on PATH, or None when it is not installed."""
    return shutil.which("tshark")


def tshark_command(pcap: Path, tshark: str = "tshark") -> list[str]:
    """The single-pass field extraction run on `pcap`."""
    cmd = [tshark, "-n", "-r", str(pcap), "-T", "fields", "-E", f"separator={SEPARATOR}"]
    cmd += ["-E", "occurrence=a", "-E", f"aggregator={AGGREGATOR}", "-E", "quote=d"]
    for name in FIELDS:
        cmd += ["-e", name]
    return cmd


# ---------------------------------------------------------------------------------------------
# Measuring a child process
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Measurement:
    """One run of one command in its own child process."""

    command: tuple[str, ...]
    returncode: int
    wall_seconds: float
    peak_rss_kib: int  # the child's ru_maxrss (and that of children it waited for)
    user_seconds: float
    system_seconds: float

    @property
    def peak_mib(self) -> float:
        return self.peak_rss_kib / 1024

    def rate(self, packets: int) -> float:
        return packets / self.wall_seconds if self.wall_seconds > 0 else 0.0


# The measuring parent: a fresh, small interpreter (-I -S, no imports) that spawns the tool,
# waits for it and writes "returncode wall maxrss utime stime" to the file named in argv[1].
# Why not measure from this process: Linux folds the RSS high-water mark of the address space
# a child leaves at exec into its ru_maxrss (fs/exec.c, setmax_mm_hiwater_rss), and a child
# forked from a big benchmark process starts from the parent's pages. The small parent keeps
# that floor under the tool's own peak.
_MEASURER = """
import os, sys, time
argv = sys.argv[2:]
start = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as fh:
    fh.write(f"{code} {wall!r} {ru.ru_maxrss} {ru.ru_utime!r} {ru.ru_stime!r}")
"""


def measure(
    cmd: Sequence[str],
    stdout: Path,
    stderr: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Measurement:
    """Run `cmd` in a fresh child and measure it alone: wall time, peak RSS, CPU.

    A small measuring parent spawns the tool and reads the tool's own rusage from wait4(2)
    (RUSAGE_CHILDREN would be the maximum over every child a process ever waited for).
    """
    result = stdout.with_name(stdout.name + ".rusage")
    with stdout.open("wb") as out, stderr.open("wb") as err:
        measurer = [sys.executable, "-I", "-S", "-c", _MEASURER, str(result), *cmd]
        proc = subprocess.run(measurer, stdout=out, stderr=err, env=env, cwd=cwd, check=False)
    try:
        code, wall, maxrss, utime, stime = result.read_text().split()
    except (OSError, ValueError) as exc:
        raise RuntimeError(
            f"could not run {cmd[0]!r} (measuring parent exited {proc.returncode}, see {stderr})"
        ) from exc
    finally:
        result.unlink(missing_ok=True)
    return Measurement(tuple(cmd), int(code), float(wall), int(maxrss), float(utime), float(stime))


# ---------------------------------------------------------------------------------------------
# Normalised facts
# ---------------------------------------------------------------------------------------------
def address(text: str) -> str:
    """An address in canonical text (IPv6 compressed, lower case)."""
    return str(ipaddress.ip_address(text.strip().strip("[]")))


def flow_key(transport: str, a: str, aport: int, b: str, bport: int) -> FlowKey:
    """A bidirectional flow key: the lower endpoint first; ICMP keys carry ports 0."""
    if transport in ("icmp", "icmpv6"):
        aport = bport = 0
    ia, ib = ipaddress.ip_address(a), ipaddress.ip_address(b)
    if (ib.version, int(ib), bport) < (ia.version, int(ia), aport):
        ia, aport, ib, bport = ib, bport, ia, aport
    return (transport, str(ia), aport, str(ib), bport)


def qname(text: str) -> str:
    """DNS names compared lower-cased without the trailing dot (controls.md decision 4)."""
    text = text.strip().lower()
    return "" if text == "<root>" else text.rstrip(".")


def number(text: str) -> int | None:
    """An integer written as decimal or 0x-hex; None for anything else."""
    text = text.strip().lower()
    try:
        return int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        return None


@dataclass
class Facts:
    """What one tool saw in one capture, as comparable sets."""

    packets: int = 0
    flows: set[FlowKey] = field(default_factory=set)
    tcp_syn: set[Oriented] = field(default_factory=set)
    dns_queries: set[tuple[str, str, str]] = field(default_factory=set)  # client, server, qname
    dns_answers: set[tuple[str, str]] = field(default_factory=set)  # qname, address
    sni: set[tuple[FlowKey, str]] = field(default_factory=set)
    server_hellos: set[tuple[FlowKey, int, int]] = field(default_factory=set)  # version, suite
    http_requests: set[tuple[FlowKey, str, str]] = field(default_factory=set)  # method, target

    def counts(self) -> dict[str, int]:
        return {
            "packets": self.packets,
            "flows": len(self.flows),
            "tcp_syn": len(self.tcp_syn),
            "dns_queries": len(self.dns_queries),
            "dns_answers": len(self.dns_answers),
            "sni": len(self.sni),
            "server_hellos": len(self.server_hellos),
            "http_requests": len(self.http_requests),
        }


def _items(value: str) -> list[str]:
    return [v for v in value.split(AGGREGATOR) if v] if value else []


def _first(value: str) -> str:
    return value.split(AGGREGATOR, 1)[0] if value else ""


def parse_fields(lines: Iterable[str]) -> Facts:
    """Normalise tshark `-T fields` output (FIELDS, in order, as tshark_command asks)."""
    facts = Facts()
    width = len(FIELDS)
    for raw in csv.reader(lines):
        if not raw:
            continue
        row = raw + [""] * (width - len(raw))
        (_, ip_src, ip_dst, ip6_src, ip6_dst, ip_proto, ip6_nxt, tcp_sport, tcp_dport, tcp_flags,
         udp_sport, udp_dport, icmp_type, icmp6_type, dns_resp, dns_qry, dns_a, dns_aaaa,
         hs_type, sni, sup_ver, hs_ver, suite, method, uri) = row[:width]  # fmt: skip
        facts.packets += 1
        if ip_src:  # the outer header comes first when there are several (ICMP errors, tunnels)
            src, dst, proto = _first(ip_src), _first(ip_dst), _first(ip_proto)
        elif ip6_src:
            src, dst, proto = _first(ip6_src), _first(ip6_dst), _first(ip6_nxt)
        else:
            continue  # not IP (ARP, ...)
        src, dst = address(src), address(dst)
        if icmp_type:
            transport, sport, dport = "icmp", 0, 0
        elif icmp6_type:
            transport, sport, dport = "icmpv6", 0, 0
        elif tcp_sport:
            transport, sport, dport = "tcp", int(_first(tcp_sport)), int(_first(tcp_dport))
        elif udp_sport:
            transport, sport, dport = "udp", int(_first(udp_sport)), int(_first(udp_dport))
        else:
            transport, sport, dport = f"ip-{proto}", 0, 0
        key = flow_key(transport, src, sport, dst, dport)
        facts.flows.add(key)
        if transport == "tcp":
            flags = number(_first(tcp_flags)) or 0
            if flags & TCP_SYN and not flags & TCP_ACK:
                facts.tcp_syn.add(("tcp", src, sport, dst, dport))
        if dns_qry:
            names = [qname(n) for n in _items(dns_qry)]
            responses = _items(dns_resp)
            for i, name in enumerate(names):
                flag = responses[i] if i < len(responses) else _first(dns_resp)
                is_response = flag.strip().lower() in ("1", "true")
                client, server = (dst, src) if is_response else (src, dst)
                facts.dns_queries.add((client, server, name))
            if names:
                for addr in (*_items(dns_a), *_items(dns_aaaa)):
                    facts.dns_answers.add((names[0], address(addr)))
        if hs_type:
            types = {number(t) for t in _items(hs_type)}
            if 1 in types and sni:
                facts.sni.add((key, qname(_first(sni))))
            if 2 in types:
                version = number(_first(sup_ver)) if sup_ver else number(_first(hs_ver))
                cipher = number(_first(suite))
                if version is not None and cipher is not None:
                    facts.server_hellos.add((key, version, cipher))
        if method:
            for verb, target in zip(_items(method), _items(uri), strict=False):
                facts.http_requests.add((key, verb, target))
    return facts


@dataclass(frozen=True, slots=True)
class TsharkRun:
    measurement: Measurement
    facts: Facts
    fields_path: Path
    stderr_tail: str


def run_tshark(pcap: Path, workdir: Path, tshark: str | None = None) -> TsharkRun:
    """Run the single pass on `pcap` (output into `workdir`), measure it, normalise its facts."""
    exe = tshark or tshark_path()
    if exe is None:
        raise FileNotFoundError("tshark is not installed (apt-get install tshark)")
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / f"{pcap.name}.tshark.csv"
    err = workdir / f"{pcap.name}.tshark.err"
    m = measure(tshark_command(pcap, exe), out, err)
    tail = "\n".join(
        line
        for line in err.read_text(errors="replace").splitlines()
        if "Running as user" not in line  # tshark's warning when run as root
    )[-2000:]
    with out.open(encoding="utf-8", errors="replace", newline="") as fh:
        facts = parse_fields(fh)
    return TsharkRun(m, facts, out, tail)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Extract and time tshark's facts for a capture.")
    parser.add_argument("pcap", type=Path)
    parser.add_argument("--workdir", type=Path, help="where tshark's output goes (default: temp)")
    args = parser.parse_args(argv)
    if tshark_path() is None:
        print("tshark is not installed (apt-get install tshark)", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory(prefix="ucx-tshark-") as tmp:
        run = run_tshark(args.pcap, args.workdir or Path(tmp))
    m = run.measurement
    if m.returncode != 0:
        print(f"tshark exited {m.returncode}:\n{run.stderr_tail}", file=sys.stderr)
        return 1
    packets = run.facts.packets
    print(
        f"tshark: {packets:,} packets in {m.wall_seconds:.2f} s = {m.rate(packets):,.0f} pkt/s, "
        f"peak RSS {m.peak_mib:,.1f} MiB "
        f"(user {m.user_seconds:.1f} s, sys {m.system_seconds:.1f} s)"
    )
    for name, count in run.facts.counts().items():
        print(f"  {name:14} {count:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
