"""Counters and latency percentiles that users (``codellama.stats``) and tests read."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

COUNTERS = (
    "requests",
    "requests_cancelled",
    "requests_superseded",
    "empty_results",
    "generations_started",
    "generations_completed",
    "generations_cancelled",
    "generation_errors",
    "cache_hits",
    "typing_through_hits",
    "generations_kept",
    "kept_generation_hits",
    "prompt_tokens",
    "reused_prompt_tokens",
    "generated_tokens",
    "discarded_tokens",
    "prefetches",
    "idle_prefills_started",
    "idle_prefills_completed",
    "idle_prefills_stopped",
    "idle_prefill_tokens",
    "decode_forward_passes",
    "parse_check_trimmed",
    "parse_check_dropped",
    "parse_check_retries",
    "parse_check_retries_shown",
    "candidates_generated",
    "early_answers",
    "suggestions_grown",
    "early_not_prefix",
    "requests_refused",
    *(f"refused_{reason}" for reason in ("snoozed", "language", "file", "comment", "string")),
    *(
        f"{kind}_{source}"
        for source in ("previous", "lookup", "draft_model")
        for kind in ("draft_tokens", "draft_accepted", "verify_passes")
    ),
)
TIMINGS = (
    "cancel_to_idle_prefill",
    "cancel_to_idle_decode",
    "interrupted_step_prefill",
    "interrupted_step_decode",
    "prefill_chunk",
    "decode_step",
    "debounce_wait",
    "parse_check",
)
"""Engine timings (ms): from setting a stop flag to the engine returning, by the phase the
stop landed in; the forward pass the stop had to wait for (the chunk or step in flight); and the
mean prefill chunk / decode step of each generation; the debounce wait each request was given;
the parse check's cost per suggestion."""


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile; None when there is nothing to measure."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[rank], 3)


@dataclass
class Stats:
    """Thread-safe: the model worker updates it while the event loop reads it."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    timings_ms: dict[str, deque[float]] = field(
        default_factory=lambda: {name: deque(maxlen=2000) for name in TIMINGS}
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + amount

    def latency(self, ms: float) -> None:
        with self._lock:
            self.latencies_ms.append(ms)

    def timing(self, name: str, ms: float) -> None:
        with self._lock:
            self.timings_ms.setdefault(name, deque(maxlen=2000)).append(ms)

    @property
    def last_latency_ms(self) -> float | None:
        with self._lock:
            return round(self.latencies_ms[-1], 1) if self.latencies_ms else None

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        with self._lock:
            values = list(self.latencies_ms)
            timings = {name: list(v) for name, v in self.timings_ms.items()}
            data: dict[str, Any] = dict(self.counts)
        data["latency_ms"] = {
            "p50": percentile(values, 50),
            "p95": percentile(values, 95),
            "p99": percentile(values, 99),
            "count": len(values),
        }
        data["timings_ms"] = {
            name: {
                "p50": percentile(v, 50),
                "p95": percentile(v, 95),
                "max": round(max(v), 3) if v else None,
                "count": len(v),
            }
            for name, v in timings.items()
        }
        data.update(extra)
        return data
