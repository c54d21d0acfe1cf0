"""What several benchmarks share, in one place: the repository's root, what ``/proc`` says of
a process, the soak's source files and its memory curve.

Run the benchmarks as modules from the repository's root (``python -m benchmarks.soak``): the
repository is then on ``sys.path`` and ``benchmarks``, ``tests.support`` and ``codellama_lsp``
import as packages.
"""

from __future__ import annotations

import inspect
import os
import re
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.lsp_session import Session

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- /proc
def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else 0.0


def session_pid(session: Session) -> int:
    server = session.client._server
    assert server is not None
    return int(server.pid)


def os_threads(pid: int) -> int:
    """Every thread of the process, native ones (torch, tokenizers) included."""
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


# ------------------------------------------------------------------- the soak's files
SOURCES = ("textwrap", "argparse", "json.decoder", "string", "fnmatch", "shlex")


def source_files() -> list[str]:
    import importlib

    return [inspect.getsource(importlib.import_module(name))[:6000] for name in SOURCES]


# ------------------------------------------------------------------ the memory curve
def slope_per_1000(points: list[tuple[int, float]]) -> float | None:
    """Least-squares slope of ``(requests, value)`` points, per 1,000 requests."""
    if len(points) < 3:
        return None
    x, y = zip(*points, strict=True)
    return round(statistics.linear_regression(x, y).slope * 1000, 3)


def memory_curve(samples: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Slopes (MiB per 1,000 requests) and growth of the samples taken after warm-up."""
    after = [p for p in samples if p["requests"] >= warmup]
    curve: dict[str, Any] = {}
    for name in ("rss_mib", "heap_in_use_mib", "heap_free_mib"):
        points = [(p["requests"], p[name]) for p in after if p[name] is not None]
        curve[f"{name}_slope_per_1000"] = slope_per_1000(points)
    if after:
        first, last = after[0], after[-1]
        curve["rss_growth"] = round(last["rss_mib"] / first["rss_mib"] - 1, 4)
        for name in ("threads", "os_threads", "asyncio_tasks"):
            if name in first:
                curve[name] = {"after_warmup": first[name], "final": last[name]}
    return curve
