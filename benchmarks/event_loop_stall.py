"""How long can one hostile request hold up the model server's (and the language server's)
event loop?

    python -m benchmarks.event_loop_stall            # demo model, prints a table
    python -m benchmarks.event_loop_stall --json stall.json

Starts ``codellama-lsp serve --model demo``, then sends the heavy bad inputs of issue 12 one
kind at a time (a megabyte prompt, eight at once, a megabyte of token ids, the largest prompt
that is still tokenized, JSON nested 50,000 levels …) while a probe asks ``/health`` every
5 ms on its own connection. A request that blocks the loop delays ``/health`` by as long:
the longest ``/health`` round trip in each phase, less the idle median, is that phase's
stall. Then the language server gets its heavy and broken messages over stdio (a 10 MB
``didOpen``, a wrong Content-Length, garbage, nested JSON, a batch of 1,000): the delay each
adds to the answer of the request right behind it (see :func:`run_lsp`). Figures go in
``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from tests.support.model_servers import running_server
from tests.support.raw_client import RawClient


class Probe(threading.Thread):
    """GET /health every 5 ms; keeps (time, round trip) pairs."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.samples: list[tuple[float, float]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.stopped.is_set():
            started = time.perf_counter()
            conn.request("GET", "/health")
            conn.getresponse().read()
            self.samples.append((started, time.perf_counter() - started))
            time.sleep(0.005)

    def worst(self, start: float, end: float) -> float:
        return max((rtt for t, rtt in self.samples if start <= t <= end), default=0.0)


