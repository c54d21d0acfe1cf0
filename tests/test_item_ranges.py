"""Every item carries a range that starts at the cursor (issue 18).

VS Code reads an inline item without a range as replacing the *word at the cursor* and drops
text that does not start with that word: no ghost text while a word is typed. The scripted
model server (tests/support/scripted_model_server.py) answers what the target file has next, so each
case knows its answer; the language server in front of it is the real one.
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types

from tests.support.lsp_session import lsp_session
from tests.support.model_servers import scripted_model_server
from tests.support.scripted_model_server import TYPING_HEAD, TYPING_TARGET

TARGET, HEAD = TYPING_TARGET, TYPING_HEAD


def at(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


async def test_items_start_at_the_cursor_wherever_it_is(tmp_path: Path) -> None:
    # (document, cursor line, cursor column, expected insert text, expected range end column)
    cases = [
        ("after a letter", HEAD + "        f", 6, 9, "or line in handle:", 9),
        ("after a space", HEAD + "        for line in ", 6, 20, "handle:", 20),
        ("indented blank line", HEAD + "        ", 6, 8, "for line in handle:", 8),
        # VS Code auto-closed the bracket: the item replaces it instead of doubling it.
        (
            "after (",
            HEAD + "        for line in handle:\n"
            "            total += len(line)\n            print()\n",
            8,
            18,
            "line, os.sep)",
            19,
        ),
        # Code after the cursor stays visible and in place: the range runs to the line's end
        # and the item puts that code back after the completion.
        (
            "mid-line",
            HEAD + "        for line in handle:\n"
            "            total += len(line)\n            print(, os.sep)\n",
            8,
            18,
            "line, os.sep)",
            27,
        ),
    ]
    with scripted_model_server(TARGET, tmp_path) as settings:
        async with lsp_session(settings) as s:
            for number, (name, text, line, col, expected, end) in enumerate(cases):
                uri = f"file:///case{number}.py"
                s.open(uri, text)
                items = await s.inline(uri, line, col)
                assert [i.insert_text for i in items] == [expected], name
                assert items[0].range == types.Range(start=at(line, col), end=at(line, end)), name
                completion = await s.client.text_document_completion_async(
                    types.CompletionParams(
                        text_document=types.TextDocumentIdentifier(uri=uri), position=at(line, col)
                    )
                )
                assert isinstance(completion, types.CompletionList)
                edit = completion.items[0].text_edit
                assert isinstance(edit, types.TextEdit)
                assert (edit.new_text, edit.range) == (expected, items[0].range), name
