"""First line first: the part of a multi-line suggestion worth showing before the rest is written.

A big model writes a five-line block in seconds and its first line in a fraction of that. The
early part is the model's text up to the end of its first line that is not blank; when that
line opens a block (ends with ``:``), up to the end of the first line of its body too, since a
header alone says little and the clean-up judges a block by its body. The same clean-up and
parse check as for a whole block decide whether it is shown; the whole block, when done, then
replaces it (the ghost text grows) where it starts with what was shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from codellama_lsp.cursor import Cursor


def answers_early(mode: str, cursor: Cursor, model_is_slow: bool) -> bool:
    """``early_first_line``: ``always``, ``never``, or (``auto``) for a model slower than a pause
    in the user's typing; never for a single-line completion."""
    if mode == "never" or cursor.single_line:
        return False
    return mode == "always" or model_is_slow


def early_part(raw: str, cursor: Cursor) -> str | None:
    """The prefix of the model's ``raw`` text to judge before the generation ends; None while
    it is not complete yet, and always for a single-line completion (it ends with its line)."""
    if cursor.single_line or cursor.closers_after:
        return None
    lines = raw.split("\n")
    wanted: int | None = None  # index of the last line the early part needs
    for i, line in enumerate(lines[:-1]):  # lines a newline has ended
        if not line.strip():
            continue
        if wanted is not None:
            return "\n".join(lines[: i + 1])  # the first line of the body
        whole = cursor.line_prefix + line if i == 0 else line
        if not whole.rstrip().endswith(":"):
            return "\n".join(lines[: i + 1])
        wanted = i
    return None


class EarlyPart:
    """Fed the text so far on the model worker; hands the early part to the event loop once."""

    def __init__(self, cursor: Cursor, loop: asyncio.AbstractEventLoop) -> None:
        self.cursor = cursor
        self.found: asyncio.Future[str] = loop.create_future()
        self._loop = loop
        self._sent = False

    def also(self, record: Callable[[str], None]) -> Callable[[str], None]:
        """The engine's ``on_text``: ``record`` (the ticket's), then this watch."""

        def on_text(text: str) -> None:
            record(text)
            self.on_text(text)

        return on_text

    def on_text(self, text: str) -> None:
        if self._sent:
            return
        part = early_part(text, self.cursor)
        if part is not None:
            self._sent = True
            self._loop.call_soon_threadsafe(self._resolve, part)

    def _resolve(self, part: str) -> None:
        if not self.found.done():
            self.found.set_result(part)
