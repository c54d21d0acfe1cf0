"""Loading the engine the settings ask for, off the event loop, with progress.

The engine is made on a thread (``auto`` probes the model server over HTTP) and loaded on
the model worker, so ``didChange`` and ``$/cancelRequest`` are read while a model loads.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

from codellama_lsp.completion.scheduler import Scheduler
from codellama_lsp.config import Settings
from codellama_lsp.engines.base import Engine, EngineLoadError, ProgressCallback
from codellama_lsp.engines.factory import create_engine
from codellama_lsp.memory import malloc_trim

log = logging.getLogger(__name__)

REPORT_EVERY_S = 0.2


def release_memory() -> None:
    """Collect reference cycles and hand freed heap pages back to the OS (glibc only)."""
    gc.collect()
    malloc_trim()


def on_event_loop(report: ProgressCallback) -> ProgressCallback:
    """``report`` for the worker thread: handed to the event loop, at most every 0.2 s."""
    loop = asyncio.get_running_loop()
    last_sent = [0.0]

    def send(message: str, percent: int) -> None:
        now = time.monotonic()
        if now - last_sent[0] < REPORT_EVERY_S and percent < 100:
            return
        last_sent[0] = now
        loop.call_soon_threadsafe(report, message, percent)

    return send


async def load_engine(
    settings: Settings,
    scheduler: Scheduler,
    report: ProgressCallback,
    prepare: Callable[[Engine], None] = lambda _engine: None,
) -> tuple[Engine, float]:
    """The loaded engine and the seconds its load took; ``prepare`` runs before the load.

    Raises :class:`EngineLoadError` with the message for the user.
    """
    engine = await asyncio.to_thread(create_engine, settings)
    prepare(engine)
    send = on_event_loop(report)
    started = time.perf_counter()
    failure = ""
    try:
        await scheduler.run_exclusive(lambda: engine.load(send))
    except EngineLoadError as exc:
        failure = str(exc)
    except Exception as exc:
        log.exception("model load failed")
        failure = f"Could not load {settings.model}: {exc}"
    if failure:
        # Outside the except block: the traceback's frames hold the half-loaded weights in
        # reference cycles; free them now (after an out-of-memory load the server needs
        # that memory to go on answering).
        del engine
        release_memory()
        raise EngineLoadError(failure)
    return engine, round(time.perf_counter() - started, 3)
