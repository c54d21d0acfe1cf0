"""The model side in the test process (no server): a loaded ``LocalEngine``, and the
transformers tokenizer behind a ``CodeTokens``."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from codellama_lsp.config import Settings
from codellama_lsp.engines.local import LocalEngine
from codellama_lsp.engines.tokenization import CodeTokens


def load_engine(model: str = "demo", **settings: object) -> LocalEngine:
    """``model`` loaded with greedy decoding and ``settings`` over the defaults."""
    engine = LocalEngine(Settings().merged({"model": model, "temperature": 0, **settings}))
    engine.load(lambda _message, _percent: None)
    return engine


def hf_tokenizer(codes: CodeTokens) -> PreTrainedTokenizerBase:
    """The transformers tokenizer of ``codes`` (not the torch-free ``TokenizerFiles``)."""
    assert isinstance(codes.tokenizer, PreTrainedTokenizerBase)
    return codes.tokenizer
