"""The coverage statement (decision 11): window, losses, clock, one-sided flows, hidden names."""

from __future__ import annotations

import dataclasses
from typing import Any

from conformance.judge.common import coverage_for
from conformance.observe.coverage import (
    BUSY_SILENCE_PACKETS,
    MAX_EXAMPLES,
    SHORT_WINDOW_SECONDS,
    FlowExample,
    coverage_of,
    duration_text,
    window_seconds,
)
from conformance.observe.records import (
    SILENCE_SECONDS,
    EchKind,
    Flow,
    NotUnderstood,
    Parties,
    PayloadKind,
    TimeStep,
)
from tests.defects import ADMIN, CUCM, OUTSIDE, TARGET, defect_profile
from tests.judge.factory import T0, Scenario, capture, ip
from tests.observe.conftest import Observe
from tests.observe.frames import CLIENT, SERVER, tcp, udp

ACK = 0x10
SYN = 0x02


def _tcp(s: Scenario, initiator: str, responder: str, **changes: Any) -> Flow:
    flow = s.flow(initiator, responder, 443)
    flow = dataclasses.replace(flow, **changes)
    s.flows[flow.flow_id - 1] = flow
    return flow


# --- the window -------------------------------------------------------------------------


def test_window_is_the_union_of_the_captures() -> None:
    a = capture(first_time=T0, last_time=T0 + 100)
    b = capture(first_time=T0 + 50, last_time=T0 + 150)  # overlaps a
    c = capture(first_time=T0 + 1000, last_time=T0 + 1010)  # after a gap
    assert window_seconds([a, b, c]) == 160
    cov = coverage_of(Scenario().observations(a, b, c))
    assert (cov.start, cov.end, cov.seconds, cov.span_seconds) == (T0, T0 + 1010, 160, 1010)


def _silence(start: float, seconds: float) -> TimeStep:
    return TimeStep(before=3, after=4, time=start, seconds=seconds)


def test_silences_are_not_covered() -> None:
    """One late packet does not stretch 2 s of traffic into a 2 h window (a silence is a gap
    in the evidence), and the profile's minimum window then makes absence inconclusive."""
    late = capture(
        first_time=T0,
        last_time=T0 + 7200,
        silences=(_silence(T0 + 2, 7198),),
        silence_count=1,
        silence_seconds=7198.0,
    )
    assert window_seconds([late]) == 2
    profile = dataclasses.replace(defect_profile(), minimum_window_seconds=3600.0)
    cov = coverage_for(Scenario().observations(late), profile)
    assert (cov.seconds, cov.span_seconds, cov.gates) == (2, 7200, True)


def test_silences_covered_by_another_capture_count_and_unlisted_ones_do_not() -> None:
    quiet = capture(
        first_time=T0,
        last_time=T0 + 1000,
        silences=(_silence(T0 + 100, 300), _silence(T0 + 350, 100)),  # overlapping steps
        silence_count=2,
        silence_seconds=400.0,
    )
    assert window_seconds([quiet]) == 650  # 0-100 and 450-1000
    busy = capture(first_time=T0 + 100, last_time=T0 + 200)  # fills part of the silence
    assert window_seconds([quiet, busy]) == 750
    unlisted = dataclasses.replace(quiet, silences=quiet.silences[:1])  # 2 counted, 1 listed
    assert window_seconds([unlisted]) == 600  # the whole total is taken off: never more


def test_capture_without_packets_covers_nothing() -> None:
    empty = capture(first_time=None, last_time=None, packets=0)
    cov = coverage_of(Scenario().observations(empty))
    assert (cov.start, cov.end, cov.seconds) == (None, None, 0)
    assert cov.short and cov.captures[0].packets_per_second == 0


def test_short_window_without_minimum_warns_under_an_hour_and_never_gates() -> None:
    short = coverage_of(Scenario().observations(capture(last_time=T0 + 600)))
    assert short.short and not short.gates
    hour = coverage_of(Scenario().observations(capture(last_time=T0 + SHORT_WINDOW_SECONDS)))
    assert not hour.short


def test_minimum_window_gates_below_it() -> None:
    obs = Scenario().observations(capture(last_time=T0 + 7000))
    assert coverage_of(obs, minimum_window=7200).gates
    assert coverage_of(obs, minimum_window=7200).short
    assert not coverage_of(obs, minimum_window=3600).gates


def test_duration_text() -> None:
    assert [duration_text(s) for s in (4.5, 60, 61, 3600, 3725)] == [
        "4.5 s",
        "1 min",
        "1 min 1 s",
        "1 h",
        "1 h 2 min",
    ]


# --- losses and the clock ---------------------------------------------------------------


def test_losses_are_carried_per_capture() -> None:
    summary = capture(
        drops=None,
        truncated_file=True,
        truncated_detail="file ends inside record 9",
        snap_truncated=4,
    )
    cov = coverage_of(Scenario().observations(summary)).captures[0]
    assert (cov.drops, cov.truncated, cov.truncated_detail, cov.snap_truncated) == (
        None,
        True,
        "file ends inside record 9",
        4,
    )


