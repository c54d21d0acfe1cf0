"""Is the model fast enough for this user? Said once, with what would help on this machine.

Slowness with no word is what users of self-hosted completion complain about first. The
figures are the model's answers (their latency from the request, as the user waits for them)
and the requests the user gave up on: superseded by a new key after their generation had
started, with nothing shown. Over the last :data:`WINDOW` of either, a median answer over
:data:`SLOW_MS` or most requests given up means suggestions come too late to be used (Tabby's
agent warns on the same two figures: a high average response time, a high timeout rate).
"""

from __future__ import annotations

import statistics
from collections import deque
from typing import Literal

from codellama_lsp.config import Settings

WINDOW = 20
MIN_SAMPLES = 8
SLOW_MS = 3000.0
GAVE_UP_SHARE = 0.6
Outcome = tuple[Literal["answered", "gave_up"], float]


class LatencyHealth:
    """Recent answers and given-up requests; :meth:`verdict` says what is wrong, if anything."""

    def __init__(self) -> None:
        self._outcomes: deque[Outcome] = deque(maxlen=WINDOW)

    def answered(self, latency_ms: float) -> None:
        """The model's answer reached the user ``latency_ms`` after the request."""
        self._outcomes.append(("answered", latency_ms))

    def gave_up(self) -> None:
        """A request whose generation had started was superseded with nothing shown."""
        self._outcomes.append(("gave_up", 0.0))

    def forget(self) -> None:
        """Another model: its speed is not known yet."""
        self._outcomes.clear()

    def verdict(self) -> str | None:
        """Why suggestions are too slow to use here, or None."""
        if len(self._outcomes) < MIN_SAMPLES:
            return None
        latencies = [ms for kind, ms in self._outcomes if kind == "answered"]
        gave_up = len(self._outcomes) - len(latencies)
        if gave_up / len(self._outcomes) >= GAVE_UP_SHARE:
            return (
                f"{gave_up} of the last {len(self._outcomes)} suggestions came after you had "
                "typed on"
            )
        median = statistics.median(latencies)
        if median > SLOW_MS:
            return f"suggestions take {median / 1000:.1f} s (median of the last {len(latencies)})"
        return None


def remedies(settings: Settings, device: str | None) -> list[str]:
    """What would make this set-up faster, most effective first. ``device``: where the
    in-process model runs (``cpu``, ``cuda:0`` …), None for a model server."""
    found: list[str] = []
    model = settings.model.lower()
    if device is None:
        found.append(
            "the model server answers slowly: check its load (its /metrics) or run it on a "
            "faster GPU"
        )
    elif device.startswith("cpu"):
        found.append(
            "the model runs on the CPU: run it on a GPU machine, in process or with "
            "`codellama-lsp serve` there (backend = http)"
        )
    else:
        if settings.quantization == "none":
            found.append(
                "4-bit weights read a quarter of the memory per token (quantization = 4bit)"
            )
        if not settings.draft_model:
            found.append(
                "a draft model lets the big one check several tokens per pass (draft_model = "
                "codellama/CodeLlama-7b-Python-hf)"
            )
    if any(size in model for size in ("70b", "34b", "13b")):
        found.append(
            "a smaller model answers several times faster (codellama/CodeLlama-7b-Python-hf)"
        )
    if settings.max_new_tokens > 64:
        found.append(f"shorter suggestions (max_new_tokens = 64; now {settings.max_new_tokens})")
    return found


def warning(verdict: str, settings: Settings, device: str | None) -> str:
    """The message shown once: what is wrong, and what would help."""
    helps = remedies(settings, device)
    advice = (" What would help: " + "; ".join(helps) + ".") if helps else ""
    return f"codellama-lsp: {verdict}, too late to be useful while you type.{advice}"
