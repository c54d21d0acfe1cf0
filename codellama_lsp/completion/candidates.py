"""Several suggestions to cycle through when the user asks for one explicitly.

The first candidate is the usual completion. The others are sampled continuations of the same
prompt, one generation each: the engine keeps the prompt's KV cache for the session (local
engine and ``codellama-lsp serve``: KV slots; vLLM: prefix caching), so each extra candidate
costs its decode steps only, not another prefill. Candidates are compared after clean-up (and
the parse check), so two samples that clean up to the same text count once.
"""

from __future__ import annotations

import dataclasses

from codellama_lsp.engines.base import GenerationRequest

ALTERNATIVE_TEMPERATURE = 0.7
"""Sampling temperature of the extra candidates when the setting is lower (greedy gives one
text only): warm enough to differ, cool enough to stay plausible code."""
ATTEMPTS_PER_CANDIDATE = 2
"""Generations tried per candidate wanted: duplicates after clean-up are common."""


def sampled_requests(request: GenerationRequest, count: int) -> list[GenerationRequest]:
    """``count`` other generations for the same prompt: new seeds, warm sampling."""
    temperature = max(request.temperature, ALTERNATIVE_TEMPERATURE)
    return [
        dataclasses.replace(request, seed=request.seed + number, temperature=temperature)
        for number in range(1, count + 1)
    ]


def alternative_requests(request: GenerationRequest, wanted: int) -> list[GenerationRequest]:
    """The generations that may give ``wanted`` more candidates."""
    return sampled_requests(request, wanted * ATTEMPTS_PER_CANDIDATE)


def normal_form(text: str) -> str:
    """What two candidates must differ in to both be shown (not trailing whitespace)."""
    return "\n".join(line.rstrip() for line in text.rstrip().split("\n"))


def add_distinct(kept: list[str], text: str) -> bool:
    """Append ``text`` to ``kept`` unless it is empty or already there; whether it was added."""
    form = normal_form(text)
    if not form.strip() or any(normal_form(other) == form for other in kept):
        return False
    kept.append(text)
    return True
