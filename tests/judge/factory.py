"""Build `Observations` by hand for judge tests: flows, DNS queries, hellos, requests.

Addresses and the profile come from `tests.defects`, so unit tests and capture tests
share one topology. Flow ids are dense and 1-based, as the observers number them.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from conformance.observe.records import (
    Anomaly,
    CaptureSummary,
    DnsAnswer,
    DnsQuery,
    Flow,
    HttpRequest,
    InitiatorBasis,
    NameMention,
    NotUnderstood,
    Observations,
    Parties,
    TlsClientHello,
)

T0 = 1_700_000_000.0


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def capture(**changes: object) -> CaptureSummary:
    """A whole, drop-free capture summary; keyword arguments change fields."""
    base = CaptureSummary(
        path="capture-0.pcapng",
        format="pcapng",
        sha256="0" * 64,
        link_types=(1,),
        interfaces=1,
        packets=100,
        bytes=10_000,
        first_time=T0,
        last_time=T0 + 60,
        malformed=0,
        anomalies=(),
        snap_truncated=0,
        truncated_file=False,
        truncated_detail=None,
        drops=0,
    )
    return replace(base, **changes)


def truncated_capture() -> CaptureSummary:
    return capture(truncated_file=True, truncated_detail="capture truncated at record 4812")


def dropping_capture(drops: int = 3) -> CaptureSummary:
    return capture(drops=drops, drop_detail="dropped by the kernel")


def malformed_capture(
    count: int = 2, reason: str = "IPv4 header length lies", parties: tuple[Parties, ...] = ()
) -> CaptureSummary:
    """Frames not understood: with no `parties`, frames with no address to tell whose."""
    untold = count - sum(p.count for p in parties)
    return capture(
        malformed=count,
        anomalies=(Anomaly(0, 7, reason),),
        not_understood=(NotUnderstood(reason, count, (7,), parties, untold),),
    )


def unread_payload_capture(
    count: int = 1, reason: str = "NBNS: NBNS name has letters outside A-P", *parties: str
) -> CaptureSummary:
    """Packets counted in their flows whose payload a parser could not read."""
    group = Parties(count, tuple(ip(a) for a in parties), ())
    return capture(
        malformed=count,
        anomalies=(Anomaly(0, 9, reason),),
        payload_not_understood=(NotUnderstood(reason, count, (9,), (group,)),),
    )


class Scenario:
    """Accumulates records; `observations()` freezes them."""

    def __init__(self) -> None:
        self.flows: list[Flow] = []
        self.dns_queries: list[DnsQuery] = []
        self.hellos: list[TlsClientHello] = []
        self.requests: list[HttpRequest] = []
        self.mentions: list[NameMention] = []
        self._packet = 0

    def _packets(self, count: int) -> tuple[int, ...]:
        first = self._packet + 1
        self._packet += count
        return tuple(range(first, first + count))

    def flow(
        self,
        initiator: str,
        responder: str,
        dport: int = 443,
        *,
        transport: str = "tcp",
        sport: int = 51234,
        packets_out: int = 3,
        packets_in: int = 2,
        accepted: bool | None = None,
        rejected: bool = False,
        handshake: bool = True,
        basis: InitiatorBasis | None = None,
    ) -> Flow:
        """A flow; by default a TCP connection with a handshake, answered and accepted."""
        if basis is None:
            basis = InitiatorBasis.SYN if transport == "tcp" else InitiatorBasis.FIRST_PACKET
        if accepted is None:
            accepted = packets_in > 0 and not rejected
        numbers = self._packets(max(packets_out + packets_in, 1))
        made = Flow(
            flow_id=len(self.flows) + 1,
            capture=0,
            transport=transport,
            ip_version=ip(initiator).version,
            initiator=ip(initiator),
            initiator_port=sport,
            responder=ip(responder),
            responder_port=dport,
            initiator_basis=basis,
            handshake_seen=handshake and transport == "tcp",
            answered=packets_in > 0,
            accepted=accepted,
            rejected=rejected,
            packets_out=packets_out,
            packets_in=packets_in,
            bytes_out=60 * packets_out,
            bytes_in=60 * packets_in,
            first_time=T0 + len(self.flows),
            last_time=T0 + len(self.flows) + 1,
            first_packet=numbers[0],
            last_packet=numbers[-1],
            sample_packets=numbers[:8],
        )
        self.flows.append(made)
        return made

    def dns(
        self,
        client: str,
        server: str,
        qname: str,
        *,
        answers: tuple[str, ...] = (),
        cnames: tuple[str, ...] = (),
        rcode: int | None = 0,
        qtype: int = 1,
        protocol: str = "dns",
        port: int = 53,
        count: int = 1,
    ) -> DnsQuery:
        """A DNS-format query with its flow; `rcode=None` means no response was seen."""
        answered = rcode is not None
        flow = self.flow(
            client,
            server,
            port,
            transport="udp",
            sport=53000 + len(self.flows),
            packets_out=count,
            packets_in=count if answered else 0,
        )
        records = tuple(DnsAnswer(qname, 5, 300, c) for c in cnames) + tuple(
            DnsAnswer(cnames[-1] if cnames else qname, 28 if ":" in a else 1, 300, a)
            for a in answers
        )
        query = DnsQuery(
            capture=0,
            packet=flow.first_packet,
            time=flow.first_time,
            flow_id=flow.flow_id,
            client=ip(client),
            client_port=flow.initiator_port,
            server=ip(server),
            server_port=port,
            transport="udp",
            protocol=protocol,
            qname=qname,
            qtype=qtype,
            response_packet=flow.last_packet if answered else None,
            rcode=rcode,
            answers=records,
            count=count,
        )
        self.dns_queries.append(query)
        return query

    def tls(self, flow: Flow, sni: str | None) -> TlsClientHello:
        hello = TlsClientHello(
            capture=0,
            packet=flow.first_packet + 2,
            time=flow.first_time,
            flow_id=flow.flow_id,
            sni=sni,
            versions=(0x0304,),
            cipher_suites=(0x1301,),
            alpn=(),
        )
        self.hellos.append(hello)
        return hello

    def http(self, flow: Flow, method: str, target: str, host: str | None = None) -> HttpRequest:
        request = HttpRequest(
            capture=0,
            packet=flow.first_packet + 2,
            time=flow.first_time,
            flow_id=flow.flow_id,
            method=method,
            target=target,
            version="HTTP/1.1",
            host=host,
        )
        self.requests.append(request)
        return request

    def mention(self, flow: Flow, protocol: str, name: str) -> NameMention:
        mention = NameMention(
            capture=0, packet=flow.first_packet, flow_id=flow.flow_id, protocol=protocol, name=name
        )
        self.mentions.append(mention)
        return mention

    def observations(self, *captures: CaptureSummary) -> Observations:
        """Freeze; one whole capture unless others are given (pass none for `()`-less runs)."""
        return Observations(
            captures=captures or (capture(),),
            flows=tuple(self.flows),
            dns=tuple(self.dns_queries),
            client_hellos=tuple(self.hellos),
            http_requests=tuple(self.requests),
            names=tuple(self.mentions),
        )
