"""DNS-format queries matched to their responses, with identical repeats merged.

A query waits in `pending` under (flow, txid, qname, qtype) until a response with the
same four arrives on the same flow. Finished exchanges are kept once per identity
(flow, client, qname, qtype, the response's bytes): a resolver asked the
same thing again on the same flow (mDNS, a keep-alive poll) adds to `count`, so
memory follows the number of distinct exchanges, never the number of packets.
Records stay compact tuples until `records` builds the `DnsQuery` objects.

A judge needs to know when an answer was valid (RFC 1035 §3.2.1 TTL) for every repeat, not
only the first: a repeat that arrives after the earlier answers expired starts a new *run*
(`DnsQuery.answer_runs`), and repeats while the answers are still valid extend the current
one. Runs are bounded per record (MAX_ANSWER_RUNS); past the bound the exchange continues
in a new record, so nothing is merged that was not valid and memory stays flat.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

from conformance.decode.dns import DnsMessage
from conformance.observe.flows import FlowIds, FlowRef
from conformance.observe.records import DnsAnswer, DnsQuery, IPAddress

# Queries waiting for an answer at once. A host has a few dozen in flight; past this
# the oldest is recorded as unanswered, which keeps a query flood bounded.
MAX_PENDING_QUERIES = 1024
# A query still unanswered after this long is recorded as unanswered: stub resolvers
# give up after a few 5 s attempts (resolv.conf timeout/attempts), mDNS after seconds.
ANSWER_TIMEOUT = 30.0
# Runs of valid answers one record keeps: each needs the answers to expire between two
# repeats on one flow, so this is dozens of TTLs; past it a new record begins.
MAX_ANSWER_RUNS = 32
# DNS record types whose values are addresses (RFC 1035 A, RFC 3596 AAAA): their TTLs decide
# when an exchange's answers expire.
_ADDRESS_RTYPES = frozenset({1, 28})

# (client, client port, server, server port, transport, protocol)
Ends = tuple[bytes, int, bytes, int, str, str]
_Key = tuple[FlowRef, int, str, int]  # flow, txid, qname, qtype
# A query waiting for its response: ends, packet, time, [count, last repeat's packet]
_Waiting = tuple[Ends, int, float, list[int]]
# flow, client, qname, qtype, answered, the response's bytes after its ID
_Identity = tuple[FlowRef, bytes, str, int, bool, bytes]
# count, last repeat's packet, last repeat's time, runs (start, end, start, end, ...)
_Tally = tuple[list[int], list[float], "array[float]"]
# ends, packet, time, response packet, rcode, answers, tally
_Done = tuple[Ends, int, float, int | None, int | None, tuple[DnsAnswer, ...], _Tally]


class DnsMap:
    """All DNS-format exchanges of one capture."""

    def __init__(self, capture: int) -> None:
        self.capture = capture
        self._pending: dict[_Key, _Waiting] = {}
        self._done: dict[_Identity, _Done] = {}
        self._full: list[tuple[_Identity, _Done]] = []  # records that reached MAX_ANSWER_RUNS
        self.pending_high = 0  # most queries ever waiting at once (capture_parts checks it)

    def add(
        self,
        msg: DnsMessage,
        txid: int,
        body: bytes,
        flow: FlowRef,
        ends: Ends,
        time: float,
        packet: int,
    ) -> None:
        """File one message sent from ends[0]:ends[1] to ends[2]:ends[3].

        `txid` is the message's own ID and `body` its bytes after the ID (msg may be a
        decoding shared by repeats). Repeats are recognised by their body: the same
        answers in the same bytes, which is cheaper to compare than decoded records.
        """
        if msg.is_response:
            # Queries past ANSWER_TIMEOUT are unanswered whatever else was seen meanwhile:
            # a late response never matches them (nor depends on other flows' traffic).
            self._expire(time)
            client, cport, server, sport, transport, protocol = ends
            ends = (server, sport, client, cport, transport, protocol)
            questions = msg.questions or tuple(
                dict.fromkeys((a.name, a.rtype) for a in msg.answers)
            )
            for qname, qtype in questions:
                answers = msg.answers
                if not msg.questions:  # unsolicited (mDNS announcement): group by name
                    answers = tuple(a for a in answers if a.name == qname and a.rtype == qtype)
                waiting = self._pending.pop((flow, txid, qname, qtype), None)
                if waiting is None:  # the query was not seen
                    waiting = (ends, packet, time, [1, 0])
                w_ends, w_packet, w_time, (count, last) = waiting
                response = (packet, msg.rcode, answers, body)
                self._finish(flow, w_ends, w_packet, w_time, qname, qtype, response, count, last)
            return
        for qname, qtype in msg.questions:
            key = (flow, txid, qname, qtype)
            waiting = self._pending.get(key)
            if waiting is not None:  # a retransmission
                waiting[3][0] += 1
                waiting[3][1] = packet
                continue
            self._expire(time)
            self._pending[key] = (ends, packet, time, [1, 0])
            self.pending_high = max(self.pending_high, len(self._pending))

    def records(self, flow_ids: FlowIds, address: Callable[[bytes], IPAddress]) -> list[DnsQuery]:
        """Every exchange, unanswered ones included, in packet order (empties the map)."""
        while self._pending:
            self._unanswered(*self._pending.popitem())
        out = []
        while self._done or self._full:
            identity, done = self._full.pop() if self._full else self._done.popitem()
            ends, packet, time, response, rcode, answers, (counts, times, runs) = done
            flow, _, qname, qtype, _, _ = identity
            client, cport, server, sport, transport, protocol = ends
            last_packet = counts[1] or None
            out.append(
                DnsQuery(
                    capture=self.capture,
                    packet=packet,
                    time=time,
                    flow_id=flow_ids.get(flow, packet),
                    client=address(client),
                    client_port=cport,
                    server=address(server),
                    server_port=sport,
                    transport=transport,
                    protocol=protocol,
                    qname=qname,
                    qtype=qtype,
                    response_packet=response,
                    rcode=rcode,
                    answers=answers,
                    count=counts[0],
                    last_packet=last_packet,
                    last_time=times[0] if last_packet is not None else None,
                    answer_runs=tuple(zip(runs[::2], runs[1::2], strict=True)),
                )
            )
        out.sort(key=lambda q: q.packet)
        return out

    def _expire(self, now: float) -> None:
        """Record the oldest waiting queries as unanswered: too old, or too many."""
        pending = self._pending
        while pending:
            oldest = next(iter(pending))
            if len(pending) < MAX_PENDING_QUERIES and now - pending[oldest][2] <= ANSWER_TIMEOUT:
                return
            self._unanswered(oldest, pending.pop(oldest))

    def _unanswered(self, key: _Key, waiting: _Waiting) -> None:
        flow, _, qname, qtype = key
        ends, packet, time, (count, last) = waiting
        self._finish(flow, ends, packet, time, qname, qtype, None, count, last)

    def _finish(
        self,
        flow: FlowRef,
        ends: Ends,
        packet: int,
        time: float,
        qname: str,
        qtype: int,
        response: tuple[int, int, tuple[DnsAnswer, ...], bytes] | None,
        count: int,
        last: int,
    ) -> None:
        """Record one exchange; `response` is (packet, rcode, answers, body) if answered.

        `time` is the exchange's query time; a repeat of a known exchange extends its
        current run while the answers were still valid then, and starts a new run otherwise.
        """
        body = response[3] if response is not None else b""
        identity: _Identity = (flow, ends[0], qname, qtype, response is not None, body)
        done = self._done.get(identity)
        if done is not None:
            counts, times, runs = done[6]
            if time <= runs[-1] + _lifetime(done[5]):
                runs[-1] = max(runs[-1], time)
            elif len(runs) < 2 * MAX_ANSWER_RUNS:
                runs.extend((time, time))
            else:  # bounded: this record is full, the exchange goes on in a new one
                self._full.append((identity, done))
                del self._done[identity]
                done = None
            if done is not None:
                counts[0] += count
                counts[1] = last or packet
                times[0] = time
                return
        tally: _Tally = ([count, last], [time], array("d", (time, time)))
        if response is None:
            self._done[identity] = (ends, packet, time, None, None, (), tally)
        else:
            number, rcode, answers, _ = response
            self._done[identity] = (ends, packet, time, number, rcode, answers, tally)


def _lifetime(answers: tuple[DnsAnswer, ...]) -> float:
    """How long an exchange's answers stay valid: the smallest address TTL (RFC 2181 §5.2
    makes the TTLs of one set equal; the smallest is the safe reading), else the smallest of
    any answer; without answers, no expiry (nothing to be valid or not)."""
    ttls = [a.ttl for a in answers if a.rtype in _ADDRESS_RTYPES] or [a.ttl for a in answers]
    return float(min(ttls)) if ttls else float("inf")
