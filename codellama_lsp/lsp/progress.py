"""LSP work-done progress (``$/progress``) for long tasks: model loading, indexing."""

from __future__ import annotations

import asyncio
import uuid

from lsprotocol import types
from pygls.lsp.server import LanguageServer


class WorkProgress:
    """Progress bars in the editor, when the client shows them; else nothing happens."""

    def __init__(self, server: LanguageServer) -> None:
        self._server = server

    async def begin(self, title: str) -> str | None:
        """A new progress bar's token; None when the client has none (or does not answer)."""
        caps = self._server.client_capabilities.window
        if not (caps and caps.work_done_progress):
            return None
        token = f"codellama-{uuid.uuid4().hex[:8]}"
        progress = self._server.work_done_progress
        try:
            await asyncio.wait_for(progress.create_async(token), 5)
        except Exception:
            return None
        progress.begin(
            token, types.WorkDoneProgressBegin(title=title, percentage=0, cancellable=False)
        )
        return token

    def report(self, token: str | None, message: str, percent: int) -> None:
        if token is not None:
            self._server.work_done_progress.report(
                token, types.WorkDoneProgressReport(message=message, percentage=percent)
            )

    def end(self, token: str | None, message: str) -> None:
        if token is not None:
            self._server.work_done_progress.end(token, types.WorkDoneProgressEnd(message=message))
