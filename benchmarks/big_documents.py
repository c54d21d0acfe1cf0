"""Completions in big documents (issue 28): does the keystroke path grow with the document?

    python -m benchmarks.big_documents                       # 20 KB, 1 MB, 10 MB, 20 MB
    python -m benchmarks.big_documents --sizes 20K,20M --repeat 5 --json big.json

Documents of real functions (top-level functions of standard-library modules) hold the same
*probe* function three times: at the start, in the middle and at the end. Every document
has the same text around each probe (the same functions above and below it, further than the
prompt window reaches), so the prompt at a probe is the same in every size: what differs is
only how much document lies beyond. The real server over stdio with the demo model
(greedy, no debounce, ``cache_size 0`` so that a repeated request is computed again) gets,
per document: ``didOpen``, a completion at each probe, an edit (a new line typed above the
cursor in the middle probe), a completion there again, ``didClose``. Each completion is asked
``--repeat`` times, in each of ``--rounds`` rounds over the sizes; the table shows the median
and the prompt tokens (equal in every size: the same prompt). Opening and editing are timed
as a status round trip after the notification (applying an edit may grow with the document;
what follows it should not).
RSS of the server is read before the open and after the close.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import statistics
import sys
import time
import tokenize
from pathlib import Path
from typing import Any

from benchmarks.common import rss_bytes
from tests.support.raw_client import RawClient

STDLIB = Path(tokenize.__file__).parent
MODULES = [
    "textwrap.py",
    "shlex.py",
    "difflib.py",
    "argparse.py",
    "csv.py",
    "configparser.py",
    "statistics.py",
    "fractions.py",
    "dataclasses.py",
    "json/decoder.py",
    "inspect.py",
    "typing.py",
    "pathlib.py",
    "tokenize.py",
    "ast.py",
    "pprint.py",
    "calendar.py",
    "gettext.py",
    "locale.py",
    "ftplib.py",
]
HEADER = '"""A big module made of real functions (benchmarks/big_documents.py)."""\n\n'
HEADER += "import os\nimport re\nimport sys\nfrom collections import defaultdict\n\n\n"
PROBE = '''def summarize_scores(scores, threshold):
    """Mean, spread and the names at or over ``threshold``."""
    ordered = sorted(scores.items(), key=lambda item: item[1])
    if not ordered:
        return 0.0, 0.0, []
    total = 0.0
    lowest = ordered[0][1]
    highest = ordered[-1][1]
    for name, value in ordered:
        total += value
        if value < lowest:
            lowest = value
        if value > highest:
            highest = value
    mean = total / len(ordered)
    spread = highest - lowest
    winners = []
    for name, value in ordered:
        if value >= threshold:
            winners.append(name)
    counted = {}
    for name in winners:
        counted[name] = counted.get(name, 0) + 1
    report = []
    for name, count in sorted(counted.items()):
        report.append(f"{name}: {count}")
    \n    return mean, spread, winners, report
'''
CURSOR_LINE = PROBE.split("\n").index("    ")
"""The probe's blank line in its body: where every completion is asked."""
NEAR_BYTES = 4_000
"""Functions above and below each probe, the same in every size: more than the prompt
window (``max_context_tokens`` 768) reaches."""
SIZES = {"20K": 20_000, "1M": 1_000_000, "10M": 10_000_000, "20M": 20_000_000}
OPTIONS = {
    "model": "demo",
    "temperature": 0,
    "debounce_ms": 0,
    "max_new_tokens": 16,
    "max_context_tokens": 768,
    "cache_size": 0,
    "candidates": 1,
    # The parse check runs; no retries: the model's time is the same in every size, and
    # less of it shows the rest better.
    "parse_check_retries": 0,
}


def real_functions() -> list[str]:
    """Top-level, undecorated functions of standard-library modules, whose names the probe
    does not use (else the open-documents context would add their definitions)."""
    probe_names = {n.id for n in ast.walk(ast.parse(PROBE)) if isinstance(n, ast.Name)}
    probe_names |= {"summarize_scores"}
    found = []
    for module in MODULES:
        source = (STDLIB / module).read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if node.decorator_list or node.name in probe_names:
                continue
            text = ast.get_source_segment(source, node)
            if text and "\t" not in text and len(text) < 6_000:
                found.append(text)
    return found


def take(functions: itertools.cycle[str], size: int) -> str:
    out: list[str] = []
    total = 0
    while total < size:
        piece = next(functions) + "\n\n\n"
        out.append(piece)
        total += len(piece)
    return "".join(out)


