"""End-to-end, Neovim 0.12 (built-in inline completion) and 0.11 (the plugin's ghost text): the
ghost text grows by itself (issue 27).

The scripted model server writes the ``for`` block line by line and holds it after the body's
first line until the test releases it (no timing involved). With ``early_first_line =
"always"`` the server answers at that first line; the plugin shows it, and the statusline says a
suggestion is being written. Released, the server sends ``codellama/suggestionGrown``; the plugin
asks again, and the whole block is on screen with no key pressed; <Tab> inserts exactly it.
Typing something else before the release stops the generation: nothing grows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.editors.test_nvim import BUILDS, Nvim, running_nvim, wait_ready
from tests.support import wait_until
from tests.support.editors import (
    GROW_FIRST,
    GROW_QUIET,
    GROW_SETTINGS,
    GROW_TYPED,
    GROW_WHOLE,
    SCRIPTED_START,
    held_block,
)
from tests.support.model_servers import release_scripted


@pytest.fixture(params=BUILDS, ids=[b.id for b in BUILDS])
def held(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Nvim, dict[str, Any]]]:
    """Neovim editing count.py, its server asking the scripted model server that holds the
    block; the scripted server's settings (to release it)."""
    with (
        held_block(tmp_path) as settings,
        running_nvim(
            request.param, tmp_path, "count.py", SCRIPTED_START, {**settings, **GROW_SETTINGS}
        ) as editor,
    ):
        wait_ready(editor)
        yield editor, settings


def ghost(nvim: Nvim) -> str:
    state = nvim.state()
    return str(state["ghost"]) if state["mode"] == "i" else ""


def wait_ghost(nvim: Nvim, want: str, what: str) -> dict[str, Any]:
    return wait_until(
        lambda: (s := nvim.state())["mode"] == "i" and s["ghost"] == want and s,
        60,
        what,
        0.05,
        lambda: json.dumps(nvim.state()),
    )


def statusline(nvim: Nvim) -> str:
    return str(
        json.loads(nvim.expr("luaeval(\"vim.json.encode(require('codellama').statusline())\")"))
    )


def test_the_first_line_then_the_whole_block_with_no_key(held: tuple[Nvim, dict[str, Any]]) -> None:
    nvim, settings = held
    nvim.send("GA" + GROW_TYPED)
    first = wait_ghost(nvim, GROW_FIRST, "the first line (the rest is held)")
    # The model is still writing: the statusline says so.
    line = wait_until(
        lambda: t if "writing" in (t := statusline(nvim)) else None,
        30,
        "the statusline to say a suggestion is being written",
        0.1,
        lambda: json.dumps(nvim.state()),
    )
    print(f"[{nvim.build.id}] first line shown: {first['ghost']!r}; statusline {line!r}")
    started = nvim.stats()["generations_started"]

    release_scripted(settings)
    grown = wait_ghost(nvim, GROW_WHOLE, "the whole block, with no key pressed")
    assert grown["lines"] == first["lines"] and grown["cursor"] == first["cursor"]
    stats = nvim.stats()
    print(f"[{nvim.build.id}] grown: {grown['ghost']!r}")
    assert stats["suggestions_grown"] == 1
    assert stats["generations_started"] == started  # asked again: the cache, no new generation

    nvim.send("<Tab>")
    want = SCRIPTED_START + GROW_TYPED + GROW_WHOLE
    wait_until(
        lambda: "\n".join(nvim.state()["lines"]) == want,
        20,
        "the whole block in the buffer",
        0.1,
        lambda: json.dumps(nvim.state()),
    )
    wait_until(
        lambda: "writing" not in statusline(nvim),
        30,
        "the statusline to stop saying writing",
        0.1,
        lambda: statusline(nvim),
    )


def test_typing_something_else_leaves_no_block(held: tuple[Nvim, dict[str, Any]]) -> None:
    nvim, settings = held
    nvim.send("GA" + GROW_TYPED)
    wait_ghost(nvim, GROW_FIRST, "the first line (the rest is held)")
    nvim.send("x")  # not what the suggestion has: the generation stops
    wait_until(
        lambda: nvim.stats()["generations_cancelled"] >= 1,
        30,
        "the server to stop the generation",
        0.1,
        lambda: json.dumps(nvim.stats()),
    )
    wait_until(
        lambda: ghost(nvim) == "", 30, "no ghost text", 0.05, lambda: json.dumps(nvim.state())
    )
    release_scripted(settings)
    deadline = time.monotonic() + GROW_QUIET
    while time.monotonic() < deadline:
        assert ghost(nvim) == "", json.dumps(nvim.state())
        time.sleep(0.1)
    state = nvim.state()
    assert state["lines"][-1] == SCRIPTED_START.rsplit("\n", 1)[1] + GROW_TYPED + "x"
    assert nvim.stats()["suggestions_grown"] == 0
