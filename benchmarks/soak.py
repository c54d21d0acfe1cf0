"""Long-session soak: thousands of completion requests with typing replay against the real server.

    python -m benchmarks.soak                     # 10,000 requests on the demo model
    python -m benchmarks.soak --requests 2000 --json out.json

A raw JSON-RPC client (``tests/support/raw_client.py``, no pytest-lsp) drives ``codellama-lsp``
over stdio. The replay types real Python source a character at a time, sometimes in bursts
whose earlier requests are superseded, deletes, accepts completions, switches between documents
and closes/reopens them; it jumps to new places in a long file (lines no prompt held before),
and now and then sends a request to every document at once.

The warm-up is by content, not by count: it runs until every bounded structure is full (the
completion cache holds its bound, the word caches have seen more lines than they keep, the
helper threads have started), so that the measured window starts in the same state on a fast
machine and a slow one. The window is judged by its growth between two samples taken at rest,
by what the server reports (request futures, helper threads, what a tokenizer keeps per new
line) and, for long runs, by the slope of RSS. Exit status 1 when a bound is broken.
"""

from __future__ import annotations

import argparse
import inspect
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import memory_curve, os_threads, rss_bytes, source_files
from codellama_lsp.engines.tokenization import WORD_CACHE_ENTRIES
from codellama_lsp.memory import HELPER_THREADS
from tests.support import DEMO
from tests.support.raw_client import RawClient, raw_session

SOAK = {**DEMO, "max_new_tokens": 8, "max_context_tokens": 512}
JUMP_URI = "file:///soak/jumps.py"
"""Short prompts and completions: the soak is about many requests, not long generations."""


# ------------------------------------------------------------------------------ replay
LINE_SOURCES = (
    "argparse", "http.client", "email.message", "urllib.request", "logging", "tarfile",
    "zipfile", "subprocess", "typing", "inspect", "pathlib", "dataclasses", "unittest.mock",
    "difflib", "pydoc", "ast", "enum", "configparser", "calendar", "csv", "optparse",
    "pickle", "shutil", "tempfile", "threading", "asyncio.base_events", "asyncio.tasks",
    "collections", "functools", "gettext", "locale", "platform", "pprint", "random",
    "socket", "ssl", "statistics", "tokenize", "traceback", "imaplib", "smtplib", "mailbox",
    "ftplib", "datetime", "_pydecimal", "fractions", "ipaddress", "plistlib", "sched",
)  # fmt: skip
JUMP_LINES = 40
"""Lines between two jumps: each jump's prompt (512 tokens, ~50 lines) holds ~40 lines that
no prompt held before."""


def distinct_lines(count: int) -> list[str]:
    """``count`` different lines of real code (standard library), each under 160 characters:
    a document in which every jump's prompt brings lines the tokenizer has never seen."""
    import importlib

    seen: set[str] = set()
    lines: list[str] = []
    for name in LINE_SOURCES:
        for line in inspect.getsource(importlib.import_module(name)).splitlines():
            line = line.rstrip()
            if 12 <= len(line) < 160 and line not in seen:
                seen.add(line)
                lines.append(line)
                if len(lines) == count:
                    return lines
    raise RuntimeError(f"only {len(lines)} distinct lines in LINE_SOURCES")


class TypingReplay:
    """Types files into open documents and asks for a completion after (almost) every key."""

    def __init__(
        self, client: RawClient, seed: int = 0, documents: int = 3, jump_lines: int = 0
    ) -> None:
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
        self.jump_lines = distinct_lines(jump_lines) if jump_lines else []
        self.jump_line = 0
        """The line the next jump lands after; the lines above it have been in a prompt."""
        if self.jump_lines:
            self.client.open(JUMP_URI, "\n".join(self.jump_lines) + "\n")

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

    def jump(self) -> int:
        """A completion at a new place in the jump document, :data:`JUMP_LINES` further down
        (from the top again at its end); returns how many lines no jump had reached before."""
        total = len(self.jump_lines)
        line = self.jump_line + JUMP_LINES
        new = JUMP_LINES if line <= total else 0
        self.jump_line = line if line <= total else JUMP_LINES
        self.requests += 1
        params = RawClient.inline_params(JUMP_URI, self.jump_line, 0)
        self._collect([self.client.send_request("textDocument/inlineCompletion", params)])
        return new

    def burst_all(self) -> None:
        """One key in every document, then a request in each, all sent before any answer: the
        server builds several prompts at once (its helper threads all start)."""
        ids = []
        for uri in sorted(self.docs):
            doc = self.docs[uri]
            if doc["rest"]:
                self._type(uri, doc["rest"][0])
                doc["rest"] = doc["rest"][1:]
            ids.append(self._ask(uri, False))
        self._collect(ids)

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
    "helper_threads",
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


