"""What several tests (and the benchmarks) share: one place for each helper.

- here: the command, the usual settings, ``wait_until``.
- ``documents``: the sample source the tests complete, ``end_of``.
- ``lsp_session``: the real server over stdio with a real LSP client (pytest-lsp).
- ``raw_client``: the real server over stdio with a bare JSON-RPC client (broken messages too).
- ``model_servers``: ``codellama-lsp serve`` and the scripted model server as processes.
- ``scripted_model_server``: that scripted server itself (a script, run as a process).
- ``engines``: a loaded ``LocalEngine`` in the test process.
- ``editors``: driving real editors (Neovim, VS Code) and what they type.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
"""The repository root: the working folder of the processes the tests start."""
CLI = [sys.executable, "-m", "codellama_lsp.cli"]
"""The ``codellama-lsp`` command of the Python that runs the tests."""
GREEDY = {"model": "demo", "temperature": 0, "debounce_ms": 0, "early_first_line": "never"}
"""Settings for answers that repeat: the demo model, greedy, no debounce, and the whole block
(with ``auto``, a machine that runs the demo model slower than a pause would get first lines)."""
DEMO = {**GREEDY, "max_new_tokens": 16}
"""``GREEDY`` with short completions: the raw client's default."""


def wait_until(
    check: Callable[[], T | None],
    timeout: float = 30,
    what: str = "condition",
    interval: float = 0.05,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll ``check`` until it returns a true value, and return that. At ``timeout``:
    TimeoutError naming ``what``, with ``describe()`` (the state that was seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{describe()}" if describe else ""
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)
