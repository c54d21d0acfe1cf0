"""Big documents (issue 28): the cursor reads an excerpt, and nothing a user sees changes.

In a document too big to read whole at every key, the cursor holds the lines around it (and
the file's first lines). Prompt, clean-up and parse check must read it exactly as they read
the whole document, positions must be the document's own, and typing must keep the excerpt
otherwise unchanged (caches and typing-through compare the text around the cursor).
"""

from __future__ import annotations

import inspect
import textwrap
from functools import cache

import pytest
from lsprotocol import types

from codellama_lsp.completion.parse_check import window
from codellama_lsp.completion.prompt import build_prompt
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.model_names import resolve_model
from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer
from codellama_lsp.lsp.documents import LspTextDocument, cursor_at
from tests.support import GREEDY
from tests.support.raw_client import raw_session

HEAD = '"""A big module."""\n\nimport os\nfrom pathlib import Path\n\n\n'
BODY = "".join(
    line for line in inspect.getsource(textwrap).splitlines(True) if not line.startswith("import ")
)
"""Real code without imports of its own: a module's imports are at its top, in the excerpt."""
BIG = HEAD + BODY * 24 + "def last(path):\n    \n    return os.path.basename(path)\n"
"""About 470 KB, 13,000 lines: an excerpt, not the whole text, in the cursor."""


@cache
def tokens() -> CodeTokens:
    return CodeTokens(load_tokenizer(resolve_model("demo")))


def places(text: str) -> list[tuple[int, int]]:
    """Cursors near the start, in the middle (in a function body), and at the end."""
    lines = text.split("\n")
    middle = next(i for i in range(len(lines) // 2, len(lines)) if lines[i].startswith("    "))
    return [(8, 0), (middle, 6), (len(lines) - 3, 4)]


@pytest.mark.parametrize("crlf", [False, True])
def test_the_excerpt_reads_as_the_whole_document(crlf: bool) -> None:
    text = BIG.replace("\n", "\r\n") if crlf else BIG
    doc = LspTextDocument("file:///big.py", text)
    for line, column in places(BIG):
        ctx = cursor_at(doc, types.Position(line=line, character=column))
        whole = Cursor.clamped(text, line, column)
        assert len(ctx.text) < len(text) // 3  # an excerpt
        assert ctx.document_line == line and ctx.character == column
        assert (ctx.line_prefix, ctx.line_suffix) == (whole.line_prefix, whole.line_suffix)
        assert ctx.next_nonblank_lines(2) == whole.next_nonblank_lines(2)
        assert ctx.indent_unit == whole.indent_unit
        assert window(ctx, column) == window(whole, column)
        for fmt in ("prefix", "fim"):
            budget = 4096 - 128
            made = build_prompt(ctx, tokens(), fmt=fmt, budget=budget)
            expected = build_prompt(whole, tokens(), fmt=fmt, budget=budget)
            assert made.window_start_line + ctx.line_shift == expected.window_start_line
            assert (made.ids, made.prefix_text) == (expected.ids, expected.prefix_text)
            assert made.suffix_text == expected.suffix_text


def test_typing_leaves_the_rest_of_the_excerpt_as_it_was() -> None:
    doc = LspTextDocument("file:///big.py", BIG)
    for line, column in places(BIG):
        ctx = cursor_at(doc, types.Position(line=line, character=column))
        typed = "value = 1\n" + " " * column + "other"
        at = types.Position(line=line, character=column)
        doc.apply_change(
            types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=typed)
        )
        after = cursor_at(doc, types.Position(line=line + 1, character=column + 5))
        assert after.prefix == ctx.prefix + typed
        assert after.suffix == ctx.suffix
        assert after.document_line == line + 1


def test_edits_far_from_the_cursor_land_where_the_editor_put_them() -> None:
    """The server's copy stays the editor's through edits above, below and across lines."""
    text = BIG
    doc = LspTextDocument("file:///big.py", text)
    edits = [
        ((3, 0), (3, 0), "import re\n"),
        ((5000, 4), (5002, 0), "x = 1\r\n"),
        ((40, 2), (40, 2), "é"),
    ]
    for (l1, c1), (l2, c2), new in edits:
        lines = text.split("\n")
        start = sum(len(x) + 1 for x in lines[:l1]) + c1
        end = sum(len(x) + 1 for x in lines[:l2]) + c2
        text = text[:start] + new + text[end:]
        rng = types.Range(
            start=types.Position(line=l1, character=c1), end=types.Position(line=l2, character=c2)
        )
        doc.apply_change(types.TextDocumentContentChangePartial(range=rng, text=new))
        assert doc.source == text


def test_a_completion_at_the_end_of_a_big_document_is_placed_on_its_line() -> None:
    """Through the real server: the item's range is on the cursor's line of the document
    (not of the excerpt), and the server reads the cursor where the editor has it."""
    uri = "file:///big/last.py"
    line, column = places(BIG)[-1]
    with raw_session(GREEDY) as client:
        client.open(uri, BIG)
        seen = client.command(
            "codellama.debugDocument", {"uri": uri, "line": line, "character": column}
        )
        assert seen["cursor"] == {
            "line": line,
            "column": column,
            "line_prefix": "    ",
            "line_suffix": "",
        }
        items = []
        for _ in range(3):  # the demo model may answer nothing at one place: ask after typing
            items = client.inline(uri, line, column)
            if items:
                break
            client.change(
                uri,
                2,
                [
                    {
                        "range": {
                            "start": {"line": line, "character": column},
                            "end": {"line": line, "character": column},
                        },
                        "text": "n",
                    }
                ],
            )
            column += 1
        assert items, "no suggestion at the end of the big document"
        start = items[0]["range"]["start"]
        assert (start["line"], start["character"]) == (line, column)
