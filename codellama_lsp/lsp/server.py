"""The language server: one short handler per LSP method, handing work to plain modules.

Documents and positions: :mod:`codellama_lsp.lsp.documents`; completions:
:mod:`codellama_lsp.completion.completer` and :mod:`codellama_lsp.lsp.items`; model loading:
:mod:`codellama_lsp.lsp.loading`; the workspace index: :mod:`codellama_lsp.lsp.index_keeper`.
Everything slow happens off the event loop, so ``didChange`` and ``$/cancelRequest`` are always
read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from codellama_lsp import __version__
from codellama_lsp.completion.completer import Completer, Completion
from codellama_lsp.config import Settings, SettingsError, client_overrides, needs_reload
from codellama_lsp.context.open_documents import OpenDocumentsSource
from codellama_lsp.context.recent_edits import RecentEdits
from codellama_lsp.context.sources import ContextSources, Snapshot, take_snapshot
from codellama_lsp.context.workspace_index import WorkspaceIndex
from codellama_lsp.context.workspace_source import WorkspaceSource
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.base import Engine, EngineLoadError
from codellama_lsp.lsp.acceptance import (
    ACCEPTED_COMMAND,
    Acceptance,
    accepted_info,
    changes_of,
    command_info,
    document_text,
    item_info_of,
    plain,
    record_accept,
)
from codellama_lsp.lsp.client_timing import client_wait_ms
from codellama_lsp.lsp.debug_commands import DEBUG_COMMANDS, DEBUG_COMMANDS_ENV
from codellama_lsp.lsp.documents import (
    cursor_after_accept,
    cursor_at,
    end_of_change,
    open_document,
)
from codellama_lsp.lsp.editor_options import EDITOR_OPTIONS_NOTIFICATION, apply_editor_options
from codellama_lsp.lsp.index_keeper import IndexKeeper, watch_registration, workspace_roots
from codellama_lsp.lsp.items import inline_item, menu_item, renders_markdown, with_selected
from codellama_lsp.lsp.loading import load_engine
from codellama_lsp.lsp.progress import WorkProgress
from codellama_lsp.lsp.protocol import SYNC_KIND, CodeLlamaProtocol, strict_converter
from codellama_lsp.lsp.snooze import SNOOZE_COMMAND
from codellama_lsp.lsp.transport import serve_stdio, serve_tcp
from codellama_lsp.lsp.user_rules import UserRules
from codellama_lsp.lsp.watchdog import process_exists, watch_parent
from codellama_lsp.memory import helper_threads, memory_figures

log = logging.getLogger(__name__)

STATUS_NOTIFICATION = "codellama/status"
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
        self.completer.on_result = self.send_status
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


# --- handlers: one per LSP method -----------------------------------------------------------
def initialize(ls: CodeLlamaServer, params: types.InitializeParams) -> None:
    ls.start_reader_threads()
    if params.initialization_options is not None:
        ls.update_settings(params.initialization_options)
    client = params.client_info
    ls.completer.client_wait_ms = client_wait_ms(
        client.name if client else None, client.version if client else None
    )
    pid = params.process_id
    if pid is not None and process_exists(pid):
        ls.spawn(watch_parent(pid))
    elif pid is not None:
        # Only an editor that was alive can die: any other number must not end the server.
        log.warning("processId %s is not a live process: not watching it", pid)


def initialized(ls: CodeLlamaServer, params: types.InitializedParams) -> None:
    ls.start_loading()
    ls.start_indexing()


def did_change_configuration(
    ls: CodeLlamaServer, params: types.DidChangeConfigurationParams
) -> None:
    if isinstance(params.settings, Mapping) and params.settings:
        ls.update_settings(params.settings)


def did_change(ls: CodeLlamaServer, params: types.DidChangeTextDocumentParams) -> None:
    """After pygls applied the edit: tell the completer (typing rate, idle prefill)."""
    uri = params.text_document.uri
    change = params.content_changes[-1] if params.content_changes else None
    doc = open_document(ls.workspace, uri)
    if doc is not None:
        ls.acceptance.edited(uri, changes_of(doc, params.content_changes), document_text(ls))
    if doc is None or not isinstance(change, types.TextDocumentContentChangePartial):
        return
    end = end_of_change(doc, change)
    if ls.rules.document_refusal(ls.workspace, uri) is None:
        ls.completer.edited(uri, lambda: cursor_at(doc, end))


def did_close(ls: CodeLlamaServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.completer.forget(params.text_document.uri)
    ls.acceptance.closed(params.text_document.uri)


async def did_save(ls: CodeLlamaServer, params: types.DidSaveTextDocumentParams) -> None:
    await ls.index_files([params.text_document.uri])


async def did_change_watched_files(
    ls: CodeLlamaServer, params: types.DidChangeWatchedFilesParams
) -> None:
    await ls.index_files([change.uri for change in params.changes])


def did_change_workspace_folders(
    ls: CodeLlamaServer, params: types.DidChangeWorkspaceFoldersParams
) -> None:
    ls.start_indexing()  # pygls has updated the folders already: index the new set


async def inline_completion(
    ls: CodeLlamaServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    uri = params.text_document.uri
    doc = open_document(ls.workspace, uri)
    if doc is None:
        return types.InlineCompletionList(items=[])
    cursor = cursor_at(doc, params.position)
    selected = params.context.selected_completion_info
    if selected is not None:
        cursor = with_selected(doc, cursor, selected)
    completion = await ls.complete(uri, cursor)
    if completion is None:
        return types.InlineCompletionList(items=[])
    ls.acceptance.offered(uri, cursor.prefix, completion.text)
    found = [completion]
    if params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked:
        # Asked for explicitly: more candidates to cycle through (typing gets one).
        more = await ls.completer.alternatives(uri, cursor, completion.text, ls.settings.candidates)
        found += [Completion(text, completion.end_character, completion.origin) for text in more]
    items = [inline_item(uri, doc, cursor, each, selected) for each in found]
    return types.InlineCompletionList(items=items)


async def completion(ls: CodeLlamaServer, params: types.CompletionParams) -> types.CompletionList:
    uri = params.text_document.uri
    doc = open_document(ls.workspace, uri)
    if doc is None:
        return types.CompletionList(is_incomplete=True, items=[])
    cursor = cursor_at(doc, params.position)
    result = await ls.complete(uri, cursor)
    if result is None:
        return types.CompletionList(is_incomplete=True, items=[])
    item = menu_item(doc, cursor, result, renders_markdown(ls.client_capabilities))
    return types.CompletionList(is_incomplete=True, items=[item])


# --- commands ------------------------------------------------------------------------------
def stats(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
    return ls.stats()


def status(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
    return ls.status()


def reload(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
    ls.start_loading()
    return {"state": "loading"}


def accepted(ls: CodeLlamaServer, *args: Any) -> None:
    """Count the accept; compute the completion at the cursor after it, so it is ready."""
    info = accepted_info(args)
    record_accept(ls, info, None)
    if info is None or not ls.settings.prefetch_after_accept:
        return
    uri = str(info.get("uri", ""))
    doc = open_document(ls.workspace, uri)
    cursor = cursor_after_accept(doc, info) if doc is not None else None
    if cursor is not None:
        ls.spawn(ls.completer.prefetch(uri, cursor))


def snooze(ls: CodeLlamaServer, *args: Any) -> dict[str, Any]:
    """``codellama.snooze [minutes]``: none = until the server stops, 0 = end it now."""
    ls.rules.snooze_for(plain(list(args)), ls.show)
    return ls.status()


def did_change_editor_options(ls: CodeLlamaServer, params: Any) -> None:
    apply_editor_options(ls.workspace, plain(params))


def did_show_completion(ls: CodeLlamaServer, params: Any) -> None:
    params = plain(params)
    item = params.get("item") if isinstance(params, Mapping) else None
    info = item_info_of(ls, command_info(item))
    if info is not None:
        ls.acceptance.reported_shown(info.uri, info.before, info.text)


def did_partially_accept_completion(ls: CodeLlamaServer, params: Any) -> None:
    params = plain(params)
    length = params.get("acceptedLength") if isinstance(params, Mapping) else None
    if isinstance(length, int) and not isinstance(length, bool) and length > 0:
        record_accept(ls, command_info(params.get("item")), length)


FEATURES: list[tuple[str, Any, Any]] = [
    (types.INITIALIZE, None, initialize),
    (types.INITIALIZED, None, initialized),
    (types.WORKSPACE_DID_CHANGE_CONFIGURATION, None, did_change_configuration),
    (types.TEXT_DOCUMENT_DID_CHANGE, None, did_change),
    (types.TEXT_DOCUMENT_DID_CLOSE, None, did_close),
    (types.TEXT_DOCUMENT_DID_SAVE, None, did_save),
    (types.WORKSPACE_DID_CHANGE_WATCHED_FILES, None, did_change_watched_files),
    (types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS, None, did_change_workspace_folders),
    (types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions(), inline_completion),
    (
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(resolve_provider=False),
        completion,
    ),
    (DID_SHOW_COMPLETION, None, did_show_completion),
    (DID_PARTIALLY_ACCEPT_COMPLETION, None, did_partially_accept_completion),
    (EDITOR_OPTIONS_NOTIFICATION, None, did_change_editor_options),
]
COMMANDS: list[tuple[str, Any]] = [
    ("codellama.stats", stats),
    ("codellama.status", status),
    ("codellama.reload", reload),
    (ACCEPTED_COMMAND, accepted),
    (SNOOZE_COMMAND, snooze),
]


def create_server(settings: Settings) -> CodeLlamaServer:
    server = CodeLlamaServer(settings)
    for method, options, handler in FEATURES:
        server.feature(method, options)(handler)
    commands = COMMANDS + (DEBUG_COMMANDS if os.environ.get(DEBUG_COMMANDS_ENV) == "1" else [])
    for name, handler in commands:
        server.command(name)(handler)
    return server
