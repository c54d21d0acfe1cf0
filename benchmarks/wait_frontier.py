"""What any debounce wait could do on the person trace: the bound behind issue 10's aims.

A server that starts a generation once the user has been quiet for ``wait`` ms, with a model
that answers in ``latency`` ms, starts one at every quiet gap longer than the wait, and that
generation completes only when the gap is also longer than ``wait + latency``. The trace of
``benchmarks/typing_replay.py`` fixes the gaps: keys 40–120 ms apart, typos fixed 100–200 ms
later, hesitations of 300–800 ms, and pauses where the user waits for the ghost text. So for
each (wait, latency) this prints, from the trace alone (no server, no model):

- generations started per 100 keys (aim ≤ 10);
- the share of them that complete (aim ≥ 0.8);
- pause → ghost text (wait + latency; the "before" server's fixed 60 ms wait is the baseline).

It is an upper bound for the real server in one way only: the server also skips starts that
its cache, typing-through or a kept generation answer (so it starts somewhat less). Accepted
suggestions start their prefetch at once, without a wait, and always complete.

    python -m benchmarks.wait_frontier
    python -m benchmarks.wait_frontier --latency-ms 250,340 --waits-ms 0,146,200,500,800

Results and their reading: docs/benchmarks.md, "A person's typing speed".
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.typing_replay import ACCEPT, FULL_TRACE, Step, build_traces


@dataclass(frozen=True)
class Quiet:
    """The trace as the debounce sees it."""

    gaps_s: tuple[float, ...]
    """For each request that waits for quiet: how long the user stays quiet after it
    (``inf``: until the ghost text is shown, at a pause or the trace's end)."""
    immediate: int
    """Requests that start without a wait (the prefetch after an accepted suggestion)."""
    keys: int


def quiet_gaps(steps: Sequence[Step]) -> Quiet:
    """The quiet gaps after each edit or jump of one trace."""
    gaps: list[float] = []
    immediate = keys = 0
    for i, step in enumerate(steps):
        following = steps[i + 1] if i + 1 < len(steps) else None
        typed_next = following is not None and following.kind in ("type", "backspace")
        if step.kind in ("type", "backspace"):
            keys += 1
            gaps.append(following.delay_s if typed_next and following else math.inf)
        elif step.kind == "jump":
            gaps.append(step.think_s + (following.delay_s if typed_next and following else 0.0))
        elif step.kind == "pause" and step.choice < ACCEPT:
            keys += 1  # Tab
            immediate += 1
    return Quiet(tuple(gaps), immediate, keys)


@dataclass(frozen=True)
class Outcome:
    started_per_100_keys: float
    completed_share: float
    pause_to_ghost_ms: float


def outcome(quiet: Quiet, wait_ms: float, latency_ms: float) -> Outcome:
    """What a fixed ``wait_ms`` gives with a model answering in ``latency_ms``."""
    wait, latency = wait_ms / 1000, latency_ms / 1000
    started = quiet.immediate + sum(1 for gap in quiet.gaps_s if gap > wait)
    completed = quiet.immediate + sum(1 for gap in quiet.gaps_s if gap >= wait + latency)
    return Outcome(
        round(100 * started / max(1, quiet.keys), 1),
        round(completed / max(1, started), 2),
        wait_ms + latency_ms,
    )


def merged(quiets: Sequence[Quiet]) -> Quiet:
    return Quiet(
        tuple(g for q in quiets for g in q.gaps_s),
        sum(q.immediate for q in quiets),
        sum(q.keys for q in quiets),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-ms", default="200,250,300,340,400,480")
    parser.add_argument("--waits-ms", default="0,100,146,200,250,300,400,500,600,800")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    traces = build_traces(*FULL_TRACE, args.seed, "person")  # typing_replay --trace person
    quiet = merged([quiet_gaps(t.steps) for t in traces])
    waits = [float(w) for w in args.waits_ms.split(",")]
    print(f"person trace: {quiet.keys} keys, {len(quiet.gaps_s)} waiting requests")
    print("cells: generations started per 100 keys / share completed; aims <= 10 / >= 0.8\n")
    print("| model latency | " + " | ".join(f"wait {w:.0f} ms" for w in waits) + " |")
    print("|---|" + "---|" * len(waits))
    for latency in (float(v) for v in args.latency_ms.split(",")):
        cells = []
        for w in waits:
            o = outcome(quiet, w, latency)
            mark = " ✓" if o.started_per_100_keys <= 10 and o.completed_share >= 0.8 else ""
            cells.append(f"{o.started_per_100_keys} / {o.completed_share}{mark}")
        print(f"| {latency:.0f} ms | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
