"""How long an explicit (Invoked) request waits for its first suggestion, against a typed
(Automatic) one at the same places: issue 27's "first candidate first".

Two real servers over stdio, one after the other, visit the same places of a real file: one asks
Automatic, the other Invoked, then Invoked again at the same place (the user cycling, which
waits for the other candidates). ``debounce_ms = 0`` so that both measure the model, not the
wait for a pause. The ratio Invoked / Automatic is the figure (the issue's aim: ≤ 1.15; before,
an Invoked request waited for all its candidates: 11.6×).

    .venv/bin/python -m benchmarks.invoked_latency --places 6
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

from benchmarks.candidates import SOURCE, positions
from tests.support.lsp_session import Session, lsp_session

OPTIONS = {"model": "demo", "debounce_ms": 0, "cache_size": 256}


async def ask(
    session: Session, uri: str, line: int, column: int, invoked: bool
) -> tuple[float, int]:
    """Seconds to the answer and the number of items."""
    params = session.inline_params(uri, line, column)
    if invoked:
        params.context.trigger_kind = types.InlineCompletionTriggerKind.Invoked
    started = time.perf_counter()
    result = await session.client.text_document_inline_completion_async(params)
    took = time.perf_counter() - started
    items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
    return took, len(items)


async def visit(invoked: bool, places: int, options: dict[str, Any]) -> dict[str, list[float]]:
    text = Path(SOURCE).read_text()
    figures: dict[str, list[float]] = {"first": [], "items": [], "cycle": [], "cycle_items": []}
    async with lsp_session(options) as session:
        for number, cursor in enumerate(positions(text, places)):
            uri = f"file:///bench/{number}/argparse.py"
            session.open(uri, text)
            took, items = await ask(session, uri, cursor.line, cursor.character, invoked)
            figures["first"].append(took)
            figures["items"].append(items)
            if invoked:
                took, items = await ask(session, uri, cursor.line, cursor.character, True)
                figures["cycle"].append(took)
                figures["cycle_items"].append(items)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--places", type=int, default=6)
    parser.add_argument("--model", default="demo")
    args = parser.parse_args()
    options = {**OPTIONS, "model": args.model}
    automatic = asyncio.run(visit(False, args.places, options))
    invoked = asyncio.run(visit(True, args.places, options))
    auto_p50 = statistics.median(automatic["first"]) * 1000
    first_p50 = statistics.median(invoked["first"]) * 1000
    cycle_p50 = statistics.median(invoked["cycle"]) * 1000
    print(f"{args.places} places of {Path(SOURCE).name}, model {args.model}, debounce 0")
    print("| request | p50 ms | max ms | / Automatic p50 |")
    print("|---|---|---|---|")
    rows = (
        ("Automatic (typing): the baseline", automatic["first"], auto_p50),
        ("Invoked: the first suggestion", invoked["first"], first_p50),
        ("Invoked again at the same place (cycling)", invoked["cycle"], cycle_p50),
    )
    for name, times, p50 in rows:
        print(f"| {name} | {p50:.0f} | {max(times) * 1000:.0f} | {p50 / auto_p50:.2f} |")
    print(f"items: Automatic {automatic['items']}, Invoked {invoked['items']}")
    print(f"items when cycling: {invoked['cycle_items']}")
    ratio = first_p50 / auto_p50
    verdict = "PASS" if ratio <= 1.15 else "FAIL"
    print(f"{verdict} Invoked first / Automatic p50 {ratio:.2f}x (<= 1.15x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