def build_document(size: int) -> tuple[str, list[int]]:
    """The document of about ``size`` characters and the lines of its three cursors."""
    functions = real_functions()
    near = itertools.cycle(functions[:40])
    above, below = take(near, NEAR_BYTES), take(near, NEAR_BYTES // 2)
    bulk = itertools.cycle(functions[40:])
    fixed = len(HEADER) + 3 * len(PROBE) + 2 * (len(above) + len(below)) + len(below)
    filler = max(0, size - fixed) // 2
    first, second = take(bulk, filler), take(bulk, filler)
    probe = PROBE + "\n\n"
    parts = [HEADER, probe, below, first, above, probe, below, second, above, probe, below]
    out: list[str] = []
    lines: list[int] = []
    line = 0
    for n, part in enumerate(parts):
        if part is above or (part is probe and parts[n - 1] is HEADER):
            # Each probe starts on a line number divisible by 64 (the prompt's window moves
            # in steps of 16 lines, counted from the top), with the same text above it.
            pad = -(line + (part.count("\n") if part is above else 0)) % 64
            out.append("\n" * pad)
            line += pad
        if part is probe:
            lines.append(line + CURSOR_LINE)
        out.append(part)
        line += part.count("\n")
    return "".join(out), lines


def rss_mib(pid: int) -> float:
    return rss_bytes(pid) / 2**20


def timed_round_trip(client: RawClient) -> None:
    """Wait until the server has handled everything sent before (one pipe, in order)."""
    client.command("codellama.status", timeout=600)


SPOTS = ("start", "middle", "end", "after_edit")


def complete(client: RawClient, uri: str, line: int, repeat: int) -> dict[str, Any]:
    times, prompts = [], []
    for _ in range(repeat):
        before = client.command("codellama.stats")["prompt_tokens"]
        started = time.perf_counter()
        client.inline(uri, line, 4, timeout=600)
        times.append((time.perf_counter() - started) * 1000)
        prompts.append(client.command("codellama.stats")["prompt_tokens"] - before)
    return {"times_ms": times, "prompt_tokens": prompts}


def run_size(client: RawClient, name: str, size: int, repeat: int) -> dict[str, Any]:
    text, (start, middle, end) = build_document(size)
    uri = f"file:///big/{name}.py"
    # Settle: what earlier sizes left is collected before the "before" figure.
    time.sleep(1.0)
    rss_before = rss_mib(client.pid)
    started = time.perf_counter()
    client.open(uri, text)
    timed_round_trip(client)
    row: dict[str, Any] = {"chars": len(text), "lines": text.count("\n")}
    row["open_ms"] = [(time.perf_counter() - started) * 1000]
    row["start"] = complete(client, uri, start, repeat)
    row["middle"] = complete(client, uri, middle, repeat)
    row["end"] = complete(client, uri, end, repeat)
    # Type a new line above the cursor in the middle probe; the cursor moves down one line.
    started = time.perf_counter()
    at = {"line": middle, "character": 0}
    new_line = "    best = max(winners) if winners else None\n"
    client.change(uri, 2, [{"range": {"start": at, "end": at}, "text": new_line}])
    timed_round_trip(client)
    row["edit_ms"] = [(time.perf_counter() - started) * 1000]
    row["after_edit"] = complete(client, uri, middle + 1, repeat)
    client.close_document(uri)
    timed_round_trip(client)
    time.sleep(1.0)
    row["rss_mib"] = [(rss_before, rss_mib(client.pid))]
    return row


def merged(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The rounds of one size together."""
    out = dict(rows[0])
    for key in ("open_ms", "edit_ms", "rss_mib"):
        out[key] = [value for row in rows for value in row[key]]
    for spot in SPOTS:
        out[spot] = {
            "times_ms": [t for row in rows for t in row[spot]["times_ms"]],
            "prompt_tokens": sorted({n for row in rows for n in row[spot]["prompt_tokens"]}),
        }
    return out


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20K,1M,10M,20M", help=f"of {', '.join(SIZES)}")
    parser.add_argument("--repeat", type=int, default=5, help="requests per position")
    parser.add_argument("--rounds", type=int, default=2, help="times every size is run, in turn")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--server", help="another command to run the server (a profiler)")
    args = parser.parse_args()
    command = args.server.split() if args.server else None
    client = RawClient(command=command, env={"CODELLAMA_LSP_DEBUG_COMMANDS": "1"})
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in args.sizes.split(",")}
    try:
        client.initialize(OPTIONS)
        client.wait_state("ready", timeout=300)
        # Warm up: the first requests load lazily imported code and fill the tokenizer's caches.
        small, lines = build_document(SIZES["20K"])
        client.open("file:///big/warmup.py", small)
        complete(client, "file:///big/warmup.py", lines[1], 3)
        client.close_document("file:///big/warmup.py")
        for _ in range(args.rounds):
            for name in runs:
                runs[name].append(run_size(client, name, SIZES[name], args.repeat))
                print(f"{name} done", file=sys.stderr)
    finally:
        client.close(timeout=60)
    rows = {name: merged(found) for name, found in runs.items()}
    base = rows.get("20K")
    print(
        "| document | lines | open (ms) | start | middle | end | edit (ms) | after edit | "
        "prompt tokens | vs 20K: median of the 4 (max) | RSS before open → after close (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, row in rows.items():
        ratio = ""
        if base is not None:
            ratios = [median(row[s]["times_ms"]) / median(base[s]["times_ms"]) for s in SPOTS]
            ratio = f"{statistics.median(ratios):.2f}× ({max(ratios):.2f}×)"
        prompts = "/".join(",".join(map(str, row[s]["prompt_tokens"])) for s in SPOTS)
        rss = ", ".join(f"{a:.1f} → {b:.1f}" for a, b in row["rss_mib"])
        print(
            f"| {name} ({row['chars'] / 1e6:.2f} M chars) | {row['lines']:,} | "
            f"{median(row['open_ms'])} | "
            + " | ".join(f"{median(row[s]['times_ms'])} ms" for s in SPOTS[:3])
            + f" | {median(row['edit_ms'])} | {median(row['after_edit']['times_ms'])} ms | "
            f"{prompts} | {ratio} | {rss} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
