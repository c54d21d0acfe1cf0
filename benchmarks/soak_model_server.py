"""Long multi-client soak of the model server (``codellama-lsp serve``, demo model).

    python -m benchmarks.soak --model-server 4 --requests 20000 --sample-every 1000

Each client types a standard-library file a character at a time and asks for a completion
after every key, over its own keep-alive connection and session: plain and streamed answers,
some with a suffix (infilling), a few streams dropped half-way (the cancel path). The server's
RSS and thread count are sampled every ``sample_every`` requests; the figures are the same as
the language server's soak (``benchmarks/soak.py``).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import ROOT, memory_curve, os_threads, rss_bytes, source_files


def start_server() -> tuple[subprocess.Popen[str], int]:
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
            "--max-streams-per-client",
            "16",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"listening on http://\S+:(\d+)", line)
    if not match:
        proc.kill()
        raise RuntimeError(f"model server did not start: {line!r}")
    port = int(match.group(1))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if json.loads(conn.getresponse().read()).get("status") == "ready":
                return proc, port
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("model server not ready in 120 s")


class Client:
    """One editor: types a file into its prompt and asks after every key."""

    def __init__(self, port: int, index: int, source: str, counter: Callable[[], bool]) -> None:
        self.port, self.index, self.source = port, index, source
        self.rng = random.Random(index)
        self.count = counter
        self.errors: list[str] = []
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def _body(self, typed: str, rest: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": typed[-1500:],
            "max_tokens": 8,
            "temperature": 0,
            "stream": self.rng.random() < 0.2,
        }
        if self.rng.random() < 0.3:
            body["suffix"] = rest[:300]
        return body

    def _ask(self, body: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/json", "X-Codellama-Session": f"c{self.index}"}
        try:
            self.conn.request("POST", "/v1/completions", json.dumps(body), headers)
            response = self.conn.getresponse()
            if body["stream"] and self.rng.random() < 0.1:
                response.readline()  # the first event, then hang up: the server must stop
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                return
            data = response.read()
            if response.status != 200:
                self.errors.append(f"{response.status}: {data[:200]!r}")
        except (OSError, http.client.HTTPException) as exc:
            self.errors.append(repr(exc)[:200])
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def run(self) -> None:
        cut = self.rng.randrange(200, 1500)
        typed, rest = self.source[:cut], self.source[cut:]
        while True:
            if not rest:
                cut = self.rng.randrange(200, 1500)
                typed, rest = self.source[:cut], self.source[cut:]
            typed, rest = typed + rest[0], rest[1:]
            if not self.count():
                return
            self._ask(self._body(typed, rest))


def run_model_server_soak(
    requests: int,
    *,
    clients: int = 4,
    warmup: int | None = None,
    sample_every: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``requests`` completions from ``clients`` concurrent clients; the memory curve."""
    warmup = warmup if warmup is not None else max(200, requests // 5)
    every = sample_every or max(50, requests // 40)
    started = time.perf_counter()
    proc, port = start_server()
    lock = threading.Lock()
    sent = 0

    def take() -> bool:
        nonlocal sent
        with lock:
            if sent >= requests:
                return False
            sent += 1
            return True

    sources = source_files()
    workers = [Client(port, i, sources[i % len(sources)], take) for i in range(clients)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    samples: list[dict[str, Any]] = []

    def point() -> None:
        samples.append(
            {
                "requests": sent,
                "rss_mib": round(rss_bytes(proc.pid) / 2**20, 1),
                "heap_in_use_mib": None,
                "heap_free_mib": None,
                "os_threads": os_threads(proc.pid),
            }
        )
        if progress is not None:
            last = samples[-1]
            progress(f"{sent} requests, rss {last['rss_mib']} MiB, threads {last['os_threads']}")

    try:
        point()
        for t in threads:
            t.start()
        next_sample = every
        while any(t.is_alive() for t in threads):
            time.sleep(0.05)
            if sent >= next_sample:
                next_sample += every
                point()
        if samples[-1]["requests"] != sent:
            point()
        alive = proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    errors = [e for w in workers for e in w.errors]
    return {
        "clients": clients,
        "requests": sent,
        "errors": errors[:20],
        "error_count": len(errors),
        "seconds": round(time.perf_counter() - started, 1),
        "warmup": warmup,
        **memory_curve(samples, warmup),
        "samples": samples,
        "server_alive": alive,
    }
