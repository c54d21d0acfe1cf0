"""A reduced long session for CI: typing replay against the real server (demo model).

The long runs (``python -m benchmarks.soak --long``, and ``--model-server 4``) record their
curves in docs/benchmarks.md; ``CODELLAMA_SOAK_REQUESTS`` raises the count here. The memory
bound is on the slope of RSS after warm-up (MiB per 1,000 requests), which a steady leak
exceeds however short the run; a bound on the total growth would pass any short run.
"""

from __future__ import annotations

import os
import time

import pytest

from benchmarks.soak import check, run_soak
from tests.support import DEMO
from tests.support.raw_client import raw_session

REQUESTS = int(os.environ.get("CODELLAMA_SOAK_REQUESTS", "1200"))
CI_MAX_SLOPE = 8.0
"""MiB per 1,000 requests (8 KB a request). Over the first 1,200 requests the curve still
rises ~2 MiB per 1,000 (2.0 measured after issue 17's fixes) while bounded caches fill
(line-token memo, tokenizer word caches, latency windows; docs/benchmarks.md, "Memory over
long sessions"), so a short run catches a leak of a few KB per request; the long run
(``--long``) is where the 0.1 aim is checked."""


@pytest.mark.timeout(600)
def test_soak_keeps_memory_caches_threads_and_tasks_bounded() -> None:
    figures = run_soak(REQUESTS, warmup=REQUESTS // 4, sample_every=50, options={"cache_size": 64})
    print(
        f"\nsoak: {figures['requests']} requests in {figures['seconds']} s, RSS "
        f"{figures['rss_after_warmup_mib']} → {figures['rss_final_mib']} MiB, slope "
        f"{figures['rss_mib_slope_per_1000']} MiB per 1,000 requests, peak {figures['peak']}"
    )
    assert figures["server_alive"]
    assert figures["answered"] == figures["requests"] >= REQUESTS
    # A small cache so that the replay overflows it: it must stay at its bound.
    assert figures["peak"]["cache_entries"] <= 64
    assert figures["final"]["generations_completed"] > 0
    assert check(figures, max_slope=CI_MAX_SLOPE, max_growth=None) == []


@pytest.mark.timeout(300)
def test_notifications_leave_no_request_futures_behind() -> None:
    """pygls kept the future of every notification not handled by a plain function (its own
    didChange is a generator; our didSave is async), keyed by a new uuid, for good: one per
    keystroke. 30 edits, saves and file events must leave nothing behind."""
    uri = "file:///soak/saved.py"
    with raw_session({**DEMO, "context_workspace": True}) as client:
        client.open(uri, "x = 1\n")
        before = client.command("codellama.stats")["request_futures"]
        for i in range(30):
            end = {"line": 1, "character": 0}
            client.change(uri, i + 2, [{"range": {"start": end, "end": end}, "text": "#"}])
            client.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
            client.notify("workspace/didChangeWatchedFiles", {"changes": [{"uri": uri, "type": 2}]})
        # The async handlers' tasks may still be running when the first stats call comes.
        deadline = time.monotonic() + 30
        while client.command("codellama.stats")["request_futures"] > before:
            assert time.monotonic() < deadline, "futures left behind"
            time.sleep(0.1)
