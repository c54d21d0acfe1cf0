"""How long a request waits for more keystrokes before it asks the model (``debounce_ms=-1``).

Waiting for a pause saves the generations that the next key would cancel, but the user pays
the wait at every pause. A model that answers faster than that wait gains nothing from it: it
starts at once (0 ms) and answers as soon as a naive server would. A slower model waits for a
pause: a gap longer than nearly all of the user's recent gaps between keys (1.25 × their 90th
percentile, clamped to 100–1000 ms; Tabby's agent uses ×1.5–3 of the mean interval; gaps over
4 × the median are hesitations and pauses, not the rhythm), so that it is not kept busy with
generations nobody will see and the answer at a pause does not wait for a cancelled one's
forward pass. The percentile follows the whole rhythm, not only its middle, so a steady typist
has paused sooner than an uneven one (the figures: docs/benchmarks.md, "Typing speed", the
rerun with the percentile pause).

:func:`adaptive_wait_ms` is the policy as a pure function; :class:`AdaptiveDebounce` keeps
the two measurements it needs (keystroke gaps, model latency) and takes a clock for tests.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence

UNMEASURED_WAIT_MS = 60.0
"""The wait until the model's latency is known (the first request): the former fixed wait."""
DEFAULT_PAUSE_MS = 300.0
"""The pause assumed until a few gaps are measured (3 × the ~100 ms between keys at ~120 words
per minute)."""
PAUSE_QUANTILE = 0.9
PAUSE_MARGIN = 1.25
"""A gap ``PAUSE_MARGIN`` × the ``PAUSE_QUANTILE`` of recent gaps between keys is a pause."""
MIN_PAUSE_MS = 100.0
MAX_PAUSE_MS = 1000.0
MAX_KEY_GAP_MS = 1000.0
"""Longer gaps are pauses (reading, thinking), not the typing rhythm."""
HESITATION_FACTOR = 4.0
"""A gap longer than this many times the median gap is a hesitation or a pause, not the rhythm."""
KEY_WINDOW = 24
LATENCY_WINDOW = 9
MIN_GAPS = 4


def typing_gaps(gaps_ms: Sequence[float]) -> list[float]:
    """The gaps of the typing itself: without hesitations and the pauses where the user read a
    suggestion. Those pauses come at every suggestion; counted as rhythm, a few of them in the
    window made a slow model look faster than a pause and start a generation at every key."""
    if not gaps_ms:
        return []
    longest = HESITATION_FACTOR * statistics.median(gaps_ms)
    return [gap for gap in gaps_ms if gap <= longest]


def pause_ms(gaps_ms: Sequence[float]) -> float:
    """The shortest gap (ms) that counts as a pause, from recent gaps between keys."""
    if len(gaps_ms) < MIN_GAPS:
        return DEFAULT_PAUSE_MS
    ordered = sorted(typing_gaps(gaps_ms))
    high = ordered[min(len(ordered) - 1, int(PAUSE_QUANTILE * len(ordered)))]
    return min(MAX_PAUSE_MS, max(MIN_PAUSE_MS, PAUSE_MARGIN * high))


def adaptive_wait_ms(latency_ms: float | None, pause: float) -> float:
    """The wait (ms) for a model answering in ``latency_ms`` when ``pause`` ms is a pause.

    * unknown latency: :data:`UNMEASURED_WAIT_MS`;
    * wait for a pause when a generation takes longer than one, else start at once (0).
    """
    if latency_ms is None:
        return UNMEASURED_WAIT_MS
    return pause if latency_ms > pause else 0.0


class AdaptiveDebounce:
    """Measures the typing rhythm and the model's latency; says how long to wait.

    The latency is a median and the pause a high percentile of recent values, so one long
    prefill (a jump to a new place) or one hesitation does not flip the decision.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last_key: float | None = None
        self._gaps_ms: deque[float] = deque(maxlen=KEY_WINDOW)
        self._latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def key(self) -> None:
        """The user edited a document (``didChange``)."""
        now = self._clock()
        if self._last_key is not None:
            gap = (now - self._last_key) * 1000
            if gap <= MAX_KEY_GAP_MS:
                self._gaps_ms.append(gap)
        self._last_key = now

    def generation(self, seconds: float) -> None:
        """A generation ran to its end in ``seconds`` of model time."""
        self._latencies_ms.append(seconds * 1000)

    def forget_latency(self) -> None:
        """Another model: its latency is not known yet."""
        self._latencies_ms.clear()

    @property
    def pause_ms(self) -> float:
        return pause_ms(self._gaps_ms)

    @property
    def latency_ms(self) -> float | None:
        return statistics.median(self._latencies_ms) if self._latencies_ms else None

    def wait_ms(self) -> float:
        return adaptive_wait_ms(self.latency_ms, self.pause_ms)

    def wait_for(self, setting_ms: int, client_waited_ms: float) -> float:
        """The wait (ms): ``debounce_ms`` when set, else adaptive, less what the editor itself
        waited after the last key (see ``lsp/client_timing.py``)."""
        if setting_ms >= 0:
            return float(setting_ms)
        return max(0.0, self.wait_ms() - client_waited_ms)

    def model_is_slow(self) -> bool:
        """A generation takes longer than a pause in the user's typing (unknown: not slow)."""
        latency = self.latency_ms
        return latency is not None and latency > self.pause_ms
