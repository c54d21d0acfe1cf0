"""A hostile or broken client against the real language server over raw stdio (issue 12).

Each case sends what a broken client sends and asserts the answer the specifications name
(JSON-RPC 2.0, LSP 3.17), at once: never silence, never a crash, never a server that stops
reading. The table in ``docs/reliability.md`` names the test that keeps each case.

Servers that need no model are never sent ``initialized``, so they start in about a second.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import CLI, DEMO, ROOT
from tests.support.model_servers import free_port
from tests.support.raw_client import RawClient

ENV = {"CODELLAMA_LSP_DEBUG_COMMANDS": "1"}
URI = "file:///hostile.py"
TEXT = "import os\n\n\ndef walk(root):\n    return "
PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS = -32700, -32600, -32602
NOT_INITIALIZED, INTERNAL_ERROR = -32002, -32603
WAIT = 30.0
"""Seconds a test waits for an answer: a hang fails the test; a normal answer takes ms."""


def initialize(client: RawClient, process_id: Any = None, timeout: float = WAIT) -> dict[str, Any]:
    """``initialize`` alone: no ``initialized``, so no model load."""
    params = {"processId": process_id, "rootUri": None, "capabilities": {}}
    return client.request("initialize", params, timeout)


def completion(client: RawClient, position: Any, uri: str = URI) -> dict[str, Any]:
    params = {"textDocument": {"uri": uri}, "position": position}
    return client.request("textDocument/completion", params, WAIT)


def error_code(response: dict[str, Any]) -> int | None:
    code = response.get("error", {}).get("code")
    return code if isinstance(code, int) else None


def frame(body: bytes, length: int | None = None) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body


def write(client: RawClient, data: bytes) -> None:
    assert client.proc.stdin is not None
    client.proc.stdin.write(data)
    client.proc.stdin.flush()


def status_request(msg_id: int) -> bytes:
    body = {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "workspace/executeCommand",
        "params": {"command": "codellama.status", "arguments": []},
    }
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def server() -> Iterator[RawClient]:
    """One initialized server (no model) shared by the cases that leave it running."""
    client = RawClient(env=ENV)
    try:
        assert "result" in initialize(client)
        client.open(URI, TEXT)
        yield client
    finally:
        client.close()


def assert_still_serving(client: RawClient) -> None:
    assert client.alive(), client.stderr_tail()
    assert client.command("codellama.status", timeout=WAIT)["state"] == "loading"


# ------------------------------------------------------------------------------- framing
FRAMING = {
    # (bytes to send, the id whose answer is a parse error, the id answered normally)
    "Content-Length shorter than the body": (
        frame(status_request(501), len(status_request(501)) - 7) + frame(status_request(502)),
        501,
        502,
    ),
    "Content-Length longer than the body": (
        frame(status_request(511), len(status_request(511)) + 40) + frame(status_request(512)),
        None,
        (511, 512),
    ),
    "Content-Length longer than the body, nothing after": (
        frame(status_request(516), len(status_request(516)) + 40),
        None,
        516,
    ),
    "garbage between two messages": (
        frame(status_request(521)) + b"\x00garbage}}\r\n\r\n" + frame(status_request(522)),
        None,
        (521, 522),
    ),
    "body cut short by the next header": (
        frame(status_request(531)[:-9], len(status_request(531))) + frame(status_request(532)),
        531,
        532,
    ),
    "JSON nested 50,000 levels": (
        frame(b'{"jsonrpc":"2.0","id":541,"method":"x","params":' + b"[" * 50_000)
        + frame(status_request(542)),
        541,
        542,
    ),
}


@pytest.mark.parametrize("case", list(FRAMING))
def test_framing_errors_resynchronise_on_the_next_header(server: RawClient, case: str) -> None:
    """A wrong Content-Length used to leave pygls reading garbage forever (deaf for good)."""
    data, broken, answered = FRAMING[case]
    write(server, data)
    if broken is not None:
        assert error_code(server.wait(broken, WAIT)) == PARSE_ERROR
    for msg_id in answered if isinstance(answered, tuple) else (answered,):
        assert server.wait(msg_id, WAIT)["result"]["state"] == "loading"
    assert_still_serving(server)


def test_batches_are_refused_with_an_error(server: RawClient) -> None:
    """LSP has no batches: each request in one gets -32600; an empty one gets one error."""
    batch = [json.loads(status_request(601)), json.loads(status_request(602))]
    server.send_raw(json.dumps(batch).encode())
    assert error_code(server.wait(601, WAIT)) == INVALID_REQUEST
    assert error_code(server.wait(602, WAIT)) == INVALID_REQUEST
    server.send_raw(b"[]")
    assert error_code(server.wait(None, WAIT)) == INVALID_REQUEST  # type: ignore[arg-type]
    assert_still_serving(server)


def test_not_json_gets_a_parse_error_with_the_id_when_readable(server: RawClient) -> None:
    server.send_raw(b'{"jsonrpc":"2.0","id":701,"method":"textDocument/completion","params":{')
    assert error_code(server.wait(701, WAIT)) == PARSE_ERROR
    # An "id" inside the params is not taken for the message's own.
    server.send_raw(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":702,')
    assert error_code(server.wait(None, WAIT)) == PARSE_ERROR  # type: ignore[arg-type]
    assert 702 not in server.responses
    assert_still_serving(server)


# ------------------------------------------------------------------------------- params
@pytest.mark.parametrize(
    "position",
    [
        {"line": "3", "character": 0},
        {"line": 0, "character": "1"},
        {"line": 1.5, "character": 0},
        {"line": 0, "character": 2.0},
        {"line": True, "character": 0},
        {"line": None, "character": 0},
    ],
    ids=["line string", "character string", "line float", "character float", "bool", "null"],
)
def test_positions_that_are_not_integers_are_invalid_params(
    server: RawClient, position: dict[str, Any]
) -> None:
    """cattrs read "3" as 3 and 1.5 as 1; LSP positions are integers."""
    assert error_code(completion(server, position)) == INVALID_PARAMS


@pytest.mark.parametrize("kind", [99, "2", 2.0, True])
def test_enum_values_that_are_not_members_are_invalid_params(server: RawClient, kind: Any) -> None:
    """Strict integers must not turn integer enums (trigger kinds) into plain numbers."""
    params = {**RawClient.inline_params(URI, 0, 0), "context": {"triggerKind": kind}}
    response = server.request("textDocument/inlineCompletion", params, WAIT)
    assert error_code(response) == INVALID_PARAMS


def test_line_past_the_end_means_the_end_of_the_document(server: RawClient) -> None:
    got = server.command(
        "codellama.debugDocument", {"uri": URI, "line": 1000, "character": 0}, timeout=WAIT
    )
    assert got["cursor"] == {
        "line": 4,
        "column": len("    return "),
        "line_prefix": "    return ",
        "line_suffix": "",
    }


BAD_ARGUMENTS: list[Any] = [
    None,
    [None],
    ["x"],
    [[1, 2]],
    [1e308],
    [{"uri": 5, "line": "a", "character": None}],
    [{"uri": URI, "line": 1}],
    [{"uri": URI, "line": -1, "character": 0}],
    [{"uri": URI, "line": "1", "character": "2"}],
    [{"uri": URI, "line": 0, "character": 0, "text": 5}],
    [{"uri": URI, "line": 2**70, "character": 0, "end_line": [], "text": "x"}],
    "not a list",
    {"an": "object"},
]


@pytest.mark.parametrize(
    "command",
    [
        "codellama.stats",
        "codellama.status",
        "codellama.accepted",
        "codellama.debugDocument",
        "codellama.nope",
    ],
)
def test_malformed_command_arguments_never_give_an_internal_error(
    server: RawClient, command: str
) -> None:
    for arguments in BAD_ARGUMENTS:
        params = {"command": command, "arguments": arguments}
        response = server.request("workspace/executeCommand", params, WAIT)
        assert "result" in response or error_code(response) == INVALID_PARAMS, (
            arguments,
            response,
        )
    assert_still_serving(server)


@pytest.mark.parametrize(
    "method", ["textDocument/didPartiallyAcceptCompletion", "textDocument/didShowCompletion"]
)
def test_malformed_acceptance_notifications_are_ignored(server: RawClient, method: str) -> None:
    """The Copilot notifications (issue 14) with garbage: nothing counted, still serving."""
    for arguments in BAD_ARGUMENTS:
        for params in (
            arguments,
            {"item": arguments, "acceptedLength": 3},
            {"item": {"command": {"arguments": arguments}}, "acceptedLength": 2**70},
            {"item": {"command": {"arguments": arguments}}, "acceptedLength": True},
        ):
            server.notify(method, params)
    stats = server.command("codellama.stats", timeout=WAIT)
    assert stats["acceptance"]["shown"] == 0
    assert stats["acceptance"]["partially_accepted"] == 0
    assert_still_serving(server)


def test_second_initialize_is_refused_and_documents_are_kept(server: RawClient) -> None:
    """It used to be answered, and pygls made a new workspace: every open document was lost."""
    assert error_code(initialize(server)) == INVALID_REQUEST
    got = server.command("codellama.debugDocument", {"uri": URI, "text": True}, timeout=WAIT)
    assert got is not None and got["text"] == TEXT


# ------------------------------------------------------------------------------- lifecycle
def test_requests_before_initialize_get_server_not_initialized() -> None:
    client = RawClient(env=ENV)
    try:
        for method, params in (
            ("textDocument/completion", {"textDocument": {"uri": URI}, "position": {}}),
            ("workspace/executeCommand", {"command": "codellama.status"}),
            ("shutdown", None),
        ):
            assert error_code(client.request(method, params, WAIT)) == NOT_INITIALIZED, method
        client.open(URI, TEXT)  # a notification before initialize is dropped
        assert "result" in initialize(client)
        assert client.command("codellama.debugDocument", {"uri": URI}, timeout=WAIT) is None
    finally:
        client.close()


def test_requests_after_shutdown_are_refused_then_exit_gives_zero() -> None:
    client = RawClient(env=ENV)
    try:
        assert "result" in initialize(client)
        shutdown = client.request("shutdown", None, WAIT)
        assert "result" in shutdown and shutdown["result"] is None
        for method, params in (
            ("textDocument/completion", {"textDocument": {"uri": URI}, "position": {}}),
            ("workspace/executeCommand", {"command": "codellama.status"}),
            ("shutdown", None),
            ("initialize", {"processId": None, "rootUri": None, "capabilities": {}}),
        ):
            assert error_code(client.request(method, params, WAIT)) == INVALID_REQUEST, method
        client.notify("exit", None)
        assert client.proc.wait(WAIT) == 0
    finally:
        client.close()


def test_exit_without_shutdown_exits_with_one() -> None:
    client = RawClient(env=ENV)
    try:
        assert "result" in initialize(client)
        client.notify("exit", None)
        assert client.proc.wait(WAIT) == 1
    finally:
        client.close()


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.timeout(120)
def test_process_ids_that_are_not_a_live_process_do_not_end_the_server() -> None:
    """A negative number names a process group for ``kill`` (-7: none, so "gone"); a dead pid
    is no parent. Both used to end the server within 2 s. Now it logs that it does not watch
    them, and keeps serving."""
    pids = [-7, dead_pid()]
    clients = [RawClient(env=ENV) for _ in pids]
    try:
        for client, pid in zip(clients, pids, strict=True):
            assert "result" in initialize(client, pid, timeout=90), pid
        for client, pid in zip(clients, pids, strict=True):
            deadline = time.monotonic() + WAIT
            while f"processId {pid} is not a live process" not in client.stderr_text():
                assert time.monotonic() < deadline, client.stderr_tail()
                time.sleep(0.05)
            assert_still_serving(client)
    finally:
        for client in clients:
            client.close()


def test_only_a_live_positive_pid_is_watched() -> None:
    from codellama_lsp.lsp.watchdog import process_exists

    for pid in (-1, -7, 0, 2**22 + 1, 2**31, 2**40, 2**70, dead_pid()):
        assert not process_exists(pid), pid
    assert process_exists(os.getpid())


# ------------------------------------------------------------------------------- settings
@pytest.mark.timeout(120)
def test_bad_log_level_reported_once_and_a_model_change_still_reloads() -> None:
    """A bad log_level was stored, then raised on every later change (each one reported and
    dropped), so a later change of model was silently ignored with status ``ready``."""
    client = RawClient(env=ENV)
    try:
        client.initialize(DEMO)
        client.wait_state("ready")
        configure = "workspace/didChangeConfiguration"
        client.notify(configure, {"settings": {"codellama": {"log_level": "LOUD"}}})
        client.notify(configure, {"settings": {"codellama": {"max_new_tokens": 12}}})
        missing = "/nonexistent/codellama-model"
        client.notify(configure, {"settings": {"codellama": {"model": missing}}})
        status = client.wait_state("error", timeout=60)
        assert missing in status["message"]
        messages = client.messages()
        assert sum("log_level" in m for m in messages) == 1, messages
        assert any(missing in m for m in messages), messages
        # The reload was shown as progress.
        progress = [
            n["params"]["value"] for n in client.notifications if n["method"] == "$/progress"
        ]
        assert any(v["kind"] == "begin" and missing in v["title"] for v in progress), progress
    finally:
        client.close()


# ------------------------------------------------------------------------------- TCP
def read_frames(sock: socket.socket, count: int) -> list[dict[str, Any]]:
    data = b""
    messages: list[dict[str, Any]] = []
    while len(messages) < count:
        chunk = sock.recv(65536)
        assert chunk, "the server closed the connection"
        data += chunk
        while b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
            if len(rest) < length:
                break
            messages.append(json.loads(rest[:length]))
            data = rest[length:]
    return messages


@pytest.mark.timeout(120)
def test_tcp_uses_the_same_reader_and_rules() -> None:
    """``--tcp`` ran pygls' own reader: the fixes above must hold there too."""
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "--tcp", f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL, cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        with sock:
            sock.sendall(
                frame(status_request(801), len(status_request(801)) - 7)
                + frame(status_request(802))
            )
            answers = {m["id"]: m["error"]["code"] for m in read_frames(sock, 2)}
            assert answers == {801: PARSE_ERROR, 802: NOT_INITIALIZED}
            sock.sendall(frame(b'{"jsonrpc": "2.0", "method": "exit"}'))
            assert proc.wait(WAIT) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
