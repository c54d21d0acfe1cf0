"""Idle-time prefill: keep the KV cache at the cursor while the user types.

The first completion at a new place (after a jump, or in a file just opened) pays a full prefill
of its prompt: seconds for a 2,000-token prompt on a CPU. And a slow model waits for a pause
(see :mod:`codellama_lsp.completion.debounce`), so without this every request at a pause would
first prefill what was typed since the last generation, a whole line or more. While the user
types the model has nothing to do: after each edit, when the model is idle, the prompt up to the
cursor (less the word being typed, :func:`cursor_prefix_ids`) is prefilled in the background: a
``GenerationRequest`` with ``max_new_tokens=0`` in the document's KV slot. Each one extends the
last by the few tokens typed since, so the request at a pause finds all but a few tokens in the
cache. A real request that needs the model for anything else stops it at once (its stop flag;
the chunk in flight finishes). A request whose prompt starts with that prefix lets it run and
queues behind it: it would have to compute the same tokens first anyway, and if the user types
on, the request is superseded while it waits and never starts a generation, while the prefill
goes on.

Only for engines that keep a KV cache (the local engine's ``kv``): a model server keeps its
own.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from codellama_lsp.completion.prompt import Prompt
from codellama_lsp.completion.scheduler import Scheduler, Ticket
from codellama_lsp.engines.base import Engine, GenerationRequest, GenerationResult
from codellama_lsp.engines.tokenization import CodeTokens
from codellama_lsp.stats import Stats

log = logging.getLogger(__name__)

MIN_PREFIX_TOKENS = 32
"""Shorter prefixes are cheap to prefill with the request itself."""


def keeps_kv_cache(engine: Engine | None) -> bool:
    return engine is not None and engine.reuses_prompts


def cursor_prefix_ids(prompt: Prompt, tokens: CodeTokens, cursor_line: str) -> tuple[int, ...]:
    """The prompt's ids up to the cursor, less those the next keys may change.

    The word being typed (and the spaces before it) may be split into other tokens once the
    next character comes, and (FIM) everything from ``<SUF>`` on changes with each key: those
    are left out, and one token more in case the first of them merges with the one before.
    """
    ids = prompt.ids
    end = len(ids)
    infill = tokens.infill
    if prompt.format == "fim" and infill is not None and infill.suffix_id in ids:
        end = ids.index(infill.suffix_id)
    tail = word_being_typed(cursor_line)
    held_back = len(tokens.encode(tail, leading_space=False)) if tail else 0
    return ids[: max(0, end - held_back - 1)]


def word_being_typed(line_prefix: str) -> str:
    """The word at the end of ``line_prefix`` with the spaces before it (a scan from the end:
    a regular expression anchored at ``$`` takes quadratic time on a long line)."""
    start = len(line_prefix)
    while start and (line_prefix[start - 1].isalnum() or line_prefix[start - 1] == "_"):
        start -= 1
    while start and line_prefix[start - 1].isspace():
        start -= 1
    return line_prefix[start:]


class IdlePrefill:
    """At most one background prefill at a time, on the scheduler's worker."""

    def __init__(self, scheduler: Scheduler, stats: Stats) -> None:
        self._scheduler = scheduler
        self._stats = stats
        self._ticket: Ticket | None = None
        self._ids: tuple[int, ...] = ()
        self._task: asyncio.Task[None] | None = None
        self._done: dict[str, tuple[int, ...]] = {}
        """Per document, the ids of the last prefix prefilled to its end."""

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def stop(self) -> None:
        """Stop now (the chunk in flight finishes)."""
        if self._ticket is not None:
            self._ticket.stop()

    def stop_unless_prefix_of(self, prompt_ids: tuple[int, ...]) -> None:
        """A real request needs the model: stop, unless its prompt starts with our work."""
        if prompt_ids[: len(self._ids)] != self._ids:
            self.stop()

    def forget(self, uri: str) -> None:
        self._done.pop(uri, None)

    def clear(self) -> None:
        """Another engine: nothing is cached in it yet."""
        self.stop()
        self._done.clear()

    @property
    def wanted(self) -> bool:
        """The model is idle and no prefill runs: worth building a prompt."""
        return not self.running and self._scheduler.idle

    def start(self, engine: Engine, uri: str, build: Callable[[], tuple[int, ...]]) -> None:
        """Prefill ``build()`` (run off the loop) in ``uri``'s KV slot if the model is idle."""
        if not self.wanted:
            return
        self._task = asyncio.ensure_future(self._run(engine, uri, build))

    async def _run(self, engine: Engine, uri: str, build: Callable[[], tuple[int, ...]]) -> None:
        try:
            ids = await asyncio.to_thread(build)
        except Exception:
            log.exception("background prefill: could not build the prompt")
            return
        if len(ids) < MIN_PREFIX_TOKENS or self._done.get(uri) == ids:
            return  # nothing (more) to do
        if not self._scheduler.idle:
            return  # a request got to the model while the prompt was built
        self._done.pop(uri, None)
        ticket = self._ticket = Ticket(f"{uri}#prefill", 0)
        self._ids = ids
        request = GenerationRequest(
            prompt_ids=ids, max_new_tokens=0, temperature=0.0, top_p=1.0, session=uri
        )
        self._stats.add("idle_prefills_started")
        try:
            result = await self._scheduler.run(ticket, lambda stop: _prefill(engine, request, stop))
        finally:
            self._ticket, self._ids = None, ()
        self._stats.add("idle_prefill_tokens", result.prompt_tokens - result.reused_prompt_tokens)
        if result.cancelled:
            self._stats.add("idle_prefills_stopped")
        elif result.finish_reason != "error":
            self._stats.add("idle_prefills_completed")
            self._done[uri] = ids


def _prefill(engine: Engine, request: GenerationRequest, stop: threading.Event) -> GenerationResult:
    if stop.is_set():
        return GenerationResult("", "cancelled")
    try:
        return engine.generate(request, stop)
    except Exception:
        log.exception("background prefill failed")
        return GenerationResult("", "error")
