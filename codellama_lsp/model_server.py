"""``codellama-lsp serve``: one loaded model shared by every editor on a machine (or a team).

A 70B model takes minutes and tens of GB to load, so it must not be loaded once per editor
window. This aiohttp server loads it once with :class:`~codellama_lsp.engines.local.LocalEngine`
(same chunked prefill, stop flag and KV prefix slots as in-process) and speaks the OpenAI
completions API, so the language server's HTTP engine, curl, or any OpenAI client can use it.

One worker thread runs the model; requests wait in a :class:`FairQueue` (round-robin over
sessions, FIFO within one), so a client with many queued requests cannot starve the others.
Each request owns a stop flag: a client that disconnects or closes its stream sets it, and
the generation stops within one decode step or prefill chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import hmac
import ipaddress
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from aiohttp import web
from pydantic import ValidationError

from codellama_lsp import __version__
from codellama_lsp.api_schema import Body, CompletionBody, ScoreBody, ScoreParameters, first_error
from codellama_lsp.config import Settings
from codellama_lsp.memory import bound_helper_threads

if TYPE_CHECKING:
    from codellama_lsp.engines.base import GenerationRequest, GenerationResult
    from codellama_lsp.engines.local import LocalEngine

log = logging.getLogger(__name__)
BodyT = TypeVar("BodyT", bound=Body)

SESSION_HEADER = "X-Codellama-Session"
ENDPOINTS = ("/v1/completions", "/v1/models", "/score", "/health", "/metrics")
DEFAULT_PORT = 8765
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FIM_TEXT = re.compile(r"\A<PRE> (.*) <SUF>(.*) <MID>\Z", re.DOTALL)
"""Code Llama's infilling prompt written as text, for clients that cannot send token ids."""


@dataclass(frozen=True)
class Limits:
    """What one request may ask for: a shared server must not be tied up by one client."""

    max_body_bytes: int = 1 << 20
    max_tokens: int = 1024
    max_prompt_tokens: int = 0
    """0: the model's context limit."""
    max_stop_sequences: int = 16
    max_streams_per_client: int = 4
    """Generating requests in flight per client address; more get 429."""


class ApiError(Exception):
    """An error answered as OpenAI-style JSON with an HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


def error_response(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    body = {"error": {"message": message, "type": kind, "code": status}}
    return web.json_response(body, status=status)


# --- metrics -------------------------------------------------------------------------------
class Histogram:
    """A Prometheus histogram with fixed buckets."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.count = 0
        self.max = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1
        self.max = max(self.max, value)

    def render(self, name: str) -> list[str]:
        lines, running = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            running += count
            lines.append(f'{name}_bucket{{le="{bound}"}} {running}')
        lines.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{name}_sum {self.total:.6f}")
        lines.append(f"{name}_count {self.count}")
        return lines


