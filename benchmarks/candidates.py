"""What several candidates cost: the first suggestion vs. the extra ones, sharing the prompt.

At a few positions of a real file, the completer gives the usual suggestion, then asks for
``--candidates`` in all (what an Invoked request does). The extra ones are sampled from the same
prompt; with KV slots (the default) the prompt's keys/values are reused, so each extra
candidate costs its decode steps only. The baseline, in the same run, is the same with
``kv_cache_slots = 0``: every candidate prefills the prompt again.

    .venv/bin/python -m benchmarks.candidates --model random:hidden=512,layers=8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tokenize
from pathlib import Path

from codellama_lsp.completion.completer import Completer
from codellama_lsp.config import Settings
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.local import LocalEngine

SOURCE = Path(tokenize.__file__).parent / "argparse.py"


def positions(text: str, count: int) -> list[Cursor]:
    """Ends of lines inside function bodies, spread over the file's second half."""
    lines = text.split("\n")
    chosen = []
    for number in range(len(lines) // 2, len(lines), max(1, len(lines) // (2 * count))):
        if lines[number].startswith("        ") and lines[number].strip():
            chosen.append(Cursor(text, number, len(lines[number])))
        if len(chosen) == count:
            break
    return chosen


async def measure(model: str, slots: int, count: int, places: int) -> dict[str, float]:
    settings = Settings().merged(
        {
            "model": model,
            "kv_cache_slots": slots,
            "max_context_tokens": 1024,
            "max_new_tokens": 16,
            "debounce_ms": 0,
            "speculative": False,
            "idle_prefill": False,
            "candidates": count,
        }
    )
    engine = LocalEngine(settings)
    engine.load(lambda _message, _percent: None)
    completer = Completer(settings, engine=engine)
    text = SOURCE.read_text()
    first_s, extra_s, extra_made = [], [], 0
    for number, cursor in enumerate(positions(text, places)):
        uri = f"file:///bench/{number}/argparse.py"
        started = time.perf_counter()
        first = await completer.complete(uri, cursor)
        first_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        made_before = completer.stats.counts["candidates_generated"]
        await completer.alternatives(uri, cursor, first.text if first else "", count)
        extra_made += completer.stats.counts["candidates_generated"] - made_before
        extra_s.append(time.perf_counter() - started)
    counts = completer.stats.counts
    completer.scheduler.shutdown()
    engine.close()
    return {
        "first_s": statistics.mean(first_s),
        "extra_s_each": sum(extra_s) / max(1, extra_made),
        "prompt_tokens": counts["prompt_tokens"],
        "reused": counts["reused_prompt_tokens"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="random:hidden=512,layers=8")
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--positions", type=int, default=4)
    args = parser.parse_args()
    print(
        "| KV slots | first suggestion s | each extra generation s "
        "| extra / first | prompt tokens reused |"
    )
    print("|---|---|---|---|---|")
    for slots in (4, 0):
        r = asyncio.run(measure(args.model, slots, args.candidates, args.positions))
        print(
            f"| {slots} | {r['first_s']:.3f} | {r['extra_s_each']:.3f} | "
            f"{r['extra_s_each'] / r['first_s']:.2f} | "
            f"{r['reused']:.0f} of {r['prompt_tokens']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
