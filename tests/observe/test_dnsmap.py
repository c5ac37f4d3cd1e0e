"""DNS repeats on one flow keep every time their answers were valid (DnsQuery.answer_runs)."""

from __future__ import annotations

from conformance.observe.dnsmap import MAX_ANSWER_RUNS
from tests.observe.conftest import Observe
from tests.observe.frames import T0
from tests.observe.test_payloads import dns_answer, dns_query

NAME = "api.imagicle.com"
ADDRESS = "203.0.113.10"
TTL = 60  # dns_answer's TTL


def exchanges(times: list[float]) -> list[tuple[float, bytes]]:
    """The same question and answer, on one port, at each of `times` (answer 1 ms later)."""
    frames: list[tuple[float, bytes]] = []
    for i, at in enumerate(times):
        frames += [(at, dns_query(10 + i, NAME)), (at + 0.001, dns_answer(10 + i, NAME, ADDRESS))]
    return frames


def test_repeats_within_the_ttl_extend_one_run(observe: Observe) -> None:
    (query,) = observe(exchanges([T0, T0 + 30, T0 + 80])).dns
    assert query.count == 3
    assert query.answer_runs == ((T0, T0 + 80),)  # each repeat came before the last expired
    assert query.last_time == T0 + 80 and query.last_packet == 5


def test_a_repeat_after_expiry_starts_a_new_run(observe: Observe) -> None:
    times = [T0, T0 + 30, T0 + 500, T0 + 520, T0 + 2000]
    (query,) = observe(exchanges(times)).dns
    assert query.count == 5
    # answers valid T0..T0+90, T0+500..T0+580, T0+2000..T0+2060: nothing in the gaps
    assert query.answer_runs == ((T0, T0 + 30), (T0 + 500, T0 + 520), (T0 + 2000, T0 + 2000))


def test_runs_are_bounded_per_record(observe: Observe) -> None:
    times = [T0 + 1000.0 * i for i in range(MAX_ANSWER_RUNS + 3)]
    queries = observe(exchanges(times)).dns
    assert len(queries) == 2  # the exchange goes on in a second record
    first, second = queries
    assert len(first.answer_runs) == MAX_ANSWER_RUNS and first.count == MAX_ANSWER_RUNS
    assert second.answer_runs == tuple((t, t) for t in times[MAX_ANSWER_RUNS:])
    assert first.count + second.count == len(times)
    runs = [r for q in queries for r in q.answer_runs]
    assert runs == [(t, t) for t in times]  # nothing merged that was not valid


def test_a_single_exchange_has_one_run_and_no_repeat(observe: Observe) -> None:
    (query,) = observe(exchanges([T0])).dns
    assert query.answer_runs == ((T0, T0),)
    assert query.last_time is None and query.last_packet is None