class Metrics:
    """Counters, gauges and histograms, rendered in Prometheus text format (no extra deps)."""

    COUNTERS: ClassVar[dict[str, str]] = {
        "requests": "HTTP requests answered, by endpoint and status",
        "generations": "generations finished, by finish reason",
        "prompt_tokens": "prompt tokens received",
        "reused_prompt_tokens": "prompt tokens served from a KV prefix slot",
        "generated_tokens": "tokens generated (cancelled generations included)",
        "cancellations": "generations stopped because the client disconnected or closed the stream",
        "model_loads": "times the model was loaded",
        "rejected_requests": "requests refused before running (reason label)",
    }
    HISTOGRAMS: ClassVar[dict[str, str]] = {
        "request_duration_seconds": "completion request latency, arrival to last token",
        "queue_wait_seconds": "time a generation waited for the model worker",
        "cancel_stop_seconds": "time from a client's disconnect to its generation stopping",
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, dict[tuple[tuple[str, str], ...], float]] = {
            name: {} for name in self.COUNTERS
        }
        self.histograms = {name: Histogram() for name in self.HISTOGRAMS}
        self.gauges: dict[str, Callable[[], float]] = {}

    def add(self, name: str, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self.counters[name]
            series[key] = series.get(key, 0) + amount

    def observe(self, name: str, seconds: float) -> None:
        with self._lock:
            self.histograms[name].observe(seconds)

    def total(self, name: str, **labels: str) -> float:
        with self._lock:
            return sum(
                v
                for k, v in self.counters[name].items()
                if all(item in k for item in labels.items())
            )

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for name, help_text in self.COUNTERS.items():
                full = f"codellama_{name}_total"
                lines += [f"# HELP {full} {help_text}", f"# TYPE {full} counter"]
                series = self.counters[name] or {(): 0}
                for key, value in sorted(series.items()):
                    labels = ",".join(f'{k}="{v}"' for k, v in key)
                    lines.append(f"{full}{{{labels}}} {value:g}" if labels else f"{full} {value:g}")
            for name, help_text in self.HISTOGRAMS.items():
                full = f"codellama_{name}"
                lines += [f"# HELP {full} {help_text}", f"# TYPE {full} histogram"]
                lines += self.histograms[name].render(full)
        for name, read in self.gauges.items():
            lines += [f"# TYPE codellama_{name} gauge", f"codellama_{name} {read():g}"]
        return "\n".join(lines) + "\n"


# --- the model worker ----------------------------------------------------------------------
@dataclass
class Job:
    """One generation: built on the event loop, run on the worker, answered back on the loop."""

    client: str
    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[GenerationResult]
    on_text: Callable[[str], None] | None = None
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
        metrics.gauges["queue_length"] = lambda: float(len(self.queue))
        metrics.gauges["active_generations"] = lambda: float(self.active)
        metrics.gauges["model_ready"] = lambda: 1.0 if self.state == "ready" else 0.0

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
            self.metrics.add("model_loads")
            self.state, self.message = "ready", f"{self.settings.model} ready"
            log.info("model %s ready in %.1f s", self.settings.model, self.load_seconds)
        while (job := self.queue.get()) is not None:
            self._execute(job)

    def _execute(self, job: Job) -> None:
        from codellama_lsp.engines.base import GenerationResult

        self.metrics.observe("queue_wait_seconds", time.perf_counter() - job.enqueued)
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
            self.metrics.add("cancellations")
            if job.cancelled_at is not None:
                self.metrics.observe("cancel_stop_seconds", time.perf_counter() - job.cancelled_at)
        self.metrics.add("generations", finish_reason=result.finish_reason)
        self.metrics.add("prompt_tokens", result.prompt_tokens)
        self.metrics.add("reused_prompt_tokens", result.reused_prompt_tokens)
        self.metrics.add("generated_tokens", result.generated_tokens)
        job.loop.call_soon_threadsafe(_resolve, job, result)


# --- request parsing -----------------------------------------------------------------------
class TextStream:
    """Turns "the text so far" (called after every token) into deltas safe to send.

    Holds back a trailing partial UTF-8 character and any tail that could still become a stop
    sequence, so a streaming client never sees text the final answer will not contain.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.sent = ""

    def _safe(self, text: str) -> str:
        text = text.rstrip("\ufffd")
        hold = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), 0, -1):
                if text.endswith(stop[:n]):
                    hold = max(hold, n)
                    break
        return text[: len(text) - hold]

    def push(self, text: str) -> str:
        return self._delta(self._safe(text))

    def finish(self, text: str) -> str:
        return self._delta(text)

    def _delta(self, text: str) -> str:
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta


def _prompt_ids(engine: LocalEngine, prompt: Any, suffix: Any) -> list[int]:
    """Token ids from a text prompt (optionally FIM via ``suffix`` or ``<PRE>…<MID>`` text)."""
    tokens = engine.tokens
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        prompt = prompt[0]  # a batch of one
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(i, int) and not isinstance(i, bool) for i in prompt):
            raise ApiError(400, "'prompt' must be a string or a list of token ids (one prompt)")
        bad = [i for i in prompt if not 0 <= i < tokens.vocab_size]
        if bad:
            raise ApiError(400, f"token id {bad[0]} is outside the vocabulary")
        return list(prompt)
    if not isinstance(prompt, str):
        raise ApiError(400, "'prompt' must be a string or a list of token ids (one prompt)")
    if suffix is not None and not isinstance(suffix, str):
        raise ApiError(400, "'suffix' must be a string")
    fim = FIM_TEXT.match(prompt) if suffix is None else None
    if suffix is not None or fim is not None:
        if tokens.infill is None:
            raise ApiError(400, "this model cannot infill ('suffix' / <PRE> prompts)")
        prefix, after = (prompt, str(suffix)) if fim is None else fim.groups()
        return tokens.fim_ids(prefix, after)
    bos = [tokens.bos_id] if tokens.bos_id is not None else []
    return bos + tokens.encode(prompt)


# --- the HTTP application ------------------------------------------------------------------
class ModelServer:
    """The aiohttp handlers around one :class:`ModelWorker`."""

    def __init__(self, settings: Settings, *, api_key: str = "", limits: Limits | None = None):
        self.settings = settings
        self.api_key = api_key
        self.limits = limits or Limits()
        self.metrics = Metrics()
        self.worker = ModelWorker(settings, self.metrics)
        self.started = time.time()
        self._in_flight: dict[str, int] = {}
        self._longest_piece: int | None = None

    # --- plumbing ------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.limits.max_body_bytes,
            middlewares=[self._errors, self._auth],
        )
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/score", self.score)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics_text)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        self.worker.start()

    async def _on_cleanup(self, app: web.Application) -> None:
        self.worker.stop()

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        endpoint = request.path if request.path in ENDPOINTS else "other"
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_response(exc.status, exc.message, exc.kind)
        except web.HTTPRequestEntityTooLarge:
            response = error_response(
                413, f"request body is larger than {self.limits.max_body_bytes} bytes"
            )
        except web.HTTPException as exc:
            response = error_response(exc.status, exc.reason)
        self.metrics.add("requests", endpoint=endpoint, status=str(response.status))
        return response

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.api_key and request.path != "/health":
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            # Header bytes that are not UTF-8 arrive as surrogates: compare them as bytes.
            ok = scheme.lower() == "bearer" and hmac.compare_digest(
                token.strip().encode("utf-8", "surrogateescape"), self.api_key.encode()
            )
            if not ok:
                response = error_response(401, "missing or wrong API key", "authentication_error")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
        return await handler(request)

    async def _json(self, request: web.Request) -> dict[str, Any]:
        if (
            request.content_length is not None
            and request.content_length > self.limits.max_body_bytes
        ):
            raise ApiError(413, f"request body is larger than {self.limits.max_body_bytes} bytes")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, f"request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise ApiError(400, "request body is nested too deeply") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body

    async def _body(self, request: web.Request, kind: type[BodyT]) -> BodyT:
        """The request's JSON body validated as ``kind``; any mismatch is a 400."""
        try:
            return kind.model_validate(await self._json(request))
        except ValidationError as exc:
            raise ApiError(400, first_error(exc)) from None
        except RecursionError:
            raise ApiError(400, "request body is nested too deeply") from None

    def _require_ready(self) -> None:
        if self.worker.state == "loading":
            raise ApiError(503, f"model is loading: {self.worker.message}", "server_loading")
        if self.worker.state == "error":
            raise ApiError(503, f"model failed to load: {self.worker.error}", "server_error")

    @property
    def context_limit(self) -> int:
        """Prompt + new tokens: the model's own limit under ``--max-context-tokens``."""
        return min(self.settings.max_context_tokens, self.worker.engine.context_limit)

    def _model_names(self) -> set[str]:
        from codellama_lsp.demo_model import resolve_model

        return {self.settings.model, resolve_model(self.settings.model)}

    async def _generation_request(self, body: CompletionBody, session: str) -> GenerationRequest:
        """Check a validated body against this server's limits and tokenize its prompt.

        The prompt's size is checked in characters first (no token is longer than the
        vocabulary's longest piece), then it is tokenized off the event loop: a megabyte of
        text takes seconds to tokenize, and ``/health`` and every other client must not wait.
        """
        from codellama_lsp.engines.base import GenerationRequest

        if body.model not in (None, "") and body.model not in self._model_names():
            raise ApiError(
                404,
                f"model {body.model!r} is not served here "
                f"(this server serves {self.settings.model!r})",
                "model_not_found",
            )
        if body.echo or body.logprobs:
            raise ApiError(400, "'echo' and 'logprobs' are not supported")
        max_tokens = body.max_tokens
        if max_tokens > self.limits.max_tokens:
            raise ApiError(
                400,
                f"'max_tokens' is {max_tokens}; this server allows at most "
                f"{self.limits.max_tokens}",
            )
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        if len(stop) > self.limits.max_stop_sequences:
            raise ApiError(400, f"at most {self.limits.max_stop_sequences} stop sequences")
        engine = self.worker.engine
        context_limit = self.context_limit
        limit = self.limits.max_prompt_tokens or context_limit
        budget = min(limit, context_limit - max_tokens)

        def too_long(what: str) -> ApiError:
            return ApiError(
                400,
                f"the prompt has {what} tokens and asks for {max_tokens} more; "
                f"this server allows {limit} prompt tokens and {context_limit} in all",
            )

        fewest = self._fewest_tokens(body.prompt, body.suffix)
        if fewest > budget:
            raise too_long(f"at least {fewest}")
        ids = await asyncio.to_thread(_prompt_ids, engine, body.prompt, body.suffix)
        if len(ids) > budget:
            raise too_long(str(len(ids)))
        temperature = 1.0 if body.temperature is None else body.temperature
        return GenerationRequest(
            prompt_ids=tuple(ids),
            max_new_tokens=max_tokens,
            temperature=temperature if body.do_sample is not False else 0.0,
            top_p=body.top_p or 1.0,
            stop_sequences=tuple(stop),
            session=session,
            seed=body.seed or 0,
        )

    def _fewest_tokens(self, prompt: Any, suffix: str | None) -> int:
        """A cheap lower bound on the prompt's tokens: characters over the longest piece."""
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
            prompt = prompt[0]  # a batch of one
        if isinstance(prompt, list):
            return len(prompt)  # token ids (or a batch, refused when tokenized)
        if self._longest_piece is None:
            vocab = self.worker.engine.tokens.tokenizer.get_vocab()
            self._longest_piece = max(1, *(len(piece) for piece in vocab))
        chars = len(prompt or "") + len(suffix or "")
        return chars // self._longest_piece

    async def _run(self, job: Job) -> GenerationResult:
        """Queue ``job`` and wait; if this handler is cancelled (client gone), stop the job."""
        self.worker.submit(job)
        try:
            return await asyncio.shield(job.done)
        finally:
            if not job.done.done():
                job.stop()

    def _job(self, request: GenerationRequest, client: str) -> Job:
        loop = asyncio.get_running_loop()
        return Job(client, request, loop, loop.create_future())

    # --- endpoints ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _slot(self, request: web.Request) -> Iterator[str]:
        """Count a generating request against its client; more than the limit get 429.

        The client is the peer address: every editor holding the one API key shares the key,
        and the session header is the client's own choice (varying it must not buy more
        concurrency), so both only subdivide an address in the fair queue.
        """
        client = request.remote or "unknown"
        if self._in_flight.get(client, 0) >= self.limits.max_streams_per_client:
            self.metrics.add("rejected_requests", reason="too_many_streams")
            raise ApiError(
                429,
                f"too many requests in flight for this client "
                f"(limit {self.limits.max_streams_per_client})",
                "rate_limit_error",
            )
        self._in_flight[client] = self._in_flight.get(client, 0) + 1
        try:
            yield client
        finally:
            self._in_flight[client] -= 1
            if not self._in_flight[client]:
                del self._in_flight[client]

    async def completions(self, request: web.Request) -> web.StreamResponse:
        """OpenAI ``POST /v1/completions``, at most ``max_streams_per_client`` at once."""
        with self._slot(request) as address:
            return await self._completions(request, address)

    async def _completions(self, request: web.Request, address: str) -> web.StreamResponse:
        """OpenAI ``POST /v1/completions``, streaming (server-sent events) or not."""
        body = await self._body(request, CompletionBody)
        self._require_ready()
        session = request.headers.get(SESSION_HEADER) or body.user or ""
        gen = await self._generation_request(body, session)
        client = f"{address} {session}"
        job = self._job(gen, client)
        started = time.perf_counter()
        created = int(time.time())
        ident = f"cmpl-{uuid.uuid4().hex[:24]}"

        def chunk(text: str, finish: str | None) -> dict[str, Any]:
            return {
                "id": ident,
                "object": "text_completion",
                "created": created,
                "model": self.settings.model,
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish}],
            }

        if not body.stream:
            result = await self._run(job)
            self._check(result)
            self.metrics.observe("request_duration_seconds", time.perf_counter() - started)
            return web.json_response(
                {**chunk(result.text, _openai_finish(result)), "usage": _usage(result)}
            )

        stream = TextStream(gen.stop_sequences)
        deltas: asyncio.Queue[str | None] = asyncio.Queue()
        job.request = _with_text_hook(gen, lambda text: _push(job, deltas, stream.push(text)))
        # The worker hands deltas over in order, then resolves ``done``: None ends the stream.
        job.done.add_done_callback(lambda _: deltas.put_nowait(None))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        self.worker.submit(job)
        try:
            while (delta := await deltas.get()) is not None:
                await _send(response, chunk(delta, None))
            result = job.done.result()
            if result.finish_reason == "error":
                await _send(response, {"error": {"message": "generation failed", "code": 500}})
            else:
                await _send(response, chunk(stream.finish(result.text), _openai_finish(result)))
                options = body.stream_options
                if options is not None and options.get("include_usage"):
                    await _send(
                        response, {**chunk("", None), "choices": [], "usage": _usage(result)}
                    )
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:
            return response  # the client closed the stream (its job is stopped below)
        finally:
            # Client gone (disconnect cancels this handler) or stream closed: stop its job now.
            if not job.done.done():
                job.stop()
        self.metrics.observe("request_duration_seconds", time.perf_counter() - started)
        return response

    def _check(self, result: GenerationResult) -> None:
        if result.finish_reason == "error":
            raise ApiError(500, "generation failed (see the server log)", "server_error")

    async def models(self, request: web.Request) -> web.Response:
        data: dict[str, Any] = {
            "id": self.settings.model,
            "object": "model",
            "created": int(self.started),
            "owned_by": "codellama-lsp",
        }
        if self.worker.state == "ready":
            data["max_model_len"] = self.context_limit
        return web.json_response({"object": "list", "data": [data]})

    async def score(self, request: web.Request) -> web.Response:
        """The model card's request shape: ``{"input_data": {"input_string": [...], ...}}``.

        Answers ``[{"0": prompt + completion, "1": ...}]`` like the card's sample output.
        """
        with self._slot(request) as address:
            body = await self._body(request, ScoreBody)
            self._require_ready()
            data = body.input_data
            inputs = (
                [data.input_string] if isinstance(data.input_string, str) else data.input_string
            )
            params = data.parameters or ScoreParameters()
            answers: dict[str, str] = {}
            for index, text in enumerate(inputs):
                completion = CompletionBody(
                    prompt=text,
                    max_tokens=params.max_new_tokens,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    do_sample=params.do_sample,
                )
                gen = await self._generation_request(completion, f"score:{address}")
                result = await self._run(self._job(gen, f"{address} score"))
                self._check(result)
                answers[str(index)] = text + result.text
        return web.json_response([answers])

    async def health(self, request: web.Request) -> web.Response:
        w = self.worker
        status = {"loading": "loading", "ready": "ready", "error": "error"}[w.state]
        body = {
            "status": status,
            "model": self.settings.model,
            "message": w.error or w.message,
            "progress": w.percent,
            "load_seconds": w.load_seconds,
            "loads": w.loads,
            "queue_length": len(w.queue),
            "version": __version__,
        }
        return web.json_response(body, status=200 if status == "ready" else 503)

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")


