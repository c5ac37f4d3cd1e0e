"""Whether each ClientHello's ECH is real or GREASE, from the evidence of every capture.

The payload inspector records a ClientHello that carries an encrypted_client_hello
extension as `EchKind.UNKNOWN` and keeps the extension aside; once every capture is
read, `classify_hellos` asks `decode/ech.classify_ech` about each of them with:

- every ECHConfig of every SVCB/HTTPS answer in the captures (any client, any protocol:
  more configs can only make a hello REAL or UNKNOWN, never GREASE);
- the client's own DNS answer to its SVCB/HTTPS query for the SNI's name (RFC 9460
  §9.1: the name itself, or `_<port>._https.<name>` for another port), received before
  the flow began and still valid then (its TTL, for every repeat: `DnsQuery.answer_runs`);
  the latest such answer wins. An answer without SVCB/HTTPS records (NODATA, NXDOMAIN)
  gives `()`: the client had no config from it;
- whether the server's HelloRetryRequest on the same flow carried the ECH confirmation.

Everything fails closed (decision 9): an answer whose SVCB/HTTPS RDATA does not decode
(the inspector counts it as a payload not understood) is no answer, and no hello is
GREASE while any SVCB/HTTPS answer in the captures failed to decode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableSequence, Sequence
from dataclasses import replace

from conformance.decode.dns import TYPE_HTTPS, TYPE_SVCB, SvcbRecord, parse_svcb_rdata
from conformance.decode.ech import EchConfig, classify_ech
from conformance.decode.errors import DecodeError
from conformance.decode.tls import ClientHelloInfo, EchExtension
from conformance.observe.records import DnsQuery, EchKind, Flow, IPAddress, TlsClientHello

SVCB_TYPES = frozenset({TYPE_SVCB, TYPE_HTTPS})
RCODE_NOERROR = 0
RCODE_NXDOMAIN = 3  # RFC 1035 §4.1.1: the name does not exist, so neither do its records
# How long an answer without SVCB/HTTPS records is taken to hold. Its negative-caching TTL
# (RFC 2308 §5: the SOA in the authority section) is not kept by the observers; 300 s is a
# common low value, and a shorter time fails closed (an older answer proves nothing).
NEGATIVE_ANSWER_TTL = 300.0
# RFC 9460 §2.3: at most `_<port>._<scheme>` before the name in a SVCB/HTTPS query.
_ATTRLEAF_LABELS = 2


class _Answers:
    """Every SVCB/HTTPS answer of the captures: decoded once, indexed by client and name."""

    def __init__(self, dns: Iterable[DnsQuery]) -> None:
        self.configs: list[EchConfig] = []
        self.malformed = False  # an SVCB/HTTPS RDATA did not decode
        self._decoded: dict[str, SvcbRecord | None] = {}
        self._own: dict[tuple[IPAddress, str], list[DnsQuery]] = {}
        for query in dns:
            for answer in query.answers:
                if answer.rtype in SVCB_TYPES:
                    self._decode(answer.value)
            if (
                query.protocol == "dns"
                and query.qtype in SVCB_TYPES
                and query.response_packet is not None
                and query.rcode in (RCODE_NOERROR, RCODE_NXDOMAIN)
            ):
                self._own.setdefault((query.client, _service_name(query.qname)), []).append(query)

    def _decode(self, value: str) -> SvcbRecord | None:
        if value in self._decoded:
            return self._decoded[value]
        try:
            record: SvcbRecord | None = parse_svcb_rdata(bytes.fromhex(value))
        except (DecodeError, ValueError):
            record = None
            self.malformed = True
        self._decoded[value] = record
        if record is not None and record.ech:
            self.configs.extend(record.ech)
        return record

    def sni_records(
        self, client: IPAddress, name: str, flow: Flow
    ) -> tuple[SvcbRecord, ...] | None:
        """The records of the client's latest answer for `name` usable when `flow` began."""
        best: tuple[float, DnsQuery] | None = None
        for query in self._own.get((client, name), ()):
            start = _usable_since(query, flow)
            if start is not None and (best is None or start > best[0]):
                best = (start, query)
        if best is None:
            return None
        records = [self._decode(a.value) for a in best[1].answers if a.rtype in SVCB_TYPES]
        if any(record is None for record in records):
            return None
        return tuple(record for record in records if record is not None)


def _service_name(qname: str) -> str:
    """The name a SVCB/HTTPS query is about, without its `_port._scheme` labels."""
    labels = qname.split(".")
    skip = 0
    while skip < _ATTRLEAF_LABELS and skip < len(labels) - 1 and labels[skip].startswith("_"):
        skip += 1
    return ".".join(labels[skip:])


def _lifetime(query: DnsQuery) -> float:
    """How long the query's answer holds: its SVCB/HTTPS records' smallest TTL."""
    ttls = [a.ttl for a in query.answers if a.rtype in SVCB_TYPES]
    return float(min(ttls)) if ttls else NEGATIVE_ANSWER_TTL


def _usable_since(query: DnsQuery, flow: Flow) -> float | None:
    """When the latest run of the query's answers the flow could use began, else None.

    A run is usable when it began no later than the flow and its TTL had not run out
    when the flow began. The first run's answer must also have arrived before the flow's
    first packet (its response packet is known; later repeats' are not).
    """
    runs = query.answer_runs or tuple(
        (t, t) for t in (query.time, query.last_time) if t is not None
    )
    at = flow.first_time
    lifetime = _lifetime(query)
    found: float | None = None
    for start, end in runs:
        if not start <= at <= end + lifetime:
            continue
        if (
            start == query.time
            and query.capture == flow.capture
            and query.response_packet is not None
            and query.response_packet > flow.first_packet
        ):
            continue  # the answer came after the flow began
        if found is None or start > found:
            found = start
    return found


def classify_hellos(
    hellos: MutableSequence[TlsClientHello],
    extensions: Mapping[int, EchExtension],
    flows: Sequence[Flow],
    dns: Sequence[DnsQuery],
    hrr_confirmed: frozenset[int],
) -> None:
    """Set `ech` of hellos[i] for each i in `extensions` (in place), by decode/ech.py's rules.

    `flows` are the flows by id - 1; `hrr_confirmed` the ids of flows whose server's
    HelloRetryRequest carried the ECH confirmation.
    """
    if not extensions:
        return
    answers = _Answers(dns)
    for index, extension in extensions.items():
        hello = hellos[index]
        if not 0 < hello.flow_id <= len(flows):
            continue  # no flow to tell the client or time by: stays UNKNOWN
        flow = flows[hello.flow_id - 1]
        sni_records = (
            answers.sni_records(flow.initiator, hello.sni, flow) if hello.sni is not None else None
        )
        kind = classify_ech(
            ClientHelloInfo(hello.sni, hello.versions, hello.cipher_suites, hello.alpn, extension),
            configs_seen=answers.configs,
            sni_records=sni_records,
            hrr_confirmed=hello.flow_id in hrr_confirmed,
        )
        if kind is EchKind.GREASE and answers.malformed:
            kind = EchKind.UNKNOWN
        if kind is not hello.ech:
            hellos[index] = replace(hello, ech=kind)
