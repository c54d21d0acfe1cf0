"""Acceptance and retention figures, and partial accepts, through the real server over stdio.

The scripted model server knows the answers (the rest of the target's line), so what the
client did and what ``codellama.stats`` says can be compared exactly.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from codellama_lsp.lsp.acceptance import RETENTION_EDITS, Acceptance, Change, leading, moved
from codellama_lsp.lsp.client_timing import client_wait_ms
from tests.support.lsp_session import Session, lsp_session
from tests.support.model_servers import scripted_model_server
from tests.support.scripted_model_server import TYPING_HEAD, TYPING_TARGET

URI = "file:///project/count.py"
START = TYPING_HEAD + " " * 8  # the cursor under ``with open(path) as handle:``
LINE = START.count("\n")
COLUMN = 8


def text_of(item: types.InlineCompletionItem) -> str:
    assert isinstance(item.insert_text, str)
    return item.insert_text


def item_json(item: types.InlineCompletionItem) -> dict[str, Any]:
    """The item as a client sends it back in a notification."""
    assert item.command is not None and item.range is not None
    return {
        "insertText": text_of(item),
        "range": {
            "start": {"line": item.range.start.line, "character": item.range.start.character},
            "end": {"line": item.range.end.line, "character": item.range.end.character},
        },
        "command": {
            "title": item.command.title,
            "command": item.command.command,
            "arguments": item.command.arguments,
        },
    }


async def acceptance(s: Session, check: Any = lambda a: True) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        figures = (await s.stats())["acceptance"]
        if check(figures):
            return dict(figures)
        assert time.monotonic() < deadline, figures
        await asyncio.sleep(0.05)


async def test_partial_accepts_then_the_rest_are_counted_and_need_no_generation(
    tmp_path: Path,
) -> None:
    with scripted_model_server(TYPING_TARGET, tmp_path) as settings:
        async with lsp_session(settings) as s:
            s.open(URI, START)
            items = await s.inline(URI, LINE, COLUMN)
            assert [text_of(i) for i in items] == ["for line in handle:"]
            item = items[0]
            started = (await s.stats())["generations_started"]

            # Accept the next word ("for "), as VS Code's Ctrl+Right does: the client inserts
            # it, then says so with Copilot's notification (length from the item's start).
            s.edit(URI, (LINE, COLUMN), (LINE, COLUMN), "for ")
            s.client.protocol.notify(
                "textDocument/didPartiallyAcceptCompletion",
                {"item": item_json(item), "acceptedLength": 4},
            )
            # The rest comes from typing-through: no new generation.
            rest = await s.inline(URI, LINE, COLUMN + 4)
            assert [text_of(i) for i in rest] == ["line in handle:"]
            assert (await s.stats())["generations_started"] == started

            # Accept the rest whole (the item's command).
            s.edit(URI, (LINE, COLUMN + 4), (LINE, COLUMN + 4), "line in handle:")
            assert rest[0].command is not None
            await s.command(rest[0].command.command, *(rest[0].command.arguments or []))
            figures = await acceptance(s, lambda a: a["accepted"] == 1)
            assert figures["shown"] == 1
            assert figures["partially_accepted"] == 1
            assert figures["partially_accepted_chars"] == 4
            assert figures["accepted_chars"] == len("line in handle:")
            assert figures["dismissed"] == 0
            assert figures["acceptance_rate"] == 1.0
            assert (await s.stats())["accepted"] == 1

            # A suggestion on the next line, then another one below: the first is dismissed.
            line_end = COLUMN + len("for line in handle:")
            s.edit(URI, (LINE, line_end), (LINE, line_end), "\n            total")
            shown = await s.inline(URI, LINE + 1, 17)
            assert [text_of(i) for i in shown] == [" += len(line)"]
            s.edit(URI, (LINE + 1, 17), (LINE + 1, 17), "\nim")
            assert [text_of(i) for i in await s.inline(URI, LINE + 2, 2)] == ["port os"]
            figures = await acceptance(s)
            assert figures["shown"] == 3
            assert figures["dismissed"] == 1
            assert figures["acceptance_rate"] == round(1 / 3, 3)


@pytest.mark.parametrize("edit_first", [True, False], ids=["vscode-order", "neovim-order"])
async def test_accepted_text_kept_after_twenty_edits_is_measured(
    tmp_path: Path, edit_first: bool
) -> None:
    with scripted_model_server(TYPING_TARGET, tmp_path) as settings:
        async with lsp_session(settings) as s:
            s.open(URI, START)
            items = await s.inline(URI, LINE, COLUMN)
            accepted = text_of(items[0])  # "for line in handle:"
            assert items[0].command is not None
            # VS Code sends the edit, then runs the command; Neovim may send its didChange
            # later: the server follows the text once it shows up in the document.
            if edit_first:
                s.edit(URI, (LINE, COLUMN), (LINE, COLUMN), accepted)
            await s.command(items[0].command.command, *(items[0].command.arguments or []))
            if not edit_first:
                s.edit(URI, (LINE, COLUMN), (LINE, COLUMN), accepted)
            # The user renames the loop variable ("line" → "row": 4 characters replaced by
            # 3) and types on below: 20 edits in all.
            s.edit(URI, (LINE, COLUMN + 4), (LINE, COLUMN + 8), "row")
            end = COLUMN + len(accepted) - 1
            for index in range(RETENTION_EDITS - 1):
                s.edit(URI, (LINE, end + index), (LINE, end + index), "x")
            figures = await acceptance(
                s, lambda a: a["retained_after_20_edits"]["accepted_chars"] > 0
            )
            kept = figures["retained_after_20_edits"]
            assert kept["accepted_chars"] == len(accepted)
            assert kept["kept_chars"] == len(accepted) - len("line")
            assert figures["retained_after_30s"]["accepted_chars"] == 0  # not 30 s old yet


async def test_a_client_that_reports_what_it_showed_is_counted_from_its_reports(
    tmp_path: Path,
) -> None:
    with scripted_model_server(TYPING_TARGET, tmp_path) as settings:
        async with lsp_session(settings) as s:
            s.open(URI, START)
            items = await s.inline(URI, LINE, COLUMN)
            shown = {"item": item_json(items[0])}
            s.client.protocol.notify("textDocument/didShowCompletion", shown)
            await acceptance(s, lambda a: a["shown"] == 1)
            # Answered again, not shown (the client says nothing): still one.
            await s.inline(URI, LINE, COLUMN)
            s.edit(URI, (LINE, COLUMN), (LINE, COLUMN), "f")
            await s.inline(URI, LINE, COLUMN + 1)
            assert (await acceptance(s))["shown"] == 1


async def test_neovim_0_12_waits_itself_so_the_server_adds_no_wait() -> None:
    adaptive = {"model": "demo", "temperature": 0, "debounce_ms": -1}
    source = "import os\n\n\ndef walk(root):\n    "
    waits = {}
    for name, version in (("Neovim", "0.12.0-dev+fbb1caf"), ("Visual Studio Code", "1.99.0")):
        info = types.ClientInfo(name=name, version=version)
        async with lsp_session(adaptive, client_info=info) as s:
            s.open(URI, source)
            await s.inline(URI, 4, 4)
            waits[name] = (await s.stats())["timings_ms"]["debounce_wait"]["max"]
    assert waits == {"Neovim": 0.0, "Visual Studio Code": 60.0}


def test_client_wait_by_client_info() -> None:
    assert client_wait_ms("Neovim", "0.12.0-dev-1234") == 200
    assert client_wait_ms("Neovim", "v0.13.1") == 200
    assert client_wait_ms("Neovim", "0.11.4") == 0  # the plugin's ghost text: its own 75 ms
    assert client_wait_ms("Neovim", None) == 0
    assert client_wait_ms("Visual Studio Code", "1.99") == 0
    assert client_wait_ms(None, None) == 0


def test_positions_follow_edits_around_a_span() -> None:
    typed_before = Change((3, 2), (3, 2), (3, 5))  # 3 characters typed at (3, 2)
    assert moved((3, 2), typed_before, after_insert=True) == (3, 5)
    assert moved((3, 2), typed_before, after_insert=False) == (3, 2)
    assert moved((3, 8), typed_before, after_insert=False) == (3, 11)
    assert moved((4, 1), typed_before, after_insert=False) == (4, 1)
    joined = Change((2, 4), (3, 0), (2, 4))  # the line break after (2, 4) deleted
    assert moved((3, 6), joined, after_insert=False) == (2, 10)
    assert moved((5, 6), joined, after_insert=False) == (4, 6)
    two_lines = Change.of((1, 0), (1, 0), "a\nbc", len)
    assert two_lines.new_end == (2, 2)
    assert moved((1, 3), two_lines, after_insert=True) == (2, 5)


def test_accepted_length_in_utf16_units() -> None:
    def utf16(text: str) -> int:
        return len(text.encode("utf-16-le")) // 2

    assert leading("for x", 3, utf16) == "for"
    assert leading("é😀x", 3, utf16) == "é😀"
    assert leading("é😀x", 2, utf16) == "é"  # half of the emoji is not taken
    assert leading("a\nb", 3, utf16) == "a\nb"


def test_retention_after_thirty_seconds_uses_the_text_then() -> None:
    now = [0.0]
    figures = Acceptance(clock=lambda: now[0])
    document = {"text": "x = compute(1)"}

    def text_at(uri: str, start: tuple[int, int], end: tuple[int, int]) -> str | None:
        return document["text"][start[1] : end[1]]

    figures.offered("u", "x = ", "compute(1)")
    figures.accepted_whole("u", (0, 4), "compute(1)", len)
    figures.look("u", text_at)  # the document already holds it (VS Code's order)
    document["text"] = "x = compute(2)"
    figures.edited("u", [Change((0, 12), (0, 13), (0, 13))], text_at)
    figures.measure_due(text_at)
    assert figures.after_time.accepted_chars == 0  # not 30 s yet
    assert figures.next_due_s() == 30.0
    now[0] = 31.0
    figures.measure_due(text_at)
    assert (figures.after_time.accepted_chars, figures.after_time.kept_chars) == (10, 9)
    figures.measure_due(text_at)
    assert figures.after_time.accepted_chars == 10  # measured once
    assert figures.next_due_s() is None


def test_partial_accepts_of_one_item_count_each_character_once() -> None:
    """VS Code keeps the item after a partial accept: Copilot's ``acceptedLength`` counts from
    the item's start each time, and the accept of its end runs the item's command."""
    figures = Acceptance()
    figures.offered("u", "x = ", "compute(1) + 2")
    figures.accepted_part("u", (0, 4), "compute", len)
    figures.accepted_part("u", (0, 4), "compute(1)", len)
    figures.accepted_whole("u", (0, 4), "compute(1) + 2", len)
    assert (figures.partially_accepted, figures.partially_accepted_chars) == (2, 10)
    assert (figures.accepted, figures.accepted_chars) == (1, 4)
    assert (figures.shown, figures.snapshot()["acceptance_rate"]) == (1, 1.0)