def _with_text_hook(gen: GenerationRequest, hook: Callable[[str], None]) -> GenerationRequest:
    """Reuse ``is_done`` (called with the text after every token) as the streaming hook."""
    from dataclasses import replace

    def is_done(text: str) -> bool:
        hook(text)
        return False

    return replace(gen, is_done=is_done)


def _push(job: Job, deltas: asyncio.Queue[str | None], delta: str) -> None:
    if delta:
        job.loop.call_soon_threadsafe(deltas.put_nowait, delta)


async def _send(response: web.StreamResponse, data: dict[str, Any]) -> None:
    await response.write(f"data: {json.dumps(data)}\n\n".encode())


def _openai_finish(result: GenerationResult) -> str:
    return "length" if result.finish_reason == "length" else "stop"


def _usage(result: GenerationResult) -> dict[str, Any]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.generated_tokens,
        "total_tokens": result.prompt_tokens + result.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": result.reused_prompt_tokens},
    }


# --- command line --------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_main(argv: Sequence[str]) -> int:
    from codellama_lsp.cli import add_setting_flags, configure_logging, settings_from

    parser = argparse.ArgumentParser(
        prog="codellama-lsp serve",
        description="Load the model once and serve every editor over an OpenAI-compatible "
        "HTTP API (/v1/completions, /v1/models, /score, /health, /metrics).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 = any free port")
    limits = Limits()
    parser.add_argument("--max-body-bytes", type=int, default=limits.max_body_bytes)
    parser.add_argument("--max-tokens-limit", type=int, default=limits.max_tokens)
    parser.add_argument(
        "--max-prompt-tokens", type=int, default=0, help="0 = the model's context limit"
    )
    parser.add_argument(
        "--max-streams-per-client",
        type=int,
        default=limits.max_streams_per_client,
        help="generating requests in flight per client address (editors on one host share it)",
    )
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    settings = settings_from(args)
    api_key = settings.api_key  # --api-key KEY or CODELLAMA_LSP_API_KEY
    configure_logging(settings.log_level)
    if not is_loopback(args.host) and not api_key:
        print(
            f"codellama-lsp serve: refusing to listen on {args.host} without an API key: "
            "anyone who can reach it could use the model. Pass --api-key KEY (or set "
            "CODELLAMA_LSP_API_KEY), or bind 127.0.0.1.",
            flush=True,
        )
        return 2
    server = ModelServer(
        settings,
        api_key=api_key,
        limits=Limits(
            max_body_bytes=args.max_body_bytes,
            max_tokens=args.max_tokens_limit,
            max_prompt_tokens=args.max_prompt_tokens,
            max_streams_per_client=args.max_streams_per_client,
        ),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server, args.host, args.port))
    return 0


async def _serve(server: ModelServer, host: str, port: int) -> None:
    bound_helper_threads(asyncio.get_running_loop())  # tokenizing prompts (issue 17)
    # handler_cancellation: a client that disconnects cancels its handler, which stops its job.
    runner = web.AppRunner(server.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    shown = f"[{host}]" if ":" in host else host
    print(f"codellama-lsp serve: listening on http://{shown}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
