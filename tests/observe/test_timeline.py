"""Silences and backward time steps between consecutive packets (decision 11, timeline.py)."""

from __future__ import annotations

from conformance.observe.records import MAX_TIME_STEPS, SILENCE_SECONDS, TimeStep
from tests.observe.conftest import Observe
from tests.observe.frames import T0, udp


def test_steady_capture_has_no_silence_or_backward_step(observe: Observe) -> None:
    obs = observe([(T0 + i * 30.0, udp()) for i in range(5)])
    capture = obs.captures[0]
    assert (capture.silence_count, capture.backward_count) == (0, 0)
    assert capture.silences == capture.backward_steps == ()


def test_silence_longer_than_the_threshold_is_kept_with_its_packets(observe: Observe) -> None:
    gap = SILENCE_SECONDS + 5
    obs = observe([(T0, udp()), (T0 + 1, udp()), (T0 + 1 + gap, udp()), (T0 + 2 + gap, udp())])
    capture = obs.captures[0]
    assert capture.silence_count == 1
    assert capture.silences == (TimeStep(before=2, after=3, time=T0 + 1, seconds=gap),)
    assert capture.silence_seconds == gap


def test_silence_of_exactly_the_threshold_is_not_one(observe: Observe) -> None:
    obs = observe([(T0, udp()), (T0 + SILENCE_SECONDS, udp())])
    assert obs.captures[0].silence_count == 0


def test_backward_step_is_counted_and_widens_the_window(observe: Observe) -> None:
    # packet 3 is 100 s before packet 2; the window runs from its time to packet 2's
    obs = observe([(T0 + 200, udp()), (T0 + 201, udp()), (T0 + 101, udp()), (T0 + 102, udp())])
    capture = obs.captures[0]
    assert capture.backward_count == 1
    assert capture.backward_steps == (TimeStep(before=2, after=3, time=T0 + 201, seconds=-100.0),)
    assert (capture.first_time, capture.last_time) == (T0 + 101, T0 + 201)
    assert capture.silence_count == 0  # packet 4 follows packet 3 closely


def test_backward_step_then_a_jump_forward_counts_both(observe: Observe) -> None:
    obs = observe([(T0, udp()), (T0 - 5, udp()), (T0 + 500, udp())])
    capture = obs.captures[0]
    assert capture.backward_count == 1 and capture.silence_count == 1
    assert capture.silences[0].seconds == 505


def test_counts_are_exact_and_the_largest_are_kept(observe: Observe) -> None:
    frames = []
    t = T0
    for i in range(MAX_TIME_STEPS + 5):
        frames.append((t, udp()))
        t += SILENCE_SECONDS + 1 + i  # silences of growing length
    obs = observe(frames)
    capture = obs.captures[0]
    assert capture.silence_count == MAX_TIME_STEPS + 4
    kept = [s.seconds for s in capture.silences]
    assert len(kept) == MAX_TIME_STEPS and kept == sorted(kept, reverse=True)
    assert kept[0] == SILENCE_SECONDS + 1 + MAX_TIME_STEPS + 3
    assert capture.silences[0].after == MAX_TIME_STEPS + 5
