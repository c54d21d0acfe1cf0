"""Several suggestions to cycle through when the user asks for one explicitly.

The first candidate is the usual completion. The others are sampled continuations of the same
prompt, one generation each: the engine keeps the prompt's KV cache for the session (local
engine and ``codellama-lsp serve``: KV slots; vLLM: prefix caching), so each extra candidate
costs its decode steps only, not another prefill. Candidates are compared after clean-up (and
the parse check), so two samples that clean up to the same text count once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable
from dataclasses import dataclass

from codellama_lsp.engines.base import GenerationRequest

log = logging.getLogger(__name__)

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


Place = tuple[int, int, int]
"""Where candidates were asked for: hashes of the text before and after the cursor, and the
length before (the text itself may be megabytes)."""


def place_of(before: str, after: str) -> Place:
    return hash(before), hash(after), len(before)


@dataclass
class Pending:
    """The other candidates for one place, computed after the first was shown."""

    place: Place
    first: str
    task: asyncio.Task[list[str]]


class PendingCandidates:
    """Per document, the candidates computed in the background for the last place the user
    invoked a suggestion at: the first is answered at once, the others when the user cycles
    (both editors ask again then). Moving elsewhere stops them."""

    def __init__(self) -> None:
        self._pending: dict[str, Pending] = {}

    def get(self, uri: str, place: Place, first: str) -> asyncio.Task[list[str]] | None:
        pending = self._pending.get(uri)
        if pending is None or pending.place != place or pending.first != first:
            return None
        return pending.task

    def start(self, uri: str, place: Place, first: str, work: Awaitable[list[str]]) -> None:
        self.forget(uri)
        task = asyncio.ensure_future(_never_failing(work))
        self._pending[uri] = Pending(place, first, task)

    def moved(self, uri: str, place: Place) -> None:
        """A request at ``place``: candidates computed for another place are not wanted."""
        pending = self._pending.get(uri)
        if pending is not None and pending.place != place:
            self.forget(uri)

    def forget(self, uri: str) -> None:
        pending = self._pending.pop(uri, None)
        if pending is not None:
            pending.task.cancel()

    def clear(self) -> None:
        for uri in list(self._pending):
            self.forget(uri)

    def __len__(self) -> int:
        return len(self._pending)


async def _never_failing(work: Awaitable[list[str]]) -> list[str]:
    try:
        return await work
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("computing candidates failed")
        return []