def test_silence_counts_the_flows_open_across_it_and_whether_the_link_was_busy() -> None:
    s = Scenario()
    across = s.flow(TARGET, CUCM, 5061, packets_out=3, packets_in=2)  # packets 1-5
    s.flow(TARGET, CUCM, 5060, transport="udp", packets_out=1, packets_in=0)  # packet 6
    gap = TimeStep(before=3, after=4, time=T0 + 10, seconds=600.0)
    summary = capture(
        packets=100_000,
        last_time=T0 + 1000,
        silences=(gap,),
        silence_count=1,
        silence_seconds=600.0,
    )
    cov = coverage_of(s.observations(summary)).captures[0]
    (silence,) = cov.silences
    assert (silence.before, silence.after, silence.seconds, silence.open_flows) == (3, 4, 600, 1)
    assert across.first_packet <= 3 and across.last_packet >= 4
    assert silence.expected_packets == 100 * 600 and silence.busy
    quiet = coverage_of(s.observations(dataclasses.replace(summary, packets=100))).captures[0]
    assert quiet.silences[0].expected_packets < BUSY_SILENCE_PACKETS
    assert not quiet.silences[0].busy


def test_backward_steps_are_positive_sizes() -> None:
    step = TimeStep(before=7, after=8, time=T0 + 50, seconds=-30.0)
    summary = capture(backward_steps=(step,), backward_count=3)
    cov = coverage_of(Scenario().observations(summary)).captures[0]
    assert cov.backward_count == 3
    assert (cov.backward[0].before, cov.backward[0].seconds) == (7, 30.0)


# --- one-sided TCP ----------------------------------------------------------------------


def test_tcp_seen_one_way_that_acknowledges_the_other_is_one_sided() -> None:
    s = Scenario()
    _tcp(s, TARGET, OUTSIDE, packets_in=0, tcp_flags_out=SYN | ACK)  # ACKs an unseen SYN-ACK
    _tcp(s, ADMIN, CUCM, packets_out=0, packets_in=4, tcp_flags_in=ACK)  # only the answers
    _tcp(s, TARGET, CUCM, packets_in=0, tcp_flags_out=SYN)  # a lone SYN: claims nothing
    _tcp(s, TARGET, CUCM, tcp_flags_out=SYN | ACK, tcp_flags_in=SYN | ACK)  # both ways
    cov = coverage_of(s.observations(), targets=(ip(TARGET),))
    assert (cov.one_sided_tcp.count, cov.one_sided_tcp.target) == (2, 1)
    assert [e.flow_id for e in cov.one_sided_tcp.examples] == [1, 2]  # the target's first


def test_examples_are_bounded_and_the_targets_come_first() -> None:
    s = Scenario()
    for _ in range(MAX_EXAMPLES):
        _tcp(s, ADMIN, CUCM, packets_in=0, tcp_flags_out=ACK)
    mine = _tcp(s, TARGET, CUCM, packets_in=0, tcp_flags_out=ACK)
    cov = coverage_of(s.observations(), targets=(ip(TARGET),))
    assert cov.one_sided_tcp.count == MAX_EXAMPLES + 1
    assert len(cov.one_sided_tcp.examples) == MAX_EXAMPLES
    assert cov.one_sided_tcp.examples[0] == FlowExample(mine.flow_id, 0, mine.first_packet)


def test_without_targets_the_target_counts_are_unknown() -> None:
    s = Scenario()
    _tcp(s, TARGET, OUTSIDE, packets_in=0, tcp_flags_out=ACK)
    cov = coverage_of(s.observations())
    assert (cov.one_sided_tcp.count, cov.one_sided_tcp.target) == (1, None)


