"""End-to-end, VS Code (code-server): the user decides when suggestions appear (issue 30).

Against the scripted model server (known answers): no ghost text in a comment or a string with
those settings off (the server counts the refusals; that the model answers there, and that a
live change of the settings takes effect, is tests/test_user_rules.py's); a two-space file gets
two-space suggestions from a model that writes four; the status bar menu snoozes suggestions
and they come back when the snooze ends; with the suggest widget open, the ghost text follows
the selected item (``selectedCompletionInfo``).
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

from tests.editors.test_vscode import (  # noqa: F401 (browser: a fixture)
    GHOST_JS,
    STATUS_ITEM,
    CodeServer,
    browser,
    require_vscode,
    run_command,
    scripted_editor_settings,
    status_text,
    texts,
)
from tests.support import wait_until
from tests.support.editors import SCRIPTED_START
from tests.support.model_servers import scripted_model_server
from tests.support.scripted_model_server import (
    COMMENT_TYPED,
    INDENT_HEAD,
    MENU_NEXT_LINE,
    RULE_ANSWERS,
    STRING_TYPED,
    TYPING_TARGET,
    body_in,
)

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

TWO_SPACE_FILE = INDENT_HEAD.format(unit="  ").rstrip(" \n")
"""``def total(items):`` and ``  total = 0``; Enter then auto-indents two spaces."""
QUIET_WINDOW = 2.5
"""Seconds a ghost text that must not come is looked for (after the request was answered)."""


@contextlib.contextmanager
def scripted_vscode(tmp_path: Path, **server_settings: Any) -> Iterator[tuple[CodeServer, Path]]:
    """code-server with count.py and two.py, its language server asking the scripted model
    server (RULE_ANSWERS), with ``server_settings`` (VS Code names) on top."""
    vsix = require_vscode()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "count.py").write_text(SCRIPTED_START)
    (workspace / "two.py").write_text(TWO_SPACE_FILE)
    with scripted_model_server(TYPING_TARGET, tmp_path, answers=RULE_ANSWERS) as scripted:
        settings = scripted_editor_settings(scripted, **server_settings)
        server = CodeServer(tmp_path, vsix, workspace, settings)
        try:
            yield server, workspace
        finally:
            log = server.extension_log()
            if log:
                print(f"--- extension log ---\n{log}")
            server.close()


class Page:
    """The workbench in the browser, with the few gestures these tests make."""

    def __init__(self, driver: WebDriver, server: CodeServer, workspace: Path, shots: Path) -> None:
        from selenium.webdriver.common.by import By

        self.driver, self.server, self.shots = driver, server, shots
        payload = json.dumps([["openFile", f"vscode-remote://{workspace / 'count.py'}"]])
        driver.get(f"{server.url}/?folder={workspace}&payload={urllib.parse.quote(payload)}")
        wait_until(
            lambda: driver.find_elements(By.CSS_SELECTOR, ".tab .label-name"),
            60,
            "the editor tab",
            0.3,
            self.describe,
        )
        wait_until(lambda: "ready" in status_text(driver), 90, "ready", 0.2, self.describe)
        self.focus_end()

    def describe(self) -> str:
        with contextlib.suppress(Exception):
            name = self.shots / f"vscode-rules-failure-{self.server.tmp.name}.png"
            self.driver.save_screenshot(str(name))
        return f"status bar: {status_text(self.driver)!r}\nghost: {self.ghost()!r}"

    def ghost(self) -> str | None:
        found = self.driver.execute_script(GHOST_JS)
        return str(found) if found else None

    def keys(self, *keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        for key in keys:
            ActionChains(self.driver).send_keys(key).perform()
            time.sleep(0.08)

    def chord(self, modifier: str, key: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).key_down(modifier).send_keys(key).key_up(modifier).perform()

    def focus_end(self) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        self.driver.find_element(By.CSS_SELECTOR, ".monaco-editor .view-lines").click()
        self.chord(Keys.CONTROL, Keys.END)

    def wait_ghost(self, check: Callable[[str], bool], what: str) -> str:
        def shown() -> str | None:
            ghost = self.ghost()
            return ghost if ghost is not None and check(ghost) else None

        return wait_until(shown, 30, what, 0.05, self.describe)

    def no_ghost(self, while_true: Callable[[], bool] = lambda: True) -> None:
        """No ghost text shows for QUIET_WINDOW seconds (while ``while_true()`` holds)."""
        deadline = time.monotonic() + QUIET_WINDOW
        while time.monotonic() < deadline and while_true():
            assert self.ghost() is None, self.describe()
            time.sleep(0.1)

    def server_count(self, name: str) -> int:
        """A counter of ``codellama.stats``, from *Show Stats* (the full set goes to the log)."""
        run_command(self.driver, "Code Llama: Show Stats", self.describe)
        time.sleep(1.0)
        found = re.findall(rf"^.*\b{name}: (\d+)$", self.server.extension_log(), re.M)
        return int(found[-1]) if found else -1

    def open_file(self, name: str) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        self.chord(Keys.CONTROL, "p")
        box = wait_until(
            lambda: self.driver.find_elements(By.CSS_SELECTOR, ".quick-input-box input"),
            10,
            "quick open",
            0.2,
            self.describe,
        )[0]
        box.send_keys(name)
        wait_until(
            lambda: any(name in t for t in texts(self.driver, ".quick-input-list .label-name")),
            10,
            f"{name} in quick open",
            0.2,
            self.describe,
        )
        box.send_keys(Keys.ENTER)
        wait_until(
            lambda: name in self.driver.title,  # the window's title: the active editor
            20,
            f"{name} open",
            0.2,
            self.describe,
        )
        self.chord(Keys.CONTROL, Keys.END)  # quick open left the focus in the editor


def test_no_ghost_in_comments_or_strings_and_two_space_suggestions(
    tmp_path: Path,
    browser: WebDriver,  # noqa: F811 (the fixture imported above)
    artifacts_dir: Path,
) -> None:
    from selenium.webdriver.common.keys import Keys

    with scripted_vscode(tmp_path, completeInComments=False, completeInStrings=False) as (
        server,
        workspace,
    ):
        page = Page(browser, server, workspace, artifacts_dir)
        # A comment, with completions in comments off: the server refuses, no ghost text.
        # (After a statement: a comment as a block's only body would not pass the parse check.)
        page.keys(*"total = 0", Keys.ENTER, *COMMENT_TYPED)
        page.no_ghost()
        wait_until(
            lambda: page.server_count("refused_comment") >= 1,
            60,
            "the server to refuse the request in the comment",
            1.0,
            page.describe,
        )
        assert page.ghost() is None

        # A string, with completions in strings still off.
        page.keys(Keys.ENTER, *STRING_TYPED)
        page.no_ghost()
        wait_until(
            lambda: page.server_count("refused_string") >= 1,
            60,
            "the server to refuse the request in the string",
            1.0,
            page.describe,
        )

        # A two-space file: the model writes four spaces, the ghost text has two.
        page.open_file("two.py")
        page.keys(Keys.ENTER)
        want = body_in("  ")
        shown = page.wait_ghost(lambda g: g.startswith("for item"), "ghost text in two.py")
        browser.save_screenshot(str(artifacts_dir / "vscode-two-spaces.png"))
        assert shown == want
        page.keys(Keys.TAB)
        wait_until(
            lambda: (workspace / "two.py").read_text() == TWO_SPACE_FILE + "\n  " + want,
            20,
            "the accepted suggestion saved",
            0.2,
            lambda: f"two.py: {(workspace / 'two.py').read_text()!r}\n{page.describe()}",
        )


def test_snooze_from_the_status_bar_then_the_suggest_widget(
    tmp_path: Path,
    browser: WebDriver,  # noqa: F811 (the fixture imported above)
    artifacts_dir: Path,
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with scripted_vscode(tmp_path) as (server, workspace):
        page = Page(browser, server, workspace, artifacts_dir)
        # The status bar item's menu: "Snooze for…" 0.3 minutes.
        browser.find_element(By.CSS_SELECTOR, STATUS_ITEM).click()
        box = wait_until(
            lambda: browser.find_elements(By.CSS_SELECTOR, ".quick-input-box input"),
            10,
            "the status bar menu",
            0.2,
            page.describe,
        )[0]
        rows = texts(browser, ".quick-input-list .monaco-list-row")
        assert any("5 minutes" in r for r in rows) and any("until restart" in r for r in rows), rows
        box.send_keys("Snooze for…")
        box.send_keys(Keys.ENTER)
        wait_until(
            lambda: any("how many minutes" in t for t in texts(browser, ".quick-input-widget")),
            10,
            "the minutes box",
            0.2,
            page.describe,
        )
        browser.find_elements(By.CSS_SELECTOR, ".quick-input-box input")[0].send_keys(
            "0.3", Keys.ENTER
        )
        snoozed = wait_until(
            lambda: t if "snoozed until" in (t := status_text(browser)) else None,
            20,
            "the status bar to say snoozed",
            0.2,
            page.describe,
        )
        assert re.search(r"Code Llama: snoozed until \d\d:\d\d$", snoozed), snoozed
        page.focus_end()
        page.keys("f")
        page.no_ghost(lambda: "snoozed" in status_text(browser))

        # It ends by itself: the status bar says ready, and the next key gets ghost text.
        wait_until(lambda: "ready" in status_text(browser), 60, "the snooze to end", 0.3)
        page.keys(Keys.BACKSPACE, "f")
        assert page.wait_ghost(lambda g: g == "or line in handle:", "ghost text after the snooze")

        # The suggest widget open on "tot" (its item: the server's completion of the line):
        # the ghost text follows the selected item, with the line the model writes after it.
        page.keys(Keys.TAB, Keys.ENTER, "t", "o", "t")
        page.chord(Keys.CONTROL, " ")
        wait_until(
            lambda: browser.find_elements(By.CSS_SELECTOR, ".suggest-widget.visible"),
            20,
            "the suggest widget",
            0.2,
            page.describe,
        )
        shown = page.wait_ghost(lambda g: MENU_NEXT_LINE.strip() in g, "ghost text, menu open")
        selected = texts(browser, ".suggest-widget.visible .monaco-list-row.focused")
        browser.save_screenshot(str(artifacts_dir / "vscode-suggest-widget.png"))
        print(f"selected {selected!r}, ghost {shown!r}")
        assert selected and "al += len(line)" in selected[0], selected
        assert browser.find_elements(By.CSS_SELECTOR, ".suggest-widget.visible")
