"""What several tests (and the benchmarks) share: one place for each helper.

- ``documents``: the sample source the tests complete, ``end_of``, ``wait_until``.
- ``lsp_session``: the real server over stdio with a real LSP client (pytest-lsp).
- ``raw_client``: the real server over stdio with a bare JSON-RPC client (broken messages too).
- ``model_servers``: ``codellama-lsp serve`` and the scripted model server as processes.
- ``scripted_model_server``: that scripted server itself (a script, run as a process).
- ``engines``: a loaded ``LocalEngine`` in the test process.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository (the servers run there, as a user's editor would start them anywhere)."""
CLI = [sys.executable, "-m", "codellama_lsp.cli"]
"""The ``codellama-lsp`` command of the Python that runs the tests."""
GREEDY = {"model": "demo", "temperature": 0, "debounce_ms": 0}
"""Settings for answers that repeat: the demo model, greedy, no debounce."""
DEMO = {**GREEDY, "max_new_tokens": 16}
"""``GREEDY`` with short completions: the raw client's default."""
