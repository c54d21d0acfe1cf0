"""Pick the engine the settings ask for.

``auto`` uses a model server already running at ``server_url`` (one loaded model for every
editor) when its ``/health`` answers within a fraction of a second for the same model, and
otherwise loads the model in this process.
"""

from __future__ import annotations

import logging

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import Engine

log = logging.getLogger(__name__)


def choose_backend(settings: Settings) -> str:
    """``local`` or ``http``; for ``auto`` this probes ``server_url`` (≤ 0.3 s)."""
    if settings.backend != "auto":
        return settings.backend
    from codellama_lsp.engines.http import probe

    found = probe(settings)
    log.info(
        "backend auto: %s",
        f"using the model server at {settings.server_url}"
        if found
        else f"no model server for {settings.model} at {settings.server_url}; loading in-process",
    )
    return "http" if found else "local"


def create_engine(settings: Settings) -> Engine:
    if choose_backend(settings) == "http":
        from codellama_lsp.engines.http import HttpEngine

        return HttpEngine(settings)
    from codellama_lsp.engines.local import LocalEngine

    return LocalEngine(settings)
