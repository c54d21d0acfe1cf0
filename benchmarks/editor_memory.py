"""Memory of an editor's language server that talks to a model server (issue 13).

One real ``codellama-lsp serve`` holds the demo model; a real language server with
``backend = http`` (pytest-lsp client over stdio) completes 100 times at different places of a
file; then its resident memory (VmRSS, and the peak VmHWM) is read from /proc. The same run
measures the baseline: the same server with torch and transformers imported at start (a
``sitecustomize`` on PYTHONPATH), as the editor side was before it became torch-free.

    .venv/bin/python -m benchmarks.editor_memory [--requests 100]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import tempfile
import textwrap
from pathlib import Path

from benchmarks.common import peak_rss_mb, rss_mb, session_pid
from tests.support.lsp_session import lsp_session
from tests.support.model_servers import ModelServer

PRELOAD = "import torch, transformers\nfrom transformers import AutoTokenizer\n"


async def measure(server_url: str, requests: int, env: dict[str, str]) -> tuple[float, float, int]:
    """(RSS MB, peak RSS MB, completions with text) after ``requests`` completions."""
    source = inspect.getsource(textwrap)
    lines = source.split("\n")
    options = {
        "model": "demo",
        "backend": "http",
        "server_url": server_url,
        "temperature": 0,
        "debounce_ms": 0,
        "max_new_tokens": 8,
        "prefetch_after_accept": False,
    }
    answered = 0
    async with lsp_session(options, env=env) as s:
        uri = "file:///bench/textwrap.py"
        s.open(uri, source)
        for i in range(requests):
            line = 20 + (i * 7) % (len(lines) - 40)
            items = await s.inline(uri, line, len(lines[line]))
            answered += bool(items)
        pid = session_pid(s)
        return rss_mb(pid), peak_rss_mb(pid), answered


async def main_async(args: argparse.Namespace) -> None:
    server = ModelServer()
    url = server.url
    try:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "sitecustomize.py").write_text(PRELOAD)
            paths = [tmp, os.environ.get("PYTHONPATH", "")]
            preload = {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}
            before = await measure(url, args.requests, preload)
            rows = [
                ("torch-free (this version)", await measure(url, args.requests, {})),
                ("torch + transformers imported (before)", before),
            ]
    finally:
        server.stop()
    base = rows[1][1][0]
    print(f"\n{args.requests} completions through `codellama-lsp serve` (demo model)\n")
    print("| language server | RSS MB after | peak RSS MB | vs before | answered |")
    print("|---|---|---|---|---|")
    for name, (rss, peak, answered) in rows:
        print(f"| {name} | {rss:.0f} | {peak:.0f} | {rss / base:.2f}× | {answered} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
