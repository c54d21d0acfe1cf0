"""Completion cache, typing-through and the scheduler's newest-wins rule."""

from __future__ import annotations

import asyncio
import threading

import pytest

from codellama_lsp.completion.cache import CompletionCache, TypingThrough
from codellama_lsp.completion.completer import Completer
from codellama_lsp.completion.scheduler import Scheduler, Superseded
from codellama_lsp.config import Settings


def test_cache_is_bounded() -> None:
    cache = CompletionCache(size=2, ttl_s=60)
    for i in range(5):
        cache.put(i, str(i))
    assert len(cache) == 2 and cache.get(4) == "4" and cache.get(0) is None


def test_typing_through_serves_the_rest_and_forgets_on_divergence() -> None:
    tt = TypingThrough()
    tt.remember("u", "x = ", "\n", "compute(1)")
    assert tt.lookup("u", "x = com", "\n") == "pute(1)"
    assert tt.lookup("u", "x = comp", "\n") == "ute(1)"
    assert tt.lookup("u", "x = cor", "\n") is None
    assert tt.lookup("u", "x = comp", "\n") is None  # forgotten after diverging
    tt.remember("u", "y = ", "", "1")
    assert tt.lookup("u", "y = 1", "") is None  # nothing left to serve


async def test_newer_ticket_supersedes_older() -> None:
    scheduler = Scheduler()
    first = scheduler.ticket("doc")
    second = scheduler.ticket("doc")
    assert first.cancel.is_set() and first.superseded
    assert second.live
    with pytest.raises(Superseded):
        await scheduler.debounce(first, 0)
    other = scheduler.ticket("other-doc")
    assert second.live and other.live
    scheduler.shutdown()


async def test_without_supersession_every_ticket_runs() -> None:
    """The benchmarks' baseline (``supersede=false``): a newer request stops nothing."""
    scheduler = Scheduler()
    scheduler.supersede = False
    first = scheduler.ticket("doc")
    second = scheduler.ticket("doc")
    await scheduler.debounce(first, 0)
    assert first.live and second.live and not scheduler.is_latest(first)
    scheduler.shutdown()


def test_cache_size_zero_reuses_nothing() -> None:
    """``cache_size=0``: no cached completion and no typing-through either."""
    completer = Completer(Settings(cache_size=0))
    completer.cache.put("key", "text")
    completer.typing.remember("u", "x = ", "\n", "compute(1)")
    assert completer.cache.get("key") is None
    assert completer.typing.lookup("u", "x = com", "\n") is None


async def test_cancelling_the_waiter_sets_the_stop_flag() -> None:
    scheduler = Scheduler()
    ticket = scheduler.ticket("doc")
    started = threading.Event()

    def job(stop: threading.Event) -> bool:
        started.set()
        return stop.wait(5)

    task = asyncio.ensure_future(scheduler.run(ticket, job))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ticket.cancel.is_set()
    scheduler.shutdown()
