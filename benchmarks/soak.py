"""Long-session soak: thousands of completion requests with typing replay against the real server.

    python benchmarks/soak.py                     # 10,000 requests on the demo model
    python benchmarks/soak.py --requests 2000 --json out.json

A raw JSON-RPC client (no pytest-lsp) drives ``codellama-lsp`` over stdio, so that the same
client can also send malformed messages (``tests/test_fuzz_lsp.py``). The replay types real
Python source a character at a time, sometimes in bursts whose earlier requests are superseded,
deletes, accepts completions, switches between documents and closes/reopens them. RSS of the
server process is sampled after a warm-up and at the end; ``codellama.stats`` gives cache
sizes, threads and asyncio tasks. Exit status 1 when a bound is broken.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVER = [sys.executable, "-m", "codellama_lsp.cli"]
DEMO = {"model": "demo", "temperature": 0, "debounce_ms": 0, "max_new_tokens": 16}
SOAK = {**DEMO, "max_new_tokens": 8, "max_context_tokens": 512}
"""Short prompts and completions: the soak is about many requests, not long generations."""


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
            [*(command or SERVER), *args],
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


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------------------ replay
SOURCES = ("textwrap", "argparse", "json.decoder", "string", "fnmatch", "shlex")


def source_files() -> list[str]:
    import importlib

    return [inspect.getsource(importlib.import_module(name))[:6000] for name in SOURCES]


class TypingReplay:
    """Types files into open documents and asks for a completion after (almost) every key."""

    def __init__(self, client: RawClient, seed: int = 0, documents: int = 3) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.sources = source_files()
        self.documents = documents
        self.requests = 0
        self.answered = 0
        self.non_empty = 0
        self.errors: list[str] = []
        self.reopened = 0
        self.docs: dict[str, dict[str, Any]] = {}
        for i in range(documents):
            self._open(i)

    def _open(self, index: int) -> str:
        uri = f"file:///soak/doc{index}.py"
        source = self.sources[(index + self.reopened) % len(self.sources)]
        cut = self.rng.randrange(200, 1500)
        self.docs[uri] = {"typed": source[:cut], "rest": source[cut:], "version": 1}
        self.client.open(uri, source[:cut])
        return uri

    def _position(self, text: str) -> tuple[int, int]:
        lines = text.split("\n")
        return len(lines) - 1, len(lines[-1])

    def _type(self, uri: str, chars: str) -> None:
        doc = self.docs[uri]
        line, col = self._position(doc["typed"])
        doc["typed"] += chars
        doc["version"] += 1
        pos = {"line": line, "character": col}
        self.client.change(
            uri, doc["version"], [{"range": {"start": pos, "end": pos}, "text": chars}]
        )

    def _delete(self, uri: str) -> None:
        doc = self.docs[uri]
        if not doc["typed"] or doc["typed"].endswith("\n"):
            return
        line, col = self._position(doc["typed"])
        doc["typed"] = doc["typed"][:-1]
        doc["version"] += 1
        self.client.change(
            uri,
            doc["version"],
            [
                {
                    "range": {
                        "start": {"line": line, "character": col - 1},
                        "end": {"line": line, "character": col},
                    },
                    "text": "",
                }
            ],
        )

    def _ask(self, uri: str, wait: bool) -> int | str:
        line, col = self._position(self.docs[uri]["typed"])
        self.requests += 1
        method = "textDocument/inlineCompletion"
        if self.rng.random() < 0.1:
            method = "textDocument/completion"
        params = RawClient.inline_params(uri, line, col)
        if method == "textDocument/completion":
            params.pop("context")
        return self.client.send_request(method, params)

    def _collect(self, ids: list[int | str], timeout: float = 120.0) -> list[Any]:
        results = []
        for msg_id in ids:
            response = self.client.wait(msg_id, timeout)
            self.answered += 1
            if "error" in response:
                # A request cancelled or superseded may end in an LSP error; anything else counts.
                if response["error"].get("code") != -32800:
                    self.errors.append(str(response["error"])[:300])
                results.append(None)
                continue
            result = response.get("result") or {}
            items = result.get("items", []) if isinstance(result, dict) else result
            if items:
                self.non_empty += 1
            results.append(items)
        return results

    def step(self) -> None:
        """One user action: a keystroke (or a burst of them), a deletion, an accept, a switch."""
        uri = self.rng.choice(sorted(self.docs))
        doc = self.docs[uri]
        roll = self.rng.random()
        if not doc["rest"] or roll < 0.002:
            self.client.close_document(uri)
            self.reopened += 1
            del self.docs[uri]
            self._open(int(uri.rsplit("doc", 1)[1].split(".")[0]))
            return
        if roll < 0.05:
            self._delete(uri)
            self._collect([self._ask(uri, True)])
            return
        if roll < 0.25:
            # A burst: several keys typed quickly; only the last answer matters.
            ids = []
            for _ in range(self.rng.randrange(2, 6)):
                if not doc["rest"]:
                    break
                self._type(uri, doc["rest"][0])
                doc["rest"] = doc["rest"][1:]
                ids.append(self._ask(uri, False))
            self._collect(ids)
            return
        self._type(uri, doc["rest"][0])
        doc["rest"] = doc["rest"][1:]
        results = self._collect([self._ask(uri, True)])
        items = results[0]
        if items and self.rng.random() < 0.1:
            item = items[0]
            text = item.get("insertText") if "insertText" in item else None
            if isinstance(text, str) and text:
                self.client.command("codellama.accepted", item["command"]["arguments"][0])


def run_soak(
    requests: int,
    *,
    warmup: int | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the replay until ``requests`` completion requests were answered; return figures."""
    warmup = warmup if warmup is not None else max(200, requests // 10)
    settings = {**SOAK, **(options or {})}
    started = time.perf_counter()
    with raw_session(settings) as client:
        replay = TypingReplay(client, seed=seed)
        baseline: dict[str, Any] = {}
        samples: list[tuple[int, int]] = []
        peak: dict[str, int] = {}
        next_sample = 0
        every = max(50, requests // 40)
        while replay.requests < requests:
            replay.step()
            if replay.requests >= warmup and not baseline:
                baseline = client.command("codellama.stats")
                baseline["rss"] = rss_bytes(client.pid)
            if replay.requests >= next_sample:
                next_sample += every
                rss = rss_bytes(client.pid)
                samples.append((replay.requests, rss))
                stats = client.command("codellama.stats")
                for name in (
                    "cache_entries",
                    "typing_through_entries",
                    "kv_slots",
                    "kv_cached_tokens",
                    "threads",
                    "asyncio_tasks",
                    "background_tasks",
                    "inflight",
                    "open_documents",
                ):
                    if name in stats:
                        peak[name] = max(peak.get(name, 0), int(stats[name]))
                if progress is not None:
                    progress(
                        f"{replay.requests} requests, rss {rss / 2**20:.1f} MiB, "
                        f"threads {stats['threads']}, tasks {stats['asyncio_tasks']}"
                    )
        time.sleep(0.5)  # let the last background work (prefetch) finish
        final = client.command("codellama.stats")
        final_rss = rss_bytes(client.pid)
        alive = client.alive()
        elapsed = time.perf_counter() - started
    base_rss = int(baseline.get("rss", final_rss))
    return {
        "requests": replay.requests,
        "answered": replay.answered,
        "non_empty": replay.non_empty,
        "errors": replay.errors[:20],
        "error_count": len(replay.errors),
        "reopened_documents": replay.reopened,
        "seconds": round(elapsed, 1),
        "rss_after_warmup_mib": round(base_rss / 2**20, 1),
        "rss_final_mib": round(final_rss / 2**20, 1),
        "rss_growth": round(final_rss / base_rss - 1, 4),
        "rss_samples_mib": [(n, round(r / 2**20, 1)) for n, r in samples],
        "peak": peak,
        "threads": {"after_warmup": baseline.get("threads"), "final": final["threads"]},
        "asyncio_tasks": {
            "after_warmup": baseline.get("asyncio_tasks"),
            "final": final["asyncio_tasks"],
        },
        "final": {
            k: final.get(k)
            for k in (
                "requests",
                "cache_hits",
                "typing_through_hits",
                "requests_superseded",
                "generations_started",
                "generations_completed",
                "generations_cancelled",
                "generation_errors",
                "cache_entries",
                "typing_through_entries",
                "kv_slots",
                "kv_cached_tokens",
                "inflight",
                "background_tasks",
                "open_documents",
                "latency_ms",
            )
        },
        "bounds": {
            "cache_size": settings.get("cache_size", 256),
            "kv_cache_slots": settings.get("kv_cache_slots", 4),
            "kv_cache_max_tokens": settings.get("kv_cache_max_tokens", 16384),
        },
        "server_alive": alive,
    }


def check(figures: dict[str, Any], max_growth: float = 0.10) -> list[str]:
    """The bounds a long session must keep; returns what was broken."""
    problems = []
    bounds, peak, final = figures["bounds"], figures["peak"], figures["final"]
    if figures["answered"] != figures["requests"]:
        problems.append(f"{figures['requests'] - figures['answered']} requests never answered")
    if figures["error_count"]:
        problems.append(f"{figures['error_count']} LSP errors: {figures['errors'][:3]}")
    if figures["rss_growth"] > max_growth:
        problems.append(f"RSS grew {figures['rss_growth']:.1%} after warm-up")
    if peak.get("cache_entries", 0) > bounds["cache_size"]:
        problems.append(f"completion cache held {peak['cache_entries']} > {bounds['cache_size']}")
    if peak.get("kv_slots", 0) > bounds["kv_cache_slots"]:
        problems.append(f"KV slots {peak['kv_slots']} > {bounds['kv_cache_slots']}")
    if peak.get("kv_cached_tokens", 0) > bounds["kv_cache_max_tokens"]:
        problems.append(f"KV tokens {peak['kv_cached_tokens']} > {bounds['kv_cache_max_tokens']}")
    if peak.get("typing_through_entries", 0) > 4 * peak.get("open_documents", 1):
        problems.append(f"typing-through held {peak['typing_through_entries']} entries")
    threads = figures["threads"]
    # asyncio's default executor may still add a few threads (up to CPUs + 4), no more.
    if threads["after_warmup"] is not None and threads["final"] > threads["after_warmup"] + 4:
        problems.append(f"threads grew {threads['after_warmup']} → {threads['final']}")
    tasks = figures["asyncio_tasks"]
    if tasks["after_warmup"] is not None and tasks["final"] > tasks["after_warmup"] + 5:
        problems.append(f"asyncio tasks grew {tasks['after_warmup']} → {tasks['final']}")
    if final.get("inflight"):
        problems.append(f"{final['inflight']} in-flight entries left")
    if not figures["server_alive"]:
        problems.append("the server died")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    figures = run_soak(
        args.requests,
        warmup=args.warmup,
        seed=args.seed,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )
    problems = check(figures)
    figures["problems"] = problems
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
