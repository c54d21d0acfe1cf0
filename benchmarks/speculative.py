"""Speculative decoding in the local engine vs plain decoding, same run, real cursor positions.

The positions are the quality benchmark's (standard-library files, four kinds of places, see
``quality.py``). At each one the engine is asked twice, as an editor would: once at the
position, then after the user typed the first two characters of the true text (the second
request gets the first suggestion as its "previous suggestion" draft). Every variant answers
the same requests in the same order, greedy, with KV reuse per file, and must give the same
tokens as plain decoding (mismatches are counted and must be 0). Variants:

* ``plain`` — speculation off (the baseline);
* ``lookup`` — previous suggestion + prompt lookup, always k (4) drafted tokens;
* ``adaptive`` — the default: the same sources, k from measured acceptance and pass cost;
* ``previous-only``, ``lookup-only`` — the default with one of the two sources: what each
  adds by itself;
* ``self-draft`` — the model drafts for itself (``draft_model`` = ``model``), k fixed:
  acceptance must be 100 % and target passes per token ≈ 1/(k+1); it proves the mechanics,
  not a gain (each drafted token costs a full pass of the same model);
* ``self-draft-adaptive`` — the same with adaptive k: drafting does not pay, and the engine
  should find that out and stay within a few % of plain.

Reported per variant: target forward passes per generated token (decode passes only),
acceptance per source (accepted / drafted), and the wall-time ratio to plain (decode time).

    .venv/bin/python -m benchmarks.speculative --models demo     # 200 positions
    .venv/bin/python -m benchmarks.speculative --models 'random:hidden=768,layers=8' \
        --budget 128 --max-new-tokens 12                            # 63M random model
    .venv/bin/python -m benchmarks.speculative --quick          # 40 positions, smoke run
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import defaultdict
from typing import Any

import torch

from benchmarks import quality
from codellama_lsp.completion.cache import TypingThrough
from codellama_lsp.completion.prompt import build_prompt
from codellama_lsp.config import Settings
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.base import GenerationRequest, GenerationResult
from codellama_lsp.engines.drafts import SOURCES
from codellama_lsp.engines.local import LocalEngine

MODELS = ("demo", "random:hidden=768,layers=8")


def load(model: str, **overrides: Any) -> LocalEngine:
    settings = Settings().merged({"model": model, "temperature": 0, **overrides})
    engine = LocalEngine(settings)
    engine.load(lambda _message, _percent: None)
    return engine


def variants(model: str, k: int, names: list[str]) -> dict[str, LocalEngine]:
    def make(name: str) -> LocalEngine:
        if name == "plain":
            return load(model, speculative=False)
        if name == "lookup":
            engine = load(model, speculative_max_draft=k)
            engine.adaptive_draft = False
        elif name == "adaptive":
            engine = load(model)
        elif name in ONE_SOURCE:
            engine = load(model)
            engine.draft_sources = (ONE_SOURCE[name],)
            return engine
        else:  # self-draft, self-draft-adaptive
            engine = load(model, draft_model=model, speculative_max_draft=k)
            engine.adaptive_draft = name == "self-draft-adaptive"
            engine.draft_sources = ("draft_model",)
            return engine
        engine.draft_sources = ("previous", "lookup")
        return engine

    return {name: make(name) for name in ["plain", *names]}


ONE_SOURCE = {"previous-only": "previous", "lookup-only": "lookup"}
"""Variants that draft from one source only (adaptive k): what each source adds by itself."""

LABELS = {
    "plain": "plain",
    "lookup": "previous + lookup, k={k}",
    "adaptive": "previous + lookup, adaptive k (default)",
    "previous-only": "previous suggestion only, adaptive k",
    "lookup-only": "prompt lookup only, adaptive k",
    "self-draft": "self-draft, k={k}",
    "self-draft-adaptive": "self-draft, adaptive k",
}


def requests_for(case: quality.Case, max_new: int) -> list[tuple[Cursor, int]]:
    """The two places asked at this position: the position, and two characters typed on."""
    lines = case.text.split("\n")
    typed = case.expected[:2] if "\n" not in case.expected[:2] else ""
    second_line = lines[case.line][: case.column] + typed + lines[case.line][case.column :]
    second = "\n".join([*lines[: case.line], second_line, *lines[case.line + 1 :]])
    out = [(Cursor(case.text, case.line, case.column), max_new)]
    if typed:
        out.append((Cursor(second, case.line, case.column + len(typed)), max_new))
    return out


def prompt_ids(engine: LocalEngine, cursor: Cursor, fmt: str, budget: int) -> tuple[int, ...]:
    prompt = build_prompt(cursor, engine.tokens, fmt=fmt, budget=budget)  # type: ignore[arg-type]
    return prompt.ids


def run_model(
    model: str, cases: list[quality.Case], k: int, max_new: int, budget: int, names: list[str]
) -> list[str]:
    engines = variants(model, k, names)
    typing = {name: TypingThrough() for name in engines}
    totals: dict[str, dict[str, float]] = {name: defaultdict(float) for name in engines}
    mismatches = 0
    started = time.perf_counter()
    for i, case in enumerate(cases):
        fmt = "fim" if i % 2 else "prefix"
        for cursor, new_tokens in requests_for(case, max_new):
            ids = prompt_ids(engines["plain"], cursor, fmt, budget)
            outputs: dict[str, GenerationResult] = {}
            # Rotate the order so that machine load drifts hit every variant alike.
            names = list(engines)
            names = names[i % len(names) :] + names[: i % len(names)]
            for name in names:
                engine = engines[name]
                draft = typing[name].draft(case.file, cursor.prefix)
                request = GenerationRequest(
                    prompt_ids=ids,
                    max_new_tokens=new_tokens,
                    temperature=0.0,
                    top_p=1.0,
                    session=case.file,
                    draft_text=draft,
                )
                t0 = time.perf_counter()
                result = engine.generate(request, threading.Event())
                wall = time.perf_counter() - t0
                typing[name].remember(case.file, cursor.prefix, cursor.suffix, result.text)
                outputs[name] = result
                row = totals[name]
                row["wall"] += wall
                row["decode_s"] += result.decode_seconds
                row["tokens"] += result.generated_tokens
                row["passes"] += result.decode_passes
                for source in SOURCES:
                    row[f"drafted {source}"] += result.drafted.get(source, 0)
                    row[f"accepted {source}"] += result.accepted_drafts.get(source, 0)
            reference = outputs["plain"].token_ids
            mismatches += sum(1 for r in outputs.values() if r.token_ids != reference)
        if (i + 1) % 25 == 0:
            print(
                f"  {model}: {i + 1}/{len(cases)} ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    plain = totals["plain"]
    lines = [
        f"### `{model}` — {len(cases)} positions, {int(plain['tokens'])} tokens per variant, "
        f"greedy, max {max_new} new tokens, prompts ≤ {budget} tokens, "
        f"{time.perf_counter() - started:.0f} s",
        "",
        "| variant | target passes / token | acceptance (accepted/drafted) per source "
        "| decode time vs plain | generate wall vs plain |",
        "|---|---|---|---|---|",
    ]
    for name, row in totals.items():
        sources = []
        for source in SOURCES:
            drafted = row[f"drafted {source}"]
            if drafted:
                accepted = row[f"accepted {source}"]
                sources.append(
                    f"{source} {accepted / drafted:.0%} ({int(accepted)}/{int(drafted)})"
                )
        per_token = row["passes"] / max(1, row["tokens"])
        lines.append(
            f"| {LABELS[name].format(k=k)} | {per_token:.3f} | {', '.join(sources) or '—'} "
            f"| {row['decode_s'] / plain['decode_s']:.2f}× | {row['wall'] / plain['wall']:.2f}× |"
        )
    lines += ["", f"Outputs different from plain decoding: {mismatches} (must be 0)."]
    adaptive = engines.get("adaptive", engines["plain"])
    costs = adaptive.pass_costs
    lines.append(
        f"Adaptive state at the end: one-token pass {costs.one_token * 1000:.2f} ms, "
        f"+{costs.per_extra * 1000:.2f} ms per extra token; acceptance estimate "
        + ", ".join(f"{name} {adaptive.budgets[name].alpha:.2f}" for name in ("previous", "lookup"))
        + "."
    )
    for engine in engines.values():
        engine.close()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=";".join(MODELS), help="separated by ;")
    parser.add_argument("--per-kind", type=int, default=6, help="positions per kind per file")
    parser.add_argument("--files", type=int, default=len(quality.FILES))
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--budget", type=int, default=768, help="prompt tokens at most")
    parser.add_argument("--variants", default=",".join(list(LABELS)[1:]))
    parser.add_argument("--k", type=int, default=4, help="fixed draft length of the k= variants")
    parser.add_argument("--quick", action="store_true", help="40 positions, 16 new tokens")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.per_kind, args.files, args.max_new_tokens = 2, 5, 16
    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    cases: list[quality.Case] = []
    for name in quality.FILES[: args.files]:
        cases += quality.make_cases(quality.STDLIB / name, rng, args.per_kind, max_chars=400)
    print(f"{len(cases)} positions", file=sys.stderr)
    out: list[str] = []
    for model in args.models.split(";"):
        out += [
            *run_model(
                model, cases, args.k, args.max_new_tokens, args.budget, args.variants.split(",")
            ),
            "",
        ]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
