"""End-to-end, VS Code (code-server + Chromium): the ghost text grows by itself (issue 27).

The scripted model server writes the ``for`` block line by line and holds it after the body's
first line until the test releases it (no timing involved). With ``earlyFirstLine = "always"``
the server answers at that first line; VS Code shows it, and the status bar spins ("writing…")
while the rest is being written. Released, the server sends ``codellama/suggestionGrown``; the
extension has VS Code ask again, and the whole block is on screen with no key pressed; Tab
inserts exactly it. Typing something else before the release stops the generation: nothing
grows.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.editors.test_vscode import (  # noqa: F401 (browser: a fixture)
    GHOST_JS,
    CodeServer,
    browser,
    require_vscode,
    run_command,
    scripted_editor_settings,
    status_text,
)
from tests.support import wait_until
from tests.support.editors import (
    GROW_FIRST,
    GROW_QUIET,
    GROW_TYPED,
    GROW_WHOLE,
    SCRIPTED_START,
    held_block,
)
from tests.support.model_servers import release_scripted

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

Held = tuple[CodeServer, Path, dict[str, Any]]


@pytest.fixture
def held_code_server(tmp_path: Path) -> Iterator[Held]:
    """code-server editing count.py; its language server asks the scripted model server that
    holds the block after the body's first line; the scripted server's settings (to release)."""
    vsix = require_vscode()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "count.py").write_text(SCRIPTED_START)
    with held_block(tmp_path) as scripted:
        settings = scripted_editor_settings(scripted, earlyFirstLine="always")
        server = CodeServer(tmp_path, vsix, workspace, settings)
        try:
            yield server, workspace, scripted
        finally:
            server.close()


def full_log(server: CodeServer) -> str:
    logs = sorted(server.user_data.glob("logs/*/exthost*/codellama-lsp.codellama-lsp/*.log"))
    return "\n".join(p.read_text(errors="replace") for p in logs)


def server_stats(server: CodeServer) -> dict[str, str]:
    """The figures of the last *Show Stats* (the extension logs them all, one `key: value` a
    line, after "Stats:")."""
    logs = sorted(server.user_data.glob("logs/*/exthost*/codellama-lsp.codellama-lsp/*.log"))
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    block = text.rsplit("Stats:\n", 1)[-1] if "Stats:\n" in text else ""
    return dict(re.findall(r"^([\w.]+): (\S+)$", block, re.MULTILINE))


def stats_after_show(
    server: CodeServer, driver: Any, describe: Callable[[], str]
) -> dict[str, str]:
    """Run *Show Stats* and read the figures it logs."""
    run_command(driver, "Code Llama: Show Stats", describe)
    wait_until(
        lambda: server_stats(server).get("suggestions_grown") is not None,
        30,
        "the stats in the extension log",
        0.3,
        describe,
    )
    # The toast would take the next keys: close it.
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    return server_stats(server)


def open_count_py(held: Held, driver: Any, artifacts_dir: Path, name: str) -> Callable[[], str]:
    """Open count.py, wait for the server to be ready, put the cursor at the end; the failure
    description (a screenshot, the status bar, the extension log)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    server, workspace, _ = held
    file = workspace / "count.py"
    payload = json.dumps([["openFile", f"vscode-remote://{file}"]])
    driver.get(f"{server.url}/?folder={workspace}&payload={urllib.parse.quote(payload)}")

    def describe() -> str:
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(artifacts_dir / f"vscode-{name}-failure.png"))
        ghost = driver.execute_script(GHOST_JS)
        return (
            f"ghost now: {ghost!r}\nstatus bar: {status_text(driver)!r}\n"
            f"extension log:\n{full_log(server)}"
        )

    wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, ".tab .label-name"),
        60,
        "the editor tab for count.py",
        0.3,
        describe,
    )
    wait_until(lambda: "ready" in status_text(driver), 90, "ready", 0.2, describe)
    driver.find_element(By.CSS_SELECTOR, ".monaco-editor .view-lines").click()
    ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.END).key_up(Keys.CONTROL).perform()
    return describe


