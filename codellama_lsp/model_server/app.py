"""The HTTP application: OpenAI's ``/v1/completions`` and ``/v1/models``, ``/score``,
``/health`` and ``/metrics`` around one :class:`~codellama_lsp.model_server.worker.ModelWorker`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError

from codellama_lsp import __version__
from codellama_lsp.config import Settings
from codellama_lsp.engines.http_api import SESSION_HEADER
from codellama_lsp.model_server.admission import Limits, StreamsPerClient
from codellama_lsp.model_server.api_schema import (
    Body,
    CompletionBody,
    ScoreBody,
    ScoreParameters,
    first_error,
)
from codellama_lsp.model_server.auth import api_key_middleware
from codellama_lsp.model_server.errors import ApiError, error_response
from codellama_lsp.model_server.metrics import Metrics
from codellama_lsp.model_server.prompts import fewest_tokens, longest_piece, prompt_ids
from codellama_lsp.model_server.streaming import (
    TextStream,
    hand_over,
    openai_finish,
    send_event,
    usage,
    with_text_hook,
)
from codellama_lsp.model_server.worker import Job, ModelWorker

if TYPE_CHECKING:
    from codellama_lsp.engines.base import GenerationRequest, GenerationResult

BodyT = TypeVar("BodyT", bound=Body)

ENDPOINTS = ("/v1/completions", "/v1/models", "/score", "/health", "/metrics")


class ModelServer:
    """The aiohttp handlers around one :class:`ModelWorker`."""

    def __init__(self, settings: Settings, *, api_key: str = "", limits: Limits | None = None):
        self.settings = settings
        self.api_key = api_key
        self.limits = limits or Limits()
        self.metrics = Metrics()
        self.worker = ModelWorker(settings, self.metrics)
        self.started = time.time()
        self.streams = StreamsPerClient(
            self.limits.max_streams_per_client,
            self.metrics.rejected_requests.labels(reason="too_many_streams").inc,
        )
        self._longest_piece: int | None = None

    # --- plumbing ------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.limits.max_body_bytes,
            middlewares=[self._errors, api_key_middleware(self.api_key)],
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
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
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
        self.metrics.requests.labels(endpoint=endpoint, status=str(response.status)).inc()
        return response

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
        from codellama_lsp.engines.model_names import resolve_model

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
        ids = await asyncio.to_thread(prompt_ids, engine, body.prompt, body.suffix)
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
        if self._longest_piece is None:
            self._longest_piece = longest_piece(self.worker.engine)
        return fewest_tokens(prompt, suffix, self._longest_piece)

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
    async def completions(self, request: web.Request) -> web.StreamResponse:
        """OpenAI ``POST /v1/completions``, at most ``max_streams_per_client`` at once."""
        with self.streams.slot(request.remote or "unknown") as address:
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
            self.metrics.request_duration.observe(time.perf_counter() - started)
            return web.json_response(
                {**chunk(result.text, openai_finish(result)), "usage": usage(result)}
            )

        response = await self._stream(request, body, job, chunk)
        self.metrics.request_duration.observe(time.perf_counter() - started)
        return response

    async def _stream(
        self,
        request: web.Request,
        body: CompletionBody,
        job: Job,
        chunk: Callable[[str, str | None], dict[str, Any]],
    ) -> web.StreamResponse:
        """The completion as server-sent events, delta by delta as the worker makes them."""
        gen = job.request
        stream = TextStream(gen.stop_sequences)
        deltas: asyncio.Queue[str | None] = asyncio.Queue()
        job.request = with_text_hook(
            gen, lambda text: hand_over(job.loop, deltas, stream.push(text))
        )
        # The worker hands deltas over in order, then resolves ``done``: None ends the stream.
        job.done.add_done_callback(lambda _: deltas.put_nowait(None))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        self.worker.submit(job)
        try:
            while (delta := await deltas.get()) is not None:
                await send_event(response, chunk(delta, None))
            result = job.done.result()
            if result.finish_reason == "error":
                await send_event(response, {"error": {"message": "generation failed", "code": 500}})
            else:
                await send_event(response, chunk(stream.finish(result.text), openai_finish(result)))
                options = body.stream_options
                if options is not None and options.get("include_usage"):
                    await send_event(
                        response, {**chunk("", None), "choices": [], "usage": usage(result)}
                    )
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:
            return response  # the client closed the stream (its job is stopped below)
        finally:
            # Client gone (disconnect cancels this handler) or stream closed: stop its job now.
            if not job.done.done():
                job.stop()
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
        with self.streams.slot(request.remote or "unknown") as address:
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
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
