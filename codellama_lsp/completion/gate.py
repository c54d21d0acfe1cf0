"""May a request be answered at all? The user's rules, checked before any work is done.

Each rule is a setting (see :mod:`codellama_lsp.config`): the document's language
(``languages``), its path (``exclude_files``), and for Python, the cursor inside a comment or a
string (``complete_in_comments``, ``complete_in_strings``, decided by Python's tokenizer:
:mod:`codellama_lsp.completion.lexical`). A snooze is the editor's, passed in. A request one
of them rules out is answered empty at once: no debounce, no prompt, no generation.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlsplit

from codellama_lsp.completion.lexical import place_at
from codellama_lsp.completion.parse_check import is_python
from codellama_lsp.config import Settings
from codellama_lsp.cursor import Cursor

Refusal = Literal["snoozed", "language", "file", "comment", "string"]
REFUSALS: tuple[Refusal, ...] = ("snoozed", "language", "file", "comment", "string")
ALL_LANGUAGES = "*"


def document_path(uri: str) -> PurePosixPath:
    """The path part of a document URI (``file:///a/b.py`` → ``/a/b.py``; ``untitled:x``
    → ``x``)."""
    parts = urlsplit(uri)
    return PurePosixPath(unquote(parts.path or uri))


def excluded_file(settings: Settings, uri: str) -> bool:
    """Whether ``uri`` matches one of ``exclude_files`` (a glob matches the path's end)."""
    path = document_path(uri)
    return any(_matches(path, glob) for glob in settings.exclude_files)


def _matches(path: PurePosixPath, glob: str) -> bool:
    glob = glob.strip().rstrip("/")
    if not glob:
        return False
    try:
        return path.match(glob.lstrip("/")) if not glob.startswith("/") else path.match(glob)
    except ValueError:  # an empty pattern part ("a//b")
        return False


def language_of(uri: str, language_id: str | None) -> str:
    """The document's language id as the editor sent it; for a client that sent none, Python
    for Python files (``.py``, ``.pyi``, ``.pyw``)."""
    if language_id:
        return language_id
    return "python" if is_python(uri) else ""


def language_allowed(settings: Settings, language: str) -> bool:
    allowed = {name.strip().lower() for name in settings.languages}
    return ALL_LANGUAGES in allowed or language.lower() in allowed


def document_refusal(
    settings: Settings, uri: str, language_id: str | None, *, snoozed: bool = False
) -> Refusal | None:
    """Why no request in this document may be answered now (None: they may)."""
    if snoozed:
        return "snoozed"
    if not language_allowed(settings, language_of(uri, language_id)):
        return "language"
    if excluded_file(settings, uri):
        return "file"
    return None


def cursor_refusal(
    settings: Settings, uri: str, language_id: str | None, cursor: Cursor
) -> Refusal | None:
    """Why no suggestion may be shown at ``cursor`` (Python: in a comment or a string)."""
    if settings.complete_in_comments and settings.complete_in_strings:
        return None  # the default: nothing to read
    if language_of(uri, language_id) != "python":
        return None
    place = place_at(cursor.lines, cursor.line, cursor.character)
    if place == "comment" and not settings.complete_in_comments:
        return "comment"
    if place == "string" and not settings.complete_in_strings:
        return "string"
    return None


def refusal(
    settings: Settings,
    uri: str,
    language_id: str | None,
    cursor: Cursor,
    *,
    snoozed: bool = False,
) -> Refusal | None:
    """The first rule that rules this request out, or None."""
    return document_refusal(settings, uri, language_id, snoozed=snoozed) or cursor_refusal(
        settings, uri, language_id, cursor
    )


__all__ = [
    "REFUSALS",
    "Refusal",
    "cursor_refusal",
    "document_path",
    "document_refusal",
    "excluded_file",
    "language_allowed",
    "language_of",
    "refusal",
]
