"""Locked down by default: the model server's exposure and limits, no document text in logs,
no network call to the model hub unless the user asked for a download.

(``tests/test_model_server.py`` also covers the refusal to bind beyond loopback without a key
and the key check itself; here the same server is probed from outside as an attacker would.)
"""

from __future__ import annotations

import inspect
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from benchmarks.soak import DEMO, ROOT, RawClient
from tests.test_model_server import request

SECRET = "zq_SECRET_marker_4821"
DOC = f"import os\n\n\ndef {SECRET}(root):\n    token = '{SECRET}'\n    return "


class Served:
    def __init__(self, proc: subprocess.Popen[str], port: int, host: str) -> None:
        self.proc, self.port, self.host = proc, port, host

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        return request(self.port, method, path, body, headers)


@contextmanager
def model_server(*args: str, stderr_path: str | None = None) -> Iterator[Served]:
    err = open(stderr_path, "w") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codellama_lsp.cli",
            "serve",
            "--model",
            "demo",
            "--port",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        cwd=ROOT,
        env={**os.environ, "CODELLAMA_LSP_API_KEY": ""},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"listening on http://\[?([^\]\s]+?)\]?:(\d+)", line)
        assert match, f"model server did not start: {line!r}"
        served = Served(proc, int(match.group(2)), match.group(1))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if served.request("GET", "/health")[1].get("status") == "ready":
                    break
            except (OSError, AttributeError):
                pass
            time.sleep(0.1)
        yield served
    finally:
        proc.kill()
        proc.wait(10)
        if stderr_path:
            err.close()  # type: ignore[union-attr]


def listening_addresses(pid: int) -> set[str]:
    return {
        c.laddr.ip
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    }


# ------------------------------------------------------------------------- model server
@pytest.mark.timeout(120)
def test_model_server_defaults_to_loopback_and_enforces_limits(tmp_path: Any) -> None:
    log = str(tmp_path / "serve.log")
    with model_server(
        "--max-body-bytes",
        "65536",
        "--max-tokens-limit",
        "64",
        "--max-prompt-tokens",
        "256",
        stderr_path=log,
    ) as s:
        assert s.host == "127.0.0.1"
        assert listening_addresses(s.proc.pid) <= {"127.0.0.1", "::1"}
        ok = {"prompt": f"def {SECRET}():\n    return ", "max_tokens": 4, "temperature": 0}
        status, body = s.request("POST", "/v1/completions", ok)
        assert status == 200, body
        # Body size, max_tokens and prompt tokens are bounded, each with a clear 4xx.
        status, _ = s.request("POST", "/v1/completions", {"prompt": "x" * 200_000})
        assert status == 413
        status, body = s.request("POST", "/v1/completions", {"prompt": "x", "max_tokens": 10_000})
        assert status == 400 and "max_tokens" in body["error"]["message"]
        status, body = s.request(
            "POST", "/v1/completions", {"prompt": "value = 1\n" * 200, "max_tokens": 4}
        )
        assert status == 400 and "tokens" in body["error"]["message"]
        status, _ = s.request("POST", "/v1/completions", b"{not json")
        assert status == 400
    # No prompt text in the model server's log at the default level.
    with open(log) as f:
        assert SECRET not in f.read()


def test_api_key_comparison_is_constant_time() -> None:
    from codellama_lsp import model_server
    from codellama_lsp.model_server import auth

    assert "hmac.compare_digest" in inspect.getsource(auth.bearer_matches)
    # No plain equality against the key anywhere in the server.
    for source in Path(model_server.__file__).parent.glob("*.py"):
        assert not re.search(r"==\s*(self\.)?api_key|(self\.)?api_key\s*==", source.read_text())


