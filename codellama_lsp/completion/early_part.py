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

from codellama_lsp.completion.cleanup import statement_ends
from codellama_lsp.cursor import Cursor


def answers_early(mode: str, cursor: Cursor, model_is_slow: bool) -> bool:
    """``early_first_line``: ``always``, ``never``, or (``auto``) for a model slower than a pause
    in the user's typing; never for a single-line completion."""
    if mode == "never" or cursor.single_line:
        return False
    return mode == "always" or model_is_slow


def early_part(raw: str, cursor: Cursor) -> str | None:
    """The prefix of the model's ``raw`` text to judge before the generation ends; None while
    it is not complete yet, and always for a single-line completion (it ends with its line).

    Complete means a statement ends with it (brackets closed: ``x = f(a,`` waits for its
    ``b)``), since a suggestion that ends at its token budget is cut to its last finished
    statement: an early part that is not one could be taken back by the whole block's rules.
    """
    if cursor.single_line or cursor.closers_after:
        return None
    complete = raw.split("\n")[:-1]  # the lines a newline has ended
    if not complete:
        return None
    ends = statement_ends(cursor.line_prefix + "\n".join(complete))
    header_seen = False
    for i, line in enumerate(complete):
        if not line.strip() or not ends[i]:
            continue
        whole = cursor.line_prefix + line if i == 0 else line
        if header_seen or not whole.rstrip().endswith(":"):
            return "\n".join(complete[: i + 1])
        header_seen = True  # a block header: its body's first statement too
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
