"""Where models live: the bundled demo model and the cache of built ones (no imports of the
model code, so that :mod:`codellama_lsp.engines.model_names` and
:mod:`codellama_lsp.demo.model`, which builds models, both read it without importing each
other)."""

from __future__ import annotations

import os
from pathlib import Path


def demo_model_dir() -> Path:
    """The committed demo model folder inside the package."""
    return Path(__file__).resolve().parent.parent / "demo" / "assets" / "demo-model"


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "codellama-lsp"


def default_heads(hidden: int) -> int:
    for head_dim in (64, 32, 16):
        if hidden % head_dim == 0:
            return max(1, hidden // head_dim)
    return 1
