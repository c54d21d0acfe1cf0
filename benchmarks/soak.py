"""Long-session soak: thousands of completion requests with typing replay against the real server.

    python -m benchmarks.soak                     # 10,000 requests on the demo model
    python -m benchmarks.soak --requests 2000 --json out.json

A raw JSON-RPC client (``tests/support/raw_client.py``, no pytest-lsp) drives ``codellama-lsp``
over stdio. The replay types real
Python source a character at a time, sometimes in bursts whose earlier requests are superseded,
deletes, accepts completions, switches between documents and closes/reopens them. RSS of the
server process is sampled after a warm-up and at the end; ``codellama.stats`` gives cache
sizes, threads and asyncio tasks. Exit status 1 when a bound is broken.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import memory_curve, os_threads, rss_bytes, source_files
from tests.support import DEMO
from tests.support.raw_client import RawClient, raw_session

SOAK = {**DEMO, "max_new_tokens": 8, "max_context_tokens": 512}
"""Short prompts and completions: the soak is about many requests, not long generations."""


# ------------------------------------------------------------------------------ replay
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
        results: list[Any] = []
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


PEAKS = (
    "cache_entries",
    "typing_through_entries",
    "kv_slots",
    "kv_cached_tokens",
    "threads",
    "asyncio_tasks",
    "background_tasks",
    "inflight",
    "open_documents",
    "request_futures",
)


def sample(client: RawClient, requests: int) -> dict[str, Any]:
    """One point of the memory curve: RSS, the C heap, threads and tasks."""
    stats = client.command("codellama.stats")
    native = stats.get("memory", {}).get("native") or {}
    return {
        "requests": requests,
        "rss_mib": round(rss_bytes(client.pid) / 2**20, 1),
        "heap_in_use_mib": native.get("in_use_mib"),
        "heap_free_mib": native.get("free_kept_mib"),
        "threads": stats["threads"],
        "os_threads": os_threads(client.pid),
        "asyncio_tasks": stats["asyncio_tasks"],
        "stats": stats,
    }


def run_soak(
    requests: int,
    *,
    warmup: int | None = None,
    sample_every: int | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the replay until ``requests`` completion requests were answered; return figures.

    The memory curve is judged on the samples after ``warmup`` (default: the first fifth):
    its slope, not only its end, so a short run can still show a steady leak.
    """
    warmup = warmup if warmup is not None else max(200, requests // 5)
    every = sample_every or max(50, requests // 40)
    settings = {**SOAK, **(options or {})}
    started = time.perf_counter()
    with raw_session(settings, env=env) as client:
        replay = TypingReplay(client, seed=seed)
        samples: list[dict[str, Any]] = []
        peak: dict[str, int] = {}
        next_sample = 0
        while replay.requests < requests:
            replay.step()
            if replay.requests >= next_sample or replay.requests >= requests:
                next_sample += every
                point = sample(client, replay.requests)
                stats = point.pop("stats")
                samples.append(point)
                for name in PEAKS:
                    if name in stats:
                        peak[name] = max(peak.get(name, 0), int(stats[name]))
                if progress is not None:
                    progress(
                        f"{replay.requests} requests, rss {point['rss_mib']} MiB, heap in use "
                        f"{point['heap_in_use_mib']} free {point['heap_free_mib']}, threads "
                        f"{point['threads']}/{point['os_threads']}, tasks {point['asyncio_tasks']}"
                    )
        time.sleep(0.5)  # let the last background work (prefetch) finish
        final = client.command("codellama.stats")
        alive = client.alive()
        elapsed = time.perf_counter() - started
    curve = memory_curve(samples, warmup)
    after = [p for p in samples if p["requests"] >= warmup] or samples
    return {
        "requests": replay.requests,
        "answered": replay.answered,
        "non_empty": replay.non_empty,
        "errors": replay.errors[:20],
        "error_count": len(replay.errors),
        "reopened_documents": replay.reopened,
        "seconds": round(elapsed, 1),
        "warmup": warmup,
        "rss_after_warmup_mib": after[0]["rss_mib"],
        "rss_final_mib": samples[-1]["rss_mib"],
        **curve,
        "samples": samples,
        "peak": peak,
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


MAX_SLOPE = 0.1
"""MiB per 1,000 requests after warm-up (issue 17): ~0.1 KB per request, 10 MiB a week of typing."""
MAX_GROWTH = 0.05


def check_memory(
    figures: dict[str, Any], max_slope: float = MAX_SLOPE, max_growth: float | None = MAX_GROWTH
) -> list[str]:
    """RSS slope (and growth) after warm-up; threads and tasks flat: what was broken."""
    problems = []
    slope = figures["rss_mib_slope_per_1000"]
    if slope is None:
        problems.append("too few samples after warm-up for a slope")
    elif slope > max_slope:
        problems.append(f"RSS grows {slope} MiB per 1,000 requests after warm-up")
    if max_growth is not None and figures["rss_growth"] > max_growth:
        problems.append(f"RSS grew {figures['rss_growth']:.1%} after warm-up")
    for name in ("threads", "os_threads"):
        if name in figures and figures[name]["final"] > figures[name]["after_warmup"]:
            problems.append(
                f"{name} grew {figures[name]['after_warmup']} → {figures[name]['final']}"
            )
    tasks = figures.get("asyncio_tasks")
    if tasks is not None and tasks["final"] > tasks["after_warmup"] + 5:
        problems.append(f"asyncio tasks grew {tasks['after_warmup']} → {tasks['final']}")
    return problems


def check(
    figures: dict[str, Any], max_slope: float = MAX_SLOPE, max_growth: float | None = MAX_GROWTH
) -> list[str]:
    """The bounds a long session must keep; returns what was broken."""
    problems = check_memory(figures, max_slope, max_growth)
    bounds, peak, final = figures["bounds"], figures["peak"], figures["final"]
    if figures["answered"] != figures["requests"]:
        problems.append(f"{figures['requests'] - figures['answered']} requests never answered")
    if figures["error_count"]:
        problems.append(f"{figures['error_count']} LSP errors: {figures['errors'][:3]}")
    if peak.get("cache_entries", 0) > bounds["cache_size"]:
        problems.append(f"completion cache held {peak['cache_entries']} > {bounds['cache_size']}")
    if peak.get("kv_slots", 0) > bounds["kv_cache_slots"]:
        problems.append(f"KV slots {peak['kv_slots']} > {bounds['kv_cache_slots']}")
    if peak.get("kv_cached_tokens", 0) > bounds["kv_cache_max_tokens"]:
        problems.append(f"KV tokens {peak['kv_cached_tokens']} > {bounds['kv_cache_max_tokens']}")
    if peak.get("typing_through_entries", 0) > 4 * peak.get("open_documents", 1):
        problems.append(f"typing-through held {peak['typing_through_entries']} entries")
    if final.get("inflight"):
        problems.append(f"{final['inflight']} in-flight entries left")
    if not figures["server_alive"]:
        problems.append("the server died")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=None, help="default 10,000 (long: 100,000)")
    parser.add_argument("--warmup", type=int, default=None, help="default: the first fifth")
    parser.add_argument("--sample-every", type=int, default=None, help="requests between samples")
    parser.add_argument(
        "--long", action="store_true", help="100,000 requests, a sample every 1,000 (issue 17)"
    )
    parser.add_argument(
        "--model-server",
        type=int,
        metavar="CLIENTS",
        default=0,
        help="soak `codellama-lsp serve` with this many concurrent clients instead",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    requests = args.requests or (100_000 if args.long else 10_000)
    every = args.sample_every or (1000 if args.long else None)
    report = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.model_server:
        from benchmarks.soak_model_server import run_model_server_soak

        figures = run_model_server_soak(
            requests,
            clients=args.model_server,
            warmup=args.warmup,
            sample_every=every,
            progress=report,
        )
        problems = check_memory(figures)
    else:
        figures = run_soak(
            requests, warmup=args.warmup, sample_every=every, seed=args.seed, progress=report
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
