"""The language server against llama.cpp's own C++ ``llama-server`` (the engine llama.vim,
llama.vscode, Continue and Tabby users run), built from the same llama.cpp source as
tests/test_llama_cpp.py's Python server, serving the demo model's GGUF (float32, its infilling
tokens named).

What is checked: the HTTP engine recognises it (``/props``) and sends token ids to its
``/completion``, so that prefix and FIM completions are the in-process engine's, token for
token; its KV cache is reused while typing (its own timing lines); closing the stream stops it;
loading, a kill and a restart, a 500 and a cut stream are handled as for any model server.

Needs ``scripts/setup_llama_cpp.sh DEST`` and ``CODELLAMA_LSP_LLAMA_CPP=DEST`` (``./dev test``
does both); without them these tests fail, unless ``CODELLAMA_SKIP_LLAMA_CPP=1`` says to skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import statistics
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import GenerationRequest
from codellama_lsp.engines.factory import create_engine
from codellama_lsp.engines.http import HttpEngine
from codellama_lsp.engines.local import LocalEngine
from tests.support import wait_until
from tests.support.documents import SAMPLE, end_of, long_source
from tests.support.engines import load_engine
from tests.support.llama_server import (
    EXACT,
    LlamaServer,
    demo_gguf,
    llama_cpp_dir,
    server_binary,
)
from tests.support.lsp_session import Session, lsp_session
from tests.support.model_servers import free_port

FIM_SUFFIX = "\n    return found\n"


@pytest.fixture(scope="module")
def build() -> Path:
    return llama_cpp_dir()


@pytest.fixture(scope="module")
def gguf(build: Path) -> Path:
    return demo_gguf(build)


def new_server(build: Path, gguf: Path, log: Path, *args: str) -> LlamaServer:
    return LlamaServer(server_binary(build), gguf, free_port(), log, (*EXACT, *args))


@pytest.fixture(scope="module")
def llama(
    build: Path, gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    server = new_server(build, gguf, log, "--metrics")
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def local() -> LocalEngine:
    return load_engine("demo")


def http_engine(url: str, **extra: Any) -> HttpEngine:
    engine = HttpEngine(
        Settings(model="demo", backend="http", server_url=url, temperature=0, **extra),
        connect_wait_s=10,
    )
    engine.load(lambda _m, _p: None)
    return engine


def lsp_options(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "backend": "http",
        "server_url": url,
        "model": "demo",
        "temperature": 0,
        "debounce_ms": 0,
        "context_other_documents": False,
        **extra,
    }


def prompts(engine: LocalEngine) -> list[tuple[str, tuple[int, ...]]]:
    """Left-to-right and FIM prompts, short and long (a few hundred to ~1,900 tokens)."""
    tokens = engine.tokens
    bos = tokens.bos_id or 1
    source = long_source()
    cut = source.index("\n", 6000)
    return [
        ("prefix", (bos, *tokens.encode(SAMPLE))),
        ("prefix-long", (bos, *tokens.encode(source[:cut] + "\n    "))),
        ("fim", tuple(tokens.fim_ids(SAMPLE, FIM_SUFFIX))),
        ("fim-long", tuple(tokens.fim_ids(source[:cut] + "\n    ", source[cut : cut + 1500]))),
    ]


def greedy(prompt: tuple[int, ...], session: str, new: int = 48) -> GenerationRequest:
    return GenerationRequest(prompt, new, 0.0, 1.0, session=session)


# ----------------------------------------------------------------------------- recognition


def test_the_gguf_names_its_infilling_tokens_and_the_engine_recognises_the_server(
    llama: LlamaServer, gguf: Path, local: LocalEngine
) -> None:
    import gguf as gguf_py

    fim = local.tokens.infill
    assert fim is not None
    fields = gguf_py.GGUFReader(gguf).fields
    named = {
        key: int(fields[f"tokenizer.ggml.{key}_token_id"].contents())
        for key in ("fim_pre", "fim_suf", "fim_mid", "eot")
    }
    assert named == {
        "fim_pre": fim.prefix_id,
        "fim_suf": fim.suffix_id,
        "fim_mid": fim.middle_id,
        "eot": fim.eot_id,
    }
    # llama-server ends a generation at <EOT> (forced here by a logit bias)...
    body = {"prompt": [1, *local.tokens.encode("x = 1\n")], "n_predict": 8}
    status, done = llama.request("POST", "/completion", {**body, "logit_bias": [[fim.eot_id, 99]]})
    assert status == 200 and done["stop_type"] == "eos" and done["tokens_predicted"] == 1, done
    # ...and takes /infill (it refuses models without FIM tokens).
    infill = {"input_prefix": "def f(x):\n", "input_suffix": "\n", "n_predict": 1}
    assert llama.request("POST", "/infill", infill)[0] == 200

    engine = http_engine(llama.url)
    assert engine.api == "llama_cpp"
    assert engine.context_limit == 8192  # /props: n_ctx of a slot
    assert engine.warning == ""  # /tokenize agrees with our tokenizer
    # backend = auto finds it too (its /health says "ok", no model name).
    assert isinstance(create_engine(Settings(model="demo", server_url=llama.url)), HttpEngine)


# ------------------------------------------------------------------------- same output


def test_prefix_and_fim_outputs_equal_the_in_process_engine_token_for_token(
    llama: LlamaServer, local: LocalEngine
) -> None:
    engine = http_engine(llama.url)
    for name, prompt in prompts(local):
        ours = local.generate(greedy(prompt, f"local:{name}"), threading.Event())
        for attempt in ("fresh", "cached"):  # the second reuses llama-server's KV cache
            theirs = engine.generate(greedy(prompt, f"http:{name}"), threading.Event())
            assert theirs.finish_reason == ours.finish_reason != "error", (name, attempt)
            assert theirs.token_ids == ours.token_ids, (name, attempt)
            assert theirs.text == ours.text, (name, attempt)
            assert theirs.prompt_tokens == len(prompt), (name, attempt)
        assert theirs.reused_prompt_tokens >= len(prompt) - 1, name


async def test_completions_through_the_language_server_equal_in_process_ones(
    llama: LlamaServer,
) -> None:
    big = long_source()[:5000]
    big = big[: big.rindex("\n")] + "\n    "
    documents = {"file:///files.py": SAMPLE, "file:///big.py": big}
    mid_line = SAMPLE + "if name.endswith()"  # the editor closed the bracket: one line
    answers: dict[str, list[str]] = {}
    for backend in ("local", "http"):
        for prompt_format in ("prefix", "fim"):
            options = lsp_options(llama.url, backend=backend, prompt_format=prompt_format)
            async with lsp_session({**options, "max_new_tokens": 48}) as s:
                texts: list[str] = []
                for uri, text in documents.items():
                    s.open(uri, text)
                    texts += [str(i.insert_text) for i in await s.inline(uri, *end_of(text))]
                s.open("file:///mid.py", mid_line)
                line, column = end_of(mid_line)
                items = await s.inline("file:///mid.py", line, column - 1)
                texts += [str(i.insert_text) for i in items]
                answers[f"{backend}/{prompt_format}"] = texts
                assert not [m for m in s.client.messages if m.type == types.MessageType.Error]
    print(json.dumps(answers, indent=1))
    assert answers["http/prefix"] == answers["local/prefix"]
    assert answers["http/fim"] == answers["local/fim"]
    assert any(t.strip() for t in answers["http/prefix"] + answers["http/fim"])


def test_infill_gives_our_prompt_only_while_it_fits_its_batch(
    llama: LlamaServer, local: LocalEngine
) -> None:
    """Why FIM prompts go to /completion as token ids and not to /infill: /infill builds the
    same ids from token-id prefix and suffix, but cuts them to fit ``n_batch`` (2048 here)."""
    tokens = local.tokens
    fim = tokens.infill
    assert fim is not None
    for name, prompt in prompts(local):
        if not name.startswith("fim"):
            continue
        cut = prompt.index(fim.suffix_id)
        body = {
            "input_prefix": list(prompt[2:cut]),
            "input_suffix": list(prompt[cut + 1 : -1]),
            "n_predict": 16,
            "temperature": 0,
            "samplers": ["temperature"],
            "return_tokens": True,
            "cache_prompt": False,
        }
        status, infill = llama.request("POST", "/infill", body)
        assert status == 200, infill
        plain = {**body, "prompt": list(prompt)}
        for key in ("input_prefix", "input_suffix"):
            del plain[key]
        status, completion = llama.request("POST", "/completion", plain)
        assert status == 200, completion
        if name == "fim":  # short: the same ids, the same answer
            assert infill["tokens_evaluated"] == len(prompt)
            assert infill["tokens"] == completion["tokens"]
        else:  # 1,536 prefix and 510 suffix tokens at most: not the prompt we built
            assert cut - 2 > 1536
            assert infill["tokens_evaluated"] < len(prompt) == completion["tokens_evaluated"]


# ------------------------------------------------------------------------------ KV reuse


async def test_typing_reuses_llama_servers_kv_cache(llama: LlamaServer) -> None:
    import calendar
    import inspect

    source = inspect.getsource(calendar)[:8000]  # a prompt no other test has left cached
    doc = source[: source.rindex("\n")] + "\n    "
    typed = "result = self._get_"
    evals: list[int] = []  # prompt tokens llama-server processed (its /metrics), per request

    counted = [0.0]

    def note() -> None:
        total = llama.metrics()["prompt_tokens_total"]
        evals.append(round(total - counted[0]))
        counted[0] = total

    async with lsp_session(lsp_options(llama.url, max_new_tokens=8)) as s:
        s.open("file:///typing.py", doc)
        note()
        line, column = end_of(doc)
        await s.inline("file:///typing.py", line, column)
        for i, ch in enumerate(typed):
            note()
            s.edit("file:///typing.py", (line, column + i), (line, column + i), ch)
            await s.inline("file:///typing.py", line, column + i + 1)
        note()
        stats = await s.stats()
    evals = [n for n in evals[1:] if n]  # a keystroke answered by typing-through: none
    print("prompt tokens llama-server processed per request:", evals)
    assert len(evals) >= 3, evals
    first, later = evals[0], evals[1:]
    assert first > 1000  # the whole prompt, once
    assert statistics.median(later) <= 8, evals  # then the few tokens typed since
    assert max(later) < first / 4, evals
    assert stats["reused_prompt_tokens"] > 0, stats


# ------------------------------------------------------------------------- cancellation


async def test_cancelling_a_request_stops_llama_server(llama: LlamaServer) -> None:
    options = lsp_options(
        llama.url, max_context_tokens=8192, max_new_tokens=6000, stop_sequences=[]
    )
    async with lsp_session(options) as s:
        big = long_source()[:12000]
        s.open("file:///big.py", big)
        cancels = llama.log_text().count("cancel task")
        predicted = llama.metrics()["tokens_predicted_total"]
        params = s.inline_params("file:///big.py", *end_of(big))
        pending = asyncio.ensure_future(
            s.client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=4343
            )
        )
        await asyncio.to_thread(wait_until, lambda: llama.busy_slots() == 1, 60, "a busy slot")
        s.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=4343))
        with pytest.raises(Exception, match=r"-32800|[Cc]ancel"):
            await asyncio.wait_for(pending, 30)
        # llama-server itself stopped: it says so, and its slot is idle long before 6,000 tokens.
        await asyncio.to_thread(wait_until, lambda: llama.busy_slots() == 0, 30, "an idle slot")
        assert llama.log_text().count("cancel task") > cancels
        assert llama.metrics()["tokens_predicted_total"] - predicted < 6000
        stats = await s.stats()
        assert stats["generations_cancelled"] == 1 and stats["generations_completed"] == 0


# ---------------------------------------------------------------- loading, kill, restart


async def test_the_status_says_loading_until_llama_server_is_ready(
    build: Path, gguf: Path, tmp_path: Path
) -> None:
    # llama-server answers /health with 503 "Loading model" from the start of its load. The
    # load is held at its last step, which reads an n-gram lookup cache: a named pipe here,
    # released when the test writes to it (an empty cache).
    gate = tmp_path / "lookup-cache"
    os.mkfifo(gate)
    server = new_server(
        build, gguf, tmp_path / "server.log", "--spec-type", "ngram-cache",
        "--lookup-cache-static", str(gate),
    )  # fmt: skip
    server.launch()
    try:
        await asyncio.to_thread(
            wait_until, lambda: server.get("/health")[0] == 503, 60, "llama-server to load"
        )
        async with lsp_session(lsp_options(server.url), wait_ready=False) as s:
            await asyncio.sleep(1.0)  # the language server is waiting on /health by now
            status = await s.command("codellama.status")
            assert status["state"] == "loading", status
            reports = [r for values in s.client.progress_reports.values() for r in values]
            messages = [str(getattr(r, "message", "")) for r in reports]
            assert any("Loading model" in m for m in messages), messages  # its own words
            await asyncio.to_thread(lambda: gate.open("wb").close())  # let it finish
            assert (await s.wait_state("ready", "error", timeout=60))["state"] == "ready"
            s.open("file:///files.py", SAMPLE)
            items = await s.inline("file:///files.py", *end_of(SAMPLE))
            assert items and str(items[0].insert_text).strip()
    finally:
        server.kill()


async def test_killed_mid_stream_and_restarted_llama_server_recovers(
    build: Path, gguf: Path, tmp_path: Path
) -> None:
    server = new_server(build, gguf, tmp_path / "server.log")
    await asyncio.to_thread(server.start)
    options = lsp_options(server.url, max_new_tokens=32)
    try:
        async with lsp_session(options) as s:
            s.open("file:///files.py", SAMPLE)
            assert await s.inline("file:///files.py", *end_of(SAMPLE))

            # Killed while it streams a long answer: the stream is cut mid-answer.
            configure(s, max_new_tokens=6000, stop_sequences=[], max_context_tokens=8192)
            big = long_source()[:12000]
            s.open("file:///big.py", big)
            long = asyncio.ensure_future(s.inline("file:///big.py", *end_of(big)))
            await asyncio.to_thread(wait_until, lambda: server.busy_slots() == 1, 60, "busy")
            server.kill()
            assert await asyncio.wait_for(long, 60) == []
            errors = [m for m in s.client.messages if m.type == types.MessageType.Error]
            assert errors and "model server" in errors[-1].message, errors

            configure(s, max_new_tokens=32)
            s.open("file:///two.py", SAMPLE.replace("list_python_files", "python_files"))
            assert await s.inline("file:///two.py", *end_of(SAMPLE)) == []  # still down

            await asyncio.to_thread(server.start)  # same port, the language server untouched
            s.open("file:///three.py", SAMPLE.replace("list_python_files", "py_files"))
            items = await s.inline("file:///three.py", *end_of(SAMPLE))
            assert items and str(items[0].insert_text).strip()
            infos = [m for m in s.client.messages if m.type == types.MessageType.Info]
            assert infos and "back" in infos[-1].message
            assert (await s.command("codellama.status"))["state"] == "ready"
    finally:
        server.kill()


def configure(s: Session, **settings: Any) -> None:
    s.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codellama": settings})
    )


# ----------------------------------------------------------------------------- bad answers


class FaultProxy:
    """In front of a real llama-server: passes everything through, except that the next
    ``/completion`` gets ``fault``: ``"500"`` (llama-server's error body) or ``"cut"`` (its
    stream, closed after the first two events)."""

    def __init__(self, upstream: LlamaServer) -> None:
        self.upstream = upstream
        self.fault = ""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self, "GET", b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault, proxy.fault = (proxy.fault, "") if self.path == "/completion" else ("", "")
                if fault == "500":
                    error = {"error": {"code": 500, "message": "boom", "type": "server_error"}}
                    proxy.reply(self, 500, json.dumps(error).encode())
                else:
                    proxy.forward(self, "POST", body, cut=fault == "cut")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, data: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def forward(
        self, handler: BaseHTTPRequestHandler, method: str, body: bytes, cut: bool = False
    ) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream.port, timeout=120)
        with contextlib.suppress(OSError):  # the engine closed the stream: nothing to pass on
            self._forward(handler, conn, method, body, cut)

    def _forward(
        self,
        handler: BaseHTTPRequestHandler,
        conn: http.client.HTTPConnection,
        method: str,
        body: bytes,
        cut: bool,
    ) -> None:
        try:
            headers = {"Content-Type": "application/json"}
            conn.request(method, handler.path, body or None, headers)
            response = conn.getresponse()
            if "event-stream" not in (response.getheader("Content-Type") or ""):
                self.reply(handler, response.status, response.read())
                return
            handler.send_response(response.status)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Connection", "close")
            handler.end_headers()
            events = 0
            while line := response.readline():
                handler.wfile.write(line)
                handler.wfile.flush()
                events += line.startswith(b"data:")
                if cut and events == 2:
                    handler.close_connection = True
                    return  # closed here, mid-answer
        finally:
            conn.close()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def test_a_500_and_a_cut_stream_are_reported_and_recovered_from(
    llama: LlamaServer,
) -> None:
    proxy = FaultProxy(llama)
    try:
        async with lsp_session(lsp_options(proxy.url, max_new_tokens=32)) as s:
            for n, fault in enumerate(("500", "cut")):
                proxy.fault = fault
                uri = f"file:///fault{n}.py"
                s.open(uri, SAMPLE.replace("list_python_files", f"files_{n}"))
                assert await s.inline(uri, *end_of(SAMPLE)) == [], fault
                errors = [m for m in s.client.messages if m.type == types.MessageType.Error]
                expected = "HTTP 500: boom" if fault == "500" else "mid-answer"
                assert errors and expected in errors[-1].message, (fault, errors)
                s.open(f"{uri}.again.py", SAMPLE.replace("list_python_files", f"again_{n}"))
                items = await s.inline(f"{uri}.again.py", *end_of(SAMPLE))
                assert items and str(items[0].insert_text).strip(), fault
                infos = [m for m in s.client.messages if m.type == types.MessageType.Info]
                assert infos and "back" in infos[-1].message, fault
            stats = await s.stats()
            assert stats["generation_errors"] >= 2, stats
    finally:
        proxy.close()


async def test_the_context_of_a_slot_bounds_the_prompt(
    build: Path, gguf: Path, tmp_path: Path, local: LocalEngine
) -> None:
    server = new_server(build, gguf, tmp_path / "server.log", "--ctx-size", "512")
    await asyncio.to_thread(server.start)
    try:
        engine = await asyncio.to_thread(http_engine, server.url)
        assert engine.context_limit == 512  # from /props
        big = long_source()[:8000]
        async with lsp_session(lsp_options(server.url, max_new_tokens=32)) as s:
            s.open("file:///big.py", big)
            await s.inline("file:///big.py", *end_of(big))
            assert not [m for m in s.client.messages if m.type == types.MessageType.Error]
        assert "exceeds the available context" not in server.log_text()
        # A prompt past its context anyway is llama-server's own 400: reported, not raised.
        tokens = local.tokens
        too_long = (tokens.bos_id or 1, *tokens.encode(big))
        result = await asyncio.to_thread(
            engine.generate, greedy(too_long, "long"), threading.Event()
        )
        assert result.finish_reason == "error"
    finally:
        server.kill()
