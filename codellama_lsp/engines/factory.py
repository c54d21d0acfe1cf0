"""Pick the engine the settings ask for."""

from __future__ import annotations

from codellama_lsp.config import Settings
from codellama_lsp.engines.base import Engine


def create_engine(settings: Settings) -> Engine:
    from codellama_lsp.engines.local import LocalEngine

    return LocalEngine(settings)
