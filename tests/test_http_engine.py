"""HttpEngine against the real model server process (and a text-only server like TGI)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import EngineLoadError, GenerationRequest
from codellama_lsp.engines.factory import create_engine
from codellama_lsp.engines.http import HttpEngine
from codellama_lsp.engines.local import LocalEngine
from tests.support.model_servers import ModelServer, free_port, metrics, running_server

PREFIX = "import os\n\n\ndef walk(root):\n    for dirpath, dirnames, filenames in os.walk(root):\n"
SUFFIX = "\n    return found\n"


@pytest.fixture(scope="module")
def server(cache_env: dict[str, str]) -> Iterator[ModelServer]:
    with running_server(env=cache_env) as s:
        yield s


@pytest.fixture(scope="module")
def local() -> LocalEngine:
    engine = LocalEngine(Settings(model="demo"))
    engine.load(lambda _m, _p: None)
    return engine


def settings_for(server: ModelServer, **extra: Any) -> Settings:
    return Settings(model="demo", backend="http", server_url=server.url, temperature=0, **extra)


def loaded(settings: Settings) -> HttpEngine:
    engine = HttpEngine(settings, connect_wait_s=2)
    engine.load(lambda _m, _p: None)
    return engine


def request_for(engine: HttpEngine | LocalEngine, **extra: Any) -> GenerationRequest:
    ids = engine.tokens.fim_ids(PREFIX, SUFFIX)
    fields: dict[str, Any] = {"max_new_tokens": 32, "temperature": 0.0, "top_p": 1.0}
    return GenerationRequest(tuple(ids), session="file:///walk.py", **{**fields, **extra})


def test_load_reports_progress_and_gives_the_same_text_as_in_process(
    server: ModelServer, local: LocalEngine
) -> None:
    progress: list[tuple[str, int]] = []
    engine = HttpEngine(settings_for(server))
    engine.load(lambda message, percent: progress.append((message, percent)))
    assert progress[-1] == ("Ready", 100)
    assert engine.tokens.infill is not None and engine.context_limit == 4096

    remote = engine.generate(request_for(engine), threading.Event())
    expected = local.generate(request_for(local), threading.Event())
    assert remote.finish_reason != "error"
    assert remote.text == expected.text
    assert remote.generated_tokens == expected.generated_tokens
    assert remote.prompt_tokens == expected.prompt_tokens


def test_text_prompts_give_the_same_text_as_token_ids(server: ModelServer) -> None:
    engine = loaded(settings_for(server))
    by_ids = engine.generate(request_for(engine), threading.Event())
    again = engine.generate(request_for(engine), threading.Event())
    assert again.text == by_ids.text and again.reused_prompt_tokens > 0  # KV slot reused
    engine.send_token_ids = False  # what a TGI-like server gets
    assert engine.prompt_text(request_for(engine).prompt_ids).startswith("<PRE> import os")
    by_text = engine.generate(request_for(engine), threading.Event())
    assert by_text.finish_reason != "error" and by_text.text == by_ids.text


def test_stop_sequences_and_should_stop_are_applied_to_the_stream(server: ModelServer) -> None:
    engine = loaded(settings_for(server))
    seen: list[str] = []

    def done(text: str) -> bool:
        seen.append(text)
        return len(text) >= 3

    tokens = engine.tokens
    ids = (tokens.bos_id or 1, *tokens.encode("def add(a, b):\n"))
    result = engine.generate(
        GenerationRequest(ids, 200, 0.0, 1.0, should_stop=done), threading.Event()
    )
    assert result.finish_reason == "stop" and result.text == seen[-1] and len(result.text) >= 3
    plain = engine.generate(GenerationRequest(ids, 48, 0.0, 1.0), threading.Event())
    stop = plain.text.strip()[4:6]  # two characters from inside the plain text
    assert len(stop) == 2, plain.text
    stopped = engine.generate(
        GenerationRequest(ids, 48, 0.0, 1.0, stop_sequences=(stop,)), threading.Event()
    )
    assert stopped.finish_reason == "stop"
    assert stopped.text == plain.text[: plain.text.index(stop)]  # cut just before it


def test_setting_the_stop_flag_closes_the_stream_and_stops_the_server(
    server: ModelServer,
) -> None:
    engine = loaded(settings_for(server))
    before = metrics(server.port)["codellama_cancellations_total"]
    cancel = threading.Event()
    ids = (1, *[300 + i % 200 for i in range(3000)])
    request = GenerationRequest(ids, 1000, 0.0, 1.0, session="big")
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    started = time.monotonic()
    result = engine.generate(request, cancel)
    assert result.finish_reason == "cancelled" and result.text == ""
    assert time.monotonic() - started < 5
    deadline = time.monotonic() + 10
    while metrics(server.port)["codellama_cancellations_total"] == before:
        assert time.monotonic() < deadline, "the server kept generating"
        time.sleep(0.05)


def test_no_server_is_a_clear_load_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings(model="demo", backend="http", server_url=url)
    engine = HttpEngine(settings, connect_wait_s=0.5)
    with pytest.raises(EngineLoadError, match="codellama-lsp serve"):
        engine.load(lambda _m, _p: None)


def test_auto_backend_uses_a_running_server_for_the_same_model(server: ModelServer) -> None:
    auto = Settings(model="demo", backend="auto", server_url=server.url)
    assert isinstance(create_engine(auto), HttpEngine)
    other_model = Settings(model="random:hidden=64,layers=1", backend="auto", server_url=server.url)
    assert isinstance(create_engine(other_model), LocalEngine)
    nobody = Settings(model="demo", backend="auto", server_url="http://127.0.0.1:9")
    assert isinstance(create_engine(nobody), LocalEngine)


class TextOnlyServer:
    """Answers like TGI: token-id prompts are a 422 (``ids_status``); text prompts stream
    "ok then" (or get ``text_status`` when that is not 200)."""

    def __init__(self, ids_status: int = 422, text_status: int = 200) -> None:
        self.ids_status, self.text_status = ids_status, text_status
        self.prompts: list[Any] = []
        self._loop_ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._loop_ready.wait(10)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.prompts.append(body["prompt"])
        if not isinstance(body["prompt"], str):
            return web.json_response(
                {"error": "Input validation error", "error_type": "validation"},
                status=self.ids_status,
            )
        if self.text_status != 200:
            return web.json_response({"error": "out of memory"}, status=self.text_status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for piece in ("ok", " then"):
            chunk = {"choices": [{"index": 0, "text": piece, "finish_reason": None}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="")  # TGI: an empty 200

    def _serve(self) -> None:
        import asyncio

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/v1/completions", self.completions)
            app.router.add_get("/health", self.health)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = runner.addresses[0][1]
            self._loop_ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())


def test_a_server_that_only_takes_text_gets_text() -> None:
    fake = TextOnlyServer()
    settings = Settings(model="demo", backend="http", server_url=f"http://127.0.0.1:{fake.port}/v1")
    engine = loaded(settings)
    result = engine.generate(request_for(engine), threading.Event())
    assert result.text == "ok then" and result.finish_reason != "error"
    assert isinstance(fake.prompts[0], list) and isinstance(fake.prompts[1], str)
    assert fake.prompts[1].startswith("<PRE> import os") and fake.prompts[1].endswith(" <MID>")
    again = engine.generate(request_for(engine), threading.Event())
    assert again.text == "ok then" and len(fake.prompts) == 3  # no second try with ids


def test_a_refusal_that_text_does_not_cure_keeps_token_ids() -> None:
    # llama-cpp-python refuses ids with a 500; a 500 that text gets too is not about ids.
    for text_status, keeps_ids in ((200, False), (500, True)):
        fake = TextOnlyServer(ids_status=500, text_status=text_status)
        engine = loaded(
            Settings(model="demo", backend="http", server_url=f"http://127.0.0.1:{fake.port}")
        )
        result = engine.generate(request_for(engine), threading.Event())
        assert (result.finish_reason == "error") is keeps_ids
        assert engine.send_token_ids is keeps_ids
        assert [type(p) for p in fake.prompts] == [list, str]
