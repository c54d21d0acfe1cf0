"""The language server's C heap per request, without a model (issue 28's ~88 bytes a request).

    OMP_NUM_THREADS=1 python -m benchmarks.lsp_heap --requests 16000 --every 1000
    OMP_NUM_THREADS=1 python -m benchmarks.lsp_heap --requests 11000 --every 1000 --trace 5000,11000

In this process: the real server's protocol and handlers (``handle_body``, as framed messages
would arrive), a fake engine that answers at once (so that thousands of requests take
minutes, and torch's allocations are out of the picture), one document typed into (a
keystroke, then an automatic inline completion, waiting for its answer). Every ``--every``
requests, after ``gc.collect()``: glibc's C heap in use (``mallinfo2``: native allocations
and Python objects over 512 bytes, such as dict tables) and, with ``--trace``, tracemalloc's
traced Python memory, with the allocations that grew most between the two requests named.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import random
import textwrap
import threading
import tracemalloc
from typing import Any

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import GenerationRequest, GenerationResult
from codellama_lsp.engines.model_names import resolve_model
from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer
from codellama_lsp.lsp.server import create_server
from codellama_lsp.memory import heap_in_use_bytes

MIB = 2**20


class FakeEngine:
    """Answers every request at once with the same two lines."""

    name = "fake"
    warning = ""
    last_step_seconds = 0.0
    on_connection_change = None
    reuses_prompts = False
    context_limit = 4096

    def __init__(self) -> None:
        self.tokens = CodeTokens(load_tokenizer(resolve_model("demo")))

    def cache_stats(self) -> dict[str, int]:
        return {}

    def load(self, progress: Any) -> None:
        pass

    def close(self) -> None:
        pass

    def generate(self, request: GenerationRequest, cancel: threading.Event) -> GenerationResult:
        text = "value = compute(x)\n    return value"
        if request.on_text is not None:
            request.on_text(text)
        if request.should_stop is not None:
            request.should_stop(text)
        return GenerationResult(text, "stop", prompt_tokens=len(request.prompt_ids))


async def run(requests: int, every: int, trace: set[int]) -> None:
    server = create_server(Settings().merged({"debounce_ms": 0, "idle_prefill": False}))
    protocol = server.protocol
    answered: set[int] = set()

    class Writer:
        def write(self, data: bytes) -> None:
            message = json.loads(bytes(data).split(b"\r\n\r\n", 1)[1])
            if "id" in message and "method" not in message:
                answered.add(message["id"])

        def close(self) -> None:
            pass

    protocol.set_writer(Writer())  # type: ignore[arg-type]

    def send(message: dict[str, Any]) -> None:
        protocol.handle_body(json.dumps({"jsonrpc": "2.0", **message}).encode())

    capabilities = {"textDocument": {"inlineCompletion": {}}}
    params = {"processId": None, "rootUri": None, "capabilities": capabilities}
    send({"id": 0, "method": "initialize", "params": params})
    await asyncio.sleep(0.1)
    server.completer.set_engine(FakeEngine())  # no `initialized`: nothing loads a model
    server.state = "ready"
    text = inspect.getsource(textwrap)[:6000]
    uri = "file:///typed.py"
    document = {"uri": uri, "languageId": "python", "version": 1, "text": text}
    send({"method": "textDocument/didOpen", "params": {"textDocument": document}})
    lines = text.split("\n")
    line, column, version = len(lines) - 1, len(lines[-1]), 1
    rng = random.Random(0)
    snapshots: list[tracemalloc.Snapshot] = []
    if trace:
        tracemalloc.start(6)
    for n in range(1, requests + 1):
        typed = "\n    " if rng.random() < 0.05 else rng.choice("abcdefghij(), =")
        version += 1
        at = {"line": line, "character": column}
        change = {"range": {"start": at, "end": at}, "text": typed}
        identifier = {"uri": uri, "version": version}
        send(
            {
                "method": "textDocument/didChange",
                "params": {"textDocument": identifier, "contentChanges": [change]},
            }
        )
        line, column = (line + 1, 4) if typed.startswith("\n") else (line, column + 1)
        position = {"line": line, "character": column}
        inline = {"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 2}}
        send({"id": n, "method": "textDocument/inlineCompletion", "params": inline})
        while n not in answered:
            await asyncio.sleep(0.001)
        answered.discard(n)
        if n % every == 0 or n in trace:
            await asyncio.sleep(0.05)
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] / MIB if trace else 0.0
            heap = (heap_in_use_bytes() or 0) / MIB
            print(
                f"{n} requests: C heap in use {heap:.3f} MiB, traced {traced:.3f} MiB", flush=True
            )
        if n in trace:
            snapshots.append(tracemalloc.take_snapshot())
            if len(snapshots) == 2:
                for stat in snapshots[1].compare_to(snapshots[0], "traceback")[:6]:
                    where = " <- ".join(
                        f"{f.filename.split('/')[-1]}:{f.lineno}" for f in stat.traceback
                    )
                    print(
                        f"  {stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks: {where}"
                    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=16000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--trace", default="", help="two request counts to compare (tracemalloc)")
    args = parser.parse_args()
    trace = {int(n) for n in args.trace.split(",") if n}
    asyncio.run(run(args.requests, args.every, trace))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
