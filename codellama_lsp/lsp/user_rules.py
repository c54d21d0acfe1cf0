"""The user's say over when suggestions appear, for the server: the gate's rules on the open
documents (:mod:`codellama_lsp.completion.gate`) and the snooze (:mod:`.snooze`).

A request they rule out is answered empty at once and counted (``requests_refused``,
``refused_<rule>`` in ``codellama.stats``); edits in such a document start no idle-time
prefill, and an excluded file's text never goes into another file's prompt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pygls.workspace import Workspace

from codellama_lsp.completion.gate import (
    Refusal,
    cursor_refusal,
    document_refusal,
    excluded_file,
)
from codellama_lsp.config import Settings
from codellama_lsp.cursor import Cursor
from codellama_lsp.lsp.documents import open_document
from codellama_lsp.lsp.snooze import Snooze, SnoozeError, minutes_argument
from codellama_lsp.stats import Stats

D = TypeVar("D")


class UserRules:
    def __init__(
        self, settings: Callable[[], Settings], stats: Stats, on_change: Callable[[], None]
    ) -> None:
        self._settings = settings
        self._stats = stats
        self.snooze = Snooze(on_change)

    def document_refusal(self, workspace: Workspace, uri: str) -> Refusal | None:
        """Why nothing may be completed in ``uri`` now (language, files, snooze)."""
        return document_refusal(
            self._settings(), uri, _language(workspace, uri), snoozed=self.snooze.active
        )

    async def refuses(self, workspace: Workspace, uri: str, cursor: Cursor) -> bool:
        """Whether a request at ``cursor`` is ruled out (then it is counted)."""
        reason = self.document_refusal(workspace, uri)
        settings = self._settings()
        if reason is None and not (settings.complete_in_comments and settings.complete_in_strings):
            # Python's tokenizer on up to a few hundred lines: off the event loop.
            language = _language(workspace, uri)
            reason = await asyncio.to_thread(cursor_refusal, settings, uri, language, cursor)
        if reason is None:
            return False
        for counter in ("requests", "requests_refused", f"refused_{reason}"):
            self._stats.add(counter)
        return True

    def context_documents(self, documents: Mapping[str, D]) -> dict[str, D]:
        """The open documents whose text may go into a prompt (not the excluded files)."""
        settings = self._settings()
        return {uri: doc for uri, doc in documents.items() if not excluded_file(settings, uri)}

    def excluded_path(self, path: Path) -> bool:
        """Whether a file on disk is one of ``exclude_files`` (the workspace index skips it)."""
        return excluded_file(self._settings(), path.as_uri())

    def state(self, state: str) -> str:
        """The status's state: ``snoozed`` while a snooze lasts and the model is ready."""
        return "snoozed" if state == "ready" and self.snooze.active else state

    def snooze_for(self, args: Sequence[Any], show: Callable[[str], None]) -> None:
        """``codellama.snooze``'s arguments (see :func:`.snooze.minutes_argument`)."""
        try:
            self.snooze.start(minutes_argument(args))
        except SnoozeError as exc:
            show(str(exc))


def _language(workspace: Workspace, uri: str) -> str | None:
    doc = open_document(workspace, uri)
    return doc.language_id if doc is not None else None


__all__ = ["UserRules"]
