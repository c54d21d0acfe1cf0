"""One keystroke's path: typing-through → cache → debounce → prompt → model → clean-up.

The server hands every completion request here; this module knows nothing about LSP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from codellama_lsp.completion.cache import CompletionCache, TypingThrough, completion_key
from codellama_lsp.completion.candidates import (
    PendingCandidates,
    place_of,
)
from codellama_lsp.completion.cleanup import block_done, replace_range_end
from codellama_lsp.completion.debounce import AdaptiveDebounce
from codellama_lsp.completion.early_part import EarlyPart, answers_early
from codellama_lsp.completion.generations import Generations
from codellama_lsp.completion.idle_prefill import IdlePrefill, cursor_prefix_ids, keeps_kv_cache
from codellama_lsp.completion.latency_health import LatencyHealth
from codellama_lsp.completion.prompt import ContextBuilder, Prompt, PromptMaker
from codellama_lsp.completion.scheduler import Scheduler, Superseded, Ticket
from codellama_lsp.config import Settings, cache_key_values
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.base import Engine, GenerationRequest, GenerationResult
from codellama_lsp.stats import Stats

log = logging.getLogger(__name__)

Origin = Literal["model", "cache", "typing-through"]  # where a completion came from
CANDIDATES_KEY = "#candidates"
"""Appended to a document's URI for the scheduler key of its extra candidates."""


class ContextProvider(Protocol):
    """Extra prompt text from other files (see :mod:`codellama_lsp.context.sources`)."""

    def fingerprint(self, uri: str) -> Hashable:
        """Changes whenever the text :meth:`prepare` would build for ``uri`` may change."""
        ...

    def prepare(self, uri: str) -> ContextBuilder:
        """On the event loop: a snapshot, and the function that builds the text from it on a
        worker thread (from ``(cursor, token budget)``)."""
        ...


@dataclass(frozen=True)
class Completion:
    text: str
    end_character: int
    """Column (Python units) where the replaced range ends on the cursor's line."""
    origin: Origin


@dataclass(frozen=True)
class Growing:
    """A suggestion answered at its first line (``shown``) while its generation runs on."""

    job: asyncio.Future[GenerationResult]
    request: GenerationRequest
    shown: str


@dataclass(frozen=True)
class Answer:
    completion: Completion | None
    growing: Growing | None = None


