"""Start the real ``codellama-lsp`` over stdio with a real LSP client (pytest-lsp)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

SERVER = [sys.executable, "-m", "codellama_lsp.cli"]
GREEDY = {"model": "demo", "temperature": 0, "debounce_ms": 0}
SCRIPTED_SERVER = Path(__file__).with_name("scripted_model_server.py")


@contextlib.contextmanager
def scripted_model_server(
    target: str, folder: Path, piece_delay: float = 0.002
) -> Iterator[dict[str, Any]]:
    """Start tests/scripted_model_server.py answering from ``target`` (a streamed piece of
    three characters every ``piece_delay`` seconds); yield the settings that point the
    language server at it (HTTP backend, demo tokenizer, immediate, prefix prompts)."""
    target_file, port_file = folder / "scripted-target.py", folder / "scripted-port"
    target_file.write_text(target)
    port_file.unlink(missing_ok=True)
    log = (folder / "scripted-server.log").open("wb")
    command = [sys.executable, str(SCRIPTED_SERVER), "--target", str(target_file)]
    command += ["--piece-delay", str(piece_delay)]
    proc = subprocess.Popen(
        [*command, "--port-file", str(port_file)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"scripted model server did not start: see {log.name}")
            time.sleep(0.05)
        yield {
            "model": "demo",
            "backend": "http",
            "server_url": f"http://127.0.0.1:{port_file.read_text()}",
            "prompt_format": "prefix",
            "temperature": 0,
            "debounce_ms": 0,
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


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
        self.version: dict[str, int] = {}
        self.capabilities = types.ServerCapabilities()

    async def command(self, name: str, *args: Any) -> Any:
        result = await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=list(args) or None)
        )
        return as_dict(result) if result is not None and not isinstance(result, dict) else result

    async def stats(self) -> dict[str, Any]:
        return dict(await self.command("codellama.stats"))

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

    await client.start_io(*SERVER, *args, env={**os.environ, **(env or {})})
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
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 15)
        await client.stop()
