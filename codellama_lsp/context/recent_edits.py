"""Recently edited ranges of the other open documents, for prompt context.

What the user just changed elsewhere (a new parameter, a renamed helper) is often what the
code at the cursor is about to use. No ``didChange`` hook is needed: each time a prompt is
prepared, the other documents whose version moved are compared with the copy seen last
time, and the changed lines (common beginning and end cut off) are remembered. At most
``MAX_EDITS`` ranges are kept, and one copy of each of at most ``MAX_DOCUMENTS`` documents.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from codellama_lsp.context.open_documents import as_comments, readable_part, relative_path
from codellama_lsp.context.sources import CHARS_PER_TOKEN, Builder, Snapshot
from codellama_lsp.cursor import Cursor, lsp_lines

MAX_EDITS = 8
MAX_DOCUMENTS = 32
SHOWN = 3
AROUND = 2
MAX_LINES = 12


@dataclass(frozen=True)
class Edit:
    uri: str
    start: int
    end: int
    """Lines ``start`` to ``end`` (exclusive) of the new text."""
    lines: tuple[str, ...]
    """Those lines with ``AROUND`` lines either side, at most ``MAX_LINES``."""


def changed_lines(old: list[str], new: list[str]) -> tuple[int, int] | None:
    """The lines of ``new`` that differ from ``old`` (common head and tail removed)."""
    if old == new:
        return None
    head = 0
    limit = min(len(old), len(new))
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    return head, max(head + 1, len(new) - tail)


class RecentEdits:
    """The ``context_other_documents`` source of recent edits in other files."""

    setting = "context_other_documents"
    share = 0.15

    def __init__(self) -> None:
        self._seen: OrderedDict[str, tuple[int | None, str]] = OrderedDict()
        self.edits: tuple[Edit, ...] = ()
        """Newest last; replaced, never mutated (worker threads read it)."""

    def observe(self, snapshot: Snapshot) -> None:
        """On the event loop: remember what changed in the other documents since last time."""
        edits = list(self.edits)
        for doc in snapshot.others:
            previous = self._seen.get(doc.uri)
            if previous is not None and previous[0] == doc.version:
                self._seen.move_to_end(doc.uri)
                continue
            # Of a big document, its first part only (as the open documents' source reads).
            text = readable_part(doc.source)
            self._seen[doc.uri] = (doc.version, text)
            self._seen.move_to_end(doc.uri)
            if previous is None or previous[1] == text:
                continue
            new_lines = lsp_lines(text)
            span = changed_lines(lsp_lines(previous[1]), new_lines)
            if span is None:
                continue
            start, end = span
            shown = new_lines[max(0, start - AROUND) : end + AROUND][:MAX_LINES]
            edit = Edit(doc.uri, start, end, tuple(shown))
            # A later edit of the same place replaces the earlier one.
            edits = [e for e in edits if e.uri != doc.uri or e.end < start or e.start > end]
            edits.append(edit)
        # Closed documents are forgotten (their text would stay in memory).
        open_now = {doc.uri for doc in snapshot.others} | {snapshot.uri}
        for uri in [uri for uri in self._seen if uri not in open_now]:
            del self._seen[uri]
        while len(self._seen) > MAX_DOCUMENTS:
            self._seen.popitem(last=False)
        self.edits = tuple(edits[-MAX_EDITS:])

    def fingerprint(self, snapshot: Snapshot) -> Hashable:
        self.observe(snapshot)
        return tuple((e.uri, e.start, e.end) for e in self.edits)

    def prepare(self, snapshot: Snapshot) -> Builder:
        self.observe(snapshot)
        edits = [e for e in self.edits if e.uri != snapshot.uri][-SHOWN:]
        root = snapshot.root_uri

        def build(cursor: Cursor, budget: int) -> str:
            chars = budget * CHARS_PER_TOKEN
            parts: list[str] = []
            used = 0
            for edit in reversed(edits):  # newest first, while the budget lasts
                text = as_comments(f"{relative_path(edit.uri, root)} (edited)", edit.lines)
                if used + len(text) > chars:
                    break
                parts.append(text)
                used += len(text)
            return "".join(reversed(parts))

        return build
