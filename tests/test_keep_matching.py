"""A generation in flight runs on while the user types what it is making (issue 10).

At a person's typing speed a slow model's generation, started at a hesitation, used to be
stopped by the next key, and the pause after it started another one. When the keys typed agree
with the text the generation has made so far, it now runs on, and its answer serves the request
at the pause by typing-through. The scripted model server streams what the target file has
next on the line, slowly, so the generation is still in flight when the next key comes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.lsp_helpers import Session, lsp_session, scripted_model_server
from tests.scripted_model_server import TYPING_HEAD

LINE = 6  # the cursor's line in TYPING_HEAD + "        f"
WAIT = 0.15
"""The fixed debounce: the first request starts its generation after this."""
PIECE_DELAY = 0.12
"""Seconds per streamed piece of three characters: "or line in handle:" takes ~0.7 s."""


async def hesitate_then_type(s: Session, uri: str, key: str) -> tuple[list[Any], list[Any]]:
    """Ask at ``f``, type ``key`` while that generation streams, ask again; both answers."""
    s.open(uri, TYPING_HEAD + "        f")
    first = asyncio.create_task(s.inline(uri, LINE, 9))
    await asyncio.sleep(WAIT + 3 * PIECE_DELAY)  # in flight, a few pieces made
    s.edit(uri, (LINE, 9), (LINE, 9), key)
    second = asyncio.create_task(s.inline(uri, LINE, 10))
    return await first, await second


@pytest.fixture
def scripted(tmp_path: Path) -> Any:
    with scripted_model_server(
        TYPING_HEAD + "        for line in handle:\n", tmp_path, PIECE_DELAY
    ) as settings:
        yield {**settings, "debounce_ms": int(WAIT * 1000)}


async def test_typing_what_the_generation_makes_keeps_it_and_it_answers_the_pause(
    scripted: dict[str, Any],
) -> None:
    async with lsp_session(scripted) as s:
        first, second = await hesitate_then_type(s, "file:///keep.py", "o")
        assert first == []  # superseded: nobody shows it
        assert [i.insert_text for i in second] == ["r line in handle:"]
        stats = await s.stats()
    assert stats["generations_started"] == 1
    assert stats["generations_kept"] == 1
    assert stats["kept_generation_hits"] == 1
    assert stats["generations_cancelled"] == 0


async def test_typing_something_else_stops_it_at_once(scripted: dict[str, Any]) -> None:
    async with lsp_session(scripted) as s:
        _, second = await hesitate_then_type(s, "file:///other.py", "x")
        assert second == []  # the target has no line going on from "fx"
        stats = await s.stats()
    assert stats["generations_started"] == 2
    assert stats["generations_kept"] == 0
    assert stats["generations_cancelled"] == 1


async def test_turned_off_the_next_key_stops_it(scripted: dict[str, Any]) -> None:
    async with lsp_session({**scripted, "keep_matching_generations": False}) as s:
        _, second = await hesitate_then_type(s, "file:///off.py", "o")
        assert [i.insert_text for i in second] == ["r line in handle:"]
        stats = await s.stats()
    assert stats["generations_started"] == 2
    assert stats["generations_kept"] == 0
    assert stats["generations_cancelled"] == 1
