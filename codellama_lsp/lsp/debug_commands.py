"""Commands for tests and leak hunts, registered only when :data:`DEBUG_COMMANDS_ENV` is 1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer

from codellama_lsp.lsp.documents import describe_document, open_document
from codellama_lsp.lsp.protocol import strict_int
from codellama_lsp.memory import PythonAllocations, newest_of_type
from codellama_lsp.memory import report as memory_report

DEBUG_COMMANDS_ENV = "CODELLAMA_LSP_DEBUG_COMMANDS"
"""Set to 1 to register ``codellama.debugDocument`` (tests read the server's copy of a file)."""

PYTHON_ALLOCATIONS = PythonAllocations()


def debug_memory(ls: LanguageServer, *args: Any) -> dict[str, Any]:
    """RSS, C heap, Python growth since the last call (``PYTHONTRACEMALLOC=1``), threads.
    ``{"trim"?: bool, "snapshot"?: bool, "newest"?: type name}``: also the figures after
    ``malloc_trim``; without the (slow) tracemalloc snapshot; the newest objects of a type."""
    info = args[0] if args and isinstance(args[0], Mapping) else {}
    figures = memory_report(
        PYTHON_ALLOCATIONS, trim=bool(info.get("trim")), snapshot=bool(info.get("snapshot", True))
    )
    if isinstance(info.get("newest"), str):
        figures["newest"] = newest_of_type(info["newest"])
    return figures


def debug_document(ls: LanguageServer, *args: Any) -> dict[str, Any] | None:
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
