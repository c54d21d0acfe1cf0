"""Who gets the model, and when: debounce, newest-wins per document, one worker.

Each request takes a :class:`Ticket` for its document. A newer ticket for the same document
supersedes the older one at once: its stop flag is set, so a generation in flight stops within
one decode step or prefill chunk, and a request still waiting in its debounce never reaches
the model. Clients need not send ``$/cancelRequest`` (Neovim does not while typing).

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
from typing import TypeVar

T = TypeVar("T")


class Superseded(Exception):
    """A newer request for the same document took over."""


@dataclass
class Ticket:
    key: str
    number: int
    cancel: threading.Event = field(default_factory=threading.Event)
    superseded: bool = False
    cancelled_at: float | None = None
    """``time.perf_counter()`` when the stop flag was first set (for cancel → idle times)."""

    @property
    def live(self) -> bool:
        return not self.cancel.is_set()

    def stop(self) -> None:
        if self.cancelled_at is None:
            self.cancelled_at = time.perf_counter()
        self.cancel.set()


class Scheduler:
    def __init__(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codellama-model")
        self._latest: dict[str, Ticket] = {}
        self._numbers = itertools.count(1)
        self._jobs = 0
        self.on_superseded: Callable[[Ticket], None] | None = None
        self.supersede = True
        """False: a newer ticket leaves the older ones running (the benchmarks' baseline)."""

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

    def ticket(self, key: str) -> Ticket:
        """A new ticket for ``key``; the previous one (if any) is superseded now."""
        ticket = Ticket(key, next(self._numbers))
        previous = self._latest.get(key)
        self._latest[key] = ticket
        if self.supersede and previous is not None and previous.live:
            previous.superseded = True
            previous.stop()
            if self.on_superseded is not None:
                self.on_superseded(previous)
        return ticket

    def busy(self, key: str) -> bool:
        """A live request for ``key`` is waiting or running."""
        ticket = self._latest.get(key)
        return ticket is not None and ticket.live

    def is_latest(self, ticket: Ticket) -> bool:
        return self._latest.get(ticket.key) is ticket

    def cancel_key(self, key: str) -> None:
        """Stop whatever runs for ``key`` (document closed)."""
        ticket = self._latest.pop(key, None)
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
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            ticket.stop()
            raise

    async def run_exclusive(self, job: Callable[[], T]) -> T:
        """Run a non-generation job (model load) on the same worker, in turn."""
        return await self._submit(job)

    def release(self, ticket: Ticket) -> None:
        if self._latest.get(ticket.key) is ticket:
            del self._latest[ticket.key]

    def shutdown(self) -> None:
        for ticket in self._latest.values():
            ticket.stop()
        self._worker.shutdown(wait=False, cancel_futures=True)
