"""A deliberately slowed in-process model, for benchmarks: a small model's text at a big
model's pace.

``CODELLAMA_LSP_PACE="decode_ms=40,prefill_ms_per_token=0.25"`` makes each forward pass of the
model take at least that long: ``decode_ms`` for a pass over a few tokens (one decode step or a
speculative check), ``prefill_ms_per_token`` times the tokens for a prefill chunk. 40 ms a token
is Code Llama 70B's pace on one GPU with 4-bit weights (25 tokens/s, gpt-fast's figure); the
demo model's text then arrives as the 70B's would, which is what the first-line benchmarks need
(``benchmarks/typing_replay.py --pace``). Never set by the server itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

PACE_ENV = "CODELLAMA_LSP_PACE"
FEW_TOKENS = 16
"""A pass over at most this many new tokens is a decode step or a speculative check."""


def parse_pace(spec: str) -> tuple[float, float]:
    """``decode_ms=D,prefill_ms_per_token=P`` → (D, P) in seconds."""
    values = {"decode_ms": 0.0, "prefill_ms_per_token": 0.0}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, value = part.partition("=")
        if name not in values:
            raise ValueError(f"{PACE_ENV}: unknown {name!r} (decode_ms, prefill_ms_per_token)")
        values[name] = float(value)
    return values["decode_ms"] / 1000, values["prefill_ms_per_token"] / 1000


def paced_forward(forward: Callable[..., Any], decode_s: float, per_token_s: float) -> Any:
    """``forward`` that takes at least the pace's time for the tokens it is given."""

    def slowed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        out = forward(*args, **kwargs)
        ids = kwargs.get("input_ids", args[0] if args else None)
        tokens = int(ids.shape[-1]) if ids is not None else 1
        wanted = decode_s if tokens <= FEW_TOKENS else tokens * per_token_s
        left = wanted - (time.perf_counter() - started)
        if left > 0:
            time.sleep(left)
        return out

    return slowed


def pace_from_environment(model: Any) -> bool:
    """Slow ``model`` down as ``CODELLAMA_LSP_PACE`` says; whether it did."""
    spec = os.environ.get(PACE_ENV, "").strip()
    if not spec:
        return False
    decode_s, per_token_s = parse_pace(spec)
    model.forward = paced_forward(model.forward, decode_s, per_token_s)
    return True