def test_one_sided_capture(observe: Observe) -> None:
    """Only the client's side of an established connection reached the capture."""
    frames = [
        tcp(flags="A", seq=1001, ack=5001),
        tcp(flags="PA", seq=1001, ack=5001, payload=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        tcp(flags="A", seq=1030, ack=6001),
    ]
    cov = coverage_of(observe(frames), targets=(ip(CLIENT),))
    assert (cov.one_sided_tcp.count, cov.one_sided_tcp.target) == (1, 1)


def test_two_sided_capture_is_not_one_sided(observe: Observe) -> None:
    frames = [
        tcp(flags="S"),
        tcp(src=SERVER, dst=CLIENT, sport=443, dport=51000, flags="SA", seq=5000, ack=1001),
        tcp(flags="A", seq=1001, ack=5001),
    ]
    assert coverage_of(observe(frames)).one_sided_tcp.count == 0


# --- hidden names -----------------------------------------------------------------------


def test_encrypted_client_hello_hides_the_name_grease_does_not() -> None:
    s = Scenario()
    for kind in (EchKind.REAL, EchKind.UNKNOWN, EchKind.GREASE, EchKind.NONE):
        hello = s.tls(s.flow(TARGET, OUTSIDE, 443), "public.example")
        s.hellos[-1] = dataclasses.replace(hello, ech=kind)
    hidden = coverage_of(s.observations(), targets=(ip(TARGET),)).hidden
    assert (hidden.ech.count, hidden.ech.target) == (2, 2)
    assert [e.flow_id for e in hidden.ech.examples] == [1, 2]
    assert hidden.ech.examples[0].packet == s.hellos[0].packet
    assert hidden.tls_without_sni.count == 0


def test_client_hello_without_sni() -> None:
    s = Scenario()
    s.tls(s.flow(TARGET, OUTSIDE, 443), None)
    s.tls(s.flow(TARGET, OUTSIDE, 443), "api.imagicle.com")
    assert coverage_of(s.observations()).hidden.tls_without_sni.count == 1


def test_tls_flow_whose_hello_is_not_in_the_window() -> None:
    s = Scenario()
    _tcp(s, TARGET, OUTSIDE, handshake_seen=False, payload_out=PayloadKind.TLS)
    seen = _tcp(s, TARGET, OUTSIDE, payload_out=PayloadKind.TLS)
    s.tls(seen, "api.imagicle.com")
    _tcp(s, TARGET, CUCM, payload_out=PayloadKind.HTTP)
    hidden = coverage_of(s.observations()).hidden
    assert hidden.tls_without_hello.count == 1
    assert hidden.tls_without_hello.examples[0].flow_id == 1


def _udp(s: Scenario, port: int, head: bytes) -> Flow:
    flow = s.flow(TARGET, OUTSIDE, port, transport="udp")
    flow = dataclasses.replace(flow, payload_head_out=head, payload_out=PayloadKind.OTHER)
    s.flows[-1] = flow
    return flow


def test_quic_looking_udp_without_a_readable_initial() -> None:
    s = Scenario()
    long_v1 = b"\xc3\x00\x00\x00\x01" + bytes(20)
    _udp(s, 443, b"\x40" + bytes(20))  # short header on 443 (began before the capture)
    _udp(s, 8443, long_v1)  # a long header on another port
    _udp(s, 8443, b"\xc3\x00\x00\x00\x00" + bytes(20))  # version negotiation: not an Initial
    _udp(s, 5004, b"\x80\x00" + bytes(20))  # RTP
    _udp(s, 53, b"\xe2\x92\x01\x00\x00\x01" + bytes(20))  # a DNS query with a high id
    read = _udp(s, 443, long_v1)
    s.tls(read, "api.imagicle.com")
    s.hellos[-1] = dataclasses.replace(s.hellos[-1], quic_version=1)
    hidden = coverage_of(s.observations()).hidden
    assert hidden.quic_without_initial.count == 2
    assert [e.flow_id for e in hidden.quic_without_initial.examples] == [1, 2]


# --- not understood ---------------------------------------------------------------------


def test_not_understood_by_reason_with_the_targets_share() -> None:
    target_party = Parties(2, (ip(TARGET),), ())
    other_party = Parties(3, (ip(ADMIN),), ())
    frames = NotUnderstood("unknown EtherType 0x88b5", 6, (4, 9), (target_party, other_party), 1)
    payload = NotUnderstood("DNS: bad label", 1, (12,), (Parties(1, (ip(ADMIN),), ()),))
    summary = capture(not_understood=(frames,), payload_not_understood=(payload,))
    obs = Scenario().observations(summary)
    plain = coverage_of(obs)
    assert [(u.level, u.reason, u.count, u.target, u.packets) for u in plain.not_understood] == [
        ("frame", "unknown EtherType 0x88b5", 6, None, (4, 9)),
        ("payload", "DNS: bad label", 1, None, (12,)),
    ]
    judged = coverage_for(obs, defect_profile())
    assert [u.target for u in judged.not_understood] == [3, 0]  # 2 the target's + 1 untold


def test_coverage_for_takes_the_profiles_minimum_window() -> None:
    profile = dataclasses.replace(defect_profile(), minimum_window_seconds=7200.0)
    cov = coverage_for(Scenario().observations(capture(last_time=T0 + 3600)), profile)
    assert cov.minimum_window_seconds == 7200 and cov.gates


# --- from a capture ---------------------------------------------------------------------


def test_capture_with_a_silence_across_an_open_call(observe: Observe) -> None:
    gap = SILENCE_SECONDS * 5
    rtp = [(T0 + i * 0.02, udp()) for i in range(200)]
    rtp += [(T0 + gap + i * 0.02, udp()) for i in range(200)]
    cov = coverage_of(observe(rtp), targets=(ip(CLIENT),)).captures[0]
    assert cov.silence_count == 1
    (silence,) = cov.silences
    assert (silence.before, silence.after, silence.open_flows) == (200, 201, 1)
    assert silence.busy  # 400 packets in ~5 min would have put far more than 100 in it
