"""What an accepted completion tells the server: the command an item carries, and where the
cursor will be after the accept (to compute the next completion before it is asked)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lsprotocol import types
from pygls.workspace import TextDocument

from codellama_lsp.cursor import Cursor
from codellama_lsp.documents import cursor_at

ACCEPTED_COMMAND = "codellama.accepted"


def accept_command(uri: str, edit_range: types.Range, text: str) -> types.Command:
    """The command an item runs when the user accepts it (inline completions)."""
    start, end = edit_range.start, edit_range.end
    return types.Command(
        title="codellama: accepted",
        command=ACCEPTED_COMMAND,
        arguments=[
            {
                "uri": uri,
                "line": start.line,
                "character": start.character,
                "end_line": end.line,
                "end_character": end.character,
                "text": text,
            }
        ],
    )


def accepted_info(args: Sequence[Any]) -> Mapping[str, Any] | None:
    """The command's argument object; clients send ``[info]`` or ``[[info]]``."""
    first = args[0] if args else None
    if isinstance(first, list) and first:
        first = first[0]
    return first if isinstance(first, Mapping) else None


def cursor_after_accept(doc: TextDocument, info: Mapping[str, Any]) -> Cursor | None:
    """The cursor after the accepted text, in the document as it will be then.

    It does not wait for the edit's ``didChange`` (Neovim sends it up to 150 ms later): when
    the document does not hold the accepted text yet, the text is applied to a copy. None for
    arguments that do not name a place.
    """
    try:
        text = str(info["text"]).replace("\r\n", "\n")
        line, character = int(info["line"]), int(info["character"])
        start = cursor_at(doc, types.Position(line=line, character=character))
        end = cursor_at(
            doc,
            types.Position(
                line=int(info.get("end_line", line)),
                character=int(info.get("end_character", character)),
            ),
        )
    except (KeyError, TypeError, ValueError):
        return None
    if start.normalized.startswith(text, start.offset):
        return start.replaced(start.offset, start.offset + len(text), text)
    end_offset = start.offset_at(end.document_line - start.line_shift, end.character)
    return start.replaced(start.offset, end_offset, text)
