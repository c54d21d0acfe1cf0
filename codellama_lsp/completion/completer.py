"""One keystroke's path: typing-through → cache → debounce → prompt → model → clean-up.

The server hands every completion request here; this module knows nothing about LSP.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Hashable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from codellama_lsp.completion.cache import CompletionCache, TypingThrough
from codellama_lsp.completion.candidates import add_distinct, alternative_requests, sampled_requests
from codellama_lsp.completion.cleanup import block_done, clean, replace_range_end
from codellama_lsp.completion.debounce import AdaptiveDebounce
from codellama_lsp.completion.idle_prefill import IdlePrefill, cursor_prefix_ids, keeps_kv_cache
from codellama_lsp.completion.parse_check import checked, is_python
from codellama_lsp.completion.prompt import (
    MAX_CHARS_PER_TOKEN,
    BoundedLineCounter,
    LineCounter,
    Prompt,
    build_prompt,
    choose_format,
)
from codellama_lsp.completion.scheduler import Scheduler, Superseded, Ticket
from codellama_lsp.config import Settings, cache_key_values
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.base import Engine, GenerationRequest, GenerationResult
from codellama_lsp.stats import Stats

log = logging.getLogger(__name__)

Origin = Literal["model", "cache", "typing-through"]  # where a completion came from


ContextBuilder = Callable[[Cursor, int], str]
"""Builds the context text from (cursor, token budget), on a worker thread."""


class ContextProvider(Protocol):
    """Extra prompt text from other files (see :mod:`codellama_lsp.context.sources`)."""

    def fingerprint(self, uri: str) -> Hashable:
        """Changes whenever the text :meth:`prepare` would build for ``uri`` may change."""
        ...

    def prepare(self, uri: str) -> ContextBuilder:
        """On the event loop: a snapshot, and the function that builds the text from it on a
        worker thread (from ``(cursor, token budget)``)."""
        ...


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
"""JSON can carry half a surrogate pair (``"\\ud83d"``); tokenizers refuse such text."""


@dataclass(frozen=True)
class Completion:
    text: str
    end_character: int
    """Column (Python units) where the replaced range ends on the cursor's line."""
    origin: Origin


