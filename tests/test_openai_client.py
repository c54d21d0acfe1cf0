"""The official ``openai`` Python client against ``codellama-lsp serve`` (demo model): the
client people actually use decides whether "OpenAI-compatible" holds (issue 13)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.support.model_servers import ModelServer, running_server

KEY = "test-key-123"


@pytest.fixture(scope="module")
def served(cache_env: dict[str, str]) -> Iterator[ModelServer]:
    with running_server("--api-key", KEY, env=cache_env) as server:
        yield server


def client(server: ModelServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=60)


def test_completion_and_model_list(served: ModelServer) -> None:
    api = client(served)
    assert [m.id for m in api.models.list().data] == ["demo"]
    answer = api.completions.create(
        model="demo", prompt="def add(a, b):\n", max_tokens=16, temperature=0
    )
    assert answer.object == "text_completion" and answer.model == "demo"
    assert answer.choices[0].text and answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    assert answer.usage.prompt_tokens > 0


def test_streaming_gives_the_same_text(served: ModelServer) -> None:
    api = client(served)
    whole = api.completions.create(
        model="demo", prompt="import os\n\n\ndef main():\n", max_tokens=24, temperature=0
    )
    pieces = api.completions.create(
        model="demo",
        prompt="import os\n\n\ndef main():\n",
        max_tokens=24,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(pieces)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_errors_arrive_as_the_client_expects(served: ModelServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(served, key="wrong").completions.create(model="demo", prompt="x", max_tokens=1)
    api = client(served)
    with pytest.raises(openai.BadRequestError) as bad:
        api.completions.create(model="demo", prompt="x", max_tokens=-5)
    assert "max_tokens" in str(bad.value)
    with pytest.raises(openai.NotFoundError):
        api.completions.create(model="no-such-model", prompt="x", max_tokens=1)
