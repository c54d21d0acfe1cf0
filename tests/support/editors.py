"""Helpers for the end-to-end tests in real editors (Neovim, VS Code via code-server):
where the editors are, the server command they start, and what the tests type.

The editors are installed by scripts/install_editor_deps.sh into .tools/ (gitignored); a test
skips, saying so, only when its editor is not installed there.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support import ROOT, wait_until
from tests.support.model_servers import scripted_model_server
from tests.support.scripted_model_server import TYPING_HEAD, TYPING_TARGET

TOOLS = Path(os.environ.get("CODELLAMA_TOOLS_DIR", ROOT / ".tools"))
ARTIFACTS = ROOT / "artifacts"
INSTALL_HINT = "run scripts/install_editor_deps.sh"

T = TypeVar("T")


def server_command() -> str:
    """The real `codellama-lsp` of the Python that runs the tests (the project's own install);
    CODELLAMA_LSP_COMMAND overrides it (e.g. a wrapper that records the traffic)."""
    override = os.environ.get("CODELLAMA_LSP_COMMAND")
    if override:
        return override
    candidate = Path(sys.executable).parent / "codellama-lsp"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("codellama-lsp")
    if found is None:
        pytest.fail("codellama-lsp is not installed (pip install -e . in this venv)")
    return found


# What the tests type. The demo model is tiny: for some prefixes its completion is empty after
# clean-up, so the tests keep typing (like a user would) until a suggestion shows.
FIRST_TYPED = "    result = "
MORE_TYPED = "math.pi * radius ** 2 + radius / 2 - 1"  # no brackets: editors auto-close them


def type_until_ghost(
    type_text: Callable[[str], None],
    ghost: Callable[[], T | None],
    per_step: float = 6.0,
) -> tuple[str, T]:
    """Type FIRST_TYPED, then one more character at a time until `ghost()` shows something
    that stays. Returns (what was typed, what ghost() returned)."""
    typed = FIRST_TYPED
    type_text(typed)
    for char in [*MORE_TYPED, None]:
        deadline = time.monotonic() + per_step
        while time.monotonic() < deadline:
            value = ghost()
            if value:
                # Only a suggestion that stays put (a later response may still replace it).
                time.sleep(0.6)
                if ghost() == value:
                    return typed, value
                continue
            time.sleep(0.1)
        if char is None:
            break
        type_text(char)
        typed += char
    pytest.fail(f"no ghost text appeared while typing {typed!r}")


@dataclass(frozen=True)
class Step:
    """Type ``typed`` key by key, expect ghost text starting with ``ghost``, maybe accept it."""

    case: str
    typed: str
    ghost: str
    inserted: str = ""
    """What an accept adds after ``typed`` (empty: do not accept)."""


SCRIPTED_START = TYPING_HEAD + " " * 8
"""The file as the editor opens it, cursor at its end (under ``with open(path) as handle:``)."""
SCRIPTED_STEPS = [
    Step("after a letter", "f", "or line in handle:", "or line in handle:"),
    Step("start of an indented blank line", "\n" + " " * 12, "total += len(line)"),
    Step("after a space", "total += ", "len(line)", "len(line)"),
    Step("start of an indented blank line", "\n" + " " * 12, "print(line, os.sep)"),
    # An editor that auto-closes "(" shows the ghost before its ")"; the item replaces it.
    Step("after (", "print(", "line, os.sep", "line, os.sep)"),
]
SCRIPTED_END = (
    TYPING_HEAD + "        for line in handle:\n"
    "            total += len(line)\n"
    "            print(line, os.sep)"
)


GROW_TYPED = "f"
"""What the grow tests type at SCRIPTED_START's cursor (the start of a ``for`` line)."""
GROW_FIRST = "or line in handle:\n            total += len(line)"
"""What the first answer shows: a block header waits for the first line of its body."""
GROW_WHOLE = GROW_FIRST + "\n            print(line, os.sep)"
"""The whole block, once the scripted model server is released."""
GROW_SETTINGS = {"early_first_line": "always"}
"""Server settings of the grow tests, on top of the scripted server's."""
GROW_QUIET = 2.5
"""Seconds looked at for a ghost text that must not come."""


def held_block(folder: Path) -> AbstractContextManager[dict[str, Any]]:
    """The scripted model server writing the ``for`` block after GROW_TYPED, held after the
    body's first line until :func:`release_scripted`: the editor first sees GROW_FIRST."""
    return scripted_model_server(TYPING_TARGET, folder, block_lines=2, hold_after_lines=2)


def type_scripted_steps(
    type_key: Callable[[str], None],
    ghost: Callable[[], str | None],
    accept: Callable[[], None],
    document: Callable[[], str],
    describe: Callable[[], str],
    *,
    auto_indent: bool,
) -> list[str]:
    """Type SCRIPTED_STEPS as a person does (a key every ~80 ms) and check each ghost text and
    each accept against the document; returns what each step showed. With ``auto_indent`` the
    editor indents new lines itself, so the steps' indentation is not typed."""
    seen: list[str] = []
    expected = SCRIPTED_START
    for step in SCRIPTED_STEPS:
        typed = step.typed
        keys = typed.rstrip(" ") if auto_indent and typed.startswith("\n") else typed
        for key in keys:
            type_key(key)
            time.sleep(0.08)

        def step_ghost(want: str = step.ghost) -> str | None:
            shown = ghost()
            return shown if shown is not None and shown.startswith(want) else None

        shown = wait_until(
            step_ghost,
            20,
            f"ghost text {step.ghost!r} {step.case}",
            0.05,
            lambda: f"ghost now: {ghost()!r}\n{describe()}",
        )
        seen.append(f"{step.case}: typed {typed!r}, ghost {shown!r}")
        expected += typed
        if step.inserted:
            accept()
            expected += step.inserted

            def accepted(want: str = expected) -> bool:
                return document() == want

            def describe_document(want: str = expected) -> str:
                return f"document: {document()!r}\nexpected: {want!r}\n{describe()}"

            wait_until(
                accepted,
                20,
                f"the accepted text ({step.case}) in the document",
                0.1,
                describe_document,
            )
    assert expected == SCRIPTED_END
    return seen


def isolated_env(home: Path) -> dict[str, str]:
    """An environment with HOME and the XDG folders in a temporary folder."""
    env = dict(os.environ)
    for name, sub in {
        "HOME": "home",
        "XDG_CONFIG_HOME": "config",
        "XDG_DATA_HOME": "data",
        "XDG_STATE_HOME": "state",
        "XDG_CACHE_HOME": "cache",
    }.items():
        path = home / sub
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    # The server's model cache stays where it is (the demo model needs none, but be explicit).
    for keep in ("HF_HOME", "TRANSFORMERS_CACHE"):
        if keep in os.environ:
            env[keep] = os.environ[keep]
    env["HF_HUB_OFFLINE"] = "1"
    return env