def wait_ghost(driver: Any, want: str, what: str, describe: Callable[[], str]) -> str:
    return str(
        wait_until(
            lambda: driver.execute_script(GHOST_JS) == want and want,
            60,
            what,
            0.05,
            describe,
        )
    )


def test_the_first_line_then_the_whole_block_with_no_key(
    held_code_server: Held,
    browser: WebDriver,  # noqa: F811 (the fixture imported above)
    artifacts_dir: Path,
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    server, workspace, scripted = held_code_server
    driver = browser
    file = workspace / "count.py"
    try:
        describe = open_count_py(held_code_server, driver, artifacts_dir, "grow")
        ActionChains(driver).send_keys(GROW_TYPED).perform()
        wait_ghost(driver, GROW_FIRST, "the first line (the rest is held)", describe)
        # The model is still writing: the status bar spins.
        writing = wait_until(
            lambda: t if "writing" in (t := status_text(driver)) else None,
            30,
            "the status bar to say a suggestion is being written",
            0.1,
            describe,
        )
        driver.save_screenshot(str(artifacts_dir / "vscode-grow-first-line.png"))
        print(f"first line shown; status bar {writing!r}")

        release_scripted(scripted)
        wait_ghost(driver, GROW_WHOLE, "the whole block, with no key pressed", describe)
        driver.save_screenshot(str(artifacts_dir / "vscode-grow-whole-block.png"))
        wait_until(
            lambda: "writing" not in status_text(driver),
            30,
            "the status bar to stop spinning",
            0.1,
            describe,
        )
        ActionChains(driver).send_keys(Keys.TAB).perform()
        want = SCRIPTED_START + GROW_TYPED + GROW_WHOLE
        wait_until(
            lambda: file.read_text() == want,
            20,
            "the whole block in the file",
            0.1,
            lambda: f"file: {file.read_text()!r}\n{describe()}",
        )
        stats = stats_after_show(server, driver, describe)
        print(f"server figures: grown {stats['suggestions_grown']}, stats {stats}")
        assert stats["suggestions_grown"] == "1"
        # Asked again: the block from the cache, no new generation (after the accept, the
        # server prefetches the next place: that one is not the block's).
        assert int(stats["generations_started"]) - int(stats["prefetches"]) == 1
        assert int(stats["cache_hits"]) >= 1
    finally:
        log = server.extension_log()
        if log:
            print(f"--- extension log ---\n{log}")


def test_typing_something_else_leaves_no_block(
    held_code_server: Held,
    browser: WebDriver,  # noqa: F811 (the fixture imported above)
    artifacts_dir: Path,
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    server, workspace, scripted = held_code_server
    driver = browser
    file = workspace / "count.py"
    try:
        describe = open_count_py(held_code_server, driver, artifacts_dir, "grow-stop")
        ActionChains(driver).send_keys(GROW_TYPED).perform()
        wait_ghost(driver, GROW_FIRST, "the first line (the rest is held)", describe)
        ActionChains(driver).send_keys("x").perform()  # not what the suggestion has
        want = SCRIPTED_START + GROW_TYPED + "x"
        wait_until(lambda: file.read_text() == want, 20, "fx saved", 0.1, describe)
        wait_until(
            lambda: driver.execute_script(GHOST_JS) is None, 30, "no ghost text", 0.05, describe
        )
        release_scripted(scripted)
        deadline = time.monotonic() + GROW_QUIET
        while time.monotonic() < deadline:
            assert driver.execute_script(GHOST_JS) is None, describe()
            time.sleep(0.1)
        assert file.read_text() == want
        stats = stats_after_show(server, driver, describe)
        print(f"server figures: {stats}")
        assert stats["suggestions_grown"] == "0"
        assert int(stats["generations_cancelled"]) >= 1
    finally:
        log = server.extension_log()
        if log:
            print(f"--- extension log ---\n{log}")
