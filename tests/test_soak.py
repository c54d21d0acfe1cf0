"""A reduced long session for CI: typing replay against the real server (demo model).

The full run (``python benchmarks/soak.py``, 10,000 requests) records its figures in
docs/benchmarks.md; ``CODELLAMA_SOAK_REQUESTS`` raises the count here.
"""

from __future__ import annotations

import os

import pytest

from benchmarks.soak import check, run_soak

REQUESTS = int(os.environ.get("CODELLAMA_SOAK_REQUESTS", "500"))


@pytest.mark.timeout(240)
def test_soak_keeps_memory_caches_threads_and_tasks_bounded() -> None:
    figures = run_soak(REQUESTS, warmup=REQUESTS // 4, options={"cache_size": 64})
    print(
        f"\nsoak: {figures['requests']} requests in {figures['seconds']} s, RSS "
        f"{figures['rss_after_warmup_mib']} → {figures['rss_final_mib']} MiB "
        f"({figures['rss_growth']:+.1%}), peak {figures['peak']}"
    )
    assert figures["server_alive"]
    assert figures["answered"] == figures["requests"] >= REQUESTS
    # A small cache so that the replay overflows it: it must stay at its bound.
    assert figures["peak"]["cache_entries"] <= 64
    assert figures["final"]["generations_completed"] > 0
    assert check(figures) == []
