"""A request's prompt as token ids: token-id lists, plain text, and Code Llama infilling text."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from codellama_lsp.model_server.errors import ApiError

if TYPE_CHECKING:
    from codellama_lsp.engines.local import LocalEngine

FIM_TEXT = re.compile(r"\A<PRE> (.*) <SUF>(.*) <MID>\Z", re.DOTALL)
"""Code Llama's infilling prompt written as text, for clients that cannot send token ids."""


def _one_prompt(prompt: Any) -> Any:
    """OpenAI allows a batch of prompts; a batch of one is that prompt."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str | list):
        return prompt[0]
    return prompt


def prompt_ids(engine: LocalEngine, prompt: Any, suffix: Any) -> list[int]:
    """Token ids from a text prompt (optionally FIM via ``suffix`` or ``<PRE>…<MID>`` text)."""
    tokens = engine.tokens
    prompt = _one_prompt(prompt)
    if isinstance(prompt, list):
        if not prompt or not all(isinstance(i, int) and not isinstance(i, bool) for i in prompt):
            raise ApiError(400, "'prompt' must be a string or a list of token ids (one prompt)")
        bad = [i for i in prompt if not 0 <= i < tokens.vocab_size]
        if bad:
            raise ApiError(400, f"token id {bad[0]} is outside the vocabulary")
        return list(prompt)
    if not isinstance(prompt, str):
        raise ApiError(400, "'prompt' must be a string or a list of token ids (one prompt)")
    if suffix is not None and not isinstance(suffix, str):
        raise ApiError(400, "'suffix' must be a string")
    fim = FIM_TEXT.match(prompt) if suffix is None else None
    if suffix is not None or fim is not None:
        if tokens.infill is None:
            raise ApiError(400, "this model cannot infill ('suffix' / <PRE> prompts)")
        prefix, after = (prompt, str(suffix)) if fim is None else fim.groups()
        return tokens.fim_ids(prefix, after)
    bos = [tokens.bos_id] if tokens.bos_id is not None else []
    return bos + tokens.encode(prompt)


def fewest_tokens(prompt: Any, suffix: str | None, longest_piece: int) -> int:
    """A cheap lower bound on the prompt's tokens: characters over the longest piece.

    Checked before tokenizing: a megabyte of text takes seconds to tokenize.
    """
    prompt = _one_prompt(prompt)
    if isinstance(prompt, list):
        return len(prompt)  # token ids (or a batch, refused when tokenized)
    chars = len(prompt or "") + len(suffix or "")
    return chars // longest_piece


def longest_piece(engine: LocalEngine) -> int:
    """The vocabulary's longest piece in characters (no token covers more text)."""
    vocab = engine.tokens.tokenizer.get_vocab()
    return max(1, *(len(piece) for piece in vocab))
