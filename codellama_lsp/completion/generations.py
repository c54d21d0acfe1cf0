"""From a generation request to the text shown: the model worker, clean-up, parse check, and
the other samples of the same prompt (parse-check retries, candidates to cycle through).

The completer decides what to generate and when; this module runs it and judges what the
model wrote. It counts the generations queued or running for requests (:attr:`generating`),
which the editors show as work under way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing

from codellama_lsp.completion.candidates import (
    add_distinct,
    alternative_requests,
    sampled_requests,
)
from codellama_lsp.completion.cleanup import clean, replace_range_end
from codellama_lsp.completion.engine_run import run_counted
from codellama_lsp.completion.parse_check import checked, is_python
from codellama_lsp.completion.scheduler import Scheduler, Ticket
from codellama_lsp.config import Settings
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.base import Engine, GenerationRequest, GenerationResult
from codellama_lsp.stats import Stats


class Generations:
    """Runs requests' generations on the scheduler's worker and turns them into shown text."""

    def __init__(
        self,
        scheduler: Scheduler,
        stats: Stats,
        engine: Callable[[], Engine | None],
        settings: Callable[[], Settings],
        on_generating: Callable[[], None],
    ) -> None:
        self.scheduler = scheduler
        self.stats = stats
        self._engine = engine
        self._settings = settings
        self._on_generating = on_generating
        self.generating = 0
        """Generations queued or running on the model worker for requests (not idle prefill)."""

    def start(self, ticket: Ticket, request: GenerationRequest) -> asyncio.Future[GenerationResult]:
        """Queue a generation on the model worker (the engine is read when it runs: a reload
        may come first), counted in :attr:`generating` until it ends."""
        chunk = self._settings().prefill_chunk_tokens
        job = self.scheduler.start(
            ticket, lambda _stop: run_counted(self._engine(), request, ticket, self.stats, chunk)
        )
        self._generating_changed(+1)
        job.add_done_callback(lambda _job: self._generating_changed(-1))
        return job

    def _generating_changed(self, delta: int) -> None:
        self.generating += delta
        if self.generating in (0, 1):
            self._on_generating()

    async def run(self, ticket: Ticket, request: GenerationRequest) -> GenerationResult:
        job = self.start(ticket, request)
        await self.scheduler.wait(ticket, job)
        return job.result()

    async def shown_text(
        self,
        uri: str,
        cursor: Cursor,
        request: GenerationRequest,
        ticket: Ticket,
        result: GenerationResult,
    ) -> str | None:
        """What a finished generation shows (clean-up, parse check, retries); None when it
        was stopped or failed."""
        if result.cancelled or result.finish_reason == "error":
            return None
        cleaned = self.cleaned(cursor, result.text, truncated=result.finish_reason == "length")
        text = await self.checked(uri, cursor, cleaned)
        if cleaned and not text:
            text = await self._retry_dropped(uri, cursor, request, ticket)
        return text

    def cleaned(self, cursor: Cursor, text: str, *, truncated: bool = False) -> str:
        """The clean-up rules (:mod:`codellama_lsp.completion.cleanup`)."""
        return clean(text, cursor, self._settings().stop_sequences, truncated=truncated)

    async def checked(self, uri: str, cursor: Cursor, text: str) -> str:
        """The parse check (Python, when on), on a worker thread."""
        if not (self._settings().parse_check and (is_python(uri) or cursor.notebook)):
            return text
        return await asyncio.to_thread(checked, text, cursor, replace_range_end(cursor), self.stats)

    async def _retry_dropped(
        self, uri: str, cursor: Cursor, request: GenerationRequest, ticket: Ticket
    ) -> str:
        """The parse check dropped the model's text: the first of ``parse_check_retries``
        sampled others that it keeps. A small model's first line is often broken where a
        sample is not, and the prompt's KV cache is kept: each costs its decode steps only."""
        requests = sampled_requests(request, self._settings().parse_check_retries)
        samples = self._samples(uri, cursor, requests, ticket, "parse_check_retries")
        async with aclosing(samples) as texts:
            async for text in texts:
                if text:
                    self.stats.add("parse_check_retries_shown")
                    return text
        return ""

    async def alternatives(
        self,
        uri: str,
        cursor: Cursor,
        first: str,
        count: int,
        ticket: Ticket,
        request: GenerationRequest,
    ) -> list[str]:
        """Up to ``count - 1`` more texts for the prompt of ``request``, each different from
        ``first`` and from each other (see :mod:`codellama_lsp.completion.candidates`)."""
        kept = [first]
        requests = alternative_requests(request, count - 1)
        samples = self._samples(uri, cursor, requests, ticket, "candidates_generated")
        async with aclosing(samples) as texts:
            async for text in texts:
                add_distinct(kept, text)
                if len(kept) == count:
                    break
        return kept[1:]

    async def _samples(
        self,
        uri: str,
        cursor: Cursor,
        requests: list[GenerationRequest],
        ticket: Ticket,
        counter: str,
    ) -> AsyncGenerator[str, None]:
        """Each of ``requests`` run on ``ticket`` in turn (counted in ``counter``), as shown;
        until one is stopped (superseded, cancelled) or fails."""
        for request in requests:
            if not ticket.live:
                return
            result = await self.run(ticket, request)
            if result.cancelled or result.finish_reason == "error":
                return
            self.stats.add(counter)
            truncated = result.finish_reason == "length"
            yield await self.checked(
                uri, cursor, self.cleaned(cursor, result.text, truncated=truncated)
            )
