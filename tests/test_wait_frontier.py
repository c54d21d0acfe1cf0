"""The debounce-wait bound of benchmarks/wait_frontier.py counts what a fixed wait would do."""

from __future__ import annotations

import math

from benchmarks.typing_replay import Step
from benchmarks.wait_frontier import outcome, quiet_gaps


def typed(text: str, delay_s: float) -> list[Step]:
    return [Step("type", ch, delay_s) for ch in text]


def test_a_hesitation_starts_a_generation_that_the_next_key_cancels() -> None:
    steps = [
        Step("jump", line=0, think_s=0.3),
        *typed("ab", 0.05),
        Step("type", "c", 0.5),  # after a 500 ms hesitation
        *typed("de", 0.05),
        Step("pause", think_s=0.2, choice=0.1),  # the user waits, then accepts
    ]
    quiet = quiet_gaps(steps)
    assert quiet.keys == 6  # five characters and the Tab
    assert quiet.immediate == 1
    assert quiet.gaps_s == (0.35, 0.05, 0.5, 0.05, 0.05, math.inf)

    # 146 ms: the jump, the hesitation, the pause and the accept start; 300 ms later the
    # hesitation's generation is cut short by "c".
    slow = outcome(quiet, wait_ms=146, latency_ms=400)
    assert slow.started_per_100_keys == round(100 * 4 / 6, 1)
    assert slow.completed_share == round(2 / 4, 2)
    assert slow.pause_to_ghost_ms == 546
    # A model answering in 200 ms finishes at the jump and the hesitation too.
    assert outcome(quiet, wait_ms=146, latency_ms=200).completed_share == 1.0
    # A wait longer than the hesitation starts only at the pause and the accept.
    assert outcome(quiet, wait_ms=600, latency_ms=400).started_per_100_keys == round(200 / 6, 1)