@pytest.mark.timeout(120)
def test_api_key_required_off_loopback_wrong_keys_rejected() -> None:
    with model_server("--host", "0.0.0.0", "--api-key", "k" * 32) as s:
        for header in (
            {},
            {"Authorization": "Bearer " + "k" * 31 + "j"},  # same length, last byte differs
            {"Authorization": "Bearer " + "k" * 31},
            {"Authorization": "Basic " + "k" * 32},
        ):
            assert s.request("GET", "/v1/models", headers=header)[0] == 401, header
        assert (
            s.request("GET", "/v1/models", headers={"Authorization": "Bearer " + "k" * 32})[0]
            == 200
        )


@pytest.mark.timeout(120)
def test_concurrent_streams_per_client_are_limited() -> None:
    """One client cannot hold the shared model with many streams at once."""
    with model_server() as s:
        statuses: list[int] = []

        def one() -> None:
            body = {"prompt": "x = ", "max_tokens": 64, "stream": True}
            statuses.append(s.request("POST", "/v1/completions", body)[0])

        threads = [threading.Thread(target=one) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert 429 in statuses


# ------------------------------------------------------------------------- language server logs
@pytest.mark.timeout(120)
def test_no_document_text_in_language_server_stderr_at_default_level() -> None:
    client = RawClient()
    try:
        client.initialize({k: v for k, v in DEMO.items()})  # log_level stays INFO
        client.wait_state("ready")
        uri = "file:///secret.py"
        client.open(uri, DOC)
        client.result("textDocument/inlineCompletion", RawClient.inline_params(uri, 5, 11))
        client.change(
            uri,
            2,
            [
                {
                    "range": {
                        "start": {"line": 5, "character": 11},
                        "end": {"line": 5, "character": 11},
                    },
                    "text": f"{SECRET}()",
                }
            ],
        )
        client.result(
            "textDocument/completion",
            {"textDocument": {"uri": uri}, "position": {"line": 5, "character": 11}},
        )
        # Malformed messages that carry document text: pygls logs failures at ERROR.
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": 3},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": -1, "character": 0},
                            "end": {"line": 0, "character": 0},
                        },
                        "text": SECRET,
                    }
                ],
            },
        )
        client.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": "file:///x.py",
                    "languageId": "python",
                    "version": "one",
                    "text": SECRET,
                }
            },
        )
        response = client.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": -5, "character": 0},
                "context": {"triggerKind": 2, "selectedCompletionInfo": {"text": SECRET}},
            },
        )
        assert "error" in response
        assert client.alive()
        time.sleep(0.3)
        log = client.stderr_text()
        assert log.strip(), "expected some log lines at INFO"
        assert SECRET not in log, [line for line in log.splitlines() if SECRET in line][:3]
    finally:
        client.close()


# ------------------------------------------------------------------------- hub access
class Listener:
    """A TCP port standing in for the model hub: counts connections, closes each at once."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    ("local_files_only", "offline", "expect_network"),
    [(True, False, False), (False, True, False), (False, False, True)],
    ids=["local_files_only", "HF_HUB_OFFLINE", "download-asked-control"],
)
def test_no_hub_call_unless_the_user_asks(
    tmp_path: Any, local_files_only: bool, offline: bool, expect_network: bool
) -> None:
    hub = Listener()
    env = {
        "HF_ENDPOINT": f"http://127.0.0.1:{hub.port}",
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_ETAG_TIMEOUT": "2",
        "HF_HUB_DOWNLOAD_TIMEOUT": "2",
    }
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_HUB_OFFLINE"] = ""
    client = RawClient(env=env)
    try:
        client.initialize(
            {
                **DEMO,
                "model": "example-org/not-downloaded-model",
                "local_files_only": local_files_only,
                "backend": "local",
            }
        )
        status = client.wait_state("error", "ready", timeout=120)
        assert status["state"] == "error"
        assert client.alive()
        if expect_network:
            assert hub.connections > 0, "the control run should have tried the hub"
        else:
            assert hub.connections == 0, f"{hub.connections} connections to the hub"
            if local_files_only:
                assert "local_files_only" in status["message"]
    finally:
        client.close()
        hub.close()