WARMUP_LINES = 1600
"""Jump-document lines the warm-up brings into prompts: past the tokenizer's word cache
(``tokenization.WORD_CACHE_ENTRIES``, 1,024 lines), so that the window starts with it full."""
WINDOW_LINES = 5000
"""New jump-document lines the measured window brings into prompts: with an unbounded word
cache (tokenizers' default keeps 10,000, ~2 KB each) that alone is ~10 MiB of C heap."""
PROBE_LINES = WORD_CACHE_ENTRIES + 2000
"""Lines the end-of-run probe encodes in each tokenizer (the first fill its word cache)."""
BURST_EVERY = 100
"""Replay steps between two bursts across all documents (several prompts built at once)."""


def at_rest(client: RawClient, requests: int, timeout: float = 60.0) -> dict[str, Any]:
    """A sample taken when the model worker has nothing to do and no request is in flight:
    the same state at the start and the end of the window, whatever the machine's speed."""
    deadline = time.monotonic() + timeout
    while True:
        stats = client.command("codellama.stats")
        if (stats["model_jobs"] == 0 and stats["inflight"] == 0) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    point = sample(client, requests)
    point["rest"] = {name: point["stats"].get(name) for name in REST_FIGURES}
    return point


REST_FIGURES = ("request_futures", "helper_threads", "kv_cached_tokens", "cache_entries")


def warm_up(
    replay: TypingReplay, client: RawClient, cache_size: int, requests: int, warmup_lines: int
) -> None:
    """Fill every bounded structure before the window: the helper threads (a burst across
    documents), the word cache (jumps to new lines), the completion cache (typing until it
    holds ``cache_size`` entries) — judged by what the server reports, not by a count of
    requests, so a slow machine warms up exactly as far as a fast one."""
    replay.burst_all()
    lines = 0
    while lines < warmup_lines:
        lines += replay.jump()
    limit = replay.requests + max(requests, 20 * cache_size)
    while replay.requests < limit:
        for _ in range(25):
            replay.step()
        stats = client.command("codellama.stats")
        if replay.requests >= requests and stats["cache_entries"] >= cache_size:
            return
    raise RuntimeError(f"warm-up: the completion cache did not fill in {limit} requests")