@dataclass
class Completer:
    settings: Settings
    stats: Stats = field(default_factory=Stats)
    scheduler: Scheduler = field(default_factory=Scheduler)
    engine: Engine | None = None
    context_provider: ContextProvider | None = None
    on_result: Callable[[], None] | None = None
    """Told after each answer and when generating starts or stops (the status may change)."""
    on_grown: Callable[[str, Cursor, str], None] | None = None
    """Told (uri, cursor, whole text) when a suggestion answered at its first line is whole."""
    client_wait_ms: float = 0.0
    """What the editor already waited after the last key (see ``lsp/client_timing.py``)."""

    def __post_init__(self) -> None:
        self.cache = CompletionCache(self.settings.cache_size, self.settings.cache_ttl_s)
        self.typing = TypingThrough()
        self.prompts = PromptMaker()
        self.pending = PendingCandidates()
        self.generations = Generations(
            self.scheduler,
            self.stats,
            lambda: self.engine,
            lambda: self.settings,
            lambda: self.on_result() if self.on_result is not None else None,
        )
        self._inflight: dict[Hashable, asyncio.Future[Completion | None]] = {}
        self._growing: set[asyncio.Task[None]] = set()
        self.scheduler.on_superseded = lambda _ticket: self.stats.add("requests_superseded")
        self.scheduler.on_kept = lambda _ticket: self.stats.add("generations_kept")
        self.debounce = AdaptiveDebounce()
        self.health = LatencyHealth()
        self.idle_prefill = IdlePrefill(self.scheduler, self.stats)
        self.apply_settings(self.settings)

    def set_engine(self, engine: Engine | None) -> None:
        self.engine = engine
        self.prompts.forget()
        self.cache.clear()
        self.debounce.forget_latency()
        self.health.forget()
        self.idle_prefill.clear()

    def apply_settings(self, settings: Settings) -> None:
        if (settings.cache_size, settings.cache_ttl_s) != (
            self.settings.cache_size,
            self.settings.cache_ttl_s,
        ):
            self.cache = CompletionCache(settings.cache_size, settings.cache_ttl_s)
        self.typing.enabled = self.cache.enabled
        self.scheduler.supersede = settings.supersede
        self.scheduler.keep_matching = settings.keep_matching_generations
        self.settings = settings

    def close(self) -> None:
        """The session ends: stop every generation and background task now (a stalled model
        server stream would otherwise keep the process alive until its read timeout)."""
        self.scheduler.shutdown()
        with contextlib.suppress(RuntimeError):  # the event loop may be closed already
            self.pending.clear()
            for task in list(self._growing):
                task.cancel()

    def forget(self, uri: str) -> None:
        """The document was closed: stop its work and drop what was kept for it."""
        self.scheduler.cancel_key(uri)
        self.pending.forget(uri)
        self.typing.forget(uri)
        self.idle_prefill.forget(uri)

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        """The counters and timings, with the sizes of what is kept (for leak checks)."""
        engine = self.engine.cache_stats() if self.engine is not None else {}
        return self.stats.snapshot(
            cache_entries=len(self.cache),
            typing_through_entries=len(self.typing),
            inflight=len(self._inflight),
            growing=len(self._growing),
            pending_candidates=len(self.pending),
            generating=self.generations.generating,
            model_jobs=self.scheduler.jobs,
            **engine,
            **extra,
        )

    @property
    def ready(self) -> bool:
        return self.settings.enabled and self.engine is not None

    def edited(self, uri: str, read_cursor: Callable[[], Cursor]) -> None:
        """The user edited ``uri`` (``didChange``); ``read_cursor()`` reads the cursor.

        Times the keystroke for the adaptive debounce, and starts an idle-time prefill of
        the prompt up to the cursor when the model has nothing else to do.
        """
        self.debounce.key()
        self._prefill_when_idle(uri, read_cursor)

    def _prefill_when_idle(self, uri: str, read_cursor: Callable[[], Cursor]) -> None:
        s = self.settings
        engine = self.engine
        if not (s.idle_prefill and self.ready and keeps_kv_cache(engine)):
            return
        if not self.idle_prefill.wanted:
            return  # before the context snapshot: this runs on every edit
        assert engine is not None

        # The same context as the request will get (a snapshot, taken on the event loop).
        context = self.context_provider.prepare(uri) if self.context_provider else None
        # The cursor too: the document (its line index) changes on the event loop. Reading it
        # costs the same in any document (an excerpt of a big one).
        cursor = read_cursor()

        def build() -> tuple[int, ...]:
            prompt = self.build_prompt(uri, cursor, context)
            return cursor_prefix_ids(prompt, engine.tokens, cursor.line_prefix)

        self.idle_prefill.start(engine, uri, build)

    def debounce_s(self) -> float:
        """How long a request waits for more keys: ``debounce_ms``, or adaptive when -1."""
        ms = self.debounce.wait_for(self.settings.debounce_ms, self.client_wait_ms)
        self.stats.timing("debounce_wait", ms)
        return ms / 1000

    async def complete(self, uri: str, cursor: Cursor) -> Completion | None:
        """The completion at ``cursor``, or None (not ready, superseded, cancelled, empty)."""
        started = time.perf_counter()
        self.stats.add("requests")
        if not self.ready:
            self.stats.add("empty_results")
            return None
        before, after = cursor.prefix, cursor.suffix
        self.pending.moved(uri, place_of(before, after))
        key = self.cache_key(uri, cursor)
        joined = self._inflight.get(key) if self.cache.enabled else None
        if joined is not None:
            # The same place is already being computed (prefetch, or a repeated request).
            result = await asyncio.shield(joined)
            return self._finish(result, started)

        ticket = self.scheduler.ticket(uri, before, after)
        rest = self.typing.lookup(uri, before, after)
        if rest is not None:
            self.stats.add("typing_through_hits")
            self.scheduler.release(ticket)
            return self._finish(
                Completion(rest, replace_range_end(cursor), "typing-through"), started
            )
        cached = self.cache.get(key)
        cached = self.typing.grown_at(uri, before, after) if cached is None else cached
        if cached is not None:
            self.stats.add("cache_hits")
            self.scheduler.release(ticket)
            completion = Completion(cached, replace_range_end(cursor), "cache") if cached else None
            return self._finish(completion, started)

        future: asyncio.Future[Completion | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await self._generate(uri, cursor, key, ticket, early=True)
        except BaseException as exc:
            future.set_result(None)
            self._inflight.pop(key, None)
            self.scheduler.release(ticket)
            if isinstance(exc, Superseded):
                if ticket.running is not None:
                    self.health.gave_up()
                return self._finish(None, started, count_latency=False)
            raise
        future.set_result(answer.completion)
        if answer.completion is not None and answer.completion.origin == "model":
            self.health.answered((time.perf_counter() - started) * 1000)
        elif ticket.superseded and ticket.running is not None:
            self.health.gave_up()
        if answer.growing is None:
            self._inflight.pop(key, None)
            self.scheduler.release(ticket)
        else:
            task = asyncio.ensure_future(
                self._grow(uri, cursor, key, ticket, future, answer.growing)
            )
            self._growing.add(task)
            task.add_done_callback(self._growing.discard)
        return self._finish(answer.completion, started)

    async def _grow(
        self,
        uri: str,
        cursor: Cursor,
        key: Hashable,
        ticket: Ticket,
        future: asyncio.Future[Completion | None],
        growing: Growing,
    ) -> None:
        """The generation of a suggestion answered at its first line runs on: its whole text,
        judged by the same rules, is stored (cache, typing-through) and announced. It never
        takes back what was shown: a whole text that does not start with it keeps that."""
        try:
            await self.scheduler.wait(ticket, growing.job)  # cancelled: the generation stops
            text = await self._shown_text(
                uri, cursor, growing.request, ticket, growing.job.result()
            )
            if text is None:
                return  # stopped (the user typed something else) or failed
            if not text.startswith(growing.shown):
                self.stats.add("early_not_prefix")
                text = growing.shown
            self._store(uri, cursor, key, text)
            if text != growing.shown:
                self.typing.grew(uri, cursor.prefix, cursor.suffix, text)
                self.stats.add("suggestions_grown")
                if self.on_grown is not None:
                    self.on_grown(uri, cursor, text)
        except Exception:
            log.exception("finishing a suggestion failed")
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
            self.scheduler.release(ticket)

    async def prefetch(self, uri: str, cursor: Cursor) -> None:
        """Compute the completion at ``cursor`` now so the next request finds it in the cache."""
        if not (self.ready and self.settings.prefetch_after_accept):
            return
        self.stats.add("prefetches")
        key = self.cache_key(uri, cursor)
        if key in self._inflight or self.cache.get(key) is not None:
            return
        if self.scheduler.busy(uri):
            return  # the user already asked for something newer: never supersede it
        future: asyncio.Future[Completion | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        ticket = self.scheduler.ticket(uri, cursor.prefix, cursor.suffix)
        try:
            answer = await self._generate(uri, cursor, key, ticket, debounce=False)
            future.set_result(answer.completion)
        except BaseException:
            future.set_result(None)
        finally:
            self._inflight.pop(key, None)
            self.scheduler.release(ticket)

    def _finish(
        self, completion: Completion | None, started: float, *, count_latency: bool = True
    ) -> Completion | None:
        if completion is None or not completion.text:
            self.stats.add("empty_results")
            completion = None
        if count_latency:
            self.stats.latency((time.perf_counter() - started) * 1000)
        if self.on_result is not None:
            self.on_result()
        return completion

    def cache_key(self, uri: str, cursor: Cursor) -> Hashable:
        """The cache key at ``cursor`` (:func:`completion_key`)."""
        context = self.context_provider.fingerprint(uri) if self.context_provider else ()
        engine = self.engine.name if self.engine else ""
        return completion_key(engine, cache_key_values(self.settings), cursor, context)

    def build_prompt(
        self, uri: str, cursor: Cursor, context: ContextBuilder | None = None
    ) -> Prompt:
        """The prompt (callable from worker threads); ``context`` is the context provider's
        builder, prepared on the event loop (without it, prepared here)."""
        engine = self.engine
        assert engine is not None
        if context is None and self.context_provider is not None:
            context = self.context_provider.prepare(uri)
        return self.prompts.make(cursor, engine, self.settings, context)

    async def _generate(
        self,
        uri: str,
        cursor: Cursor,
        key: Hashable,
        ticket: Ticket,
        *,
        debounce: bool = True,
        early: bool = False,
    ) -> Answer:
        """The model's answer at ``cursor``; with ``early``, a multi-line one may be answered at
        its first line while the generation runs on (:class:`Growing`)."""
        engine = self.engine
        assert engine is not None
        if debounce:
            self._prefill_when_idle(uri, lambda: cursor)  # the cursor may have moved, no edit yet
            await self.scheduler.debounce(ticket, self.debounce_s())
        await self.scheduler.settle(ticket)
        if not ticket.live:
            raise Superseded
        # A generation kept running for an earlier keystroke may have answered this one.
        rest = self.typing.lookup(uri, cursor.prefix, cursor.suffix)
        if rest is not None:
            self.stats.add("typing_through_hits")
            self.stats.add("kept_generation_hits")
            return Answer(Completion(rest, replace_range_end(cursor), "typing-through"))
        # The context's snapshot is taken here, on the event loop that edits the documents.
        context = self.context_provider.prepare(uri) if self.context_provider else None
        prompt = await asyncio.to_thread(self.build_prompt, uri, cursor, context)
        if not ticket.live:
            raise Superseded
        loop = asyncio.get_running_loop()
        slow = self.debounce.model_is_slow()
        wanted = early and answers_early(self.settings.early_first_line, cursor, slow)
        watch = EarlyPart(cursor, loop) if wanted else None
        request = self._request(uri, cursor, prompt, ticket, watch)
        self.idle_prefill.stop_unless_prefix_of(prompt.ids)
        job = self.generations.start(ticket, request)
        if watch is not None and (shown := await self._early(uri, cursor, ticket, job, watch)):
            self.stats.add("early_answers")
            self.typing.remember(uri, cursor.prefix, cursor.suffix, shown)
            completion = Completion(shown, replace_range_end(cursor), "model")
            return Answer(completion, Growing(job, request, shown))
        await self.scheduler.wait(ticket, job)
        text = await self._shown_text(uri, cursor, request, ticket, job.result())
        if text is None:
            return Answer(None)
        self._store(uri, cursor, key, text)
        if not self.scheduler.is_latest(ticket):
            # A newer request for this document exists: nobody will see this result (the
            # baseline that does not supersede answers every request all the same).
            self.stats.add("discarded_tokens", job.result().generated_tokens)
            if self.scheduler.supersede:
                return Answer(None)
        return Answer(Completion(text, replace_range_end(cursor), "model") if text else None)

    async def _early(
        self,
        uri: str,
        cursor: Cursor,
        ticket: Ticket,
        job: asyncio.Future[GenerationResult],
        watch: EarlyPart,
    ) -> str:
        """The first line to answer with, once the engine has written it and the rules keep
        it; "" when the whole generation is done first (or this request is no longer the
        newest)."""
        await self.scheduler.wait(ticket, job, watch.found)
        if job.done() or not self.scheduler.is_latest(ticket):
            return ""
        early = self.generations.cleaned(cursor, watch.found.result())
        text = await self.generations.checked(uri, cursor, early)
        return "" if job.done() else text

    async def _shown_text(
        self,
        uri: str,
        cursor: Cursor,
        request: GenerationRequest,
        ticket: Ticket,
        result: GenerationResult,
    ) -> str | None:
        """What a finished generation shows (see :meth:`Generations.shown_text`); its time
        counts for the adaptive debounce."""
        if not (result.cancelled or result.finish_reason == "error"):
            self.debounce.generation(result.prefill_seconds + result.decode_seconds)
        return await self.generations.shown_text(uri, cursor, request, ticket, result)

    def _store(self, uri: str, cursor: Cursor, key: Hashable, text: str) -> None:
        self.cache.put(key, text)
        self.typing.remember(uri, cursor.prefix, cursor.suffix, text)

    def _request(
        self, uri: str, cursor: Cursor, prompt: Prompt, ticket: Ticket, watch: EarlyPart | None
    ) -> GenerationRequest:
        s = self.settings
        single = cursor.single_line
        on_text = ticket.record if watch is None else watch.also(ticket.record)
        return GenerationRequest(
            prompt_ids=prompt.ids,
            max_new_tokens=s.max_new_tokens_single_line if single else s.max_new_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            stop_sequences=("\n",) if single else s.stop_sequences,
            should_stop=block_done(cursor),
            on_text=on_text,
            session=uri,
            draft_text=self.typing.draft(uri, cursor.prefix),
            max_draft=s.speculative_max_draft if s.speculative else 0,
        )

    async def more_candidates(self, uri: str, cursor: Cursor, first: str, count: int) -> list[str]:
        """The other candidates at ``cursor`` for a request the user invoked: those computed
        since an earlier invoke at the same place (waited for: the user is cycling), else none
        yet; they are computed now, in the background, for when the user cycles."""
        if count <= 1 or not self.ready:
            return []
        place = place_of(cursor.prefix, cursor.suffix)
        pending = self.pending.get(uri, place, first)
        if pending is not None:
            return list(await asyncio.shield(pending))
        self.pending.start(uri, place, first, self.alternatives(uri, cursor, first, count))
        return []

    async def alternatives(self, uri: str, cursor: Cursor, first: str, count: int) -> list[str]:
        """Up to ``count - 1`` more texts for ``cursor``, different from ``first`` and from each
        other. Their ticket is not the document's: the requests that come while they are
        computed do not stop them (moving elsewhere does: :class:`PendingCandidates`)."""
        if count <= 1 or not self.ready:
            return []
        ticket = self.scheduler.ticket(uri + CANDIDATES_KEY, cursor.prefix, cursor.suffix)
        try:
            context = self.context_provider.prepare(uri) if self.context_provider else None
            prompt = await asyncio.to_thread(self.build_prompt, uri, cursor, context)
            request = self._request(uri, cursor, prompt, ticket, None)
            return await self.generations.alternatives(uri, cursor, first, count, ticket, request)
        finally:
            self.scheduler.release(ticket)
