"""Commands for tests and leak hunts, registered only when :data:`DEBUG_COMMANDS_ENV` is 1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace import Workspace

from codellama_lsp.completion.completer import Completer
from codellama_lsp.engines.tokenization import new_line_cost
from codellama_lsp.lsp.documents import describe_document, open_document
from codellama_lsp.lsp.protocol import strict_int
from codellama_lsp.memory import PythonAllocations, heap_in_use_bytes, newest_of_type
from codellama_lsp.memory import report as memory_report


class Session(Protocol):
    """What the debug commands read of the language server."""

    completer: Completer

    @property
    def workspace(self) -> Workspace: ...


DEBUG_COMMANDS_ENV = "CODELLAMA_LSP_DEBUG_COMMANDS"
"""Set to 1 to register ``codellama.debugDocument`` (tests read the server's copy of a file)."""

PYTHON_ALLOCATIONS = PythonAllocations()


def debug_memory(ls: Session, *args: Any) -> dict[str, Any]:
    """RSS, C heap, Python growth since the last call (``PYTHONTRACEMALLOC=1``), threads.
    ``{"trim"?: bool, "snapshot"?: bool, "newest"?: type name, "new_lines"?: int}``: also the
    figures after ``malloc_trim``; without the (slow) tracemalloc snapshot; the newest objects
    of a type; what each tokenizer keeps per new line encoded (its word cache's bound)."""
    info = args[0] if args and isinstance(args[0], Mapping) else {}
    figures = memory_report(
        PYTHON_ALLOCATIONS, trim=bool(info.get("trim")), snapshot=bool(info.get("snapshot", True))
    )
    if isinstance(info.get("newest"), str):
        figures["newest"] = newest_of_type(info["newest"])
    engine = ls.completer.engine
    count = info.get("new_lines")
    if isinstance(count, int) and count > 0 and engine is not None:
        lines = [
            f"probe_{id(figures)}_{i} = compute({i}, {i * 7919 % 10007})\n" for i in range(count)
        ]
        figures["bytes_per_new_line"] = [
            new_line_cost(backend, lines, heap_in_use_bytes) for backend in engine.tokens.backends()
        ]
    return figures


def debug_document(ls: Session, *args: Any) -> dict[str, Any] | None:
    """The server's copy of a document: ``{"uri", "text"?: bool, "line"?, "character"?}``.

    With a position, also the cursor as the server reads it (what the prompt sees).
    """
    info = args[0] if args and isinstance(args[0], Mapping) else {}
    doc = open_document(ls.workspace, str(info.get("uri", "")))
    if doc is None:
        return None
    position = None
    if "line" in info:
        try:
            position = types.Position(
                line=strict_int(info["line"]), character=strict_int(info["character"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise JsonRpcInvalidParams.of(exc) from None
    return describe_document(doc, bool(info.get("text")), position)


DEBUG_COMMANDS: list[tuple[str, Any]] = [
    ("codellama.debugDocument", debug_document),
    ("codellama.debugMemory", debug_memory),
]