def post(port: int, path: str, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def send(port: int, path: str, body: bytes, statuses: list[int]) -> None:
    statuses.append(post(port, path, body))


def phases() -> dict[str, tuple[str, bytes, int]]:
    """name → (path, body, how many at once)."""
    megabyte = "x = [" + "1, " * 330_000 + "]"
    largest_tokenized = "value = 1\n" * 6_000  # 60,000 characters: just under the cheap bound
    ids = list(range(3, 8000)) * 20  # ~1 MB of token ids (under the 1 MiB body limit)
    nested = b"[" * 50_000 + b"]" * 50_000
    return {
        "1 MB prompt": ("/v1/completions", json.dumps({"prompt": megabyte}).encode(), 1),
        "1 MB prompt, 8 at once": ("/v1/completions", json.dumps({"prompt": megabyte}).encode(), 8),
        "1 MB FIM suffix": (
            "/v1/completions",
            json.dumps({"prompt": "def f():", "suffix": megabyte}).encode(),
            1,
        ),
        "60,000-character prompt (tokenized, then refused)": (
            "/v1/completions",
            json.dumps({"prompt": largest_tokenized, "max_tokens": 4}).encode(),
            1,
        ),
        "1 MB of token ids": ("/v1/completions", json.dumps({"prompt": ids}).encode(), 1),
        "1 MB /score input": (
            "/score",
            json.dumps({"input_data": {"input_string": [megabyte]}}).encode(),
            1,
        ),
        "JSON nested 50,000 levels": ("/v1/completions", nested, 1),
        "seed 2**100": (
            "/v1/completions",
            json.dumps({"prompt": "x", "seed": 2**100}).encode(),
            1,
        ),
    }


def run(port: int, repeat: int) -> dict[str, Any]:
    probe = Probe(port)
    probe.start()
    time.sleep(1.0)
    idle_start = time.perf_counter()
    time.sleep(2.0)
    idle = [rtt for t, rtt in probe.samples if t >= idle_start]
    base = statistics.median(idle)
    results: dict[str, Any] = {
        "idle_health_ms": {"median": round(base * 1000, 2), "max": round(max(idle) * 1000, 2)}
    }
    rows = {}
    for name, (path, body, count) in phases().items():
        worst = 0.0
        statuses: list[int] = []
        for _ in range(repeat):
            start = time.perf_counter()
            jobs = [
                threading.Thread(target=send, args=(port, path, body, statuses))
                for _ in range(count)
            ]
            for job in jobs:
                job.start()
            for job in jobs:
                job.join()
            time.sleep(0.05)
            worst = max(worst, probe.worst(start, time.perf_counter()))
        rows[name] = {
            "stall_ms": round(max(0.0, worst - base) * 1000, 1),
            "statuses": sorted(set(statuses)),
            "body_bytes": len(body),
        }
    probe.stopped.set()
    probe.join(60)
    results["phases"] = rows
    results["longest_stall_ms"] = max(r["stall_ms"] for r in rows.values())
    return results


# --- the language server -------------------------------------------------------------------
def lsp_frame(body: bytes, length: int | None = None) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body


def lsp_phases() -> dict[str, bytes]:
    """name → the bytes a hostile client writes (one message, broken or heavy)."""
    text = "def f(x):\n    return x\n" * 400_000
    did_open = {
        "jsonrpc": "2.0",
        "method": "textDocument/didOpen",
        "params": {
            "textDocument": {
                "uri": "file:///big.py",
                "languageId": "python",
                "version": 1,
                "text": text,
            }
        },
    }
    big = json.dumps(did_open).encode()
    status = {
        "jsonrpc": "2.0",
        "method": "workspace/executeCommand",
        "params": {"command": "codellama.status", "arguments": []},
    }
    batch = [{**status, "id": f"b{i}"} for i in range(1000)]
    completion = {
        "jsonrpc": "2.0",
        "id": "strings",
        "method": "textDocument/completion",
        "params": {"textDocument": {"uri": "file:///big.py"}, "position": {"line": "3"}},
    }
    return {
        "10 MB didOpen": lsp_frame(big),
        "10 MB didOpen, Content-Length 100 bytes short": lsp_frame(big, len(big) - 100),
        "1 MB of garbage bytes": b"\x00garbage" * 100_000,
        "JSON nested 50,000 levels": lsp_frame(
            b'{"jsonrpc":"2.0","id":"deep","method":"x","params":' + b"[" * 50_000
        ),
        "a batch of 1,000 requests": lsp_frame(json.dumps(batch).encode()),
        "a position given as a string": lsp_frame(json.dumps(completion).encode()),
    }


def run_lsp(repeat: int) -> dict[str, Any]:
    """The delay a hostile message adds to the answer of the request right behind it.

    Over one stdio pipe messages are read in order, so the next request waits for the
    hostile one to be read and handled: that wait (less an idle round trip) is the stall.
    """
    client = RawClient()
    try:
        client.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})

        def round_trip() -> float:
            started = time.perf_counter()
            client.command("codellama.status")
            return time.perf_counter() - started

        base = statistics.median(round_trip() for _ in range(200))
        rows = {}
        for name, data in lsp_phases().items():
            worst = 0.0
            for _ in range(repeat):
                client.send_raw_frame(data)
                written = time.perf_counter()
                client.command("codellama.status")
                worst = max(worst, time.perf_counter() - written)
            rows[name] = {"stall_ms": round(max(0.0, worst - base) * 1000, 1), "bytes": len(data)}
        assert client.alive()
    finally:
        client.close()
    return {
        "idle_round_trip_ms": round(base * 1000, 2),
        "phases": rows,
        "longest_stall_ms": max(r["stall_ms"] for r in rows.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="times each phase is sent")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--lsp-only", action="store_true", help="the language server only")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if not args.lsp_only:
        with running_server() as server:
            results = run(server.port, args.repeat)
        idle = results["idle_health_ms"]
        print(f"model server, idle /health: median {idle['median']} ms, max {idle['max']} ms")
        print("| request | statuses | stall (ms) |\n|---|---|---|")
        for name, row in results["phases"].items():
            print(f"| {name} | {', '.join(map(str, row['statuses']))} | {row['stall_ms']} |")
        print(f"longest stall: {results['longest_stall_ms']} ms\n")
    lsp = run_lsp(args.repeat)
    print(f"language server, idle round trip: {lsp['idle_round_trip_ms']} ms")
    print("| message | stall (ms) |\n|---|---|")
    for name, row in lsp["phases"].items():
        print(f"| {name} | {row['stall_ms']} |")
    print(f"longest stall: {lsp['longest_stall_ms']} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"model_server": results, "lsp": lsp}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
