"""The quality benchmark's goals hold on a small sample (regression guard for prompt + clean-up).

The full run (459 positions) is `benchmarks/quality.py`; see docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from benchmarks import quality


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


def test_a_suggestion_the_parse_check_drops_is_replaced_by_a_sample_that_parses(
    tmp_path: Path,
) -> None:
    """With ``parse_check_retries`` the demo model's first answer is unchanged wherever it was
    shown; where the check dropped it, each extra suggestion is a retry that it kept (counted
    in ``parse_check_retries_shown``), and none of them breaks code that parsed."""
    rng = random.Random(7)
    cases = []
    for name in ("shlex.py", "csv.py", "fractions.py", "textwrap.py"):
        cases += quality.make_cases(quality.STDLIB / name, rng, 5, max_chars=400)
    options = {
        "model": "demo",
        "temperature": 0,
        "debounce_ms": 0,
        "max_context_tokens": 512,
        "max_new_tokens": 64,
        "max_new_tokens_single_line": 32,
    }
    runs = [
        asyncio.run(
            quality.run_cases(
                cases, {**options, "parse_check_retries": retries}, oracle=False, workdir=tmp_path
            )
        )
        for retries in (0, 2)
    ]
    gained = []
    for first, retried in zip(*runs, strict=True):
        if first["completion"]:
            assert retried["completion"] == first["completion"]
        elif retried["completion"]:
            gained.append(retried)
            assert quality.breaks_parsing(retried["case"], retried["completion"]) is not True
    stats = runs[1][0]["server_stats"]
    assert runs[0][0]["server_stats"]["parse_check_retries"] == 0
    assert stats["parse_check_retries"] > 0
    assert len(gained) == stats["parse_check_retries_shown"] > 0
