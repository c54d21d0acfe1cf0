"""Long-session soak: thousands of completion requests with typing replay against the real server.

    python benchmarks/soak.py                     # 10,000 requests on the demo model
    python benchmarks/soak.py --requests 2000 --json out.json

A raw JSON-RPC client (``tests/support/raw_client.py``, no pytest-lsp) drives ``codellama-lsp``
over stdio. The replay types real
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
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import DEMO  # noqa: E402
from tests.support.raw_client import RawClient, raw_session  # noqa: E402

SOAK = {**DEMO, "max_new_tokens": 8, "max_context_tokens": 512}
"""Short prompts and completions: the soak is about many requests, not long generations."""


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
