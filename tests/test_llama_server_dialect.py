"""The HTTP engine's llama-server dialect against a stand-in that answers as llama-server does
(its ``/health``, ``/props``, ``/tokenize`` and ``/completion`` stream, as read in its source):
the cases the real server gives only by chance (a token held back inside a UTF-8 character, an
error event in the stream, a stream cut before its last event). The real server:
tests/test_llama_server.py."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from aiohttp import web

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import GenerationRequest
from codellama_lsp.engines.http import HttpEngine
from codellama_lsp.engines.tokenization import CodeTokens

PROMPT = "import os\n\n\ndef walk(root):\n"


class FakeLlamaServer:
    """Streams ``events`` (each a dict, or "cut" to close the connection) for /completion;
    /health is 503 "Loading model" for the first ``loading`` calls."""

    def __init__(self, tokens: CodeTokens, loading: int = 0, tokenizer_ok: bool = True) -> None:
        self.tokens, self.loading, self.tokenizer_ok = tokens, loading, tokenizer_ok
        self.events: list[Any] = []
        self.bodies: list[dict[str, Any]] = []
        self.props_asked = 0
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        assert ready.wait(10)

    async def health(self, request: web.Request) -> web.Response:
        if self.loading > 0:
            self.loading -= 1
            error = {"code": 503, "message": "Loading model", "type": "unavailable_error"}
            return web.json_response({"error": error}, status=503)
        return web.json_response({"status": "ok"})

    async def props(self, request: web.Request) -> web.Response:
        self.props_asked += 1
        settings = {"n_ctx": 2048, "params": {}}
        return web.json_response(
            {"default_generation_settings": settings, "total_slots": 1, "build_info": "b1-fake"}
        )

    async def tokenize(self, request: web.Request) -> web.Response:
        content = (await request.json())["content"]
        ids = self.tokens.encode(content)
        return web.json_response({"tokens": ids if self.tokenizer_ok else ids[1:]})

    async def completion(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event in self.events:
            if event == "cut":
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(f"data: {json.dumps(event)}\n\n".encode())
        return response

    def _serve(self, ready: threading.Event) -> None:
        async def main() -> None:
            app = web.Application()
            app.router.add_get("/health", self.health)
            app.router.add_get("/props", self.props)
            app.router.add_post("/tokenize", self.tokenize)
            app.router.add_post("/completion", self.completion)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())


def engine_for(server: FakeLlamaServer, **extra: Any) -> tuple[HttpEngine, list[str]]:
    engine = HttpEngine(Settings(model="demo", backend="http", server_url=server.url, **extra))
    messages: list[str] = []
    engine.load(lambda message, _percent: messages.append(message))
    return engine, messages


def token_events(ids: list[int], tokens: CodeTokens, gap_at: int = -1) -> list[dict[str, Any]]:
    """One event per token, as llama-server streams them; at ``gap_at`` a token is held back
    (no event; its text comes with the next one)."""
    events, sent = [], 0
    for n, token in enumerate(ids, start=1):
        if n - 1 == gap_at:
            continue
        text = tokens.decode_continuation(ids[:n])[len(tokens.decode_continuation(ids[:sent])) :]
        events.append({"content": text, "tokens": [token], "stop": False, "tokens_predicted": n})
        sent = n
    return events


def final(stop_type: str, predicted: int) -> dict[str, Any]:
    timings = {"cache_n": 10, "prompt_n": 5, "prompt_ms": 4.0, "predicted_n": predicted}
    return {"content": "", "tokens": [], "stop": True, "stop_type": stop_type, "timings": timings}


def request(engine: HttpEngine, **extra: Any) -> GenerationRequest:
    ids = (engine.tokens.bos_id or 1, *engine.tokens.encode(PROMPT))
    fields: dict[str, Any] = {"max_new_tokens": 16, "temperature": 0.0, "top_p": 1.0}
    return GenerationRequest(ids, **{**fields, **extra})


def demo_tokens() -> CodeTokens:
    engine = HttpEngine(Settings(model="demo", backend="http"))
    engine._load_tokenizer(lambda _m, _p: None)
    return engine.tokens


def test_recognised_by_props_waits_while_loading_and_sends_token_ids() -> None:
    tokens = demo_tokens()
    server = FakeLlamaServer(tokens, loading=2)
    engine, messages = engine_for(server)
    assert any("Loading model" in m for m in messages), messages  # its 503 while it loads
    assert engine.api == "llama_cpp" and engine.context_limit == 2048 and not engine.warning
    ids = tokens.encode("    for name in os.listdir(root):")
    server.events = [*token_events(ids, tokens), final("limit", len(ids))]
    result = engine.generate(request(engine, max_new_tokens=len(ids)), threading.Event())
    assert result.text == tokens.decode_continuation(ids) and result.token_ids == ids
    assert result.finish_reason == "length"
    assert (result.reused_prompt_tokens, result.generated_tokens) == (10, len(ids))
    body = server.bodies[-1]
    assert body["prompt"] == list(request(engine).prompt_ids) and body["cache_prompt"] is True
    assert body["samplers"] == ["temperature", "top_p"] and "stop" not in body


def test_a_prefill_asks_for_no_token_and_keeps_none() -> None:
    tokens = demo_tokens()
    server = FakeLlamaServer(tokens)
    engine, _ = engine_for(server)
    assert engine.reuses_prompts  # the idle-time prefill runs through it
    ids = tokens.encode("z")
    server.events = [*token_events(ids, tokens), final("limit", 1)]  # llama-server samples one
    result = engine.generate(request(engine, max_new_tokens=0), threading.Event())
    assert (result.text, result.token_ids, result.finish_reason) == ("", [], "length")
    assert server.bodies[-1]["n_predict"] == 0 and result.reused_prompt_tokens == 10


def test_an_end_token_a_held_back_token_and_a_stop_sequence() -> None:
    tokens = demo_tokens()
    server = FakeLlamaServer(tokens)
    engine, _ = engine_for(server)
    eot = tokens.infill.eot_id if tokens.infill else tokens.eos_id
    assert eot is not None
    ids = tokens.encode("x = 'héllo'")
    server.events = [*token_events([*ids, eot], tokens), final("eos", len(ids) + 1)]
    result = engine.generate(request(engine), threading.Event())
    assert (result.finish_reason, result.text) == ("eot", tokens.decode_continuation(ids))
    # A token held back (inside a UTF-8 character): the server's own text from then on.
    server.events = [*token_events(ids, tokens, gap_at=3), final("limit", len(ids))]
    result = engine.generate(request(engine, max_new_tokens=len(ids)), threading.Event())
    assert result.text == tokens.decode_continuation(ids)
    # A stop sequence closes the stream at once: no final event needed.
    server.events = token_events(tokens.encode("a = 1\n\n\nb", leading_space=False), tokens)
    result = engine.generate(request(engine, stop_sequences=("\n\n\n",)), threading.Event())
    assert (result.finish_reason, result.text) == ("stop", "a = 1")


def test_an_error_event_and_a_cut_stream_are_errors_and_the_engine_recovers() -> None:
    tokens = demo_tokens()
    server = FakeLlamaServer(tokens)
    engine, _ = engine_for(server)
    changes: list[tuple[bool, str]] = []
    engine.on_connection_change = lambda ok, message: changes.append((ok, message))
    ids = tokens.encode("y = 2")
    error = {"error": {"code": 500, "message": "out of memory", "type": "server_error"}}
    for events, expected in (
        ([*token_events(ids, tokens)[:1], error], "HTTP 500: out of memory"),
        ([*token_events(ids, tokens)[:2], "cut"], "mid-answer"),
    ):
        server.events = events
        result = engine.generate(request(engine), threading.Event())
        assert result.finish_reason == "error" and result.text == ""
        assert changes and not changes[-1][0] and expected in changes[-1][1], changes
        server.events = [*token_events(ids, tokens), final("limit", len(ids))]
        again = engine.generate(request(engine), threading.Event())
        assert again.finish_reason == "length" and again.text == tokens.decode_continuation(ids)
        assert changes[-1][0]  # back
    assert server.props_asked >= 3  # asked again after each loss: it may be another server


def test_another_tokenizer_is_a_warning_and_openai_skips_the_props() -> None:
    tokens = demo_tokens()
    engine, _ = engine_for(FakeLlamaServer(tokens, tokenizer_ok=False))
    assert engine.api == "llama_cpp" and "tokenizes code differently" in engine.warning
    server = FakeLlamaServer(tokens)
    told, _ = engine_for(server, server_api="openai")
    assert told.api == "openai" and server.props_asked == 0
