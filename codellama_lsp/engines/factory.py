"""Pick the engine the settings ask for.

``auto`` uses a model server already running at ``server_url`` (one loaded model for every
editor) when its ``/health`` answers within a fraction of a second for the same model, and
otherwise loads the model in this process.
"""

from __future__ import annotations

import logging

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import Engine, EngineLoadError

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


LOCAL_EXTRA = "pip install 'codellama-lsp[local]'"


def create_engine(settings: Settings) -> Engine:
    """The engine for ``settings``; an install without torch gets a clear message for local."""
    if choose_backend(settings) == "http":
        from codellama_lsp.engines.http import HttpEngine

        return HttpEngine(settings)
    try:
        from codellama_lsp.engines.local import LocalEngine
    except ImportError as exc:
        raise EngineLoadError(
            f"Running {settings.model} in this process needs torch and transformers "
            f"({exc.name or exc} is not installed): {LOCAL_EXTRA}; or point backend = http at "
            f"a model server (`codellama-lsp serve` on a GPU machine, vLLM, TGI)"
        ) from exc
    return LocalEngine(settings)
