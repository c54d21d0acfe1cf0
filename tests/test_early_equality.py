"""First line first changes when text is shown, never what: with greedy decoding the block a
suggestion grows to is the block the whole-block server answers, at every place (issue 27).

The demo model is slowed to a big model's pace (``CODELLAMA_LSP_PACE``), so that its first
line is there long before the rest and the early answer really happens.
"""

from __future__ import annotations

import inspect
import shlex as shlex_module
import textwrap as textwrap_module
from typing import Any

from lsprotocol import types

from tests.support import GREEDY
from tests.support.lsp_session import Session, lsp_session

PACE = {"CODELLAMA_LSP_PACE": "decode_ms=25", "OMP_NUM_THREADS": "1"}
SETTINGS = {**GREEDY, "max_new_tokens": 40, "prompt_format": "prefix", "candidates": 1}
SOURCES = [inspect.getsource(module) for module in (textwrap_module, shlex_module)]
PLACES = 16
"""Per file. About one place in six gets an early answer, and one in twenty grows: the demo
model mostly writes one line, or lines the parse check drops."""
URI = "file:///project/places.py"


def places(source: str, count: int) -> list[tuple[int, int]]:
    """Starts of statements inside functions (after the indentation), spread over the file:
    where a multi-line suggestion is asked for, and the demo model writes one."""
    lines = source.split("\n")
    found = [
        (number, len(line) - len(line.lstrip()))
        for number, line in enumerate(lines)
        if line.startswith("        ")
        and line.strip()
        and not line.strip().startswith(("#", '"', "'", ")", "]", "}"))
    ]
    step = max(1, len(found) // count)
    return found[::step][:count]


def text_of(items: list[Any]) -> str:
    return items[0].insert_text if items else ""


async def answers(s: Session, early: bool) -> list[tuple[str, str]]:
    """(first answer, final answer) at each place: the final one after the block grew."""
    found = []
    for source in SOURCES:
        lines = source.split("\n")
        for line, column in places(source, PLACES):
            s.open(URI, "\n".join([*lines[:line], lines[line][:column]]))
            found.append(await answer(s, line, column, early))
    return found


async def answer(s: Session, line: int, column: int, early: bool) -> tuple[str, str]:
    """The first answer at (line, column) of the open document, and the final one once the
    generation is over (asked again, as the editor does on ``codellama/suggestionGrown``)."""
    first = text_of(await s.inline(URI, line, column))
    await s.wait_stats(lambda stats: stats["growing"] == 0, timeout=120)
    final = text_of(await s.inline(URI, line, column)) if early else first
    s.client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=URI))
    )
    return first, final


async def test_the_grown_block_is_the_whole_block_at_every_place() -> None:
    async with lsp_session({**SETTINGS, "early_first_line": "never"}, env=PACE) as s:
        whole = await answers(s, early=False)
    async with lsp_session({**SETTINGS, "early_first_line": "always"}, env=PACE) as s:
        grown = await answers(s, early=True)
        stats = await s.stats()
    assert [final for _first, final in grown] == [final for _first, final in whole]
    assert all(final.startswith(first) for first, final in grown)
    # The early path was taken, and it grew: this is not two runs of the same thing.
    assert stats["early_answers"] >= 2
    assert stats["suggestions_grown"] >= 1
    assert stats["early_not_prefix"] == 0