@dataclass
class Completer:
    settings: Settings
    stats: Stats = field(default_factory=Stats)
    scheduler: Scheduler = field(default_factory=Scheduler)
    engine: Engine | None = None
    context_provider: ContextProvider | None = None
    on_result: Callable[[], None] | None = None
    client_wait_ms: float = 0.0
    """What the editor already waited after the last key (see ``lsp/client_timing.py``)."""

    def __post_init__(self) -> None:
        self.cache = CompletionCache(self.settings.cache_size, self.settings.cache_ttl_s)
        self.typing = TypingThrough()
        self._counter: LineCounter | None = None
        self._inflight: dict[Hashable, asyncio.Future[Completion | None]] = {}
        self.scheduler.on_superseded = lambda _ticket: self.stats.add("requests_superseded")
        self.scheduler.on_kept = lambda _ticket: self.stats.add("generations_kept")
        self.debounce = AdaptiveDebounce()
        self._prompt_lock = threading.Lock()
        self.idle_prefill = IdlePrefill(self.scheduler, self.stats)
        self.apply_settings(self.settings)

    def set_engine(self, engine: Engine | None) -> None:
        self.engine = engine
        self._counter = None
        self.cache.clear()
        self.debounce.forget_latency()
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

    def forget(self, uri: str) -> None:
        """The document was closed: stop its work and drop what was kept for it."""
        self.scheduler.cancel_key(uri)
        self.typing.forget(uri)
        self.idle_prefill.forget(uri)

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        """The counters and timings, with the sizes of what is kept (for leak checks)."""
        engine = self.engine.cache_stats() if self.engine is not None else {}
        return self.stats.snapshot(
            cache_entries=len(self.cache),
            typing_through_entries=len(self.typing),
            inflight=len(self._inflight),
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

        def build() -> tuple[int, ...]:
            cursor = read_cursor()
            prompt = self._locked_prompt(uri, cursor, context)
            return cursor_prefix_ids(prompt, engine.tokens, cursor.line_prefix)

        self.idle_prefill.start(engine, uri, build)

    def debounce_s(self) -> float:
        """How long a request waits for more keys: ``debounce_ms``, or adaptive when -1."""
        fixed = self.settings.debounce_ms
        adaptive = max(0.0, self.debounce.wait_ms() - self.client_wait_ms)
        ms = adaptive if fixed < 0 else float(fixed)
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
        if cached is not None:
            self.stats.add("cache_hits")
            self.scheduler.release(ticket)
            completion = Completion(cached, replace_range_end(cursor), "cache") if cached else None
            return self._finish(completion, started)

        future: asyncio.Future[Completion | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._generate(uri, cursor, key, ticket)
            future.set_result(result)
        except BaseException as exc:
            future.set_result(None)
            if isinstance(exc, Superseded):
                return self._finish(None, started, count_latency=False)
            raise
        finally:
            self._inflight.pop(key, None)
            self.scheduler.release(ticket)
        return self._finish(result, started)

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
            future.set_result(await self._generate(uri, cursor, key, ticket, debounce=False))
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
        """Equal keys give the same completion: text, model, settings and context agree."""
        before, after = cursor.prefix, cursor.suffix
        context_fp: Hashable = ()
        if self.context_provider is not None:
            context_fp = self.context_provider.fingerprint(uri)
        return (
            self.engine.name if self.engine else "",
            cache_key_values(self.settings),
            hash(before),
            hash(after),
            len(before),
            context_fp,
            cursor.editor_indent,
        )

    def _locked_prompt(
        self, uri: str, cursor: Cursor, context: ContextBuilder | None = None
    ) -> Prompt:
        """:meth:`build_prompt` from a worker thread (its line-count memo is not thread-safe)."""
        with self._prompt_lock:
            return self.build_prompt(uri, cursor, context)

    def build_prompt(
        self, uri: str, cursor: Cursor, context: ContextBuilder | None = None
    ) -> Prompt:
        """The prompt; ``context`` is the provider's builder, prepared on the event loop."""
        engine = self.engine
        assert engine is not None
        s = self.settings
        max_chars = s.max_context_tokens * MAX_CHARS_PER_TOKEN
        if self._counter is None or getattr(self._counter, "max_chars", None) != max_chars:
            self._counter = BoundedLineCounter(engine.tokens, max_chars)
        # Text further along a very long cursor line cannot fit the prompt: cut it first.
        cursor = cursor.with_line_window(max_chars)
        if _LONE_SURROGATE.search(cursor.text):
            cursor = Cursor(
                _LONE_SURROGATE.sub("\ufffd", cursor.text), cursor.line, cursor.character
            )
        new_tokens = s.max_new_tokens_single_line if cursor.single_line else s.max_new_tokens
        limit = min(s.max_context_tokens, engine.context_limit)
        budget = max(16, limit - new_tokens)
        extra = ""
        if context is None and self.context_provider is not None:
            context = self.context_provider.prepare(uri)
        if context is not None:
            extra = _LONE_SURROGATE.sub("\ufffd", context(cursor, budget // 4))
        return build_prompt(
            cursor,
            engine.tokens,
            fmt=choose_format(s.prompt_format, engine.name, engine.tokens),
            budget=budget,
            suffix_share=s.fim_suffix_share,
            extra_context=extra,
            counter=self._counter,
        )

    async def _generate(
        self,
        uri: str,
        cursor: Cursor,
        key: Hashable,
        ticket: Ticket,
        *,
        debounce: bool = True,
    ) -> Completion | None:
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
            return Completion(rest, replace_range_end(cursor), "typing-through")
        # The context's snapshot is taken here, on the event loop that edits the documents.
        context = self.context_provider.prepare(uri) if self.context_provider else None
        prompt = await asyncio.to_thread(self._locked_prompt, uri, cursor, context)
        if not ticket.live:
            raise Superseded
        request = self._request(uri, cursor, prompt, ticket)
        self.idle_prefill.stop_unless_prefix_of(prompt.ids)
        result = await self.scheduler.run(ticket, lambda _stop: self._run_engine(request, ticket))
        if result.cancelled or result.finish_reason == "error":
            return None
        self.debounce.generation(result.prefill_seconds + result.decode_seconds)
        cleaned = self._cleaned(cursor, result)
        text = await self._checked(uri, cursor, cleaned)
        if cleaned and not text:
            text = await self._retry_dropped(uri, cursor, request, ticket)
        self.cache.put(key, text)
        self.typing.remember(uri, cursor.prefix, cursor.suffix, text)
        if not self.scheduler.is_latest(ticket):
            # A newer request for this document exists: nobody will see this result (the
            # baseline that does not supersede answers every request all the same).
            self.stats.add("discarded_tokens", result.generated_tokens)
            if self.scheduler.supersede:
                return None
        return Completion(text, replace_range_end(cursor), "model") if text else None

    def _request(
        self, uri: str, cursor: Cursor, prompt: Prompt, ticket: Ticket
    ) -> GenerationRequest:
        s = self.settings
        single = cursor.single_line
        return GenerationRequest(
            prompt_ids=prompt.ids,
            max_new_tokens=s.max_new_tokens_single_line if single else s.max_new_tokens,
            temperature=s.temperature,
            top_p=s.top_p,
            stop_sequences=("\n",) if single else s.stop_sequences,
            should_stop=block_done(cursor),
            on_text=ticket.record,
            session=uri,
            draft_text=self.typing.draft(uri, cursor.prefix),
            max_draft=s.speculative_max_draft if s.speculative else 0,
        )

    async def _polish(self, uri: str, cursor: Cursor, result: GenerationResult) -> str:
        """The model's text as shown: cleaned up, then parse-checked (Python, when on)."""
        return await self._checked(uri, cursor, self._cleaned(cursor, result))

    def _cleaned(self, cursor: Cursor, result: GenerationResult) -> str:
        truncated = result.finish_reason == "length"
        return clean(result.text, cursor, self.settings.stop_sequences, truncated=truncated)

    async def _checked(self, uri: str, cursor: Cursor, text: str) -> str:
        if not (self.settings.parse_check and is_python(uri)):
            return text
        return await asyncio.to_thread(checked, text, cursor, replace_range_end(cursor), self.stats)

    async def _retry_dropped(
        self, uri: str, cursor: Cursor, request: GenerationRequest, ticket: Ticket
    ) -> str:
        """The parse check dropped the model's text: the first of ``parse_check_retries``
        sampled others that it keeps. A small model's first line is often broken where a
        sample is not, and the prompt's KV cache is kept: each costs its decode steps only."""
        requests = sampled_requests(request, self.settings.parse_check_retries)
        samples = self._samples(uri, cursor, requests, ticket, "parse_check_retries")
        async with aclosing(samples) as texts:
            async for text in texts:
                if text:
                    self.stats.add("parse_check_retries_shown")
                    return text
        return ""

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
            result = await self.scheduler.run(ticket, self._engine_job(request, ticket))
            if result.cancelled or result.finish_reason == "error":
                return
            self.stats.add(counter)
            yield await self._polish(uri, cursor, result)

    async def alternatives(self, uri: str, cursor: Cursor, first: str, count: int) -> list[str]:
        """Up to ``count - 1`` more texts for ``cursor``, each different from ``first`` and from
        each other (see :mod:`codellama_lsp.completion.candidates`); for requests the user
        invoked."""
        if count <= 1 or not self.ready:
            return []
        ticket = self.scheduler.ticket(uri, cursor.prefix, cursor.suffix)
        kept = [first]
        try:
            context = self.context_provider.prepare(uri) if self.context_provider else None
            prompt = await asyncio.to_thread(self._locked_prompt, uri, cursor, context)
            requests = alternative_requests(self._request(uri, cursor, prompt, ticket), count - 1)
            samples = self._samples(uri, cursor, requests, ticket, "candidates_generated")
            async with aclosing(samples) as texts:
                async for text in texts:
                    add_distinct(kept, text)
                    if len(kept) == count:
                        break
        finally:
            self.scheduler.release(ticket)
        return kept[1:]

    def _engine_job(
        self, request: GenerationRequest, ticket: Ticket
    ) -> Callable[[threading.Event], GenerationResult]:
        return lambda _stop: self._run_engine(request, ticket)

    def _run_engine(self, request: GenerationRequest, ticket: Ticket) -> GenerationResult:
        """On the model worker: run one generation and count what it did."""
        engine = self.engine
        if ticket.cancel.is_set() or engine is None:
            return GenerationResult("", "cancelled")
        self.stats.add("generations_started")
        try:
            result = engine.generate(request, ticket.cancel)
        except Exception:
            log.exception("generation failed")
            self.stats.add("generation_errors")
            return GenerationResult("", "error")
        self.stats.add("prompt_tokens", result.prompt_tokens)
        self.stats.add("reused_prompt_tokens", result.reused_prompt_tokens)
        self.stats.add("generated_tokens", result.generated_tokens)
        self.stats.add("decode_forward_passes", result.decode_passes)
        for source, n in result.drafted.items():
            self.stats.add(f"draft_tokens_{source}", n)
            self.stats.add(f"draft_accepted_{source}", result.accepted_drafts.get(source, 0))
            self.stats.add(f"verify_passes_{source}", result.verify_passes.get(source, 0))
        if result.cancelled:
            self.stats.add("generations_cancelled")
            self.stats.add("discarded_tokens", result.generated_tokens)
            if ticket.cancelled_at is not None:
                phase = "decode" if result.prefill_seconds else "prefill"
                idle_ms = (time.perf_counter() - ticket.cancelled_at) * 1000
                self.stats.timing(f"cancel_to_idle_{phase}", idle_ms)
                step_s = engine.last_step_seconds
                self.stats.timing(f"interrupted_step_{phase}", step_s * 1000)
        elif result.finish_reason == "error":
            self.stats.add("generation_errors")
        else:
            self.stats.add("generations_completed")
        self._record_step_times(result)
        return result

    def _record_step_times(self, result: GenerationResult) -> None:
        """Mean time of one prefill chunk and one decode step: what a stop may have to wait."""
        chunk = self.settings.prefill_chunk_tokens
        new = result.prompt_tokens - result.reused_prompt_tokens
        if result.prefill_seconds and new > 0:
            self.stats.timing("prefill_chunk", result.prefill_seconds * 1000 / -(-new // chunk))
        # The first token comes from the prefill; engines that count passes say how many.
        steps = result.decode_passes or result.generated_tokens - 1
        if result.decode_seconds and steps > 0:
            self.stats.timing("decode_step", result.decode_seconds * 1000 / steps)
