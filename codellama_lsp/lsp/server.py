"""The language server's state for one editor session: settings, engine, completer, context.

Its LSP methods are in :mod:`codellama_lsp.lsp.handlers`; documents and positions:
:mod:`codellama_lsp.lsp.documents`; completions: :mod:`codellama_lsp.completion.completer` and
:mod:`codellama_lsp.lsp.items`; model loading: :mod:`codellama_lsp.lsp.loading`; the workspace
index: :mod:`codellama_lsp.lsp.index_keeper`. Everything slow happens off the event loop, so
``didChange`` and ``$/cancelRequest`` are always read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from codellama_lsp import __version__
from codellama_lsp.completion.completer import Completer, Completion
from codellama_lsp.completion.latency_health import warning
from codellama_lsp.config import Settings, SettingsError, client_overrides, needs_reload
from codellama_lsp.context.open_documents import OpenDocumentsSource
from codellama_lsp.context.recent_edits import RecentEdits
from codellama_lsp.context.sources import ContextSources, Snapshot, take_snapshot
from codellama_lsp.context.workspace_index import WorkspaceIndex
from codellama_lsp.context.workspace_source import WorkspaceSource
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.base import Engine, EngineLoadError
from codellama_lsp.lsp.acceptance import (
    Acceptance,
)
from codellama_lsp.lsp.documents import (
    client_units,
    open_document,
)
from codellama_lsp.lsp.index_keeper import IndexKeeper, watch_registration, workspace_roots
from codellama_lsp.lsp.loading import load_engine
from codellama_lsp.lsp.notebooks import NOTEBOOK_SYNC, context_uri, notebook_figures
from codellama_lsp.lsp.progress import WorkProgress
from codellama_lsp.lsp.protocol import SYNC_KIND, CodeLlamaProtocol, strict_converter
from codellama_lsp.lsp.transport import serve_stdio, serve_tcp
from codellama_lsp.lsp.user_rules import UserRules
from codellama_lsp.memory import helper_threads, memory_figures

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "codellama/status"
GROWN_NOTIFICATION = "codellama/suggestionGrown"
"""Sent when a suggestion answered at its first line is whole (``early_first_line``)."""
# The Copilot language server's notifications for what the client showed / partly accepted.
DID_SHOW_COMPLETION = "textDocument/didShowCompletion"
DID_PARTIALLY_ACCEPT_COMPLETION = "textDocument/didPartiallyAcceptCompletion"


class CodeLlamaServer(LanguageServer):
    """Holds the settings, the engine and the completer for one editor session."""

    def __init__(self, settings: Settings) -> None:
        # The pool only reads stdin (no handler runs in a thread): two threads, see
        # `start_reader_threads`.
        super().__init__(
            "codellama-lsp",
            __version__,
            protocol_cls=CodeLlamaProtocol,
            converter_factory=strict_converter,
            text_document_sync_kind=SYNC_KIND,
            notebook_document_sync=NOTEBOOK_SYNC,
            max_workers=2,
        )
        self.exit_code = 0
        """The process's exit status: 1 after ``exit`` without ``shutdown`` (LSP)."""
        self.settings = settings
        self.progress_bars = WorkProgress(self)
        self.completer = Completer(settings)
        self.index = WorkspaceIndex(settings.context_workspace_max_files)
        self.indexer = IndexKeeper(self.index, self.progress_bars)
        self.context = ContextSources(
            self.context_snapshot,
            lambda: self.settings,
            [WorkspaceSource(self.index), OpenDocumentsSource(), RecentEdits()],
        )
        self.completer.context_provider = self.context
        self.completer.on_result = self.after_result
        self.completer.on_grown = self.announce_grown
        self.slow_warning_shown = False
        self.acceptance = Acceptance()
        self.rules = UserRules(lambda: self.settings, self.completer.stats, self.send_status)
        self.index.excluded = self.rules.excluded_path
        self.retention_timer: asyncio.Task[None] | None = None
        self.state = "loading"
        self.message = "Starting"
        self.load_seconds: float | None = None
        self._load_task: asyncio.Task[None] | None = None
        self._last_status: dict[str, Any] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        """Serve over stdio, reading with :mod:`codellama_lsp.lsp.framing` (not pygls' reader)."""
        self.exit_code = serve_stdio(self, stdin, stdout)

    def start_tcp(self, host: str, port: int) -> None:
        """Serve one client over TCP with the same reader and rules as stdio."""
        self.exit_code = serve_tcp(self, host, port)

    # --- status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        state = self.state
        if state == "ready" and not self.settings.enabled:
            state = "disabled"
        state = self.rules.state(state)
        return {
            "state": state,
            "message": self.message,
            "model": self.settings.model,
            "backend": self.settings.backend,
            "last_latency_ms": self.completer.stats.last_latency_ms,
            "generating": self.completer.generations.generating > 0,
            "slow": self.slow_message(),
            "load_seconds": self.load_seconds,
            "version": __version__,
            **self.rules.snooze.status(),
        }

    def set_state(self, state: str, message: str) -> None:
        self.state, self.message = state, message
        self.send_status()

    def send_status(self) -> None:
        status = self.status()
        if status != self._last_status:
            self._last_status = status
            self.protocol.notify(STATUS_NOTIFICATION, status)

    def slow_message(self) -> str | None:
        """Why suggestions come too late to use here and what would help; None when fine."""
        verdict = self.completer.health.verdict()
        engine = self.completer.engine
        if verdict is None or engine is None:
            return None
        device = getattr(engine, "device", None)
        return warning(verdict, self.settings, None if device is None else str(device))

    def after_result(self) -> None:
        """An answer went out, or generating started or stopped: the status may have changed;
        the first time suggestions prove too slow to use, say so with what would help."""
        self.send_status()
        message = None if self.slow_warning_shown else self.slow_message()
        if message is not None:
            self.slow_warning_shown = True
            self.show(message, types.MessageType.Warning)

    def announce_grown(self, uri: str, cursor: Cursor, text: str) -> None:
        """A suggestion answered at its first line is whole: the editor asks again and shows
        it (the answer comes from the cache or typing-through) if the cursor is still there."""
        doc = open_document(self.workspace, uri)
        if doc is None:
            return
        character = client_units(doc, cursor.line_text, cursor.character)
        self.protocol.notify(
            GROWN_NOTIFICATION,
            {
                "textDocument": {"uri": uri},
                "position": {"line": cursor.document_line, "character": character},
            },
        )

    def stats(self) -> dict[str, Any]:
        """The completer's counters, and what the session holds (for leak checks in long
        sessions: benchmarks/soak.py)."""
        return self.completer.snapshot(
            state=self.status()["state"],
            threads=threading.active_count(),
            helper_threads=helper_threads(asyncio.get_running_loop()),
            asyncio_tasks=len(asyncio.all_tasks()),
            background_tasks=len(self._background),
            request_futures=len(self.protocol._request_futures),
            open_documents=len(self.workspace.text_documents),
            **notebook_figures(self.workspace),
            memory=memory_figures(),
            workspace_index={"files": len(self.index), "last_build": self.indexer.last_build},
            accepted=self.acceptance.accepted,
            acceptance=self.acceptance.snapshot(),
        )

    def show(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        """Tell the user first, then log: with memory exhausted, logging may fail."""
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))
        with contextlib.suppress(Exception):
            log.log(logging.ERROR if kind == types.MessageType.Error else logging.INFO, message)

    def start_reader_threads(self) -> None:
        """Start the stdin reader's threads now, before the model takes the memory.

        The pool would start them lazily, and a thread that cannot start (no memory left
        while a big model loads) would end the server instead of letting it report the error.
        """
        # Two short tasks: whichever thread is busy (the reader, or the first task), the pool
        # starts another one, up to its two. Nothing here blocks the event loop.
        for _ in range(2):
            self.thread_pool.submit(time.sleep, 0.02)

    def shutdown(self) -> None:
        """Stop the model work first: a generation reading a stalled model-server stream would
        keep the process from exiting until the read times out."""
        self.completer.close()
        super().shutdown()  # type: ignore[no-untyped-call]  # pygls: not annotated

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # --- settings and loading -------------------------------------------------------------
    def update_settings(self, overrides: Mapping[str, Any]) -> bool:
        """Apply client settings; on a bad value tell the user and keep the last good ones."""
        try:
            new = self.settings.merged(client_overrides(overrides))
        except SettingsError as exc:
            self.show(f"{exc}. Keeping the previous settings.")
            return False
        old = self.settings
        self.settings = new
        self.completer.apply_settings(new)
        logging.getLogger("codellama_lsp").setLevel(new.log_level.upper())
        self.index_settings_changed(old, new)
        if needs_reload(old, new) and self._load_task is not None:
            self.start_loading()
        self.send_status()
        return True

    def start_loading(self) -> None:
        if self._load_task is not None and not self._load_task.done():
            self._load_task.cancel()
        self._load_task = asyncio.ensure_future(self._load())

    async def _load(self) -> None:
        settings = self.settings
        old_engine = self.completer.engine
        self.completer.set_engine(None)
        if old_engine is not None:
            await self.completer.scheduler.run_exclusive(old_engine.close)
        self.load_seconds = None
        self.set_state("loading", f"Loading {settings.model}")
        token = await self.progress_bars.begin(f"codellama: loading {settings.model}")

        def report(message: str, percent: int) -> None:
            self.message = message
            self.progress_bars.report(token, message, percent)

        try:
            engine, seconds = await load_engine(
                settings, self.completer.scheduler, report, self._watch_connection
            )
        except EngineLoadError as exc:
            self.progress_bars.end(token, "Failed")
            self.show(f"codellama-lsp: {exc}")
            self.set_state("error", str(exc))
            return
        if needs_reload(settings, self.settings):
            return  # a newer load is on its way
        self.load_seconds = seconds
        self.slow_warning_shown = False
        self.completer.set_engine(engine)
        self.progress_bars.end(token, "Ready")
        message = f"{settings.model} ready ({seconds:.1f} s)"
        if engine.warning:
            message += f"; {engine.warning}"
            self.show(f"codellama-lsp: {engine.warning}", types.MessageType.Warning)
        self.set_state("ready", message)

    def _watch_connection(self, engine: Engine) -> None:
        loop = asyncio.get_running_loop()
        engine.on_connection_change = lambda ok, message: loop.call_soon_threadsafe(
            self.connection_changed, engine, ok, message
        )

    def connection_changed(self, engine: Engine, ok: bool, message: str) -> None:
        """The model server went away or came back: tell the user once per change."""
        if self.completer.engine is not engine:
            return
        if ok:
            self.show(f"codellama-lsp: {message}", types.MessageType.Info)
            self.set_state("ready", f"{self.settings.model} ready ({message})")
        else:
            self.show(f"codellama-lsp: {message}")
            self.set_state("error", message)

    # --- workspace context ---------------------------------------------------------------
    def context_snapshot(self, uri: str) -> Snapshot:
        """On the event loop: the open documents as the context sources may read them."""
        documents = self.rules.context_documents(self.workspace.text_documents)
        uri = context_uri(self.workspace, uri)  # a notebook cell: its notebook
        return take_snapshot(unquote(uri), documents, self.workspace.root_uri)

    def start_indexing(self) -> None:
        """(Re)index the workspace folders; the first time, ask the client for file events."""
        if not self.settings.context_workspace:
            return
        self.indexer.start(
            workspace_roots(self.workspace), self.settings.context_workspace_max_files
        )
        watched = self.client_capabilities.workspace
        watched_files = watched.did_change_watched_files if watched else None
        if watched_files and watched_files.dynamic_registration and not self.indexer.watching:
            self.indexer.watching = True
            self.spawn(self.client_register_capability_async(watch_registration()))

    def index_settings_changed(self, old: Settings, new: Settings) -> None:
        if self._load_task is None:
            return  # not initialized yet: `initialized` starts the index
        if not new.context_workspace:
            if old.context_workspace:
                self.indexer.stop()
        elif (
            not old.context_workspace
            or old.context_workspace_max_files != new.context_workspace_max_files
            or old.exclude_files != new.exclude_files
        ):
            self.start_indexing()

    async def index_files(self, uris: list[str]) -> None:
        if self.settings.context_workspace:
            await self.indexer.files_changed(uris)

    # --- completions -----------------------------------------------------------------
    async def complete(self, uri: str, cursor: Cursor) -> Completion | None:
        if await self.rules.refuses(self.workspace, uri, cursor):
            return None  # at once: no debounce, no prompt, no generation
        try:
            return await self.completer.complete(uri, cursor)
        except asyncio.CancelledError:
            self.completer.stats.add("requests_cancelled")
            raise
