"""Which of the target's TLS connections a content source explains (decision 11 for content).

The universe is read from the capture's Observations: every connection the target opened that
carries TLS (a ClientHello in it, direct or inside a CONNECT tunnel, or TLS records from its
first payload when it began before the capture), and every QUIC connection with a readable
Initial. A content source (TLS keys, a HAR file) says for each whether it covers it; a
connection no source covers is listed in the report, and when it leaves the Customer
Environment (or goes through the site's proxy) a telemetry message could hide in it, so the
TM-* controls stay `inconclusive` (conformance.content.logs).

Coverage records are written into each content evidence file (`event: coverage`), so a
re-judging of the report reads them back without the capture, the keys or the HAR.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from conformance.content.messages import ContentEvidence
from conformance.observe.records import Flow, Observations, PayloadKind, TlsClientHello
from conformance.profile_model import Profile

SHOWN_GAPS: Final = 3  # connections named in a problem; the evidence file lists them all


@dataclass(frozen=True, slots=True)
class TlsFlow:
    """One TLS (or QUIC) connection the target opened, as the capture shows it."""

    flow_id: int
    capture: int
    transport: str  # "tcp" | "udp" (QUIC)
    client: str
    client_port: int
    server: str
    server_port: int
    sni: str | None
    connect: str | None  # CONNECT host:port when it runs through a proxy
    client_hello: int | None  # packet number
    first_time: float
    last_time: float

    def describe(self) -> str:
        """ "flow 4 192.0.2.10:50003 -> 198.51.100.7:443 (SNI api.imagicle.com)"."""
        names = []
        if self.connect:
            names.append(f"CONNECT {self.connect}")
        if self.sni:
            names.append(f"SNI {self.sni}")
        if self.transport == "udp":
            names.append("QUIC")
        extra = f" ({', '.join(names)})" if names else ""
        return (
            f"flow {self.flow_id} {_hostport(self.client, self.client_port)} ->"
            f" {_hostport(self.server, self.server_port)}{extra}"
        )


def _hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def target_tls_flows(observations: Observations, profile: Profile) -> list[TlsFlow]:
    """Every TLS or QUIC connection the target initiated, in flow order."""
    hellos: dict[int, TlsClientHello] = {}
    for seen in observations.client_hellos:
        hellos.setdefault(seen.flow_id, seen)
    connects: dict[int, str] = {}
    for request in observations.http_requests:
        if request.method.upper() == "CONNECT":
            connects.setdefault(request.flow_id, request.target)
    out = []
    for flow in observations.flows:
        if not profile.is_target(flow.initiator) or flow.transport not in ("tcp", "udp"):
            continue
        hello = hellos.get(flow.flow_id)
        if hello is None and not (flow.transport == "tcp" and flow.payload_out is PayloadKind.TLS):
            continue
        out.append(
            TlsFlow(
                flow_id=flow.flow_id,
                capture=flow.capture,
                transport=flow.transport,
                client=str(flow.initiator),
                client_port=flow.initiator_port,
                server=str(flow.responder),
                server_port=flow.responder_port,
                sni=hello.sni if hello is not None else None,
                connect=connects.get(flow.flow_id),
                client_hello=hello.packet if hello is not None else None,
                first_time=flow.first_time,
                last_time=flow.last_time,
            )
        )
    return out


class FlowIndex:
    """Find a capture's flow by its addresses, ports and one of its packet numbers."""

    def __init__(self, observations: Observations) -> None:
        self._by_key: dict[tuple[int, str, int, str, int], list[Flow]] = {}
        for flow in observations.flows:
            key = (
                flow.capture,
                str(flow.initiator),
                flow.initiator_port,
                str(flow.responder),
                flow.responder_port,
            )
            self._by_key.setdefault(key, []).append(flow)
        self._starts = {key: [f.first_packet for f in flows] for key, flows in self._by_key.items()}

    def find(
        self,
        capture: int,
        client: str,
        client_port: int,
        server: str,
        server_port: int,
        packet: int,
    ) -> Flow | None:
        """The flow client -> server that holds `packet` (None when there is none)."""
        key = (capture, _canonical(client), client_port, _canonical(server), server_port)
        flows = self._by_key.get(key)
        if not flows:
            return None
        index = bisect.bisect_right(self._starts[key], packet) - 1
        if index >= 0 and flows[index].last_packet >= packet:
            return flows[index]
        return None


