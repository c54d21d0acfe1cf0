"""One generation on the model worker, counted: what ``codellama.stats`` reports of it."""

from __future__ import annotations

import logging
import time

from codellama_lsp.completion.scheduler import Ticket
from codellama_lsp.engines.base import Engine, GenerationRequest, GenerationResult
from codellama_lsp.stats import Stats

log = logging.getLogger(__name__)


def run_counted(
    engine: Engine | None,
    request: GenerationRequest,
    ticket: Ticket,
    stats: Stats,
    chunk_tokens: int,
) -> GenerationResult:
    """On the model worker: run one generation (unless already stopped) and count what it did."""
    if ticket.cancel.is_set() or engine is None:
        return GenerationResult("", "cancelled")
    stats.add("generations_started")
    try:
        result = engine.generate(request, ticket.cancel)
    except Exception:
        log.exception("generation failed")
        stats.add("generation_errors")
        return GenerationResult("", "error")
    stats.add("prompt_tokens", result.prompt_tokens)
    stats.add("reused_prompt_tokens", result.reused_prompt_tokens)
    stats.add("generated_tokens", result.generated_tokens)
    stats.add("decode_forward_passes", result.decode_passes)
    for source, n in result.drafted.items():
        stats.add(f"draft_tokens_{source}", n)
        stats.add(f"draft_accepted_{source}", result.accepted_drafts.get(source, 0))
        stats.add(f"verify_passes_{source}", result.verify_passes.get(source, 0))
    if result.cancelled:
        stats.add("generations_cancelled")
        stats.add("discarded_tokens", result.generated_tokens)
        if ticket.cancelled_at is not None:
            phase = "decode" if result.prefill_seconds else "prefill"
            idle_ms = (time.perf_counter() - ticket.cancelled_at) * 1000
            stats.timing(f"cancel_to_idle_{phase}", idle_ms)
            stats.timing(f"interrupted_step_{phase}", engine.last_step_seconds * 1000)
    elif result.finish_reason == "error":
        stats.add("generation_errors")
    else:
        stats.add("generations_completed")
    record_step_times(result, stats, chunk_tokens)
    return result


def record_step_times(result: GenerationResult, stats: Stats, chunk_tokens: int) -> None:
    """Mean time of one prefill chunk and one decode step: what a stop may have to wait."""
    new = result.prompt_tokens - result.reused_prompt_tokens
    if result.prefill_seconds and new > 0:
        stats.timing("prefill_chunk", result.prefill_seconds * 1000 / -(-new // chunk_tokens))
    # The first token comes from the prefill; engines that count passes say how many.
    steps = result.decode_passes or result.generated_tokens - 1
    if result.decode_seconds and steps > 0:
        stats.timing("decode_step", result.decode_seconds * 1000 / steps)
