"""N editors at once: one shared model server vs. N language servers that each load the model.

Each simulated editor is a real language-server process driven by a real LSP client
(pytest-lsp): it opens a file and asks for inline completions at several places, one after
the other; all editors run at the same time. Two set-ups per N:

* ``server``: one ``codellama-lsp serve`` process holds the model; the N language servers use
  ``backend = "http"`` (they hold only the tokenizer);
* ``in-process``: N language servers with ``backend = "local"``, each with its own model copy.

Reported: completion latency p50/p95 per N, the peak RSS (VmHWM) of one editor's language
server (the mean over the N), the model server's, and that of all processes together. Run:

    .venv/bin/python -m benchmarks.concurrent_editors --model random:hidden=512,layers=8
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
import time
from contextlib import AsyncExitStack
from typing import Any

from benchmarks.common import peak_rss_mb, session_pid
from codellama_lsp.stats import percentile
from tests.support.lsp_session import Session, lsp_session
from tests.support.model_servers import ModelServer


def documents(count: int) -> list[str]:
    """Different real Python files, so editors do not share prompts."""
    import argparse as a
    import json as j
    import logging as lg
    import textwrap as t

    sources = [inspect.getsource(m) for m in (a, j.decoder, lg, t)]
    return [sources[i % len(sources)][:6000] for i in range(count)]


async def editor(s: Session, index: int, text: str, requests: int) -> list[float]:
    """Open a file and ask for completions at ``requests`` line ends, timing each."""
    uri = f"file:///editor{index}/file.py"
    s.open(uri, text)
    lines = text.split("\n")
    targets = [i for i, line in enumerate(lines) if line.strip().endswith(":")][:requests]
    latencies = []
    for line in targets:
        started = time.perf_counter()
        await s.inline(uri, line + 1, 0)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def run(mode: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    base = {
        "model": args.model,
        "temperature": 0,
        "debounce_ms": 0,
        "max_new_tokens": args.max_new_tokens,
        "max_context_tokens": 1024,
        "prefetch_after_accept": False,
    }
    server: ModelServer | None = None
    if mode == "server":
        server = ModelServer("--model", args.model, "--max-context-tokens", "1024")
        base |= {"backend": "http", "server_url": server.url}
    else:
        base |= {"backend": "local"}
    try:
        async with AsyncExitStack() as stack:
            sessions = [await stack.enter_async_context(lsp_session(base)) for _ in range(n)]
            started = time.perf_counter()
            results = await asyncio.gather(
                *(
                    editor(s, i, text, args.requests)
                    for i, (s, text) in enumerate(zip(sessions, documents(n), strict=True))
                )
            )
            wall = time.perf_counter() - started
            lsp_rss = [peak_rss_mb(session_pid(s)) for s in sessions]
            server_rss = peak_rss_mb(server.proc.pid) if server is not None else 0.0
    finally:
        if server is not None:
            server.stop()
    latencies = [x for r in results for x in r]
    return {
        "mode": mode,
        "n": n,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "wall_s": wall,
        "model_server_mb": server_rss,
        "per_editor_mb": sum(lsp_rss) / len(lsp_rss),
        "total_mb": server_rss + sum(lsp_rss),
        "requests": len(latencies),
    }


async def main_async(args: argparse.Namespace) -> None:
    rows = []
    for n in args.editors:
        for mode in ("server", "in-process"):
            row = await run(mode, n, args)
            rows.append(row)
            print(
                f"  {mode:10} N={n}: p50 {row['p50']:.0f} ms, p95 {row['p95']:.0f} ms, "
                f"total peak RSS {row['total_mb']:.0f} MB",
                file=sys.stderr,
            )
    by = {(r["mode"], r["n"]): r for r in rows}
    first = args.editors[0]
    print(
        f"\nmodel {args.model}, {args.requests} completions per editor, "
        f"max_new_tokens {args.max_new_tokens}, {os.cpu_count()} CPUs\n"
    )
    print(
        "| N | set-up | p50 ms | p95 ms | language server peak RSS MB (per editor) "
        "| model server peak RSS MB | all processes peak RSS MB | memory vs N=1 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for n in args.editors:
        for mode in ("server", "in-process"):
            r = by[(mode, n)]
            ratio = r["total_mb"] / by[(mode, first)]["total_mb"]
            server_mb = f"{r['model_server_mb']:.0f}" if mode == "server" else "—"
            print(
                f"| {n} | {mode} | {r['p50']:.0f} | {r['p95']:.0f} | {r['per_editor_mb']:.0f} "
                f"| {server_mb} "
                f"| {r['total_mb']:.0f} | {ratio:.2f}× |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="random:hidden=512,layers=8")
    parser.add_argument("--editors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=6, help="completions per editor")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    from codellama_lsp.engines.model_names import resolve_model

    resolve_model(args.model)  # build a random model once, outside the timings
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
