"""The real model server (`codellama-lsp serve`, demo model) as a process on a loopback port,
driven by plain HTTP clients and by real language-server processes (pytest-lsp)."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types

from tests.support import CLI, wait_until
from tests.support.documents import SAMPLE, end_of, long_source
from tests.support.lsp_session import lsp_session
from tests.support.model_servers import (
    ModelServer,
    free_port,
    http_settings,
    metrics,
    request,
    running_server,
)

# Small prefill chunks make a long prompt take a while (time to cancel it mid-way); no KV
# reuse keeps greedy answers identical whatever ran before (float sums depend on chunking).
SLOW_PREFILL = ("--prefill-chunk-tokens", "32", "--kv-cache-slots", "0")
CARD_SAMPLE = {
    "input_data": {
        "input_string": ["def fibonacci("],
        "parameters": {"top_p": 0.9, "temperature": 0.2, "do_sample": True, "max_new_tokens": 200},
    }
}


@pytest.fixture(scope="module")
def server(cache_env: dict[str, str]) -> Iterator[ModelServer]:
    with running_server(*SLOW_PREFILL, env=cache_env) as s:
        yield s


# --- plain HTTP ----------------------------------------------------------------------------
def test_refuses_to_listen_beyond_loopback_without_an_api_key(tmp_path: Path) -> None:
    """Refused before the model's packages are imported (that took most of a minute on a
    busy machine): so it is refused even where they cannot be imported at all."""
    from tests.test_torch_free import without_torch

    for env in ({}, without_torch(tmp_path)):
        proc = subprocess.run(
            [*CLI, "serve", "--model", "demo", "--host", "0.0.0.0", "--port", "0"],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "CODELLAMA_LSP_API_KEY": "", **env},
        )
        assert proc.returncode == 2
        assert "API key" in proc.stdout + proc.stderr


def test_api_key_is_enforced_beyond_loopback(cache_env: dict[str, str]) -> None:
    with running_server("--host", "0.0.0.0", "--api-key", "s3cret", env=cache_env) as s:
        assert request(s.port, "GET", "/v1/models")[0] == 401
        wrong = {"Authorization": "Bearer not-the-key"}
        status, body = request(s.port, "POST", "/v1/completions", {"prompt": "x"}, wrong)
        assert status == 401 and "API key" in body["error"]["message"]
        good = {"Authorization": "Bearer s3cret"}
        assert request(s.port, "GET", "/v1/models", headers=good)[0] == 200
        status, body = request(
            s.port, "POST", "/v1/completions", {"prompt": "x = ", "max_tokens": 2}, good
        )
        assert status == 200 and body["choices"][0]["finish_reason"] in ("stop", "length")


def test_health_models_and_the_model_card_sample(server: ModelServer) -> None:
    status, health = request(server.port, "GET", "/health")
    assert status == 200
    assert health["status"] == "ready" and health["model"] == "demo" and health["loads"] == 1
    assert health["load_seconds"] > 0
    status, models = request(server.port, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in models["data"]] == ["demo"]

    status, answer = request(server.port, "POST", "/score", CARD_SAMPLE)
    assert status == 200
    assert isinstance(answer, list) and len(answer) == 1 and list(answer[0]) == ["0"]
    text = answer[0]["0"]
    assert text.startswith("def fibonacci(") and len(text) > len("def fibonacci(")


def test_metrics_read_by_a_prometheus_parser(server: ModelServer) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    body = {"prompt": "def add(a, b):\n", "max_tokens": 4, "temperature": 0}
    assert request(server.port, "POST", "/v1/completions", body)[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", "/metrics")
    response = conn.getresponse()
    assert response.getheader("Content-Type", "").startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(response.read().decode())}
    conn.close()

    def value(family: str, sample: str, **labels: str) -> float:
        return sum(
            s.value
            for s in families[family].samples
            if s.name == sample and labels.items() <= s.labels.items()
        )

    assert families["codellama_requests"].type == "counter"
    answered = value(
        "codellama_requests", "codellama_requests_total", endpoint="/v1/completions", status="200"
    )
    assert answered >= 1
    duration = "codellama_request_duration_seconds"
    assert families[duration].type == "histogram"
    assert value(duration, duration + "_count") >= 1
    assert value(duration, duration + "_bucket", le="+Inf") == value(duration, duration + "_count")
    assert value("codellama_generated_tokens", "codellama_generated_tokens_total") >= 1
    assert value("codellama_model_ready", "codellama_model_ready") == 1


def test_streaming_with_a_plain_http_client(server: ModelServer) -> None:
    body = {"model": "demo", "prompt": "def add(a, b):\n", "max_tokens": 24, "temperature": 0}
    status, plain = request(server.port, "POST", "/v1/completions", body)
    assert status == 200
    expected = plain["choices"][0]["text"]
    assert expected and plain["usage"]["completion_tokens"] > 0

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    stream_body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    conn.request("POST", "/v1/completions", json.dumps(stream_body))
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    events = [
        line[6:] for line in response.read().decode().split("\n") if line.startswith("data: ")
    ]
    conn.close()
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    pieces = [c["choices"][0]["text"] for c in chunks if c["choices"]]
    assert len([p for p in pieces if p]) > 1, "the text came in one piece"
    assert "".join(pieces) == expected
    assert chunks[-1]["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"]


def test_bad_requests_get_4xx_with_a_clear_message(server: ModelServer) -> None:
    port = server.port
    status, body = request(port, "POST", "/v1/completions", b'{"prompt": "x",')
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = request(port, "POST", "/v1/completions", b"x" * (2 << 20))
    assert status == 413
    status, body = request(port, "POST", "/v1/completions", {"prompt": "x", "max_tokens": 10**9})
    assert status == 400 and "max_tokens" in body["error"]["message"]
    status, body = request(port, "POST", "/v1/completions", {"prompt": {"x": 1}})
    assert status == 400 and "prompt" in body["error"]["message"]
    status, body = request(port, "POST", "/v1/completions", {"prompt": "x", "model": "gpt-4"})
    assert status == 404
    status, body = request(port, "POST", "/v1/completions", {"prompt": [5] * 5000})
    assert status == 400 and "tokens" in body["error"]["message"]
    status, body = request(port, "POST", "/score", {"input_data": "nope"})
    assert status == 400
    # Still healthy after all that.
    assert request(port, "GET", "/health")[1]["status"] == "ready"


def test_closing_the_stream_stops_the_generation(server: ModelServer) -> None:
    before = metrics(server.port)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    # A long prompt (prefilled in 32-token chunks) and a long answer: seconds of work.
    body = {
        "prompt": [1] + [300 + i % 200 for i in range(3000)],
        "max_tokens": 1000,
        "stream": True,
    }
    conn.request("POST", "/v1/completions", json.dumps({**body, "temperature": 0}))
    response = conn.getresponse()
    assert response.status == 200
    wait_until(lambda: metrics(server.port).get("codellama_active_generations") == 1)
    conn.close()
    closed_at = time.monotonic()
    key = "codellama_cancellations_total"
    wait_until(lambda: metrics(server.port)[key] == before[key] + 1, 10, "cancellation")
    assert time.monotonic() - closed_at < 5
    after = metrics(server.port)
    # It stopped within a prefill chunk / decode step of the disconnect.
    stop_count = "codellama_cancel_stop_seconds_count"
    assert after[stop_count] == before[stop_count] + 1
    assert (
        after["codellama_generated_tokens_total"] - before["codellama_generated_tokens_total"]
        < 1000
    )
    assert after["codellama_active_generations"] == 0


# --- real language servers -----------------------------------------------------------------
async def test_two_editors_share_one_loaded_model_and_cancel_independently(
    server: ModelServer,
) -> None:
    options = http_settings(server.url, max_new_tokens=64)
    async with lsp_session(options) as a, lsp_session(options) as b:
        assert (await a.command("codellama.status"))["backend"] == "http"
        for s, uri in ((a, "file:///a/files.py"), (b, "file:///b/files.py")):
            s.open(uri, SAMPLE)
        line, col = end_of(SAMPLE)
        first, second = await asyncio.gather(
            a.inline("file:///a/files.py", line, col), b.inline("file:///b/files.py", line, col)
        )
        assert first and str(first[0].insert_text).strip()
        assert second and first[0].insert_text == second[0].insert_text  # same model, greedy
        health = request(server.port, "GET", "/health")[1]
        assert health["loads"] == 1  # one copy of the model for both editors

        # Editor A asks for a completion in a long file, then cancels it while the model
        # server is busy with it; editor B's request is served normally.
        before = metrics(server.port)
        big = long_source()
        a.open("file:///a/big.py", big)
        params = a.inline_params("file:///a/big.py", *end_of(big))
        pending = asyncio.ensure_future(
            a.client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=777
            )
        )
        await asyncio.to_thread(
            wait_until, lambda: metrics(server.port).get("codellama_active_generations") == 1
        )
        a.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=777))
        b_before = await b.stats()
        b.open("file:///b/other.py", SAMPLE.replace("list_python_files", "python_files"))
        await b.inline("file:///b/other.py", line, col)
        with pytest.raises(Exception, match=r"-32800|[Cc]ancel"):
            await asyncio.wait_for(pending, 30)
        # B's request went to the model server and came back whole (its text, possibly
        # empty, is the demo model's business).
        b_after = await b.stats()
        retries = b_after["parse_check_retries"] - b_before["parse_check_retries"]
        assert b_after["generations_completed"] == b_before["generations_completed"] + 1 + retries
        assert not b.client.messages
        # The model server counts every generation a client stops as cancelled: A's cancel, and
        # each stream a language server closes once the text has left the cursor's block.
        ran = sum(
            value
            for name, value in metrics(server.port).items()
            if name.startswith("codellama_generations_total")
        )
        assert ran >= 4 and "error" not in str(metrics(server.port))
        key = "codellama_cancellations_total"
        await asyncio.to_thread(
            wait_until, lambda: metrics(server.port)[key] >= before[key] + 1, 10, "cancellation"
        )
        # Only A's request was cancelled as far as the editors are concerned.
        assert (await a.stats())["generations_cancelled"] == 1
        assert (await b.stats())["generations_cancelled"] == 0
        assert request(server.port, "GET", "/health")[1]["loads"] == 1


async def test_server_killed_mid_request_then_back(
    cache_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    args = ("--port", str(port), *SLOW_PREFILL)
    first = ModelServer(*args, env=cache_env)
    try:
        await asyncio.to_thread(first.wait_ready)
        async with lsp_session(http_settings(first.url, context_other_documents=False)) as s:
            big = long_source()
            s.open("file:///big.py", big)
            pending = asyncio.ensure_future(s.inline("file:///big.py", *end_of(big)))
            await asyncio.to_thread(
                wait_until, lambda: metrics(port).get("codellama_active_generations") == 1
            )
            first.stop()  # SIGKILL mid-request
            assert await asyncio.wait_for(pending, 30) == []
            errors = [m for m in s.client.messages if m.type == types.MessageType.Error]
            assert errors and "model server" in errors[-1].message
            assert (await s.command("codellama.status"))["state"] == "error"

            second = ModelServer(*args, env=cache_env)
            try:
                await asyncio.to_thread(second.wait_ready)
                s.open("file:///small.py", SAMPLE)
                items = await s.inline("file:///small.py", *end_of(SAMPLE))
                assert items and str(items[0].insert_text).strip()
                assert (
                    metrics(port).get('codellama_generations_total{finish_reason="error"}', 0) == 0
                )
                infos = [m for m in s.client.messages if m.type == types.MessageType.Info]
                assert infos and "back" in infos[-1].message
                assert (await s.command("codellama.status"))["state"] == "ready"
            finally:
                second.stop()
    finally:
        first.stop()
