"""The language server against a server someone else wrote: llama.cpp (llama-cpp-python's
OpenAI-compatible server), serving the demo model converted to GGUF by llama.cpp's converter.

Needs ``scripts/setup_llama_cpp.sh DEST`` and ``CODELLAMA_LSP_LLAMA_CPP=DEST`` (``./dev test``
does both). Without them these tests fail, unless ``CODELLAMA_SKIP_LLAMA_CPP=1`` says to skip.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import GenerationRequest
from codellama_lsp.engines.http import HttpEngine
from codellama_lsp.engines.tokenization import CodeTokens
from tests.support import wait_until
from tests.support.documents import SAMPLE, end_of, long_source
from tests.support.lsp_session import lsp_session
from tests.support.model_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
SPECIAL = re.compile(r"<(PRE|SUF|MID|EOT|FILL_ME)>|</?s>|<unk>")
DISCONNECTED = "Disconnected from client"  # llama-cpp-python's log line when it stops a stream
STREAM_STARTED = '"POST /v1/completions HTTP/1.1" 200'  # uvicorn's access log line


@pytest.fixture(scope="module")
def llama_cpp_dir() -> Path:
    dest = os.environ.get("CODELLAMA_LSP_LLAMA_CPP", "")
    if dest and (Path(dest) / "venv" / "bin" / "python").exists():
        return Path(dest)
    message = (
        f"llama.cpp is not built at CODELLAMA_LSP_LLAMA_CPP={dest!r}: run "
        "`scripts/setup_llama_cpp.sh DEST` and set CODELLAMA_LSP_LLAMA_CPP=DEST (`./dev test` "
        "does both); CODELLAMA_SKIP_LLAMA_CPP=1 skips these tests"
    )
    if os.environ.get("CODELLAMA_SKIP_LLAMA_CPP") == "1":
        pytest.skip(message)
    pytest.fail(message)


@pytest.fixture(scope="module")
def gguf(llama_cpp_dir: Path) -> Path:
    """The demo model as GGUF (converted once per demo model, cached in the llama.cpp dir)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo_gguf.py"), str(llama_cpp_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip())


