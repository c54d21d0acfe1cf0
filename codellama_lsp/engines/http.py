"""The HTTP engine: completions from a model server that is already loaded.

Works with any OpenAI-compatible ``/v1/completions``: ``codellama-lsp serve``, vLLM, TGI,
llama-cpp-python's server; and with llama.cpp's own ``llama-server`` in its native dialect
(``/completion``, :mod:`~.engines.llama_server`), recognised by its ``/props`` or chosen with
``server_api``. It runs on the language server's model worker thread, so it is blocking and uses
the standard library's ``http.client``: no event loop, no extra dependency.

* Prompts are built here with the model's own tokenizer (same prompt as in-process) and sent as
  token ids, which ``codellama-lsp serve``, vLLM and llama.cpp's ``llama-server`` accept. A
  server that rejects ids (TGI, llama-cpp-python's server) gets text instead (FIM as
  ``<PRE> prefix <SUF>suffix <MID>``), decided once, when a refused request works as text. A
  left-to-right prompt as text tokenizes back to the same ids; FIM text needs a server that
  reads those markers (ours and TGI do, llama-cpp-python does not: ``prompt_format = prefix``).
* Streaming: text arrives token by token; the stop checks (:mod:`~.engines.stops`) are applied here.
  Cancelling (the stop flag) closes the connection at once, which is how the server learns to
  stop generating (ours stops within one decode step).
* A server that is down or dies mid-request gives an empty result; the engine reports the
  change through ``on_connection_change`` and simply tries again on the next request, so it
  reconnects by itself when the server is back.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import (
    UNKNOWN_CONTEXT_LIMIT,
    ConnectionListener,
    EngineLoadError,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from codellama_lsp.engines.http_api import SESSION_HEADER
from codellama_lsp.engines.llama_server import (
    COMPLETION_PATH,
    TOKENIZER_PROBE,
    ServerAnswerError,
    TokenStream,
    completion_body,
    context_of,
    health_state,
    is_llama_server,
)
from codellama_lsp.engines.stops import stopped_text
from codellama_lsp.engines.tokenization import CodeTokens

log = logging.getLogger(__name__)


IDS_REFUSED = (400, 422, 500)
"""How servers answer a token-id prompt they do not take: TGI 422, llama-cpp-python 500 (its
request-validation error). Such an answer is tried again as text, and text is kept if it works."""


class ServerError(Exception):
    """The server answered, but not with a completion."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Endpoint:
    """Where the server is: ``http(s)://host:port[/prefix]`` (a trailing ``/v1`` is dropped)."""

    scheme: str
    host: str
    port: int
    prefix: str
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, url: str, api_key: str = "") -> Endpoint:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise EngineLoadError(f"codellama-lsp: server_url {url!r} is not an http(s) URL")
        prefix = parts.path.rstrip("/")
        prefix = prefix.removesuffix("/v1")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        return cls(parts.scheme, parts.hostname, port, prefix, headers)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.prefix}"

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.host, self.port, timeout=timeout)

    def get(self, path: str, timeout: float) -> tuple[int, Any]:
        """GET ``path``; the status and the JSON body (None when it is not JSON)."""
        conn = self.connect(timeout)
        try:
            conn.request("GET", self.prefix + path, headers=self.headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, None

    def post(self, path: str, body: Any, timeout: float) -> tuple[int, Any]:
        """POST ``body`` as JSON to ``path``; the status and the JSON body (None if not JSON)."""
        conn = self.connect(timeout)
        try:
            headers = {**self.headers, "Content-Type": "application/json"}
            conn.request("POST", self.prefix + path, json.dumps(body).encode(), headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw)
        except ValueError:
            return response.status, None


def probe(settings: Settings, timeout: float = 0.3) -> bool:
    """True when a model server for ``settings.model`` answers at ``server_url`` right now.

    Used by ``backend = "auto"``: a server serving another model is not used (its tokenizer
    would not match the prompts we build).
    """
    try:
        status, body = Endpoint.parse(settings.server_url, settings.api_key).get("/health", timeout)
    except (OSError, http.client.HTTPException, EngineLoadError):
        return False
    if health_state(status, body) is not None:
        return True  # llama-server: one model, whose name it does not say here
    if not isinstance(body, dict) or body.get("status") not in ("ready", "loading"):
        return False
    served = body.get("model")
    wanted = settings.http_model_name or settings.model
    return served in (None, wanted)


class _CloseOnCancel:
    """Shuts the connection's socket the moment the stop flag is set.

    ``http.client`` blocks in a read while the server generates; closing the socket from here
    wakes it and tells the server to stop. The thread ends within 50 ms after the request.
    """

    def __init__(self, conn: http.client.HTTPConnection, cancel: threading.Event) -> None:
        self._conn = conn
        self._cancel = cancel
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="codellama-http-cancel")
        self._thread.daemon = True
        self._thread.start()

    def _watch(self) -> None:
        while not self._finished.is_set():
            if self._cancel.wait(0.05):
                sock = self._conn.sock
                if sock is not None and not self._finished.is_set():
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return

    def finish(self) -> None:
        self._finished.set()


