"""llama.cpp's own server, ``llama-server``: the HTTP engine's second dialect.

Read in llama.cpp's ``tools/server/README.md`` and ``server-context.cpp`` at the version
``scripts/setup_llama_cpp.sh`` builds (the one pinned by llama-cpp-python 0.3.36):

* ``POST /completion`` takes the prompt as token ids and adds nothing to them (BOS is added only
  to text prompts): the prompt is exactly what the in-process engine prefills, FIM or not.
* ``cache_prompt`` (its default, sent anyway): a slot keeps its KV cache and the next request
  prefills only the tokens after the longest common start (``timings.prompt_n`` are prefilled,
  ``timings.cache_n`` reused). The server gives a request the idle slot whose cached prompt shares
  most with it (``--slot-prompt-similarity``) and keeps other prompts' caches in host memory
  (``--cache-ram``), so one editor's documents find their own caches without an ``id_slot``.
* The stream: one event per token, ``{"content", "tokens": [id], "tokens_predicted", "stop":
  false}``, then ``{"stop": true, "stop_type", "timings", ...}``; no ``[DONE]``. A token that
  ends inside a UTF-8 character sends no event: its text comes with the next one, its id never
  (``tokens_predicted`` shows the gap). The server polls the socket while it waits for the next
  token, so closing the connection stops the generation.
* ``/infill`` with token ids as ``input_prefix``/``input_suffix`` builds the same ids, but keeps
  only the last ``3 * (n_batch // 4)`` prefix tokens and the first ``n_batch // 4 - 2`` suffix
  tokens, without saying so, and ``/props`` does not tell ``n_batch`` (default 2048: 1,536 and
  510). The default prompt budget (4,096 tokens, a quarter for the suffix) is past both, and a
  cut prefix start also moves at every keystroke, which loses the KV cache. So FIM prompts go to
  ``/completion`` as token ids too (``tests/test_llama_server.py`` shows /infill's cut).
* ``n_predict: 0`` prefills the prompt into the slot's cache (and samples one token, which its
  README says it does not): the idle-time prefill (:mod:`~.completion.idle_prefill`) works
  through it as in-process.
* ``/health``: 503 ``{"error": {"message": "Loading model"}}`` while it loads, then
  ``{"status": "ok"}``. ``/props``: ``n_ctx`` (of a slot, in ``default_generation_settings``),
  ``total_slots``, ``build_info``: how it is recognised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codellama_lsp.engines.base import FinishReason, GenerationRequest, GenerationResult
from codellama_lsp.engines.stops import stopped_text
from codellama_lsp.engines.tokenization import CodeTokens

COMPLETION_PATH = "/completion"
STOP_TYPES: dict[str, FinishReason] = {"eos": "eot", "limit": "length", "word": "stop"}
TOKENIZER_PROBE = "def f(x):\n    return x  # é ∑\n\tif x:  pass\n"
"""Text whose ids the server's tokenizer must give as ours does (indentation, spaces, bytes)."""


class ServerAnswerError(Exception):
    """An ``{"error": …}`` event inside the stream."""


def is_llama_server(props: Any) -> bool:
    """``GET /props`` answered the way only llama-server does."""
    return (
        isinstance(props, dict)
        and isinstance(props.get("default_generation_settings"), dict)
        and "build_info" in props
    )


def context_of(props: dict[str, Any]) -> int | None:
    """The context length of one slot (prompt + new tokens), if /props says."""
    n_ctx = props.get("default_generation_settings", {}).get("n_ctx")
    return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None


def completion_body(request: GenerationRequest) -> dict[str, Any]:
    """The ``/completion`` request: token ids, our sampling and nothing of llama.cpp's own.

    llama.cpp's default chain (top-k 40, min-p 0.05, top-p before temperature) is replaced by
    the in-process engine's: temperature, then top-p. Temperature 0 is greedy there too. Stop
    sequences are checked here, as for every engine: the server would hold back text that might
    start one.
    """
    sampled = request.temperature > 0
    return {
        "prompt": list(request.prompt_ids),
        "n_predict": request.max_new_tokens,
        "stream": True,
        "cache_prompt": True,
        "temperature": request.temperature,
        "top_p": request.top_p if sampled else 1.0,
        "top_k": 0,
        "min_p": 0.0,
        "typical_p": 1.0,
        "repeat_penalty": 1.0,
        "presence_penalty": 0.0,
        "frequency_penalty": 0.0,
        "dry_multiplier": 0.0,
        "xtc_probability": 0.0,
        "samplers": ["temperature", "top_p"],
        "seed": request.seed,
    }


