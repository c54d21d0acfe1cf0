"""Who gets the model, and when: debounce, newest-wins per document, one worker.

Each request takes a :class:`Ticket` for its document. A newer ticket for the same document
supersedes the older one: a request still waiting in its debounce never reaches the model, and
a generation in flight stops within one decode step or prefill chunk — unless what the user
typed since agrees with the text it has made so far (``keep_matching``). Such a generation
runs on: its answer, stored for typing-through, is then the answer at the user's next pause,
with no new generation. The newer request, when its debounce is over, :meth:`Scheduler.settle`
s it: waits for it if it has already made what was typed, else stops it. Clients need not send
``$/cancelRequest`` (Neovim does not while typing).

All model work runs on a single worker thread, so documents queue in arrival order and two
generations never compete for the model.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


class Superseded(Exception):
    """A newer request for the same document took over."""


@dataclass
class Ticket:
    key: str
    number: int
    before: str = ""
    """The text before the cursor when the request came (its document's, as far as it sent)."""
    after: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    superseded: bool = False
    cancelled_at: float | None = None
    """``time.perf_counter()`` when the stop flag was first set (for cancel → idle times)."""
    made: str = ""
    """The text its generation has made so far (written by the model worker)."""
    running: asyncio.Future[Any] | None = None
    """Its job on the model worker, once submitted."""
    released: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by :meth:`Scheduler.release`: the request is over and its answer stored."""

    @property
    def live(self) -> bool:
        return not self.cancel.is_set()

    def record(self, text: str) -> None:
        """The ``on_text`` of its generations: engines tell the text so far after every token
        (on the model worker), and :meth:`agrees_with` reads it."""
        self.made = text

    def typed_since(self, before: str, after: str) -> str | None:
        """What was typed at this request's place to get to ``before``; None if elsewhere."""
        if after != self.after or not before.startswith(self.before):
            return None
        return before[len(self.before) :]

    def agrees_with(self, before: str, after: str) -> bool:
        """The user typed on from here, and what they typed and what the generation has made
        so far agree (one starts the other): its answer may still serve them."""
        typed = self.typed_since(before, after)
        return typed is not None and (self.made.startswith(typed) or typed.startswith(self.made))

    def stop(self) -> None:
        if self.cancelled_at is None:
            self.cancelled_at = time.perf_counter()
        self.cancel.set()


class Scheduler:
    def __init__(self, keep_matching: bool = True) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codellama-model")
        self._latest: dict[str, Ticket] = {}
        self._kept: dict[str, Ticket] = {}
        """Per document: a superseded generation that runs on because the typing agrees."""
        self._numbers = itertools.count(1)
        self._jobs = 0
        self.keep_matching = keep_matching
        self.on_superseded: Callable[[Ticket], None] | None = None
        self.on_kept: Callable[[Ticket], None] | None = None
        self.supersede = True
        """False: a newer ticket leaves the older ones running (the benchmarks' baseline)."""

    @property
    def jobs(self) -> int:
        """Jobs running or waiting on the model worker."""
        return self._jobs

    @property
    def idle(self) -> bool:
        """No job runs or waits on the model worker."""
        return self._jobs == 0

    def _submit(self, job: Callable[[], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._worker, job)
        self._jobs += 1

        def done(_future: asyncio.Future[T]) -> None:
            self._jobs -= 1

        future.add_done_callback(done)
        return future

    def ticket(self, key: str, before: str = "", after: str = "") -> Ticket:
        """A new ticket for ``key`` at the place ``before``|``after``; the previous one (if
        any) is superseded now: stopped, or kept running if the typing agrees with it."""
        ticket = Ticket(key, next(self._numbers), before, after)
        previous = self._latest.get(key)
        self._latest[key] = ticket
        if not self.supersede:
            return ticket
        kept = self._kept.pop(key, None)
        if kept is not None and kept.live and kept is not previous:
            self._keep_or_stop(kept, ticket)
        if previous is not None and previous.live:
            previous.superseded = True
            if self.on_superseded is not None:
                self.on_superseded(previous)
            self._keep_or_stop(previous, ticket)
        return ticket

    def _keep_or_stop(self, older: Ticket, newer: Ticket) -> None:
        running = older.running is not None and not older.running.done()
        if self.keep_matching and running and older.agrees_with(newer.before, newer.after):
            if self._kept.get(older.key) is not older and self.on_kept is not None:
                self.on_kept(older)
            self._kept[older.key] = older
        else:
            older.stop()

    async def settle(self, ticket: Ticket) -> None:
        """Before ``ticket`` asks the model: a kept generation for its document that has
        already made what was typed is awaited (its answer is the one this request wants);
        any other is stopped, so that this request does not wait behind it."""
        kept = self._kept.pop(ticket.key, None)
        if kept is None or kept.running is None or not kept.live:
            return
        typed = kept.typed_since(ticket.before, ticket.after)
        if typed is not None and kept.made.startswith(typed):
            await kept.released.wait()
        else:
            kept.stop()

    def busy(self, key: str) -> bool:
        """A live request for ``key`` is waiting or running."""
        ticket = self._latest.get(key)
        return ticket is not None and ticket.live

    def is_latest(self, ticket: Ticket) -> bool:
        return self._latest.get(ticket.key) is ticket

    def cancel_key(self, key: str) -> None:
        """Stop whatever runs for ``key`` (document closed)."""
        for tickets in (self._latest, self._kept):
            ticket = tickets.pop(key, None)
            if ticket is not None:
                ticket.stop()

    async def debounce(self, ticket: Ticket, delay_s: float) -> None:
        """Wait ``delay_s``; raise :class:`Superseded` if a newer request came meanwhile."""
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if not ticket.live:
            raise Superseded

    async def run(self, ticket: Ticket, job: Callable[[threading.Event], T]) -> T:
        """Run ``job(stop_flag)`` on the model worker.

        If the awaiting task is cancelled ($/cancelRequest), the stop flag is set so that the
        worker stops too, instead of finishing a result nobody will see.
        """
        future = self._submit(lambda: job(ticket.cancel))
        ticket.running = future
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            ticket.stop()
            raise

    async def run_exclusive(self, job: Callable[[], T]) -> T:
        """Run a non-generation job (model load) on the same worker, in turn."""
        return await self._submit(job)

    def release(self, ticket: Ticket) -> None:
        """The request of ``ticket`` is over (its answer, if any, is stored)."""
        ticket.released.set()
        if self._latest.get(ticket.key) is ticket:
            del self._latest[ticket.key]

    def shutdown(self) -> None:
        for ticket in [*self._latest.values(), *self._kept.values()]:
            ticket.stop()
        self._worker.shutdown(wait=False, cancel_futures=True)