class HttpEngine:
    """An :class:`~codellama_lsp.engines.base.Engine` backed by a remote model server."""

    def __init__(
        self,
        settings: Settings,
        *,
        connect_wait_s: float = 10.0,
        load_wait_s: float = 3600.0,
        read_timeout_s: float = 300.0,
    ) -> None:
        self.settings = settings
        self.name = settings.model
        self.warning = ""
        self.last_step_seconds = 0.0
        self.endpoint = Endpoint.parse(settings.server_url, settings.api_key)
        self.model_name = settings.http_model_name or settings.model
        self.send_token_ids = True
        self.api = "" if settings.server_api == "auto" else settings.server_api
        """``openai`` or ``llama_cpp`` once known (asked again after the server was lost)."""
        self.connected = True
        self.on_connection_change: ConnectionListener | None = None
        self.connect_wait_s = connect_wait_s
        self.load_wait_s = load_wait_s
        self.read_timeout_s = read_timeout_s
        self._client = uuid.uuid4().hex[:8]
        self._tokens: CodeTokens | None = None
        self._context_limit = UNKNOWN_CONTEXT_LIMIT  # until /v1/models says
        self._closed = threading.Event()

    # --- Engine protocol ---------------------------------------------------------------------
    @property
    def tokens(self) -> CodeTokens:
        if self._tokens is None:
            raise RuntimeError("tokenizer not loaded")
        return self._tokens

    @property
    def reuses_prompts(self) -> bool:
        """llama-server prefills a prompt into its slot's cache when asked for 0 new tokens, so
        the idle-time prefill pays there as in-process; other servers keep their own caches."""
        return self.api == "llama_cpp"

    def cache_stats(self) -> dict[str, int]:
        return {}

    @property
    def context_limit(self) -> int:
        return self._context_limit

    def load(self, progress: ProgressCallback) -> None:
        """Load the tokenizer, then wait until the server reports its model ready."""
        self._load_tokenizer(progress)
        self._wait_until_ready(progress)
        progress("Ready", 100)

    def close(self) -> None:
        self._closed.set()

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> GenerationResult:
        result = GenerationResult("", "length", prompt_tokens=len(request.prompt_ids))
        if cancel.is_set():
            result.finish_reason = "cancelled"
            return result
        try:
            if self._dialect() == "llama_cpp":
                self._stream_llama(request, cancel, result)
            else:
                self._stream_openai(request, cancel, result)
        except (OSError, http.client.HTTPException, ServerError, ValueError) as exc:
            if cancel.is_set():
                return GenerationResult("", "cancelled", prompt_tokens=result.prompt_tokens)
            self._connection(False, self._describe(exc))
            return GenerationResult("", "error", prompt_tokens=result.prompt_tokens)
        self._connection(True, "")
        if result.cancelled:
            result.text = ""
        return result

    def _stream_openai(
        self, request: GenerationRequest, cancel: threading.Event, result: GenerationResult
    ) -> None:
        try:
            self._stream(request, cancel, result)
        except ServerError as exc:
            if not (self.send_token_ids and exc.status in IDS_REFUSED) or cancel.is_set():
                raise
            self._stream_as_text(request, cancel, result, exc)

    def _stream_as_text(
        self,
        request: GenerationRequest,
        cancel: threading.Event,
        result: GenerationResult,
        refusal: ServerError,
    ) -> None:
        """Try a request refused with token ids again as text; keep text if that works."""
        self.send_token_ids = False
        try:
            self._stream(request, cancel, result)
        except ServerError:
            self.send_token_ids = True  # text fails as well: the error was not about ids
            raise
        log.warning(
            "%s refused token ids (HTTP %s: %s); sending text prompts from now on (infill "
            "prompts as '<PRE> … <SUF>… <MID>' text: if this server does not read those "
            "markers, set prompt_format to prefix)",
            self.url,
            refusal.status,
            str(refusal)[:200],
        )

    # --- loading -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.endpoint.url

    def _load_tokenizer(self, progress: ProgressCallback) -> None:
        from codellama_lsp.engines.model_names import resolve_model
        from codellama_lsp.engines.tokenization import load_tokenizer_files

        progress(f"Loading the tokenizer of {self.settings.model}", 5)
        try:
            path = resolve_model(self.settings.model)
            # `tokenizers` alone: an editor that only talks to a model server needs no torch.
            tokenizer = load_tokenizer_files(path, local_files_only=self.settings.local_files_only)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise EngineLoadError(
                f"Could not load the tokenizer of {self.settings.model!r} (needed to build "
                f"prompts for the model server): {exc}"
            ) from exc
        self._tokens = CodeTokens(tokenizer)

    def _wait_until_ready(self, progress: ProgressCallback) -> None:
        started = time.monotonic()
        progress(f"Connecting to the model server at {self.url}", 10)
        while not self._closed.is_set():
            waited = time.monotonic() - started
            try:
                state, message, percent = self._health()
            except (OSError, http.client.HTTPException) as exc:
                if waited > self.connect_wait_s:
                    raise EngineLoadError(
                        f"No model server answers at {self.url} ({exc}). Start one with "
                        f"`codellama-lsp serve --model {self.settings.model}`, or set "
                        "backend to local."
                    ) from exc
                time.sleep(0.25)
                continue
            if state == "ready":
                self._read_model_info()
                return
            if state == "error":
                raise EngineLoadError(f"The model server at {self.url} failed: {message}")
            if waited > self.load_wait_s:
                raise EngineLoadError(f"The model server at {self.url} is still loading")
            progress(f"Model server: {message}", 10 + int(0.85 * percent))
            time.sleep(0.5)
        raise EngineLoadError("loading was cancelled")

    def _health(self) -> tuple[str, str, int]:
        """(ready|loading|error, message, percent) from /health of any server kind."""
        status, body = self.endpoint.get("/health", timeout=5)
        if status == 401:
            raise EngineLoadError(f"The model server at {self.url} rejected the API key")
        if status in (404, 405):  # no /health: ask for the model list instead
            status, body = self.endpoint.get("/v1/models", timeout=5)
            if status != 200:
                raise EngineLoadError(f"{self.url}/v1/models answered HTTP {status}")
            return "ready", "", 100
        llama = health_state(status, body)
        if llama is not None:
            return llama[0], llama[1], 0
        info = body if isinstance(body, dict) else {}
        state = str(info.get("status", "ready" if status == 200 else "loading"))
        if state == "ok":
            state = "ready"  # llama.cpp
        message = str(info.get("message") or info.get("error") or state)
        percent = info.get("progress")
        return state, message, percent if isinstance(percent, int) else 0

    def _read_model_info(self) -> None:
        """Which dialect the server speaks; the context limit from /props (llama-server) or
        /v1/models when the server says it (ours, vLLM)."""
        try:
            self._detect_api()
        except (OSError, http.client.HTTPException):
            return
        if self.api == "llama_cpp":
            return
        try:
            _status, body = self.endpoint.get("/v1/models", timeout=5)
        except (OSError, http.client.HTTPException):
            return
        models = body.get("data") if isinstance(body, dict) else None
        for model in models if isinstance(models, list) else []:
            limit = model.get("max_model_len") if isinstance(model, dict) else None
            if isinstance(limit, int) and limit > 0:
                self._context_limit = limit
            if isinstance(model, dict) and model.get("id") not in (None, self.model_name):
                log.warning("%s serves %s, not %s", self.url, model.get("id"), self.model_name)

    def _dialect(self) -> str:
        if not self.api:
            self._detect_api()
        return self.api

    def _detect_api(self) -> None:
        """``server_api = auto``: llama-server if ``/props`` answers as it does, else OpenAI."""
        if self.settings.server_api == "openai":
            self.api = "openai"
            return
        status, props = self.endpoint.get("/props", timeout=5)
        if status == 200 and is_llama_server(props):
            if self.api != "llama_cpp":
                log.info("%s is llama.cpp's llama-server (%s)", self.url, props.get("build_info"))
            self.api = "llama_cpp"
            self._context_limit = context_of(props) or self._context_limit
            self._check_tokenizer()
        elif self.settings.server_api == "llama_cpp":
            self.api = "llama_cpp"  # as told, even if /props is locked away
        else:
            self.api = "openai"

    def _check_tokenizer(self) -> None:
        """Warn when the server's model tokenizes differently from ours (another model): our
        prompts would not be what it expects."""
        status, body = self.endpoint.post("/tokenize", {"content": TOKENIZER_PROBE}, timeout=5)
        theirs = body.get("tokens") if isinstance(body, dict) else None
        if status != 200 or not isinstance(theirs, list) or self._tokens is None:
            return
        ours = self._tokens.encode(TOKENIZER_PROBE)
        if theirs != ours:
            self.warning = (
                f"The model at {self.url} tokenizes code differently from {self.settings.model}'s "
                "tokenizer: completions will be poor. Serve the same model's GGUF, or set model "
                "to the checkpoint it was converted from."
            )
            log.warning("%s (theirs %s, ours %s)", self.warning, theirs[:12], ours[:12])

    # --- generation ----------------------------------------------------------------------------
    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model_name,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p if request.temperature > 0 else 1.0,
            "stream": True,
        }
        if request.stop_sequences:
            body["stop"] = list(request.stop_sequences)
        if self.send_token_ids:
            body["prompt"] = list(request.prompt_ids)
            body["stream_options"] = {"include_usage": True}
            body["user"] = self._session(request)
            body["seed"] = request.seed
        else:
            body["prompt"] = self.prompt_text(request.prompt_ids)
        return body

    def _session(self, request: GenerationRequest) -> str:
        # Two editors may open the same URI: the client id keeps their KV slots apart.
        return f"{self._client}:{request.session}"

    def prompt_text(self, ids: tuple[int, ...] | list[int]) -> str:
        """The prompt as text for servers that only take text (Code Llama's FIM format)."""
        tokens = self.tokens
        rest = list(ids)
        if rest and rest[0] == tokens.bos_id:
            rest = rest[1:]  # text-only servers add BOS themselves
        fim = tokens.infill
        if fim is not None and rest and rest[0] == fim.prefix_id and rest[-1] == fim.middle_id:
            cut = rest.index(fim.suffix_id)
            prefix = tokens.decode_prompt(rest[1:cut])
            suffix = tokens.decode_continuation(rest[cut + 1 : -1])
            return f"<PRE> {prefix} <SUF>{suffix} <MID>"
        return tokens.decode_prompt(rest)

    def _stream(
        self, request: GenerationRequest, cancel: threading.Event, result: GenerationResult
    ) -> None:
        """POST a streaming completion and fill ``result`` as the text arrives."""
        payload = json.dumps(self._body(request)).encode()
        headers = {
            **self.endpoint.headers,
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
            SESSION_HEADER: self._session(request),
        }
        conn = self.endpoint.connect(self.read_timeout_s)
        watcher = _CloseOnCancel(conn, cancel)
        started = time.perf_counter()
        try:
            conn.request("POST", self.endpoint.prefix + "/v1/completions", payload, headers)
            response = conn.getresponse()
            if response.status != 200:
                raise ServerError(response.status, _error_message(response))
            text, chunks, finished, complete = "", 0, False, False
            for event in _events(response):
                if cancel.is_set():
                    break
                if event is None:
                    complete = True
                    break
                if "error" in event:
                    raise ServerError(500, str(event["error"]))
                _read_usage(event.get("usage"), result)
                choice = (event.get("choices") or [{}])[0]
                piece = choice.get("text") or ""
                if piece:
                    if not chunks:
                        result.prefill_seconds = time.perf_counter() - started
                    text += piece
                    chunks += 1
                    kept = stopped_text(text, request)
                    if kept is not None:
                        text, finished = kept, True
                        result.finish_reason = "stop"
                if choice.get("finish_reason"):
                    result.finish_reason = (
                        "length" if choice["finish_reason"] == "length" else "stop"
                    )
                if finished:
                    break  # closing the stream (below) stops the server's generation
            if not (complete or finished or cancel.is_set()):
                raise ConnectionError("the model server closed the stream mid-answer")
            if cancel.is_set():
                result.finish_reason = "cancelled"
            result.text = text
            result.generated_tokens = result.generated_tokens or chunks
            result.decode_seconds = time.perf_counter() - started - result.prefill_seconds
        finally:
            watcher.finish()
            conn.close()

    def _stream_llama(
        self, request: GenerationRequest, cancel: threading.Event, result: GenerationResult
    ) -> None:
        """POST the token ids to llama-server's ``/completion``; fill ``result`` as they come.

        Ending it early (a stop check, the stop flag) closes the connection, which stops the
        server's generation."""
        payload = json.dumps(completion_body(request)).encode()
        headers = {
            **self.endpoint.headers,
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        }
        conn = self.endpoint.connect(self.read_timeout_s)
        watcher = _CloseOnCancel(conn, cancel)
        stream = TokenStream(self.tokens, request, result)
        started = time.perf_counter()
        try:
            conn.request("POST", self.endpoint.prefix + COMPLETION_PATH, payload, headers)
            response = conn.getresponse()
            if response.status != 200:
                raise ServerError(response.status, _error_message(response))
            try:
                for event in _events(response):
                    if event is None or cancel.is_set() or stream.feed(event):
                        break
            except ServerAnswerError as exc:
                raise ServerError(500, str(exc)) from exc
            if cancel.is_set():
                result.finish_reason = "cancelled"
            elif not (stream.complete or stream.stopped_here):
                raise ConnectionError("llama-server closed the stream mid-answer")
            stream.finish()
            if not stream.complete:  # closed by us: no timings from the server
                result.decode_seconds = time.perf_counter() - started
        finally:
            watcher.finish()
            conn.close()

    def _connection(self, ok: bool, message: str) -> None:
        if not ok and self.settings.server_api == "auto":
            self.api = ""  # another server may come back at this address
        if ok == self.connected:
            return
        self.connected = ok
        if ok:
            log.info("model server at %s is back", self.url)
        else:
            log.warning("%s", message)
        if self.on_connection_change is not None:
            self.on_connection_change(ok, message or f"model server at {self.url} is back")

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, ServerError):
            return f"The model server at {self.url} answered HTTP {exc.status}: {exc}"
        if isinstance(exc, ConnectionRefusedError):
            return f"No model server answers at {self.url}; retrying on the next completion"
        return f"Lost the model server at {self.url} ({exc}); retrying on the next completion"


def _events(response: http.client.HTTPResponse) -> Iterator[dict[str, Any] | None]:
    """The JSON objects of a server-sent-event stream, then None for ``[DONE]``."""
    while line := response.readline():
        line = line.strip()
        if not line.startswith(b"data:"):
            continue  # blank separators, comments, event names
        data = line[5:].strip()
        if data == b"[DONE]":
            yield None
            return
        event = json.loads(data)
        if isinstance(event, dict):
            yield event


def _read_usage(usage: Any, result: GenerationResult) -> None:
    if not isinstance(usage, dict):
        return
    result.prompt_tokens = int(usage.get("prompt_tokens") or result.prompt_tokens)
    result.generated_tokens = int(usage.get("completion_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        result.reused_prompt_tokens = int(details.get("cached_tokens") or 0)


def _error_message(response: http.client.HTTPResponse) -> str:
    raw = response.read(65536)
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:300] or (response.reason or "")
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)
