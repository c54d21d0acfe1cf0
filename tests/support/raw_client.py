"""A minimal JSON-RPC client of the real ``codellama-lsp`` over stdio (no pytest-lsp).

It can also send what a broken client sends (``send_raw_frame``): the fault, hostile-client
and fuzz tests use it, and so do the soak and event-loop-stall benchmarks.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support import CLI, DEMO, ROOT


class ServerDied(RuntimeError):
    pass


class RawClient:
    """A minimal LSP client over the server's stdio: JSON-RPC framing, nothing else.

    Server-to-client requests (``window/workDoneProgress/create`` …) are answered with null.
    """

    def __init__(
        self,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.stderr_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept for the session)
            prefix="codellama-lsp-stderr-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [*(command or CLI), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
        self.pid = self.proc.pid
        self._next_id = 1
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self.responses: dict[int | str, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.sent = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # --- wire ---------------------------------------------------------------------------
    def send_raw(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        data = b"Content-Length: %d\r\n\r\n" % len(body) + body
        with self._lock:
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError) as exc:
                raise ServerDied(self.stderr_tail()) from exc
            self.sent += 1

    def send_raw_frame(self, frame: bytes) -> None:
        """Bytes as they are, header included (a broken frame, for robustness tests)."""
        assert self.proc.stdin is not None
        with self._lock:
            self.proc.stdin.write(frame)
            self.proc.stdin.flush()
            self.sent += 1

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8"))

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    with self._cond:
                        self._cond.notify_all()
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii", "replace").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                continue
            message = json.loads(stream.read(length))
            if "method" in message and "id" in message:
                reply = {"jsonrpc": "2.0", "id": message["id"], "result": None}
                if message["method"] == "workspace/configuration":
                    reply["result"] = [None for _ in message["params"].get("items", [])]
                self.send_raw(json.dumps(reply).encode())
            elif "id" in message:
                with self._cond:
                    self.responses[message["id"]] = message
                    self._cond.notify_all()
            else:
                with self._cond:
                    self.notifications.append(message)
                    self._cond.notify_all()

    # --- JSON-RPC ---------------------------------------------------------------------------
    def new_id(self) -> int:
        with self._lock:
            self._next_id += 1
            return self._next_id

    def send_request(self, method: str, params: Any, msg_id: int | str | None = None) -> int | str:
        msg_id = self.new_id() if msg_id is None else msg_id
        self.send({"id": msg_id, "method": method, "params": params})
        return msg_id

    def wait(self, msg_id: int | str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while msg_id not in self.responses:
                if self.proc.poll() is not None:
                    raise ServerDied(f"exit {self.proc.returncode}: {self.stderr_tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no answer to request {msg_id!r} in {timeout} s")
                self._cond.wait(min(left, 0.5))
            return self.responses.pop(msg_id)

    def request(self, method: str, params: Any, timeout: float = 60.0) -> dict[str, Any]:
        return self.wait(self.send_request(method, params), timeout)

    def result(self, method: str, params: Any, timeout: float = 60.0) -> Any:
        response = self.request(method, params, timeout)
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def command(self, name: str, *args: Any, timeout: float = 60.0) -> Any:
        return self.result(
            "workspace/executeCommand",
            {"command": name, "arguments": list(args)},
            timeout,
        )

    # --- LSP conveniences ----------------------------------------------------------------
    def initialize(
        self,
        options: dict[str, Any] | None = None,
        *,
        encodings: list[str] | None = None,
        process_id: int | None = None,
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        caps: dict[str, Any] = {
            "textDocument": {"inlineCompletion": {}, "completion": {}},
            "window": {"workDoneProgress": True},
        }
        if encodings is not None:
            caps["general"] = {"positionEncodings": encodings}
        result = self.result(
            "initialize",
            {
                "processId": process_id,
                "rootUri": None,
                "capabilities": caps,
                "initializationOptions": DEMO if options is None else options,
            },
            timeout,
        )
        self.notify("initialized", {})
        return dict(result)

    def wait_state(self, *states: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.command("codellama.status")
            if status["state"] in states:
                return dict(status)
            if time.monotonic() > deadline:
                raise TimeoutError(f"server stayed {status}")
            time.sleep(0.05)

    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": "python",
                    "version": version,
                    "text": text,
                }
            },
        )

    def change(self, uri: str, version: int, changes: list[dict[str, Any]]) -> None:
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": changes},
        )

    def close_document(self, uri: str) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    @staticmethod
    def inline_params(uri: str, line: int, character: int) -> dict[str, Any]:
        return {
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 2},
        }

    def inline(
        self, uri: str, line: int, character: int, timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """The items of an automatic ``textDocument/inlineCompletion`` (none: ``[]``)."""
        result = self.result(
            "textDocument/inlineCompletion", self.inline_params(uri, line, character), timeout
        )
        return list(result["items"]) if result else []

    def messages(self) -> list[str]:
        return [
            n["params"]["message"]
            for n in self.notifications
            if n["method"] == "window/showMessage"
        ]

    def stderr_tail(self, size: int = 4000) -> str:
        self.stderr_file.flush()
        return Path(self.stderr_file.name).read_text(errors="replace")[-size:]

    def stderr_text(self) -> str:
        return Path(self.stderr_file.name).read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float = 10.0) -> None:
        if self.alive():
            try:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit", None)
            except Exception:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()
        self.stderr_file.close()
        Path(self.stderr_file.name).unlink(missing_ok=True)


@contextmanager
def raw_session(
    options: dict[str, Any] | None = None,
    *,
    env: dict[str, str] | None = None,
    encodings: list[str] | None = None,
    wait_ready: bool = True,
) -> Iterator[RawClient]:
    client = RawClient(env={"CODELLAMA_LSP_DEBUG_COMMANDS": "1", **(env or {})})
    try:
        client.initialize(options, encodings=encodings)
        if wait_ready:
            client.wait_state("ready")
        yield client
    finally:
        client.close()
