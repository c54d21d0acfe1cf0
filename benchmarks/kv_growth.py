"""Decode steps with the engine's KV cache (``ReservedLayer``) vs transformers' ``DynamicCache``.

``DynamicCache`` copies every layer's keys and values at every decode step (``torch.cat``);
the engine's cache writes into reserved room (``codellama_lsp/engines/kv_cache.py``). Rounds
alternate the two caches on the same model and prompt (so load on a shared machine hits both
alike): prefill the prompt, then greedy decode steps, timed. Prints the median ms per step of
each, their ratio, and checks that both produced the same tokens.

    .venv/bin/python -m benchmarks.kv_growth                    # 63M random model, 1,900 tokens
    .venv/bin/python -m benchmarks.kv_growth --model demo --prompt 200
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import DynamicCache

from codellama_lsp.config import Settings
from codellama_lsp.engines.kv_cache import new_kv_cache
from codellama_lsp.engines.local import LocalEngine

CACHES: dict[str, Callable[[Any], DynamicCache]] = {
    "DynamicCache": lambda config: DynamicCache(config=config),
    "reserved": new_kv_cache,
}


def decode(
    engine: LocalEngine, make: Callable[[Any], DynamicCache], prompt: list[int], steps: int
) -> tuple[float, list[int]]:
    """ms per decode step after prefilling ``prompt`` (256-token chunks), and the tokens."""
    assert engine.model is not None
    cache = make(engine.model.config)
    with torch.inference_mode():
        for start in range(0, len(prompt), 256):
            logits = engine._forward(prompt[start : start + 256], cache)[-1]
        tokens = [int(logits.argmax())]
        started = time.perf_counter()
        for _ in range(steps):
            tokens.append(int(engine._forward(tokens[-1:], cache)[-1].argmax()))
    return (time.perf_counter() - started) / steps * 1000, tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="random:hidden=768,layers=8")
    parser.add_argument("--prompt", type=int, default=1900, help="prompt tokens")
    parser.add_argument("--steps", type=int, default=64, help="decode steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per cache, alternated")
    args = parser.parse_args()
    torch.manual_seed(0)
    engine = LocalEngine(Settings().merged({"model": args.model, "temperature": 0}))
    engine.load(lambda *_a, **_k: None)
    prompt = [1, *torch.randint(3, 8000, (args.prompt - 1,)).tolist()]
    per_step: dict[str, list[float]] = {name: [] for name in CACHES}
    outputs: dict[str, list[int]] = {}
    for _ in range(args.rounds):
        for name, make in CACHES.items():
            ms, outputs[name] = decode(engine, make, prompt, args.steps)
            per_step[name].append(ms)
    base, ours = (statistics.median(per_step[n]) for n in CACHES)
    print(
        f"model {args.model}, prompt {args.prompt} tokens, {args.steps} steps, {args.rounds} rounds"
    )
    print("| cache | ms per decode step (median) | rounds |")
    print("|---|---|---|")
    for name in CACHES:
        rounds = ", ".join(f"{v:.1f}" for v in per_step[name])
        print(f"| {name} | {statistics.median(per_step[name]):.1f} | {rounds} |")
    print(f"reserved / DynamicCache: {ours / base:.2f}x")
    same = outputs["reserved"] == outputs["DynamicCache"]
    print(f"same tokens: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
