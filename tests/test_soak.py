"""A reduced long session for CI: typing replay against the real server (demo model).

The long runs (``python -m benchmarks.soak --long``, and ``--model-server 4``) record their
curves in docs/benchmarks.md; ``CODELLAMA_SOAK_REQUESTS`` raises the count here. A short run
cannot judge a slope (bounded caches still fill for thousands of requests, at a pace that
depends on the machine), so the test warms every bounded structure up by content first and then
bounds what a window adds between two samples at rest, and the sizes the server reports.
"""

from __future__ import annotations

import os
import time

import pytest

from benchmarks.soak import check, check_window, run_soak
from tests.support import DEMO
from tests.support.raw_client import raw_session

REQUESTS = int(os.environ.get("CODELLAMA_SOAK_REQUESTS", "1200"))


@pytest.mark.timeout(900)
def test_soak_keeps_memory_caches_threads_and_tasks_bounded() -> None:
    """The leaks issue 17 fixed each break a bound here (docs/reliability.md has the runs with
    each fix reverted): pygls' notification futures (futures at rest), the tokenizer word
    caches (bytes kept per new line, and the C heap over a window that brings 5,000 new lines
    into prompts), the helper pool (helper threads, threads over the window)."""
    figures = run_soak(REQUESTS, warmup=REQUESTS // 4, sample_every=100, options={"cache_size": 64})
    window = figures["window"]
    print(
        f"\nsoak: {figures['requests']} requests in {figures['seconds']} s; window of "
        f"{window['requests']} requests, {window['new_lines_in_prompts']} new lines: C heap "
        f"+{window['heap_in_use_growth_mib']} MiB, RSS +{window['rss_growth_mib']} MiB, at rest "
        f"{window['at_rest']['end']}, bytes per new line "
        f"{figures['tokenizer_bytes_per_new_line']}, peak {figures['peak']}"
    )
    assert figures["server_alive"]
    assert figures["answered"] == figures["requests"] >= REQUESTS
    assert window["new_lines_in_prompts"] >= 4800
    # A small cache so that the replay overflows it: it must stay at its bound.
    assert figures["peak"]["cache_entries"] <= 64
    assert figures["final"]["generations_completed"] > 0
    assert check(figures, max_slope=None, max_growth=None) + check_window(figures) == []


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
