"""Model servers as processes on a loopback port: the real ``codellama-lsp serve`` (demo
model) and the scripted one (``scripted_model_server.py``: known answers, for editor tests)."""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tests.support import CLI, GREEDY, ROOT

SCRIPTED_SERVER = Path(__file__).with_name("scripted_model_server.py")


def free_port() -> int:
    """A loopback port that nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """One HTTP request to 127.0.0.1:``port``; the status and the JSON body (or its text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw.decode()


def metrics(port: int) -> dict[str, float]:
    """Prometheus text → {"name{labels}": value}."""
    _, text = request(port, "GET", "/metrics")
    values = {}
    for line in str(text).splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def http_settings(url: str, **extra: Any) -> dict[str, Any]:
    """Language-server settings that use the model server at ``url`` (greedy, no debounce)."""
    return {**GREEDY, "backend": "http", "server_url": url, **extra}


class ModelServer:
    """A ``codellama-lsp serve --model demo --port 0 ARGS…`` process (later ARGS win); its
    ``host``, ``port`` and ``url`` once it listens. No API key from the caller's environment."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, stderr_path: Path | None = None
    ) -> None:
        self.stderr: IO[str] | None = stderr_path.open("w") if stderr_path else None
        self.proc = subprocess.Popen(
            [*CLI, "serve", "--model", "demo", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self.stderr or subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "CODELLAMA_LSP_API_KEY": "", **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # bounded: the process prints or exits
        match = re.search(r"listening on http://\[?([^\]\s]+?)\]?:(\d+)", line)
        if not match:
            self.stop()
            raise RuntimeError(f"model server did not start: {line!r}")
        self.host, self.port = match.group(1), int(match.group(2))
        self.url = f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        return request(self.port, method, path, body, headers)

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                _status, body = self.request("GET", "/health")
                if isinstance(body, dict) and body.get("status") == "ready":
                    return body
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError("model server not ready")

    def stop(self) -> None:
        """Kill it (SIGKILL: no goodbye, like a crash)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.stderr is not None:
            self.stderr.close()


@contextmanager
def running_server(
    *args: str, env: dict[str, str] | None = None, stderr_path: Path | None = None
) -> Iterator[ModelServer]:
    """A ready ``ModelServer`` for the ``with`` block."""
    server = ModelServer(*args, env=env, stderr_path=stderr_path)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@contextmanager
def scripted_model_server(
    target: str,
    folder: Path,
    piece_delay: float = 0.002,
    answers: list[tuple[str, str]] | None = None,
    *,
    block_lines: int = 0,
    hold_after_lines: int = 0,
) -> Iterator[dict[str, Any]]:
    """Start scripted_model_server.py answering from ``target`` (a streamed piece of three
    characters every ``piece_delay`` seconds; ``block_lines`` lines after the cursor's, held
    after ``hold_after_lines`` newlines until :func:`release_scripted`), or with the first of
    ``answers`` (prompt end, text) the prompt ends with; yield the settings that point the
    language server at it (HTTP backend, demo tokenizer, immediate, prefix prompts)."""
    target_file, port_file = folder / "scripted-target.py", folder / "scripted-port"
    target_file.write_text(target)
    port_file.unlink(missing_ok=True)
    log = (folder / "scripted-server.log").open("wb")
    command = [sys.executable, str(SCRIPTED_SERVER), "--target", str(target_file)]
    command += ["--piece-delay", str(piece_delay), "--block-lines", str(block_lines)]
    command += ["--hold-after-lines", str(hold_after_lines)]
    if answers:
        answers_file = folder / "scripted-answers.json"
        answers_file.write_text(json.dumps(answers))
        command += ["--answers", str(answers_file)]
    proc = subprocess.Popen(
        [*command, "--port-file", str(port_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"scripted model server did not start: see {log.name}")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        yield http_settings(url, prompt_format="prefix")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def release_scripted(settings: dict[str, Any]) -> int:
    """Let the scripted model server (started with ``hold_after_lines``) finish the answers it
    holds, once it holds one (it waits up to a minute for that); how many it released."""
    url = str(settings["server_url"]).rstrip("/") + "/release"
    with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=90) as r:
        return int(json.loads(r.read())["released"])


def holding_scripted(settings: dict[str, Any]) -> int:
    """How many answers the scripted model server holds now (see :func:`release_scripted`)."""
    url = str(settings["server_url"]).rstrip("/") + "/holding"
    with urllib.request.urlopen(url, timeout=30) as response:
        return int(json.loads(response.read()))
