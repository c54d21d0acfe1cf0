"""Where a long-lived process's memory is (Python objects, the C heap, threads), and a bound.

``codellama.debugMemory`` (language server, debug commands only) and the soak benchmark read
these figures to tell a leak of Python objects (tracemalloc) from native allocations (torch
tensors, tokenizers) and from memory the C allocator holds free but has not given back
(fragmentation): glibc's ``mallinfo2`` counts all three parts of the C heap.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import os
import threading
import tracemalloc
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

MIB = 2**20
HELPER_THREADS = 2
"""asyncio's default executor (``to_thread``: prompt building, tokenizing, index builds). Its
own default grows to CPUs + 4 threads under bursts of requests, each thread with its own
C-heap arena; prompt building takes a lock anyway, so two threads lose nothing."""


def bound_helper_threads(loop: asyncio.AbstractEventLoop) -> None:
    """Give ``loop`` a fixed, named pool of :data:`HELPER_THREADS` for ``to_thread``."""
    loop.set_default_executor(
        ThreadPoolExecutor(HELPER_THREADS, thread_name_prefix="codellama-helper")
    )


def helper_threads(loop: asyncio.AbstractEventLoop) -> int:
    """Threads of ``loop``'s default executor now (whatever pool it is: the soak test bounds
    it by :data:`HELPER_THREADS`)."""
    executor = getattr(loop, "_default_executor", None)
    return len(getattr(executor, "_threads", ()))


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",  # bytes taken from the system with brk/mmap for the heaps (all arenas)
            "ordblks",
            "smblks",
            "hblks",  # blocks served by their own mmap (large allocations)
            "hblkhd",  # bytes in those blocks
            "usmblks",
            "fsmblks",
            "uordblks",  # bytes in use in the heaps
            "fordblks",  # bytes free in the heaps (kept by malloc, maybe fragmented)
            "keepcost",
        )
    ]


@cache
def _libc() -> Any:
    """glibc, or None (musl, macOS: no mallinfo2 / malloc_trim)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


def rss_bytes(pid: int | None = None) -> int:
    with open(f"/proc/{pid or os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def native_heap() -> dict[str, float] | None:
    """The C heap in MiB: in use, free but kept (fragmentation), and large mmap'd blocks."""
    libc = _libc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return {
        "heap_mib": round(info.arena / MIB, 2),
        "in_use_mib": round(info.uordblks / MIB, 2),
        "free_kept_mib": round(info.fordblks / MIB, 2),
        "mmap_blocks": int(info.hblks),
        "mmap_mib": round(info.hblkhd / MIB, 2),
    }


def heap_in_use_bytes() -> int | None:
    """Bytes in use in the C heap (glibc), or None."""
    libc = _libc()
    return None if libc is None else int(libc.mallinfo2().uordblks)


def memory_figures() -> dict[str, Any]:
    """RSS and the C heap, cheap enough for every ``codellama.stats`` call."""
    return {"rss_mib": round(rss_bytes() / MIB, 2), "native": native_heap()}


def malloc_trim() -> bool:
    """Give the heaps' free pages back to the system (a diagnostic: how much was only free)."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


class PythonAllocations:
    """tracemalloc snapshots, each compared with the previous one (the growth between them)."""

    def __init__(self) -> None:
        self._last: tracemalloc.Snapshot | None = None

    def diff(self, limit: int = 15, *, snapshot: bool = True) -> dict[str, Any]:
        """Traced total; with ``snapshot``, the lines that grew most since the last one (slow:
        seconds to minutes in a process that imported torch)."""
        if not tracemalloc.is_tracing():
            return {"tracing": False}
        gc.collect()
        traced, _peak = tracemalloc.get_traced_memory()
        figures: dict[str, Any] = {"tracing": True, "traced_mib": round(traced / MIB, 2)}
        if not snapshot:
            return figures
        current = tracemalloc.take_snapshot()
        if self._last is not None:
            stats = current.compare_to(self._last, "lineno")
            figures["growth"] = [
                {
                    "where": str(stat.traceback[0]),
                    "kib": round(stat.size_diff / 1024, 1),
                    "count": stat.count_diff,
                }
                for stat in stats[:limit]
            ]
        self._last = current
        return figures


def object_counts(limit: int = 15) -> list[tuple[str, int]]:
    """The most numerous object types the garbage collector tracks."""
    counts = Counter(type(obj).__qualname__ for obj in gc.get_objects())
    return counts.most_common(limit)


def newest_of_type(type_name: str, limit: int = 8) -> list[dict[str, Any]]:
    """The newest objects of a type that keeps growing, and what holds them (leak hunts)."""
    gc.collect()
    found = [obj for obj in gc.get_objects() if type(obj).__qualname__ == type_name][-limit:]
    return [
        {
            "object": repr(obj)[:200],
            "held_by": [repr(holder)[:200] for holder in gc.get_referrers(obj)[:3]],
        }
        for obj in found
    ]


def thread_names() -> list[str]:
    return sorted(thread.name for thread in threading.enumerate())


def report(
    python: PythonAllocations, *, trim: bool = False, snapshot: bool = True
) -> dict[str, Any]:
    """Everything above in one dict; with ``trim``, the C heap before and after malloc_trim."""
    figures: dict[str, Any] = {
        "rss_mib": round(rss_bytes() / MIB, 2),
        "native": native_heap(),
        "python": python.diff(snapshot=snapshot),
        "objects": object_counts(),
        "threads": thread_names(),
    }
    if trim:
        malloc_trim()
        figures["rss_after_trim_mib"] = round(rss_bytes() / MIB, 2)
        figures["native_after_trim"] = native_heap()
    return figures