def _canonical(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def coverage_record(flow: TlsFlow, capture_name: str, covered: bool, why: str) -> dict[str, Any]:
    """The `coverage` line a content evidence file carries for one target TLS flow."""
    return {
        "event": "coverage",
        "capture": capture_name,
        "flow": flow.flow_id,
        "transport": flow.transport,
        "client": flow.client,
        "client_port": flow.client_port,
        "server": flow.server,
        "server_port": flow.server_port,
        "sni": flow.sni,
        "connect": flow.connect,
        "client_hello": flow.client_hello,
        "covered": covered,
        "why": why,
    }


def describe_record(record: Mapping[str, Any]) -> str:
    """A coverage record as `TlsFlow.describe` words it."""
    return TlsFlow(
        flow_id=int(record.get("flow") or 0),
        capture=0,
        transport=str(record.get("transport") or "tcp"),
        client=str(record.get("client") or "?"),
        client_port=int(record.get("client_port") or 0),
        server=str(record.get("server") or "?"),
        server_port=int(record.get("server_port") or 0),
        sni=record.get("sni"),
        connect=record.get("connect"),
        client_hello=None,
        first_time=0.0,
        last_time=0.0,
    ).describe()


def leaves_environment(record: Mapping[str, Any], profile: Profile | None) -> bool:
    """Whether a covered-or-not flow could carry telemetry: its server is outside the
    Customer Environment, or it is the site's proxy (a CONNECT tunnel to the cloud). Without a
    profile every flow could."""
    if profile is None:
        return True
    try:
        server = ipaddress.ip_address(str(record.get("server")))
    except ValueError:
        return True
    if profile.proxy is not None and server == profile.proxy.address:
        return True
    return not profile.environment.contains(server) or bool(record.get("connect"))


def combined(
    records: Iterable[tuple[str, Mapping[str, Any]]],
) -> dict[tuple[str, int], dict[str, Any]]:
    """Coverage records of every source merged per (capture, flow): covered when any source
    covers it; `why` keeps each source's reason for a flow none covers."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for source, record in records:
        key = (str(record.get("capture")), int(record.get("flow") or 0))
        merged = out.setdefault(key, {**record, "covered": False, "why": "", "sources": []})
        merged["sources"].append(source)
        if record.get("covered"):
            merged["covered"] = True
        elif record.get("why"):
            merged["why"] = "; ".join(w for w in (merged["why"], str(record["why"])) if w)
    return out


def coverage_problems(
    content: ContentEvidence, profile: Profile | None
) -> tuple[list[str], list[str]]:
    """(problems, notes) for the target's TLS connections no own-evidence source covers: one
    that leaves the Customer Environment (directly or through the proxy) could carry an unseen
    telemetry message, so it is a problem; one inside it is a note. Without a profile every
    uncovered connection is a problem."""
    problems: list[str] = []
    notes: list[str] = []
    if not content.coverage:
        return problems, notes
    uncovered = [r for r in combined(content.coverage).values() if not r["covered"]]
    outward = [r for r in uncovered if leaves_environment(r, profile)]
    inward = [r for r in uncovered if not leaves_environment(r, profile)]
    if outward:
        shown = "; ".join(f"{describe_record(r)}: {r['why']}" for r in outward[:SHOWN_GAPS])
        more = f"; and {len(outward) - SHOWN_GAPS} more" if len(outward) > SHOWN_GAPS else ""
        problems.append(
            f"{len(outward)} TLS connections of the target leaving the Customer Environment are"
            f" not covered by the content sources (a telemetry message in them would be"
            f" unseen): {shown}{more}"
        )
    if inward:
        notes.append(
            f"{len(inward)} TLS connections of the target inside the Customer Environment are"
            f" not covered by the content sources (not the telemetry channel): "
            + "; ".join(describe_record(r) for r in inward[:SHOWN_GAPS])
        )
    return problems, notes
