"""Where a generation stops: the stop sequences, checked by every engine after each token."""

from __future__ import annotations

from collections.abc import Iterable


def text_stop_index(text: str, stop_sequences: Iterable[str]) -> int | None:
    """Where the first stop sequence starts in ``text``, if any."""
    positions = [i for s in stop_sequences if s and (i := text.find(s)) >= 0]
    return min(positions) if positions else None
