"""Start the real ``codellama-lsp`` over stdio with a real LSP client (pytest-lsp)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

from tests.support import CLI, GREEDY


def capabilities(*, inline: bool = True, progress: bool = True) -> types.ClientCapabilities:
    return types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=progress),
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities() if inline else None,
            completion=types.CompletionClientCapabilities(),
        ),
        workspace=types.WorkspaceClientCapabilities(configuration=False),
    )


def as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if hasattr(value, "_asdict"):
        return {k: as_dict(v) if hasattr(v, "_asdict") else v for k, v in value._asdict().items()}
    return dict(vars(value))


class Session:
    """A client connected to a server process, with a few conveniences."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.statuses: list[dict[str, Any]] = []
        self.grown: list[dict[str, Any]] = []
        """``codellama/suggestionGrown`` notifications (a suggestion shown early is whole)."""

        self.version: dict[str, int] = {}
        self.capabilities = types.ServerCapabilities()

    async def command(self, name: str, *args: Any) -> Any:
        result = await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=list(args) or None)
        )
        return as_dict(result) if result is not None and not isinstance(result, dict) else result

    def messages(self) -> list[str]:
        """The ``window/showMessage`` texts so far."""
        return [params.message for params in self.client.messages]

    async def stats(self) -> dict[str, Any]:
        return dict(await self.command("codellama.stats"))

    async def wait_stats(
        self, check: Callable[[dict[str, Any]], object], timeout: float = 60
    ) -> dict[str, Any]:
        """``codellama.stats`` once ``check`` accepts them (polled; AssertionError at timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            stats = await self.stats()
            if check(stats):
                return stats
            assert time.monotonic() < deadline, stats
            await asyncio.sleep(0.05)

    async def wait_state(self, *states: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = await self.command("codellama.status")
            if status["state"] in states:
                return dict(status)
            if time.monotonic() > deadline:
                raise TimeoutError(f"server stayed {status}")
            await asyncio.sleep(0.05)

    def open(self, uri: str, text: str) -> None:
        self.version[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )

    def edit(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.version[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.version[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=start[0], character=start[1]),
                            end=types.Position(line=end[0], character=end[1]),
                        ),
                        text=text,
                    )
                ],
            )
        )

    def inline_params(self, uri: str, line: int, character: int) -> types.InlineCompletionParams:
        return types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )

    async def inline(self, uri: str, line: int, character: int) -> list[types.InlineCompletionItem]:
        result = await self.client.text_document_inline_completion_async(
            self.inline_params(uri, line, character)
        )
        if result is None:
            return []
        return list(result.items if isinstance(result, types.InlineCompletionList) else result)


@asynccontextmanager
async def lsp_session(
    options: dict[str, Any] | None = None,
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    caps: types.ClientCapabilities | None = None,
    wait_ready: bool = True,
    root: Path | None = None,
    client_info: types.ClientInfo | None = None,
) -> AsyncIterator[Session]:
    """A session; ``root``: the workspace folder the client opens."""
    client = make_test_lsp_client()
    session = Session(client)

    @client.feature("codellama/status")
    def on_status(params: Any) -> None:
        session.statuses.append(as_dict(params))

    @client.feature("codellama/suggestionGrown")
    def on_grown(params: Any) -> None:
        session.grown.append(as_dict(params))

    await client.start_io(*CLI, *args, env={**os.environ, **(env or {})})
    try:
        result = await client.initialize_session(
            types.InitializeParams(
                capabilities=caps or capabilities(),
                client_info=client_info,
                initialization_options=GREEDY if options is None else options,
                root_uri=root.as_uri() if root else None,
                workspace_folders=(
                    [types.WorkspaceFolder(uri=root.as_uri(), name=root.name)] if root else None
                ),
            )
        )
        session.capabilities = result.capabilities
        if wait_ready:
            await session.wait_state("ready")
        yield session
    finally:
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.shutdown_session(), 15)
        finally:
            # A server that did not exit (a test stopped by its timeout): pygls' stop() would
            # wait for it for good, and hang the whole run.
            server = client._server
            if server is not None and server.returncode is None:
                server.kill()
            await client.stop()
