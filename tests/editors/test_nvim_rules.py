"""End-to-end, Neovim 0.12 (built-in inline completion) and 0.11 (the plugin's ghost text): the
user decides when suggestions appear (issue 30).

Against the scripted model server (known answers): no ghost text in a comment or a string with
those settings off, and a live settings change brings it back; :CodellamaSnooze hides
suggestions and they come back when it ends; a two-space file gets two-space suggestions from
a model that writes four; the completion menu (<C-n>) hides the ghost text; <Tab> accepts a
suggestion on screen, and otherwise does what it did before (indent an empty line, jump to a
snippet's next place).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.editors.test_nvim import BUILDS, Nvim, running_nvim, wait_ready
from tests.support import wait_until
from tests.support.editors import SCRIPTED_START
from tests.support.model_servers import scripted_model_server
from tests.support.scripted_model_server import (
    COMMENT_TYPED,
    INDENT_HEAD,
    RULE_ANSWERS,
    STRING_TYPED,
    TYPING_TARGET,
    body_in,
)

QUIET_WINDOW = 2.5
"""Seconds a ghost text that must not come is looked for."""
TWO_SPACE_FILE = INDENT_HEAD.format(unit="  ").rstrip(" ")
"""``def total(items):``, ``  total = 0`` and a line break."""


@contextlib.contextmanager
def scripted(
    build_id: str, tmp_path: Path, name: str, text: str, **settings: Any
) -> Iterator[Nvim]:
    """Neovim editing ``name``, its server asking the scripted model server (RULE_ANSWERS)."""
    build = next(b for b in BUILDS if b.id == build_id)
    with (
        scripted_model_server(TYPING_TARGET, tmp_path, answers=RULE_ANSWERS) as scripted_settings,
        running_nvim(build, tmp_path, name, text, {**scripted_settings, **settings}) as editor,
    ):
        wait_ready(editor)
        yield editor


BUILD_IDS = [b.id for b in BUILDS]


def ghost(nvim: Nvim) -> str:
    state = nvim.state()
    return str(state["ghost"]) if state["mode"] == "i" else ""


def wait_ghost(nvim: Nvim, want: str, what: str) -> None:
    wait_until(
        lambda: ghost(nvim) == want,
        30,
        what,
        0.05,
        lambda: json.dumps(nvim.state()),
    )


def no_ghost(nvim: Nvim, while_true: Callable[[], bool] = lambda: True) -> None:
    """No ghost text for QUIET_WINDOW seconds (while ``while_true()`` holds)."""
    deadline = time.monotonic() + QUIET_WINDOW
    while time.monotonic() < deadline and while_true():
        assert ghost(nvim) == "", json.dumps(nvim.state())
        time.sleep(0.1)


def wait_stat(nvim: Nvim, name: str, at_least: int) -> dict[str, Any]:
    return wait_until(
        lambda: (s := nvim.stats()).get(name, 0) >= at_least and s,
        30,
        f"{name} >= {at_least}",
        0.1,
        lambda: json.dumps(nvim.stats()),
    )


def statusline(nvim: Nvim) -> str:
    return str(
        json.loads(nvim.expr("luaeval(\"vim.json.encode(require('codellama').statusline())\")"))
    )


@pytest.mark.parametrize("build_id", BUILD_IDS)
def test_no_ghost_in_comments_or_strings_until_allowed(build_id: str, tmp_path: Path) -> None:
    quiet = {"complete_in_comments": False, "complete_in_strings": False}
    with scripted(build_id, tmp_path, "count.py", SCRIPTED_START, **quiet) as nvim:
        # After a statement: a comment as a block's only body would not pass the parse check.
        nvim.send("GAtotal = 0<CR>        " + COMMENT_TYPED)
        no_ghost(nvim)
        stats = wait_stat(nvim, "refused_comment", 1)
        assert stats["generations_started"] == 0, stats
        assert ghost(nvim) == ""

        # Turned on while it runs: the next key gets the model's answer in the comment.
        nvim.lua_json("T.set_settings('{\\\"complete_in_comments\\\": true}')")
        nvim.send("<BS> ")
        wait_ghost(nvim, "lines in the file", "ghost text in the comment once allowed")

        # A string, with completions in strings still off.
        nvim.send("<Esc>o        " + STRING_TYPED)
        no_ghost(nvim)
        wait_stat(nvim, "refused_string", 1)


@pytest.mark.parametrize("build_id", BUILD_IDS)
def test_snooze_hides_suggestions_until_it_ends(build_id: str, tmp_path: Path) -> None:
    with scripted(build_id, tmp_path, "count.py", SCRIPTED_START) as nvim:
        nvim.send(":CodellamaSnooze restart<CR>")
        wait_until(lambda: statusline(nvim) == "codellama: snoozed until restart", 20, "snoozed")
        nvim.send(":CodellamaSnooze 0<CR>")
        wait_until(lambda: statusline(nvim).startswith("codellama: ready"), 20, "resumed")

        nvim.send(":CodellamaSnooze 0.25<CR>")  # fifteen seconds
        line = wait_until(
            lambda: (t := statusline(nvim)).startswith("codellama: snoozed until") and t,
            20,
            "the statusline to say snoozed",
        )
        print(f"[{build_id}] statusline: {line!r}")
        nvim.send("GAf")
        no_ghost(nvim, lambda: statusline(nvim).startswith("codellama: snoozed"))
        wait_stat(nvim, "refused_snoozed", 1)  # asked, and answered empty

        # It ends by itself; the next key gets the suggestion.
        wait_until(lambda: statusline(nvim).startswith("codellama: ready"), 60, "the end")
        nvim.send("<BS>f")
        wait_ghost(nvim, "or line in handle:", "the suggestion after the snooze")


@pytest.mark.parametrize("build_id", BUILD_IDS)
def test_two_spaces_the_menu_and_tab(build_id: str, tmp_path: Path) -> None:
    with scripted(build_id, tmp_path, "two.py", TWO_SPACE_FILE) as nvim:
        body = body_in("  ")
        # A two-space file: the model writes four spaces, the ghost text has two.
        nvim.send("Go  ")
        wait_ghost(nvim, body, "two-space ghost text")

        # The completion menu (<C-n>: words of the buffer) hides it; closed, it comes back.
        nvim.send("<C-n>")
        wait_until(lambda: nvim.expr("pumvisible()").strip() == "1", 10, "the menu")
        no_ghost(nvim, lambda: nvim.expr("pumvisible()").strip() == "1")
        nvim.send("<C-e>")
        nvim.send("x<BS>")  # a key (Neovim 0.12 asks again at the next one)
        wait_ghost(nvim, body, "the ghost text after the menu closed")

        # <Tab> accepts what is on screen.
        nvim.send("<Tab>")
        want = TWO_SPACE_FILE + "  " + body
        wait_until(
            lambda: "\n".join(nvim.state()["lines"]) == want,
            20,
            "the accepted suggestion",
            0.1,
            lambda: json.dumps(nvim.state()),
        )

        # With nothing on screen, <Tab> does what it did before: indent an empty line...
        nvim.send("<Esc>o")
        wait_until(lambda: nvim.state()["mode"] == "i", 10, "insert mode")
        nvim.send("<Tab>")
        indent = wait_until(
            lambda: (line := nvim.state()["lines"][-1]) and line,
            20,
            "<Tab> to indent",
            0.1,
            lambda: json.dumps(nvim.state()),
        )
        assert indent.strip() == "" and indent, indent
        no_ghost(nvim)

        # ... and jump to a snippet's next place (Neovim's own <Tab> mapping).
        nvim.send("<Cmd>lua vim.snippet.expand('for $1 in $2:')<CR>x<Tab>y")
        wait_until(
            lambda: nvim.state()["lines"][-1] == indent + "for x in y:",
            20,
            "the snippet's places filled with <Tab> between them",
            0.1,
            lambda: json.dumps(nvim.state()),
        )

        # ... and with the menu open, what the user's own <Tab> does there: the next item.
        nvim.lua_json("T.map_tab_to_menu()")
        nvim.send("<Esc>oi<C-n>")  # words of the buffer: item, items, in
        wait_until(lambda: nvim.expr("pumvisible()").strip() == "1", 10, "the menu")
        first = int(nvim.expr("complete_info(['selected']).selected"))
        nvim.send("<Tab>")
        wait_until(
            lambda: int(nvim.expr("complete_info(['selected']).selected")) == first + 1,
            10,
            "<Tab> to select the menu's next item",
            0.1,
            lambda: nvim.expr("string(complete_info())"),
        )
