"""Context sources: the small interface every kind of prompt context implements.

A source (open documents, the workspace index, recent edits, …) turns a :class:`Snapshot`
and the cursor into comment lines for the top of the prompt. The snapshot is taken on the
event loop, where the documents are edited; the text is built on a worker thread from the
snapshot alone, so a source never reads live server state from another thread.

Adding a source is adding a file with a class that has ``setting``, ``share``,
``fingerprint`` and ``prepare``, and listing it where the server builds its
:class:`ContextSources`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from codellama_lsp.config import Settings
from codellama_lsp.cursor import Cursor

Builder = Callable[[Cursor, int], str]
"""Runs on a worker thread: (cursor, token budget) → context text."""


@dataclass(frozen=True)
class OpenDocument:
    uri: str
    version: int | None
    source: str


@dataclass(frozen=True)
class Snapshot:
    """What a source may read about the editor: immutable, taken on the event loop."""

    uri: str
    others: tuple[OpenDocument, ...]
    """The other open Python documents, by URI."""
    root_uri: str | None


class ContextSource(Protocol):
    setting: str
    """The boolean :class:`Settings` field that turns this source on."""
    share: float
    """Its share of the context budget; 1 = whatever the others leave."""

    def fingerprint(self, snapshot: Snapshot) -> Hashable:
        """Changes whenever the text this source would build may change (a cache key part)."""
        ...

    def prepare(self, snapshot: Snapshot) -> Builder:
        """On the event loop: anything that must read live state; returns the text builder."""
        ...


def take_snapshot(uri: str, documents: Mapping[str, Any], root_uri: str | None) -> Snapshot:
    others = tuple(
        OpenDocument(u, d.version, d.source)
        for u, d in sorted(documents.items())
        if u != uri and u.endswith((".py", ".pyi"))
    )
    return Snapshot(uri, others, root_uri)


class ContextSources:
    """All enabled sources as one ``ContextProvider`` for the completer.

    Sources with a share under 1 get that share first; a source with share 1 then takes
    what they left, and what it leaves goes back to them. Texts are joined in list order:
    the most stable first, so that a change in a later one keeps the KV cache of the start.
    """

    def __init__(
        self,
        snapshot: Callable[[str], Snapshot],
        settings: Callable[[], Settings],
        sources: Sequence[ContextSource],
    ) -> None:
        self._snapshot = snapshot
        self._settings = settings
        self.sources = list(sources)

    def _enabled(self) -> list[ContextSource]:
        settings = self._settings()
        return [s for s in self.sources if getattr(settings, s.setting)]

    def fingerprint(self, uri: str) -> Hashable:
        snapshot = self._snapshot(uri)
        return tuple(source.fingerprint(snapshot) for source in self._enabled())

    def prepare(self, uri: str) -> Builder:
        snapshot = self._snapshot(uri)
        parts = [(source.share, source.prepare(snapshot)) for source in self._enabled()]

        def build(cursor: Cursor, budget: int) -> str:
            texts = [""] * len(parts)
            left = budget
            fixed = [i for i, (share, _) in enumerate(parts) if share < 1]
            rest = [i for i, (share, _) in enumerate(parts) if share >= 1]
            for i in fixed + rest:
                share, builder = parts[i]
                allowed = min(left, int(budget * share))
                texts[i] = builder(cursor, allowed) if allowed > 0 else ""
                left -= estimate_tokens(texts[i])
            # What the others left (no workspace, nothing found) goes back to the fixed ones.
            for i in fixed:
                if left <= 0:
                    break
                used = estimate_tokens(texts[i])
                texts[i] = parts[i][1](cursor, used + left)
                left -= estimate_tokens(texts[i]) - used
            return "".join(texts)

        return build

    def context(self, uri: str, cursor: Cursor, budget: int) -> str:
        return self.prepare(uri)(cursor, budget)


CHARS_PER_TOKEN = 3
"""A cautious estimate for code; build_prompt measures the real cost."""


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)
