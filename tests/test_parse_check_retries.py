"""Where the parse check drops a suggestion, the server samples others: a bounded number, and
none once the user has typed on (issue 16).

The scripted model server answers every sample with the same broken line (it ignores seeds),
so each retry is dropped too: what is counted is how many generations the request ran.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.lsp_session import lsp_session
from tests.support.model_servers import scripted_model_server

HEAD = "import os\n\n\ndef f(x):\n    "
"""A function just opened: its empty body counts as whole code, which the check guards."""
BROKEN = "if not isinstance(x,"
"""What the model writes there: no prefix of it parses."""
LINE, COLUMN = 4, 4
PIECE_DELAY = 0.1
"""Seconds per streamed piece of three characters: one generation takes ~0.7 s."""


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with scripted_model_server(HEAD + BROKEN + "\n", tmp_path, PIECE_DELAY) as settings:
        yield settings


@pytest.mark.parametrize("retries", [0, 2])
async def test_a_dropped_suggestion_is_retried_as_often_as_set_then_nothing_is_shown(
    scripted: dict[str, Any], retries: int
) -> None:
    async with lsp_session({**scripted, "parse_check_retries": retries}) as s:
        s.open("file:///f.py", HEAD)
        assert await s.inline("file:///f.py", LINE, COLUMN) == []
        stats = await s.stats()
    assert stats["generations_started"] == 1 + retries
    assert stats["parse_check_dropped"] == 1 + retries
    assert stats["parse_check_retries"] == retries
    assert stats["parse_check_retries_shown"] == 0


async def test_typing_on_stops_the_retries(scripted: dict[str, Any]) -> None:
    async with lsp_session({**scripted, "parse_check_retries": 2}) as s:
        uri = "file:///typed.py"
        s.open(uri, HEAD)
        first = asyncio.create_task(s.inline(uri, LINE, COLUMN))
        # The first answer is dropped: the first retry is streaming when the user types on.
        await s.wait_stats(lambda st: st["parse_check_dropped"] == 1)
        s.edit(uri, (LINE, COLUMN), (LINE, COLUMN), "r")
        # "r" is not what the target has next: the scripted model answers nothing there.
        assert await s.inline(uri, LINE, COLUMN + 1) == []
        assert await first == []
        stats = await s.stats()
    assert stats["parse_check_retries"] == 0  # the one in flight stopped, the second never ran
    assert stats["generations_cancelled"] == 1
    assert stats["generations_started"] == 3  # the first answer, one retry, the new request
