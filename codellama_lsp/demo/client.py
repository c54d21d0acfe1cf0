"""``codellama-lsp demo``: a real headless LSP session, to see the server work without an editor.

It starts ``codellama-lsp`` over stdio exactly as an editor would, shows the model's loading
progress, opens the file, asks ``textDocument/inlineCompletion`` and prints what an editor
would show as ghost text.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

EXAMPLE = '''"""Small geometry helpers."""

import math


def distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Euclidean distance between two points."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def perimeter(points: list[tuple[float, float]]) -> float:
    """Length of the closed polygon through ``points``."""
    total = 0.0
    for i in range(len(points)):
        '''


def parse_target(target: str | None) -> tuple[Path | None, str, int, int]:
    """(path, text, line, column) with 0-based line/column; default: the end of the text."""
    if target is None:
        text = EXAMPLE
        path = None
        line_no: int | None = None
        col_no: int | None = None
    else:
        parts = target.split(":")
        line_no = col_no = None
        while len(parts) > 1 and parts[-1].isdigit():
            col_no, line_no = line_no, int(parts.pop())
        path = Path(":".join(parts))
        if not path.is_file():
            raise SystemExit(f"codellama-lsp demo: no such file: {path}")
        text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if line_no is None:
        return path, text, len(lines) - 1, len(lines[-1])
    line = min(max(line_no - 1, 0), len(lines) - 1)
    column = len(lines[line]) if col_no is None else min(max(col_no - 1, 0), len(lines[line]))
    return path, text, line, column


def as_dict(value: Any) -> dict[str, Any]:
    """pygls hands notifications of unknown methods over as namedtuple-like objects."""
    if isinstance(value, dict):
        return value
    if hasattr(value, "_asdict"):
        return dict(value._asdict())
    return dict(vars(value)) if hasattr(value, "__dict__") else {}


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def run_demo(
    target: str | None, overrides: dict[str, Any], *, timeout: float, as_json: bool
) -> int:
    return asyncio.run(_demo(target, overrides, timeout=timeout, as_json=as_json))


def _client(ready: asyncio.Event, status: dict[str, Any]) -> LanguageClient:
    """A client that prints the server's progress and messages and keeps its status."""
    client = LanguageClient("codellama-demo", "0.1")
    err = sys.stderr

    @client.feature("codellama/status")
    def on_status(params: Any) -> None:
        data = as_dict(params)
        status.clear()
        status.update(data)
        if data.get("state") in {"ready", "error", "disabled"}:
            ready.set()

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def on_create(params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def on_progress(params: types.ProgressParams) -> None:
        value = as_dict(params.value)
        if value.get("kind") == "end":
            return  # the status line below says it
        message = value.get("message") or value.get("title")
        percent = value.get("percentage")
        if message:
            suffix = f" ({percent}%)" if percent is not None else ""
            print(f"[codellama] {message}{suffix}", file=err)

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def on_message(params: types.ShowMessageParams) -> None:
        print(f"[codellama] {params.message}", file=err)

    return client


async def _initialize(client: LanguageClient, path: Path | None, overrides: dict[str, Any]) -> None:
    await client.initialize_async(
        types.InitializeParams(
            process_id=None,
            root_uri=path.resolve().parent.as_uri() if path else None,
            capabilities=types.ClientCapabilities(
                window=types.WindowClientCapabilities(work_done_progress=True),
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities()
                ),
            ),
            initialization_options=overrides,
        )
    )
    client.initialized(types.InitializedParams())


async def _ask(
    client: LanguageClient, uri: str, text: str, line: int, column: int, timeout: float
) -> tuple[str, float]:
    """Open the document, ask for the inline completion at (line, column): (text, ms)."""
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=1, text=text
            )
        )
    )
    line_text = text.split("\n")[line]
    asked = time.perf_counter()
    result = await asyncio.wait_for(
        client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=_utf16(line_text[:column])),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked
                ),
            )
        ),
        timeout,
    )
    latency_ms = (time.perf_counter() - asked) * 1000
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return (str(items[0].insert_text) if items else ""), latency_ms


async def _demo(
    target: str | None, overrides: dict[str, Any], *, timeout: float, as_json: bool
) -> int:
    path, text, line, column = parse_target(target)
    uri = path.resolve().as_uri() if path else "file:///codellama-demo/example.py"
    ready = asyncio.Event()
    status: dict[str, Any] = {}
    client = _client(ready, status)
    err = sys.stderr
    started = time.perf_counter()
    await client.start_io(sys.executable, "-m", "codellama_lsp.cli")
    try:
        await _initialize(client, path, overrides)
        try:
            await asyncio.wait_for(ready.wait(), timeout)
        except TimeoutError:
            print(f"codellama-lsp demo: the model did not load within {timeout:.0f} s", file=err)
            return 1
        if status.get("state") != "ready":
            print(f"codellama-lsp demo: {status.get('message')}", file=err)
            return 1
        print(f"[codellama] {status.get('message')}", file=err)
        completion, latency_ms = await _ask(client, uri, text, line, column, timeout)
        stats = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codellama.stats")
        )
        if as_json:
            print(json.dumps({"completion": completion, "latency_ms": latency_ms, "stats": stats}))
        else:
            _show(path, text, line, column, completion, latency_ms, status, started)
        return 0 if completion else 2
    finally:
        try:
            await asyncio.wait_for(client.shutdown_async(None), 10)
            client.exit(None)
        except Exception:
            pass
        await client.stop()


def _show(
    path: Path | None,
    text: str,
    line: int,
    column: int,
    completion: str,
    latency_ms: float,
    status: dict[str, Any],
    started: float,
) -> None:
    grey, reset = ("\x1b[90m", "\x1b[0m") if sys.stdout.isatty() else ("", "")
    lines = text.split("\n")
    name = str(path) if path else "built-in example"
    print(f"--- {name}, line {line + 1}, column {column + 1} ---")
    for shown in lines[max(0, line - 6) : line]:
        print(shown)
    print(lines[line][:column] + grey + "⟨" + completion + "⟩" + reset + lines[line][column:])
    print("---")
    if not completion:
        print("(no completion: the model returned nothing usable here)")
    model = status.get("model")
    print(
        f"model {model} · first suggestion in {latency_ms:.0f} ms · "
        f"session {time.perf_counter() - started:.1f} s"
    )
    if model == "demo":
        print(
            "note: 'demo' is a small model trained for an hour on one CPU core, so its "
            "suggestions look like Python but are often wrong. Use --model with a Code Llama "
            "checkpoint for real completions."
        )
