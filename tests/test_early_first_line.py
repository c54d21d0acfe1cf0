"""First line first (issue 27): a multi-line suggestion is answered at its first line while the
model writes the rest; the editor is told when the block is whole, and asks again.

A scripted model server writes a known block and holds it after a few lines until the test
releases it, so what the editor sees at each moment is known without any timing.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from lsprotocol import types

from tests.support.documents import end_of
from tests.support.lsp_session import Session, lsp_session
from tests.support.model_servers import (
    holding_scripted,
    release_scripted,
    scripted_model_server,
)
from tests.support.scripted_model_server import TYPING_TARGET

URI = "file:///project/lines.py"
HEAD = TYPING_TARGET[: TYPING_TARGET.index("\n        for")]
"""The file up to the end of ``    with open(path) as handle:``: the cursor opens a block."""
LINE, COLUMN = end_of(HEAD)
FIRST = "\n        for line in handle:\n            total += len(line)"
"""The early part: a block header waits for the first line of its body."""
WHOLE = FIRST + "\n            print(line, os.sep)"


def held_block(folder: Path) -> AbstractContextManager[dict[str, Any]]:
    """The scripted server writing three lines after the cursor's, held after the body's first
    line until released."""
    return scripted_model_server(TYPING_TARGET, folder, block_lines=3, hold_after_lines=3)


def text_of(item: types.InlineCompletionItem) -> str:
    return item.insert_text if isinstance(item.insert_text, str) else item.insert_text.value


async def ask(s: Session, line: int = LINE, column: int = COLUMN) -> list[str]:
    return [text_of(item) for item in await s.inline(URI, line, column)]


async def until(check: Any, what: str, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"waited {timeout} s for {what}"
        await asyncio.sleep(0.05)


async def test_the_first_line_comes_first_then_the_block_grows_without_a_key(
    tmp_path: Path,
) -> None:
    with held_block(tmp_path) as settings:
        async with lsp_session({**settings, "early_first_line": "always"}) as s:
            s.open(URI, HEAD)
            # Answered while the model server still holds the rest of the block.
            assert await ask(s) == [FIRST]
            assert s.grown == []
            assert any(status.get("generating") for status in s.statuses)
            release_scripted(settings)
            await until(lambda: s.grown, "codellama/suggestionGrown")
            assert s.grown == [
                {"textDocument": {"uri": URI}, "position": {"line": LINE, "character": COLUMN}}
            ]
            # The editor asks again at the same place: the whole block, no new generation.
            assert await ask(s) == [WHOLE]
            stats = await s.stats()
            assert stats["generations_started"] == 1
            assert (stats["early_answers"], stats["suggestions_grown"]) == (1, 1)
            assert stats["early_not_prefix"] == 0
            await until(lambda: not s.statuses[-1]["generating"], "generating: false")


async def test_the_grown_block_is_served_where_the_context_moved_meanwhile(
    tmp_path: Path,
) -> None:
    """A file saved while the block is written (an editor's auto save) changes the workspace
    index, so the cache key at the cursor moves: asking again still gets the block that grew,
    with no new generation (VS Code with auto save did start one, and held it)."""
    root = tmp_path / "ws"
    root.mkdir()
    uri = (root / "lines.py").as_uri()
    with held_block(tmp_path) as settings:
        async with lsp_session({**settings, "early_first_line": "always"}, root=root) as s:
            s.open(uri, HEAD)
            assert [text_of(item) for item in await s.inline(uri, LINE, COLUMN)] == [FIRST]
            (root / "helpers.py").write_text("def helper(n: int) -> int: ...\n")
            event = types.FileEvent(
                uri=(root / "helpers.py").as_uri(), type=types.FileChangeType.Created
            )
            s.client.workspace_did_change_watched_files(
                types.DidChangeWatchedFilesParams(changes=[event])
            )
            await s.wait_stats(lambda stats: stats["workspace_index"]["files"] == 1, 30)
            release_scripted(settings)
            await until(lambda: s.grown, "codellama/suggestionGrown")
            assert [text_of(item) for item in await s.inline(uri, LINE, COLUMN)] == [WHOLE]
            assert (await s.stats())["generations_started"] == 1


async def test_accepting_the_first_line_brings_the_rest_by_typing_through(tmp_path: Path) -> None:
    with held_block(tmp_path) as settings:
        async with lsp_session({**settings, "early_first_line": "always"}) as s:
            s.open(URI, HEAD)
            assert await ask(s) == [FIRST]
            # The user accepts what is shown; the next request waits for the generation that
            # runs on (its text agrees), and gets the rest of the block from it.
            s.edit(URI, (LINE, COLUMN), (LINE, COLUMN), FIRST)
            line, column = end_of(HEAD + FIRST)
            rest = asyncio.ensure_future(ask(s, line, column))
            await asyncio.sleep(0.5)
            assert not rest.done()
            release_scripted(settings)
            assert await rest == ["\n            print(line, os.sep)"]
            stats = await s.stats()
            assert stats["generations_started"] == 1
            assert stats["kept_generation_hits"] == 1


async def test_typing_something_else_stops_the_block(tmp_path: Path) -> None:
    with held_block(tmp_path) as settings:
        async with lsp_session({**settings, "early_first_line": "always"}) as s:
            s.open(URI, HEAD)
            assert await ask(s) == [FIRST]
            # The user types something the suggestion does not have: the generation stops.
            s.edit(URI, (LINE, COLUMN), (LINE, COLUMN), "  # done")
            await ask(s, LINE, COLUMN + len("  # done"))
            await s.wait_stats(lambda stats: stats["generations_cancelled"] >= 1)
            release_scripted(settings)
            await asyncio.sleep(0.5)
            assert s.grown == []
            assert (await s.stats())["suggestions_grown"] == 0


async def test_never_waits_for_the_whole_block(tmp_path: Path) -> None:
    with held_block(tmp_path) as settings:
        async with lsp_session({**settings, "early_first_line": "never"}) as s:
            s.open(URI, HEAD)
            answer = asyncio.ensure_future(ask(s))
            await asyncio.sleep(0.5)
            assert not answer.done()
            release_scripted(settings)
            assert await answer == [WHOLE]
            assert s.grown == []


async def test_auto_answers_early_only_once_the_model_proves_slower_than_a_pause(
    tmp_path: Path,
) -> None:
    """``auto``: the first request (latency unknown) waits for the whole block; a model that
    took longer than a pause in the user's typing is then answered at its first line."""
    with held_block(tmp_path) as settings:
        async with lsp_session({**settings, "early_first_line": "auto"}) as s:
            s.open(URI, HEAD)
            first = asyncio.ensure_future(ask(s))
            await until(lambda: holding_scripted(settings), "the block held")
            await asyncio.sleep(0.6)  # longer than a pause (300 ms until typing is measured)
            release_scripted(settings)
            assert await first == [WHOLE]
            # Another place with the same block: now answered at its first line.
            s.open(URI.replace("lines", "again"), HEAD)
            items = await s.inline(URI.replace("lines", "again"), LINE, COLUMN)
            assert [text_of(item) for item in items] == [FIRST]


async def test_suggestions_given_up_on_are_reported_once_with_what_would_help(
    tmp_path: Path,
) -> None:
    """Work under way that the user never sees: each generation is still running when they
    type on. After a few, the user is told once why and what would help."""
    with held_block(tmp_path) as settings:
        async with lsp_session({**settings, "early_first_line": "never"}) as s:
            for number in range(1, 10):
                uri = f"file:///project/given_up_{number}.py"
                s.open(uri, HEAD)
                request = asyncio.ensure_future(s.inline(uri, LINE, COLUMN))
                await until(lambda n=number: holding_scripted(settings) >= n, "a held block")
                s.edit(uri, (LINE, COLUMN), (LINE, COLUMN), "#")  # typed on, not what it wrote
                # The editor asks at the new place: that supersedes the held one (an edit alone
                # leaves a generation running until the next request decides).
                again = asyncio.ensure_future(s.inline(uri, LINE, COLUMN + 1))
                assert await request == []
                await again
            await until(lambda: any("typed on" in m for m in s.messages()), "the warning")
            warnings = [m for m in s.messages() if "typed on" in m]
            assert len(warnings) == 1
            assert "What would help" in warnings[0]
            status = await s.command("codellama.status")
            # The status says the same, with the figures as they are now.
            remedy = warnings[0].split("What would help")[1]
            assert status["slow"].endswith("What would help" + remedy)
            release_scripted(settings)
