"""The adaptive debounce policy, as a pure function and with a fake clock (no timing)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from codellama_lsp.completion.debounce import (
    MAX_PAUSE_MS,
    MIN_PAUSE_MS,
    UNMEASURED_WAIT_MS,
    AdaptiveDebounce,
    adaptive_wait_ms,
    pause_ms,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1000


def typed(debounce: AdaptiveDebounce, clock: FakeClock, gaps_ms: Sequence[float]) -> None:
    debounce.key()
    for gap in gaps_ms:
        clock.advance_ms(gap)
        debounce.key()


def test_a_model_faster_than_a_pause_starts_at_once() -> None:
    assert adaptive_wait_ms(20, pause=100) == 0  # the demo model, a very fast typist
    assert adaptive_wait_ms(200, pause=240) == 0  # answers within a 240 ms pause


def test_a_slow_model_waits_for_a_pause_in_the_typing() -> None:
    assert adaptive_wait_ms(500, pause=240) == 240
    assert adaptive_wait_ms(None, pause=240) == UNMEASURED_WAIT_MS  # latency not known yet


def test_a_pause_is_a_gap_longer_than_nearly_all_gaps_between_keys() -> None:
    steady = [40, 60, 80, 100, 120] * 4  # keys 40-120 ms apart
    assert pause_ms(steady) == pytest.approx(1.25 * 120)
    uneven = [100] * 10 + [150] * 5 + [250, 300, 350] + [400] * 2  # median 125, a long tail
    assert pause_ms(uneven) == pytest.approx(1.25 * 400)
    assert pause_ms([10] * 20) == MIN_PAUSE_MS
    assert pause_ms([900] * 20) == MAX_PAUSE_MS


def test_typing_rhythm_ignores_pauses_and_single_hesitations() -> None:
    clock = FakeClock()
    debounce = AdaptiveDebounce(clock)
    gaps = [80, 90, 5000, 70, 600, 80, 85, 75, 95, 100, 60, 110, 90, 80]  # a pause, a hesitation
    typed(debounce, clock, gaps)
    rhythm = pause_ms([80, 90, 70, 80, 85, 75, 95, 100, 60, 110, 90, 80])
    assert rhythm < 1.25 * 120
    assert debounce.pause_ms == pytest.approx(rhythm)
    debounce.generation(0.5)
    assert debounce.wait_ms() == pytest.approx(rhythm)


def test_one_long_prefill_does_not_make_a_fast_model_wait() -> None:
    clock = FakeClock()
    debounce = AdaptiveDebounce(clock)
    typed(debounce, clock, [80] * 10)
    for seconds in (0.02, 0.03, 4.0, 0.02):  # a jump to a new place: a full prefill
        debounce.generation(seconds)
    assert debounce.wait_ms() == 0
    debounce.forget_latency()  # another model
    assert debounce.wait_ms() == UNMEASURED_WAIT_MS


def test_pauses_at_suggestions_do_not_make_a_slow_model_start_at_every_key() -> None:
    """A person pauses to read each suggestion (600-900 ms between keys there). Counted as
    rhythm, three of them in the window made the pause ~1 s, longer than the slow model's
    latency: it then started a generation at every key, and nearly all were cancelled."""
    clock = FakeClock()
    debounce = AdaptiveDebounce(clock)
    burst = [80, 60, 110, 95, 70, 120, 50]
    typed(debounce, clock, [*burst, 750, *burst, 820, *burst, 640])
    debounce.generation(0.48)  # the 63M model at ~1,900 tokens of context
    assert debounce.pause_ms == pytest.approx(1.25 * 120)
    assert debounce.wait_ms() == pytest.approx(1.25 * 120)
