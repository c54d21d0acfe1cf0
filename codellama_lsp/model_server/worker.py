"""The model worker: one thread owns the model and runs queued generations one at a time.

Requests wait in a :class:`FairQueue` (round-robin over clients, FIFO within one), so a client
with many queued requests cannot starve the others. Each job owns a stop flag: a client that
disconnects or closes its stream sets it, and the generation stops within one decode step or
prefill chunk.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from codellama_lsp.config import Settings
from codellama_lsp.model_server.metrics import Metrics

if TYPE_CHECKING:
    from codellama_lsp.engines.base import GenerationRequest, GenerationResult
    from codellama_lsp.engines.local import LocalEngine

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One generation: built on the event loop, run on the worker, answered back on the loop."""

    client: str
    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[GenerationResult]
    cancel: threading.Event = field(default_factory=threading.Event)
    enqueued: float = field(default_factory=time.perf_counter)
    cancelled_at: float | None = None

    def stop(self) -> None:
        """The client is gone: stop generating for it (idempotent, any thread)."""
        if not self.cancel.is_set():
            self.cancelled_at = time.perf_counter()
            self.cancel.set()


class FairQueue:
    """Round-robin over clients, FIFO within a client; ``get`` blocks on the worker thread."""

    def __init__(self) -> None:
        self._queues: OrderedDict[str, deque[Job]] = OrderedDict()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, job: Job) -> None:
        with self._cond:
            self._queues.setdefault(job.client, deque()).append(job)
            self._cond.notify()

    def get(self) -> Job | None:
        with self._cond:
            while not self._queues and not self._closed:
                self._cond.wait()
            if not self._queues:
                return None
            client, jobs = self._queues.popitem(last=False)
            job = jobs.popleft()
            if jobs:
                self._queues[client] = jobs  # back of the line: the next client goes first
            return job

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())


def _resolve(job: Job, result: GenerationResult) -> None:
    if not job.done.done():
        job.done.set_result(result)


class ModelWorker:
    """Owns the model: loads it once, then runs queued jobs one at a time on its own thread."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        from codellama_lsp.engines.local import LocalEngine

        self.settings = settings
        self.metrics = metrics
        self.engine: LocalEngine = LocalEngine(settings)
        self.queue = FairQueue()
        self.state = "loading"
        self.message = "Starting"
        self.percent = 0
        self.error = ""
        self.loads = 0
        self.load_seconds: float | None = None
        self.active = 0
        self._thread = threading.Thread(target=self._run, name="codellama-model", daemon=True)
        metrics.gauge("queue_length", "generations waiting for the model", lambda: len(self.queue))
        metrics.gauge("active_generations", "generations running now", lambda: self.active)
        metrics.gauge(
            "model_ready", "1 when the model is loaded", lambda: float(self.state == "ready")
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.queue.close()

    def submit(self, job: Job) -> None:
        self.queue.put(job)

    def _progress(self, message: str, percent: int) -> None:
        self.message, self.percent = message, percent
        log.info("%s (%d%%)", message, percent)

    def _run(self) -> None:
        from codellama_lsp.engines.base import EngineLoadError

        started = time.perf_counter()
        try:
            self.engine.load(self._progress)
        except EngineLoadError as exc:
            self.state, self.error = "error", str(exc)
            log.error("%s", exc)
        except Exception as exc:
            log.exception("model load failed")
            self.state, self.error = "error", f"Could not load {self.settings.model}: {exc}"
        else:
            self.load_seconds = round(time.perf_counter() - started, 3)
            self.loads += 1
            self.metrics.model_loads.inc()
            self.state, self.message = "ready", f"{self.settings.model} ready"
            log.info("model %s ready in %.1f s", self.settings.model, self.load_seconds)
        while (job := self.queue.get()) is not None:
            self._execute(job)

    def _execute(self, job: Job) -> None:
        from codellama_lsp.engines.base import GenerationResult

        metrics = self.metrics
        metrics.queue_wait.observe(time.perf_counter() - job.enqueued)
        if self.state != "ready":
            result = GenerationResult("", "error")
        elif job.cancel.is_set():
            result = GenerationResult("", "cancelled")
        else:
            self.active += 1
            try:
                result = self.engine.generate(job.request, job.cancel)
            except Exception:
                log.exception("generation failed")
                result = GenerationResult("", "error")
            finally:
                self.active -= 1
        if result.cancelled:
            metrics.cancellations.inc()
            if job.cancelled_at is not None:
                metrics.cancel_stop.observe(time.perf_counter() - job.cancelled_at)
        metrics.generations.labels(finish_reason=result.finish_reason).inc()
        metrics.prompt_tokens.inc(result.prompt_tokens)
        metrics.reused_prompt_tokens.inc(result.reused_prompt_tokens)
        metrics.generated_tokens.inc(result.generated_tokens)
        job.loop.call_soon_threadsafe(_resolve, job, result)
