"""A ``LocalEngine`` loaded in the test process (no server), for engine-level tests."""

from __future__ import annotations

from codellama_lsp.config import Settings
from codellama_lsp.engines.local import LocalEngine


def load_engine(model: str = "demo", **settings: object) -> LocalEngine:
    """``model`` loaded with greedy decoding and ``settings`` over the defaults."""
    engine = LocalEngine(Settings().merged({"model": model, "temperature": 0, **settings}))
    engine.load(lambda _message, _percent: None)
    return engine
