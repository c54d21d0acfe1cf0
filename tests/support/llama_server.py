"""llama.cpp's C++ ``llama-server`` as a process, for the tests and benchmarks that run it.

``scripts/setup_llama_cpp.sh DEST`` builds it into ``DEST/llama-server-<version>/bin`` and
converts the demo model to GGUF (``scripts/demo_gguf.py``); ``./dev test`` does both and sets
``CODELLAMA_LSP_LLAMA_CPP=DEST``. Without them the tests that need it fail, unless
``CODELLAMA_SKIP_LLAMA_CPP=1`` says to skip them.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

VERSION = "0.3.36"
"""llama-cpp-python's version, whose sdist's llama.cpp is built (scripts/setup_llama_cpp.sh)."""
EXACT = ("--cache-type-k", "f32", "--cache-type-v", "f32", "--flash-attn", "off")
"""Options under which llama.cpp computes like the in-process engine on a CPU (float32 KV cache,
plain attention): greedy outputs can then be compared token for token."""
PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
"""llama-server's own per-request timing line (``print_timings``): prompt tokens it processed."""


def llama_cpp_dir() -> Path:
    """The build folder (``CODELLAMA_LSP_LLAMA_CPP``), or a skip/fail saying how to make it."""
    dest = os.environ.get("CODELLAMA_LSP_LLAMA_CPP", "")
    if dest and server_binary(Path(dest)).exists():
        return Path(dest)
    message = (
        f"llama-server is not built at CODELLAMA_LSP_LLAMA_CPP={dest!r}: run "
        "`scripts/setup_llama_cpp.sh DEST` and set CODELLAMA_LSP_LLAMA_CPP=DEST (`./dev test` "
        "does both); CODELLAMA_SKIP_LLAMA_CPP=1 skips these tests"
    )
    if os.environ.get("CODELLAMA_SKIP_LLAMA_CPP") == "1":
        pytest.skip(message)
    pytest.fail(message)


def server_binary(dest: Path) -> Path:
    return dest / f"llama-server-{VERSION}" / "bin" / "llama-server"


def demo_gguf(dest: Path) -> Path:
    """The demo model as GGUF (made once per demo model by ``scripts/demo_gguf.py``)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo_gguf.py"), str(dest)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(done.stdout.strip())


class LlamaServer:
    """``llama-server -m GGUF --port PORT ARGS…`` on 127.0.0.1; its output goes to ``log``."""

    def __init__(
        self, binary: Path, gguf: Path, port: int, log: Path, args: tuple[str, ...] = ()
    ) -> None:
        self.binary, self.gguf, self.port, self.log = binary, gguf, port, log
        self.args = args
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            str(self.binary),
            *("--model", str(self.gguf), "--alias", "demo"),
            *("--host", "127.0.0.1", "--port", str(self.port)),
            *("--ctx-size", "8192", "--threads", "1", "--threads-http", "2"),
            "--no-webui",
            *self.args,
        ]

    def launch(self) -> None:
        """Start it, without waiting."""
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "LLAMA_ARG_THREADS": "1"},
            )

    def start(self, timeout: float = 120) -> None:
        """Start it and wait until ``/health`` says ok."""
        self.launch()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.get("/health")[0] != 200:
            assert self.proc is not None
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama-server did not start:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: no goodbye, like a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            data = json.dumps(body) if body is not None else None
            conn.request(method, path, data, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        except (OSError, ValueError):
            return 0, None
        finally:
            conn.close()

    def busy_slots(self) -> int:
        """Slots generating now (``GET /slots``)."""
        status, slots = self.get("/slots")
        assert status == 200, slots
        return sum(1 for s in slots if s.get("is_processing"))

    def metrics(self) -> dict[str, float]:
        """Its ``/metrics`` counters (started with ``--metrics``), without the ``llamacpp:``."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", "/metrics")
            text = conn.getresponse().read().decode()
        finally:
            conn.close()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name.removeprefix("llamacpp:")] = float(value)
        return values

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def prompt_evals(self) -> list[int]:
        """Prompt tokens it processed, per request so far (its own timing lines)."""
        return [int(m.group(2)) for m in PROMPT_EVAL.finditer(self.log_text())]
