"""The quality benchmark's goals hold on a small sample (regression guard for prompt + clean-up).

The full run (459 positions) is `benchmarks/quality.py`; see docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import quality  # noqa: E402


@pytest.mark.parametrize("fmt", ["prefix", "fim"])
def test_oracle_completions_end_where_the_true_text_ends(fmt: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    cases = []
    for name in ("shlex.py", "csv.py", "fractions.py"):
        cases += quality.make_cases(quality.STDLIB / name, rng, 5, max_chars=400)
    assert {c.kind for c in cases} == set(quality.KINDS)
    options = {
        "model": "demo",
        "temperature": 0,
        "debounce_ms": 0,
        "prompt_format": fmt,
        "max_context_tokens": 512,
        "max_new_tokens": 160,
        "max_new_tokens_single_line": 48,
    }
    results = asyncio.run(quality.run_cases(cases, options, oracle=True, workdir=tmp_path))
    exact = sum(r["completion"] == r["case"].expected for r in results)
    assert exact >= 0.9 * len(results), [
        (r["case"].id, r["case"].expected, r["completion"])
        for r in results
        if r["completion"] != r["case"].expected
    ][:5]
    for r in results:
        assert not quality.repeats_suffix(r["completion"], r["case"])
        assert not quality.SPECIAL.search(r["completion"])
        assert r["prompt"] is not None and r["prompt"]["prompt_ends_at_cursor"]
        budget = quality.budget_for(options, r["case"].kind)
        assert r["prompt"]["prompt_tokens"] <= budget