def run_soak(
    requests: int,
    *,
    warmup: int | None = None,
    sample_every: int | None = None,
    seed: int = 0,
    options: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    warmup_lines: int = WARMUP_LINES,
    window_lines: int = WINDOW_LINES,
) -> dict[str, Any]:
    """Warm up (:func:`warm_up`, at least ``warmup`` requests: default the first fifth), then
    run the replay until ``requests`` completion requests were answered, with jumps bringing
    ``window_lines`` new lines into prompts; return figures.

    The window is judged between two samples :func:`at_rest` (its growth), and by the slope of
    the samples taken every ``sample_every`` requests in between.
    """
    warmup = warmup if warmup is not None else max(200, requests // 5)
    every = sample_every or max(50, requests // 40)
    settings = {**SOAK, **(options or {})}
    cache_size = int(settings.get("cache_size", 256))
    started = time.perf_counter()
    with raw_session(settings, env=env) as client:
        replay = TypingReplay(client, seed=seed, jump_lines=warmup_lines + window_lines)
        samples: list[dict[str, Any]] = []
        peak: dict[str, int] = {}

        def record(point: dict[str, Any]) -> None:
            stats = point.pop("stats")
            samples.append(point)
            for name in PEAKS:
                if name in stats:
                    peak[name] = max(peak.get(name, 0), int(stats[name]))
            if progress is not None:
                progress(
                    f"{point['requests']} requests, rss {point['rss_mib']} MiB, heap in use "
                    f"{point['heap_in_use_mib']} free {point['heap_free_mib']}, threads "
                    f"{point['threads']}/{point['os_threads']}, tasks {point['asyncio_tasks']}"
                )

        record(sample(client, 0))
        warm_up(replay, client, cache_size, warmup, warmup_lines)
        start = at_rest(client, replay.requests)
        record(start)
        warmed = replay.requests
        window = max(1, requests - warmed)
        jumps = window_lines // JUMP_LINES
        next_sample = warmed + every
        steps = jumped = new_lines = 0
        while replay.requests < requests:
            steps += 1
            if steps % BURST_EVERY == 0:
                replay.burst_all()
            elif jumped < jumps * (replay.requests - warmed) / window:
                jumped += 1  # jumps spread evenly over the window's requests
                new_lines += replay.jump()
            else:
                replay.step()
            if replay.requests >= next_sample and replay.requests < requests:
                next_sample += every
                record(sample(client, replay.requests))
        end = at_rest(client, replay.requests)
        record(end)
        probe = client.command(
            "codellama.debugMemory", {"snapshot": False, "new_lines": PROBE_LINES}, timeout=120
        )
        final = client.command("codellama.stats")
        alive = client.alive()
        elapsed = time.perf_counter() - started
    curve = memory_curve(samples, warmed)
    return {
        "requests": replay.requests,
        "answered": replay.answered,
        "non_empty": replay.non_empty,
        "errors": replay.errors[:20],
        "error_count": len(replay.errors),
        "reopened_documents": replay.reopened,
        "seconds": round(elapsed, 1),
        "warmup": warmed,
        "rss_after_warmup_mib": start["rss_mib"],
        "rss_final_mib": end["rss_mib"],
        **curve,
        "window": window_figures(start, end, new_lines),
        "tokenizer_bytes_per_new_line": probe.get("bytes_per_new_line"),
        "samples": samples,
        "peak": peak,
        "final": {k: final.get(k) for k in FINAL_FIGURES},
        "bounds": {
            "cache_size": cache_size,
            "kv_cache_slots": settings.get("kv_cache_slots", 4),
            "kv_cache_max_tokens": settings.get("kv_cache_max_tokens", 16384),
        },
        "server_alive": alive,
    }


FINAL_FIGURES = (
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


def window_figures(start: dict[str, Any], end: dict[str, Any], new_lines: int) -> dict[str, Any]:
    """What the measured window added, between two samples at rest."""

    def growth(name: str) -> float | None:
        a, b = start.get(name), end.get(name)
        return None if a is None or b is None else round(b - a, 2)

    return {
        "requests": end["requests"] - start["requests"],
        "new_lines_in_prompts": new_lines,
        "rss_growth_mib": growth("rss_mib"),
        "heap_in_use_growth_mib": growth("heap_in_use_mib"),
        "threads": {"start": start["threads"], "end": end["threads"]},
        "os_threads": {"start": start["os_threads"], "end": end["os_threads"]},
        "at_rest": {"start": start["rest"], "end": end["rest"]},
    }


MAX_SLOPE = 0.1
"""MiB per 1,000 requests after warm-up (issue 17): ~0.1 KB per request, 10 MiB a week of typing."""
MAX_GROWTH = 0.05


def check_memory(
    figures: dict[str, Any],
    max_slope: float | None = MAX_SLOPE,
    max_growth: float | None = MAX_GROWTH,
) -> list[str]:
    """RSS slope (and growth) after warm-up, where given; threads and tasks flat: what was
    broken."""
    problems = []
    slope = figures["rss_mib_slope_per_1000"]
    if max_slope is None:
        pass
    elif slope is None:
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


WINDOW_MAX_HEAP_GROWTH_MIB = 8.0
"""C heap in use added over the CI window (~900 requests, 5,000 new lines in prompts), at rest
at both ends: ~2.1 MiB measured (docs/reliability.md); a leak of ~9 KB a request, tokenizers'
unbounded word cache (~2.6 KB a new line: +11 MiB) or asyncio's growing default executor (each
new thread's malloc arena: +11 MiB) goes past it."""
WINDOW_MAX_RSS_GROWTH_MIB = 24.0
"""RSS added over the same window: 4–10 MiB measured on a loaded machine (Python objects live
outside the C heap; RSS also counts pages touched once). A backstop for leaks of ~28 KB a request
or more: the three leaks of issue 17 are each caught by a sharper figure above or below."""
MAX_FUTURES_AT_REST = 8
"""pygls request futures left when no request is in flight (it kept one per notification)."""
MAX_BYTES_PER_NEW_LINE = 256.0
"""C heap a tokenizer keeps per new line once its word cache is full: ~0 with the bound."""


def check_window(
    figures: dict[str, Any],
    max_heap_growth: float | None = WINDOW_MAX_HEAP_GROWTH_MIB,
    max_rss_growth: float | None = WINDOW_MAX_RSS_GROWTH_MIB,
) -> list[str]:
    """What stays bounded whatever the machine's speed: the growth between two samples at rest
    after a warm-up by content, and sizes the server reports (futures, threads, word caches)."""
    problems = []
    window = figures["window"]
    for name, bound in (("heap_in_use", max_heap_growth), ("rss", max_rss_growth)):
        growth = window[f"{name}_growth_mib"]
        if growth is not None and bound is not None and growth > bound:
            problems.append(f"{name} grew {growth} MiB over the window (bound {bound})")
    futures = window["at_rest"]["end"]["request_futures"]
    if futures > MAX_FUTURES_AT_REST:
        problems.append(f"{futures} pygls request futures kept at rest")
    helpers = figures["peak"].get("helper_threads", 0)
    if helpers > HELPER_THREADS:
        problems.append(f"{helpers} helper threads (bound {HELPER_THREADS})")
    for name in ("threads", "os_threads"):
        if window[name]["end"] > window[name]["start"]:
            problems.append(f"{name} grew over the window: {window[name]}")
    for cost in figures["tokenizer_bytes_per_new_line"] or []:
        if cost is not None and cost > MAX_BYTES_PER_NEW_LINE:
            problems.append(f"a tokenizer keeps {cost:.0f} bytes per new line (word cache)")
    return problems


def check(
    figures: dict[str, Any],
    max_slope: float | None = MAX_SLOPE,
    max_growth: float | None = MAX_GROWTH,
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
        problems = check(figures) + check_window(figures, None, None)
    figures["problems"] = problems
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
