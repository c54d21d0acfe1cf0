"""Answers without the model: a completion cache and typing-through.

The cache key is everything a completion depends on: the model and generation settings, the
text before and after the cursor, and the versions of the other documents that feed the
prompt. Hashing the text is cheaper than tokenizing it, so a repeated request is answered
before any prompt is built.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from cachetools import TTLCache

from codellama_lsp.cursor import Cursor


@dataclass(frozen=True)
class Shown:
    """A completion we showed at a place: the text around the cursor and what we offered."""

    before: str
    after: str
    completion: str


def completion_key(engine: str, settings: Hashable, cursor: Cursor, context: Hashable) -> Hashable:
    """Equal keys give the same completion: model, settings (those that change a completion),
    the text around the cursor, the other documents' context and the editor's indentation."""
    before = cursor.prefix
    return (
        engine,
        settings,
        hash(before),
        hash(cursor.suffix),
        len(before),
        context,
        cursor.editor_indent,
    )


class CompletionCache:
    """LRU + TTL cache of cleaned completions (cachetools)."""

    def __init__(self, size: int, ttl_s: float) -> None:
        self._cache: TTLCache[Hashable, str] = TTLCache(maxsize=max(1, size), ttl=ttl_s)
        self.enabled = size > 0

    def get(self, key: Hashable) -> str | None:
        return self._cache.get(key) if self.enabled else None

    def put(self, key: Hashable, completion: str) -> None:
        if self.enabled:
            self._cache[key] = completion

    def clear(self) -> None:
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)


class TypingThrough:
    """Serve the rest of a shown completion while the user types its first characters.

    Remembers the last few completions shown per document; when the new text before the
    cursor is an old one plus characters that start the old completion (and the text after
    the cursor is unchanged), the answer is the remainder, with no model call. Anything else
    forgets the document's entries that no longer match.
    """

    def __init__(self, per_document: int = 4) -> None:
        self.per_document = per_document
        self.enabled = True
        self._shown: dict[str, list[Shown]] = {}
        self._last: dict[str, Shown] = {}
        self._grown: dict[str, Shown] = {}

    def remember(self, uri: str, before: str, after: str, completion: str) -> None:
        if not completion or not self.enabled:
            return
        self._last[uri] = Shown(before, after, completion)
        entries = [e for e in self._shown.get(uri, []) if e.before != before]
        entries.append(Shown(before, after, completion))
        self._shown[uri] = entries[-self.per_document :]

    def lookup(self, uri: str, before: str, after: str) -> str | None:
        entries = self._shown.get(uri) if self.enabled else None
        if not entries:
            return None
        alive: list[Shown] = []
        found: str | None = None
        for entry in entries:
            if entry.after != after or not before.startswith(entry.before):
                continue
            typed = before[len(entry.before) :]
            if not entry.completion.startswith(typed):
                continue
            alive.append(entry)
            rest = entry.completion[len(typed) :]
            if rest and found is None and typed:
                found = rest
        self._shown[uri] = alive
        return found

    def grew(self, uri: str, before: str, after: str, completion: str) -> None:
        """A suggestion answered at its first line is whole (the editor is told, and asks
        again at the same place)."""
        if completion and self.enabled:
            self._grown[uri] = Shown(before, after, completion)

    def grown_at(self, uri: str, before: str, after: str) -> str | None:
        """The whole block of the suggestion that grew at exactly this place, for the
        editor's asking again: its first line is on screen, so it is served even where the
        cache key moved meanwhile (a save re-indexed the workspace, another file changed).
        Forgotten once the text around the cursor is another."""
        entry = self._grown.get(uri)
        if entry is None or (entry.before, entry.after) != (before, after):
            self._grown.pop(uri, None)
            return None
        return entry.completion

    def draft(self, uri: str, before: str, max_distance: int = 256) -> str:
        """The last completion shown in ``uri`` as a speculative draft for a request at ``before``.

        When the user typed on from where it was shown (or deleted back a little), the rest of
        it is the likeliest continuation: after typing its first characters, exactly its rest;
        after typing something else, the whole of it (the engine finds where the generation
        rejoins it). '' when the cursor moved elsewhere. Kept even after :meth:`lookup` stops
        serving it, because a draft only has to be likely, not right.
        """
        shown = self._last.get(uri)
        if shown is None:
            return ""
        if before.startswith(shown.before):
            typed = before[len(shown.before) :]
            if len(typed) > max_distance:
                return ""
            if shown.completion.startswith(typed):
                return shown.completion[len(typed) :]
            return shown.completion
        if shown.before.startswith(before) and len(shown.before) - len(before) <= max_distance:
            return shown.before[len(before) :] + shown.completion
        return ""

    def forget(self, uri: str) -> None:
        self._shown.pop(uri, None)
        self._last.pop(uri, None)
        self._grown.pop(uri, None)

    def __len__(self) -> int:
        return sum(len(v) for v in self._shown.values())