class LlamaCppServer:
    """``python -m llama_cpp.server`` on 127.0.0.1:``port``; its output goes to ``log``."""

    def __init__(self, llama_cpp_dir: Path, gguf: Path, port: int, log: Path) -> None:
        self.python = llama_cpp_dir / "venv" / "bin" / "python"
        self.gguf, self.port, self.log = gguf, port, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [str(self.python), "-m", "llama_cpp.server", "--model", str(self.gguf)]
        options = ["--model_alias", "demo", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*command, *options, "--n_ctx", "8192", "--n_threads", "1"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + 120
        while self.get("/v1/models")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama.cpp server did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            data = json.dumps(body) if body is not None else None
            conn.request(method, path, data, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        except (OSError, ValueError):
            return 0, None
        finally:
            conn.close()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def llama_server(
    llama_cpp_dir: Path, gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaCppServer]:
    log = tmp_path_factory.mktemp("llama-cpp") / "server.log"
    server = LlamaCppServer(llama_cpp_dir, gguf, free_port(), log)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def lsp_options(server: LlamaCppServer, **extra: Any) -> dict[str, Any]:
    """Settings for llama-cpp-python's server: text prompts, so left to right (see the
    tokenizer test for why not FIM)."""
    return {
        "prompt_format": "prefix",
        "backend": "http",
        "server_url": server.url,
        "model": "demo",
        "temperature": 0,
        "debounce_ms": 0,
        "early_first_line": "never",  # whole blocks, compared token for token
        "context_other_documents": False,
        **extra,
    }


def llama_cpp_tokenize(
    llama_cpp_dir: Path, gguf: Path, texts: list[str], prompts: list[str]
) -> dict[str, Any]:
    """llama.cpp's own tokenizer on the GGUF: plain texts; text prompts the way its server
    tokenizes them (BOS added, special tokens parsed); the special tokens by string."""
    script = """
import json, sys
from llama_cpp import Llama
gguf, texts, prompts = json.load(sys.stdin)
llm = Llama(model_path=gguf, vocab_only=True, verbose=False)
specials = {s: llm.tokenize(s.encode(), add_bos=False, special=True)
            for s in ("▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>", "<s>", "</s>")}
print(json.dumps({
    "texts": [llm.tokenize(t.encode(), add_bos=False, special=False) for t in texts],
    "prompts": [llm.tokenize(p.encode(), add_bos=True, special=True) for p in prompts],
    "specials": specials, "bos": llm.token_bos(), "eos": llm.token_eos(),
    "n_vocab": llm.n_vocab(),
}))
"""
    done = subprocess.run(
        [str(llama_cpp_dir / "venv" / "bin" / "python"), "-c", script],
        input=json.dumps([str(gguf), texts, prompts]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.splitlines()[-1]))


def demo_tokens() -> CodeTokens:
    engine = HttpEngine(Settings(model="demo", backend="http"))
    engine._load_tokenizer(lambda _m, _p: None)
    return engine.tokens


def test_the_gguf_tokenizes_like_our_tokenizer(llama_cpp_dir: Path, gguf: Path) -> None:
    tokens = demo_tokens()
    assert tokens.infill is not None
    texts = [SAMPLE, long_source()[:4000], "    x  =  1\t# two  spaces\n\n", "héllo wörld ∑ 🙂"]
    prefix_prompt = [tokens.bos_id or 1, *tokens.encode(SAMPLE)]
    fim_prompt = tokens.fim_ids(SAMPLE, "\n    return found\n")
    engine = HttpEngine(Settings(model="demo", backend="http"))
    engine._tokens = tokens
    prompts = [engine.prompt_text(prefix_prompt), engine.prompt_text(fim_prompt)]
    theirs = llama_cpp_tokenize(llama_cpp_dir, gguf, texts, prompts)
    for text, ids in zip(texts, theirs["texts"], strict=True):
        assert ids == tokens.encode(text), text[:60]
    fim = tokens.infill
    assert theirs["specials"] == {
        "▁<PRE>": [fim.prefix_id],
        "▁<SUF>": [fim.suffix_id],
        "▁<MID>": [fim.middle_id],
        "▁<EOT>": [fim.eot_id],
        "<s>": [tokens.bos_id],
        "</s>": [tokens.eos_id],
    }
    assert (theirs["bos"], theirs["eos"]) == (tokens.bos_id, tokens.eos_id)
    assert theirs["n_vocab"] == tokens.vocab_size
    # A left-to-right prompt sent as text reaches llama.cpp as exactly the ids we built...
    assert theirs["prompts"][0] == prefix_prompt
    # ...but Code Llama's FIM text ("<PRE> … <SUF>… <MID>") stays text there: llama.cpp
    # matches special tokens by their own string ("▁<PRE>"), hence prompt_format = prefix.
    assert fim.prefix_id not in theirs["prompts"][1]


def test_token_id_prompts_are_refused_so_the_engine_sends_text(
    llama_server: LlamaCppServer,
) -> None:
    # What llama-cpp-python 0.3.36 accepts: a text prompt. Token ids fail its request
    # validation, which it answers as an internal error (500), not a 422 like TGI.
    ids_body = {"model": "demo", "prompt": [1, 1053, 2897], "max_tokens": 4}
    status, body = llama_server.request("POST", "/v1/completions", ids_body)
    assert status == 500 and "'prompt'" in body["error"]["message"]
    text_body = {"model": "demo", "prompt": "import os\n", "max_tokens": 4}
    status, body = llama_server.request("POST", "/v1/completions", text_body)
    assert status == 200 and body["choices"][0]["text"]

    engine = HttpEngine(Settings(model="demo", backend="http", server_url=llama_server.url))
    engine.load(lambda _m, _p: None)
    tokens = engine.tokens
    prompt = (tokens.bos_id or 1, *tokens.encode("import os\n\n\ndef walk(root):\n"))
    request = GenerationRequest(prompt, 24, 0.0, 1.0, session="file:///walk.py")
    first = engine.generate(request, threading.Event())
    assert first.finish_reason != "error" and first.text
    assert not engine.send_token_ids  # decided once: ids refused, text worked
    again = engine.generate(request, threading.Event())
    assert again.finish_reason != "error" and again.text == first.text  # greedy


async def test_completions_arrive_cleaned_up(llama_server: LlamaCppServer) -> None:
    async with lsp_session(lsp_options(llama_server, max_new_tokens=48)) as s:
        status = await s.command("codellama.status")
        assert status["backend"] == "http" and status["state"] == "ready"
        s.open("file:///files.py", SAMPLE)
        items = await s.inline("file:///files.py", *end_of(SAMPLE))
        assert items and str(items[0].insert_text).strip()
        mid_line = SAMPLE + "if name.endswith()"  # the editor closed the bracket: one line
        s.open("file:///mid.py", mid_line)
        line, column = end_of(mid_line)
        single = await s.inline("file:///mid.py", line, column - 1)
        for item in [*items, *single]:
            text = str(item.insert_text)
            assert not SPECIAL.search(text), text
        assert all("\n" not in str(item.insert_text) for item in single)
        stats = await s.stats()
        assert stats["generations_completed"] >= 2
        assert not [m for m in s.client.messages if m.type == types.MessageType.Error]


async def test_cancelling_a_request_stops_llama_cpp(llama_server: LlamaCppServer) -> None:
    # A prompt of a few hundred tokens (llama.cpp reads it for a second or more on a busy
    # core) and up to 1500 new ones: the request is still running when it is cancelled.
    options = lsp_options(
        llama_server, max_context_tokens=2048, max_new_tokens=1500, stop_sequences=[]
    )
    async with lsp_session(options) as s:
        big = long_source()
        s.open("file:///big.py", big)
        log = llama_server.log_text
        requests, disconnects = log().count(STREAM_STARTED), log().count(DISCONNECTED)
        params = s.inline_params("file:///big.py", *end_of(big))
        pending = asyncio.ensure_future(
            s.client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=4343
            )
        )
        await asyncio.to_thread(
            wait_until, lambda: log().count(STREAM_STARTED) > requests, 30, "the stream"
        )
        s.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=4343))
        with pytest.raises(Exception, match=r"-32800|[Cc]ancel"):
            await asyncio.wait_for(pending, 30)
        # llama.cpp itself says it stopped: the stream was closed under it.
        await asyncio.to_thread(
            wait_until,
            lambda: log().count(DISCONNECTED) > disconnects,
            60,
            "llama.cpp to notice the closed stream",
        )
        stats = await s.stats()
        assert stats["generations_cancelled"] == 1 and stats["generations_completed"] == 0