@dataclass
class TokenStream:
    """Turns llama-server's stream into a :class:`GenerationResult`, token by token, with the
    in-process engine's checks in its order (``LocalEngine._append``): a stop token ends it, else
    the token joins the text (decoded by our tokenizer from the ids), then the stop checks.

    When the server held back an id (a token inside a UTF-8 character), the text is the server's
    own from then on (the same bytes; our FIM-marker cut applied).
    """

    tokens: CodeTokens
    request: GenerationRequest
    result: GenerationResult
    ids: list[int] = field(default_factory=list)
    content: str = ""
    text: str = ""
    seen: int = 0
    """Tokens the server reported, stop tokens included."""
    held_back: bool = False
    stopped_here: bool = False
    """We ended it (a stop check): the stream is closed under the server, no final event."""
    complete: bool = False
    """The server's final event arrived."""

    def feed(self, event: dict[str, Any]) -> bool:
        """Take one event; True when nothing more is to be read."""
        if "error" in event:
            raise ServerAnswerError(_message(event["error"]))
        if event.get("stop") is True:
            self._final(event)
            return True
        self.content += str(event.get("content") or "")
        new = [int(t) for t in event.get("tokens") or []]
        predicted = event.get("tokens_predicted")
        if isinstance(predicted, int) and predicted > self.seen + len(new):
            self.held_back = True
        for token in new:
            self.seen += 1
            if self.result.finish_reason == "eot":
                break
            if self._take(token):
                return True
        return False

    def _take(self, token: int) -> bool:
        if len(self.ids) >= self.request.max_new_tokens:
            # Asked for 0 new tokens (a prefill), llama-server still samples one: not ours.
            self.result.finish_reason = "length"
            return False
        if token in self.tokens.stop_ids:
            self.result.finish_reason = "eot"  # the server stops too: read its final event
            return False
        self.ids.append(token)
        self.text = (
            self.tokens.decode_continuation(self.ids)
            if not self.held_back
            else self.tokens.cut_markers(self.content)
        )
        kept = stopped_text(self.text, self.request)
        if kept is not None:
            self.text, self.stopped_here = kept, True
            self.result.finish_reason = "stop"
            return True
        if len(self.ids) >= self.request.max_new_tokens:
            self.result.finish_reason = "length"
        return False

    def _final(self, event: dict[str, Any]) -> None:
        self.complete = True
        result = self.result
        if result.finish_reason not in ("eot", "stop"):
            result.finish_reason = STOP_TYPES.get(str(event.get("stop_type")), "length")
        timings = event.get("timings")
        if isinstance(timings, dict):
            result.reused_prompt_tokens = int(timings.get("cache_n") or 0)
            result.prefill_seconds = float(timings.get("prompt_ms") or 0) / 1000
            result.decode_seconds = float(timings.get("predicted_ms") or 0) / 1000
            result.generated_tokens = int(timings.get("predicted_n") or len(self.ids))
        evaluated = event.get("tokens_evaluated")
        if isinstance(evaluated, int) and evaluated > 0:
            result.prompt_tokens = evaluated

    def finish(self) -> None:
        """Write the text and ids into the result."""
        self.result.text = self.text
        self.result.token_ids = list(self.ids)
        self.result.generated_tokens = self.result.generated_tokens or self.seen


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def health_state(status: int, body: Any) -> tuple[str, str] | None:
    """llama-server's ``/health``: (loading|ready, message), or None when it is not its answer."""
    error = body.get("error") if isinstance(body, dict) else None
    if status == 503 and isinstance(error, dict):
        return "loading", _message(error)
    if status == 200 and isinstance(body, dict) and body.get("status") == "ok":
        return "ready", "ok"
    return None
