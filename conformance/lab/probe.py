"""AG-PERIMETER's active probes: from the target's network position towards outside canaries.

Run inside the target's namespace (`ip netns exec NS python -m conformance.lab.probe ...`)
after the capture window has closed, so the probes never enter the judged capture
(controls.md decision 7); they also carry their own mark, source ports PROBE_PORT_BASE+n and
ICMP identifier PROBE_ICMP_ID, should a capture ever overlap. Each probe is one JSON line of
the probe log: what was sent and the answer, or none. An answer from the probed address
(SYN-ACK, RST, UDP reply, echo reply, or an ICMP error it sent itself) means the packet got
through the perimeter; an ICMP error from another address is a rejection on the way and is
logged as such.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

PROBE_PORT_BASE: Final = 61000
PROBE_ICMP_ID: Final = 0x7563  # "uc"
ANSWER_TIMEOUT: Final = 2.0  # seconds to wait for answers; the lab's RTT is microseconds
PROBE_NAME: Final = "perimeter-probe.ucx-conformance.invalid"  # RFC 6761: never resolvable


@dataclass(frozen=True, slots=True)
class ProbeSpec:
    """One probe: a protocol/port towards one canary address."""

    name: str
    proto: str  # "tcp" | "udp" | "icmp"
    destination: str
    port: int | None = None


def default_probes(v4: Sequence[str], v6: Sequence[str]) -> list[ProbeSpec]:
    """The controls.md set: TCP 443/80, UDP 53/123, ICMP echo; IPv4 and IPv6."""
    probes: list[ProbeSpec] = []
    for family, addresses in (("v4", v4), ("v6", v6)):
        for address in addresses:
            probes += [
                ProbeSpec(f"tcp-443-{family}", "tcp", address, 443),
                ProbeSpec(f"tcp-80-{family}", "tcp", address, 80),
                ProbeSpec(f"udp-53-{family}", "udp", address, 53),
                ProbeSpec(f"udp-123-{family}", "udp", address, 123),
                ProbeSpec(f"icmp-echo-{family}", "icmp", address),
            ]
    return probes


def _packet(spec: ProbeSpec, index: int) -> Any:
    from scapy.layers.dns import DNS, DNSQR
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.ntp import NTP

    v6 = ":" in spec.destination
    ip = IPv6(dst=spec.destination) if v6 else IP(dst=spec.destination)
    sport = PROBE_PORT_BASE + index
    if spec.proto == "tcp":
        return ip / TCP(sport=sport, dport=spec.port, flags="S", seq=index * 7919)
    if spec.proto == "udp":
        payload = DNS(rd=1, qd=DNSQR(qname=PROBE_NAME)) if spec.port == 53 else NTP()
        return ip / UDP(sport=sport, dport=spec.port) / payload
    if v6:
        return ip / ICMPv6EchoRequest(id=PROBE_ICMP_ID, seq=index)
    return ip / ICMP(type=8, id=PROBE_ICMP_ID, seq=index)


def _classify(spec: ProbeSpec, answer: Any) -> dict[str, Any]:
    """What the answer was and whether it came from the probed address."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoReply, IPv6

    network = answer.getlayer(IP) or answer.getlayer(IPv6)
    source = str(network.src) if network is not None else "?"
    kind = "other"
    if answer.haslayer(TCP):
        flags = answer[TCP].flags
        kind = "syn-ack" if flags.S and flags.A else "rst" if flags.R else f"tcp-{flags}"
    elif (
        answer.haslayer(UDP)
        and not answer.haslayer("ICMP")
        and not answer.haslayer("ICMPv6DestUnreach")
    ):
        kind = "udp-reply"
    elif answer.haslayer(ICMPv6EchoReply) or (answer.haslayer(ICMP) and answer[ICMP].type == 0):
        kind = "echo-reply"
    elif answer.haslayer(ICMP) or answer.haslayer("ICMPv6DestUnreach"):
        kind = "icmp-error"
    return {
        "from": source,
        "kind": kind,
        "from_destination": source == spec.destination,
        "summary": answer.summary(),
    }


def run_probes(probes: Sequence[ProbeSpec], log: Path, timeout: float = ANSWER_TIMEOUT) -> int:
    """Send every probe, wait `timeout` for answers, write one JSON line per probe."""
    from scapy.config import conf
    from scapy.sendrecv import sr

    conf.verb = 0
    lines: list[dict[str, Any] | None] = [None] * len(probes)

    def batch(indices: list[int]) -> None:
        packets = [_packet(probes[i], i) for i in indices]
        sent_at = time.time()
        try:
            answered, _ = sr(packets, timeout=timeout, verbose=0)
        except Exception as exc:  # no route, no permission: the probe could not run
            for i in indices:
                lines[i] = _line(probes[i], packets[indices.index(i)], sent_at, None, str(exc))
            return
        by_index = {_index_of(sent): received for sent, received in answered}
        for i, packet in zip(indices, packets, strict=True):
            try:
                lines[i] = _line(probes[i], packet, sent_at, by_index.get(i), None)
            except Exception as exc:  # an answer we cannot describe is still an answer
                line = _line(probes[i], packet, sent_at, None, None)
                line["answer"] = {
                    "from": "?",
                    "kind": "unparsed",
                    "from_destination": True,
                    "summary": f"{type(exc).__name__}: {exc}",
                }
                lines[i] = line

    v4 = [i for i, p in enumerate(probes) if ":" not in p.destination]
    v6 = [i for i, p in enumerate(probes) if ":" in p.destination]
    threads = [threading.Thread(target=batch, args=(ix,)) for ix in (v4, v6) if ix]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with log.open("w") as handle:
        for line in lines:
            handle.write(json.dumps(line) + "\n")
    return sum(1 for line in lines if line and line["answer"])


def _index_of(sent: Any) -> int:
    """The probe number carried in a sent packet (source port or ICMP sequence)."""
    from scapy.layers.inet import ICMP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest

    for transport in (TCP, UDP):
        if sent.haslayer(transport):
            return int(sent[transport].sport) - PROBE_PORT_BASE
    for echo in (ICMP, ICMPv6EchoRequest):
        if sent.haslayer(echo):
            return int(sent[echo].seq)
    return -1


def _line(
    spec: ProbeSpec, packet: Any, sent_at: float, answer: Any, error: str | None
) -> dict[str, Any]:
    return {
        "probe": spec.name,
        "proto": spec.proto,
        "destination": spec.destination,
        "port": spec.port,
        "sent": packet.summary(),
        "sent_at": round(sent_at, 3),
        "answer": _classify(spec, answer) if answer is not None else None,
        "error": error,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="AG-PERIMETER probes (run in the target netns)")
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--v4", action="append", default=[])
    parser.add_argument("--v6", action="append", default=[])
    parser.add_argument("--timeout", type=float, default=ANSWER_TIMEOUT)
    args = parser.parse_args(argv)
    probes = default_probes(args.v4, args.v6)
    answered = run_probes(probes, args.log, args.timeout)
    print(json.dumps({"probes": len(probes), "answered": answered}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
