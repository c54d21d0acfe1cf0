"""Keeps a session's :class:`WorkspaceIndex` fresh: the background build, file events.

The build runs on its own thread (never the model's worker), reports ``$/progress``, and
starts over when the roots, the ``.gitignore`` files or the settings change. Saved and
watched files are re-read in batches off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from lsprotocol import types

from codellama_lsp.context.workspace_index import WorkspaceIndex

log = logging.getLogger(__name__)

WATCHERS = ("**/*.py", "**/*.pyi", "**/.gitignore")


def uri_to_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def workspace_roots(workspace: Any) -> list[Path]:
    """The workspace folders, else the root URI; only folders that exist."""
    uris = [folder.uri for folder in getattr(workspace, "folders", {}).values()]
    if not uris and getattr(workspace, "root_uri", None):
        uris = [workspace.root_uri]
    roots: list[Path] = []
    for uri in uris:
        path = uri_to_path(uri)
        if path is not None and path.is_dir() and path.resolve() not in roots:
            roots.append(path.resolve())
    return roots


def watch_registration() -> types.RegistrationParams:
    return types.RegistrationParams(
        registrations=[
            types.Registration(
                id="codellama-watch-python",
                method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=types.DidChangeWatchedFilesRegistrationOptions(
                    watchers=[types.FileSystemWatcher(glob_pattern=g) for g in WATCHERS]
                ),
            )
        ]
    )


class Progress(Protocol):
    """Progress bars in the editor (:class:`codellama_lsp.lsp.progress.WorkProgress`)."""

    async def begin(self, title: str) -> str | None: ...

    def report(self, token: str | None, message: str, percent: int) -> None: ...

    def end(self, token: str | None, message: str) -> None: ...


class IndexKeeper:
    def __init__(self, index: WorkspaceIndex, progress: Progress) -> None:
        self.index = index
        self.progress = progress
        self._cancel = threading.Event()
        self._task: asyncio.Task[None] | None = None
        self.last_build: dict[str, Any] = {}
        self.watching = False
        """Whether the client was asked for ``workspace/didChangeWatchedFiles``."""

    def start(self, roots: list[Path], max_files: int) -> asyncio.Task[None]:
        """(Re)build the index of ``roots`` in the background."""
        self._cancel.set()
        self._cancel = threading.Event()
        self.index.max_files = max_files
        self._task = asyncio.ensure_future(self._build(roots, self._cancel))
        return self._task

    def stop(self) -> None:
        """Stop building and forget everything (the setting was turned off)."""
        self._cancel.set()
        self.index.build([], cancel=self._cancel)

    async def _build(self, roots: list[Path], cancel: threading.Event) -> None:
        progress = self.progress
        token = await progress.begin("codellama: indexing the workspace") if roots else None
        loop = asyncio.get_running_loop()

        def on_progress(done: int, total: int) -> None:
            percent = done * 100 // max(1, total)
            loop.call_soon_threadsafe(progress.report, token, f"{done}/{total} files", percent)

        try:
            result = await asyncio.to_thread(self.index.build, roots, on_progress, cancel)
        except Exception:
            log.exception("indexing the workspace failed")
            progress.end(token, "Failed")
            return
        self.last_build = {
            "files": result.files,
            "symbols": result.symbols,
            "skipped": result.skipped,
            "truncated": result.truncated,
            "seconds": round(result.seconds, 3),
        }
        log.info("workspace index: %s", self.last_build)
        progress.end(token, f"{result.files} files indexed")

    async def files_changed(self, uris: Iterable[str]) -> None:
        """Saved, created, changed or deleted files: re-read them (or rebuild for a
        ``.gitignore``)."""
        paths = [p for p in (uri_to_path(u) for u in uris) if p is not None]
        if not paths or not self.index.roots:
            return
        if any(p.name == ".gitignore" for p in paths):
            self.start(list(self.index.roots), self.index.max_files)
            return
        await asyncio.to_thread(lambda: [self.index.update(p) for p in paths])
