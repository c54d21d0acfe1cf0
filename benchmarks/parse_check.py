"""The parse check's cost per suggestion, on the quality benchmark's positions (real files).

For every position of ``benchmarks/quality.py`` (stdlib and held-out third-party files), the
check runs on three suggestions: the true text (it keeps parsing: one or two parses), the true
text with a line that does not parse appended (the check trims line by line), and the true text
after an opening bracket that nothing closes (the worst case: no prefix parses, so every cut
is tried, up to ``MAX_CUTS``).
CPU time of the checking thread (`time.thread_time`): the machine may be shared, and waiting
for a core is not the check's cost; the server's own wall-clock figure is in `codellama.stats`
(`timings_ms.parse_check`) and in `benchmarks/quality.py`'s report.

    .venv/bin/python -m benchmarks.parse_check
"""

from __future__ import annotations

import random
import statistics
import time

from benchmarks import quality
from codellama_lsp.completion.parse_check import keep_parsing, parses, window
from codellama_lsp.cursor import Cursor

BROKEN_TAIL = "\n    x = (("


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1)]


def main() -> int:
    rng = random.Random(0)
    cases = [
        case
        for corpus in quality.CORPORA.values()
        for path in corpus
        for case in quality.make_cases(path, rng, 12, max_chars=400)
    ]
    variants = (("true text", "", ""), ("true text + a broken line", "", BROKEN_TAIL))
    for label, head, tail in (*variants, ("an unclosed bracket + true text", "((", "")):
        times: list[float] = []
        checked = changed = 0
        for case in cases:
            cursor = Cursor(case.text, case.line, case.column)
            text = head + case.expected + tail
            started = time.thread_time()
            kept = keep_parsing(text, cursor, case.column)
            times.append((time.thread_time() - started) * 1000)
            win = window(cursor, case.column)
            checked += win is not None and parses(win.before)
            changed += kept != text
        print(
            f"{label}: {len(cases)} positions, {checked} with a window that parsed before, "
            f"{changed} suggestions trimmed or dropped; ms per suggestion: "
            f"p50 {statistics.median(times):.3f}, p95 {percentile(times, 95):.3f}, "
            f"max {max(times):.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