async def test_killed_and_restarted_llama_cpp_recovers_by_itself(
    llama_cpp_dir: Path, gguf: Path, tmp_path: Path
) -> None:
    server = LlamaCppServer(llama_cpp_dir, gguf, free_port(), tmp_path / "server.log")
    await asyncio.to_thread(server.start)
    try:
        async with lsp_session(lsp_options(server, max_new_tokens=32)) as s:
            s.open("file:///files.py", SAMPLE)
            assert await s.inline("file:///files.py", *end_of(SAMPLE))

            server.kill()  # SIGKILL
            s.open("file:///two.py", SAMPLE.replace("list_python_files", "python_files"))
            assert await s.inline("file:///two.py", *end_of(SAMPLE)) == []
            errors = [m for m in s.client.messages if m.type == types.MessageType.Error]
            assert errors and "model server" in errors[-1].message

            await asyncio.to_thread(server.start)  # same port, the language server untouched
            s.open("file:///three.py", SAMPLE.replace("list_python_files", "py_files"))
            items = await s.inline("file:///three.py", *end_of(SAMPLE))
            assert items and str(items[0].insert_text).strip()
            infos = [m for m in s.client.messages if m.type == types.MessageType.Info]
            assert infos and "back" in infos[-1].message
            assert (await s.command("codellama.status"))["state"] == "ready"
    finally:
        server.kill()
