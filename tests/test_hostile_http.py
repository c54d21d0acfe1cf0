"""A hostile client against the real model server over HTTP (issue 12).

Every bad input gets a 4xx with a message, never a 500; limits cannot be dodged by varying a
header, and hold on every generating endpoint. The table in ``docs/reliability.md`` names the
test that keeps each case; ``benchmarks/event_loop_stall.py`` measures how long one request
can hold up the event loop (``/health`` and every other client).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.support import wait_until
from tests.support.model_servers import ModelServer, running_server

KEY = "k" * 32


@pytest.fixture(scope="module")
def served() -> Iterator[ModelServer]:
    with running_server("--api-key", KEY) as s:
        yield s


AUTH = {"Authorization": f"Bearer {KEY}"}


def post(s: ModelServer, path: str, body: Any) -> tuple[int, Any]:
    return s.request("POST", path, body, AUTH)


def raw_request(port: int, head: bytes, body: bytes = b"") -> int:
    """Send bytes as they are (http.client would refuse non-Latin-1 headers); the status."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "token",
    [b"\xe9\xff\xfe", "ключ".encode(), b"k" * 31 + b"\xe9", b"\x80" * 32],
    ids=["latin-1 bytes", "utf-8 cyrillic", "one byte off", "continuation bytes"],
)
def test_non_ascii_authorization_is_401(served: ModelServer, token: bytes) -> None:
    """A header that is not ASCII raised UnicodeEncodeError in the key check: a 500."""
    head = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + b"\r\n"
    assert raw_request(served.port, head) == 401


DEEP = 50_000


@pytest.mark.parametrize(
    "body",
    [b"[" * DEEP + b"]" * DEEP, b'{"prompt": ' + b"[" * DEEP + b"]" * DEEP + b"}", b"{" * DEEP],
    ids=["array", "inside the prompt", "unclosed objects"],
)
@pytest.mark.parametrize("path", ["/v1/completions", "/score"])
def test_deeply_nested_json_is_400(served: ModelServer, body: bytes, path: str) -> None:
    """json.loads raised RecursionError: a 500."""
    status, answer = post(served, path, body)
    assert status == 400, answer
    assert "JSON" in answer["error"]["message"] or "deep" in answer["error"]["message"]


BAD_FIELDS: list[dict[str, Any]] = [
    {"seed": 2**64},
    {"seed": 2**100},
    {"seed": -1},
    {"seed": 1.5},
    {"seed": True},
    {"model": ["demo"]},
    {"model": {"name": "demo"}},
    {"model": 5},
    {"max_tokens": "16"},
    {"max_tokens": 4.0},
    {"temperature": "hot"},
    {"temperature": -1},
    {"top_p": [0.5]},
    {"stop": 5},
    {"stop": [1, 2]},
    {"stream": "yes"},
    {"stream_options": []},
    {"n": 2},
    {"user": {}},
    {"suffix": 5},
    {"prompt": None},
    {"prompt": [[1, 2], [3]]},
    {"prompt": [-1]},
    {"prompt": [2**70]},
]


@pytest.mark.parametrize("field", BAD_FIELDS, ids=[json.dumps(f) for f in BAD_FIELDS])
def test_bad_completion_fields_are_400(served: ModelServer, field: dict[str, Any]) -> None:
    """An out-of-range seed reached torch and a list as model was hashed: both 500s."""
    status, answer = post(served, "/v1/completions", {"prompt": "x = ", "max_tokens": 2, **field})
    assert status == 400, answer
    assert answer["error"]["message"]


BAD_SCORES: list[Any] = [
    {"input_data": {"input_string": ["x"], "parameters": {"max_new_tokens": "4"}}},
    {"input_data": {"input_string": ["x"], "parameters": {"temperature": 99}}},
    {"input_data": {"input_string": ["x"], "parameters": []}},
    {"input_data": {"input_string": []}},
    {"input_data": {"input_string": [5]}},
    {"input_data": "nope"},
    [],
]


@pytest.mark.parametrize("body", BAD_SCORES, ids=[json.dumps(b) for b in BAD_SCORES])
def test_bad_score_bodies_are_400(served: ModelServer, body: Any) -> None:
    status, answer = post(served, "/score", body)
    assert status == 400, answer


def test_a_megabyte_prompt_is_refused_before_tokenizing(served: ModelServer) -> None:
    """The size is checked in characters first (it used to be tokenized on the event loop,
    holding up ``/health`` and every client for seconds); the answer says "at least"."""
    prompt = "x = [" + "1, " * 330_000 + "]"
    for body in (
        {"prompt": prompt},
        {"prompt": "def f():", "suffix": prompt},
        {"prompt": [prompt]},
    ):
        status, answer = post(served, "/v1/completions", {**body, "max_tokens": 4})
        assert status == 400, answer
        assert "at least" in answer["error"]["message"], answer
    status, answer = post(served, "/score", {"input_data": {"input_string": [prompt]}})
    assert status == 400 and "at least" in answer["error"]["message"], answer


@contextmanager
def slots_held(port: int, path: str, sessions: list[str]) -> Iterator[None]:
    """Requests that stay in flight: headers sent, the body never finished (a slow client)."""
    socks = []
    try:
        for session in sessions:
            sock = socket.create_connection(("127.0.0.1", port), timeout=60)
            sock.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                f"X-Codellama-Session: {session}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n{".encode()
            )
            socks.append(sock)
        yield
    finally:
        for sock in socks:
            sock.close()


def test_varying_the_session_header_does_not_lift_the_limit(served: ModelServer) -> None:
    """The limit was keyed on X-Codellama-Session: a new value per request, no limit."""
    body = {"prompt": "x = ", "max_tokens": 2}

    def refused() -> bool:
        headers = {**AUTH, "X-Codellama-Session": f"other-{time.monotonic_ns()}"}
        return served.request("POST", "/v1/completions", body, headers)[0] == 429

    with slots_held(served.port, "/v1/completions", [f"s{i}" for i in range(4)]):
        wait_until(refused, what="a 429 for a fifth request with a new session header")
    wait_until(lambda: post(served, "/v1/completions", body)[0] == 200, what="free slots")


def test_score_is_limited_too(served: ModelServer) -> None:
    """/score had no limit at all; it shares the per-address limit with completions."""
    body = {"input_data": {"input_string": ["x = "], "parameters": {"max_new_tokens": 2}}}
    with (
        slots_held(served.port, "/v1/completions", ["a", "b"]),
        slots_held(served.port, "/score", ["c", "d"]),
    ):
        wait_until(lambda: post(served, "/score", body)[0] == 429, what="a 429 from /score")
    wait_until(lambda: post(served, "/score", body)[0] == 200, what="free slots")


def test_still_healthy_after_all_that(served: ModelServer) -> None:
    assert served.request("GET", "/health")[1]["status"] == "ready"
    assert post(served, "/v1/completions", {"prompt": "x = ", "max_tokens": 2})[0] == 200
