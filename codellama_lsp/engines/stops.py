"""Where a generation stops: the checks every engine runs on the text so far, after each token.

Stated once for the local engine, the HTTP engine and the benchmarks' oracle, so that all of
them end a generation at the same place for the same text.
"""

from __future__ import annotations

from collections.abc import Iterable

from codellama_lsp.engines.base import GenerationRequest


def text_stop_index(text: str, stop_sequences: Iterable[str]) -> int | None:
    """Where the first stop sequence starts in ``text``, if any."""
    positions = [i for s in stop_sequences if s and (i := text.find(s)) >= 0]
    return min(positions) if positions else None


def stopped_text(text: str, request: GenerationRequest) -> str | None:
    """The text to keep if the generation ends with ``text`` made so far, else None (go on).

    In this order: a stop sequence ends it at the sequence (``on_text`` never sees that text);
    else ``request.on_text`` is told the text, then ``request.should_stop`` may end it with the
    whole text (the caller's clean-up cuts where, say, the block ended).
    """
    cut = text_stop_index(text, request.stop_sequences)
    if cut is not None:
        return text[:cut]
    if request.on_text is not None:
        request.on_text(text)
    if request.should_stop is not None and request.should_stop(text):
        return text
    return None
