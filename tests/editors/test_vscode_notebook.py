"""End-to-end, VS Code (code-server): ghost text in a Jupyter notebook's cell (issue 29).

VS Code's built-in notebook editor opens an ``.ipynb`` (no kernel). The language server asks
the scripted model server, which answers only a prompt that ends with the second cell's last
line, the third cell's marker and what the user typed in the third cell: the ghost text shows
only if the cells above reached the prompt (LSP notebook sync). The answer uses names from the
first two cells (``count_lines``, ``ROOT``); Tab inserts it and the saved notebook has it.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.editors.test_vscode import (  # noqa: F401 (browser: a fixture)
    GHOST_JS,
    CodeServer,
    browser,
    require_vscode,
    scripted_editor_settings,
    status_text,
)
from tests.support import wait_until
from tests.support.model_servers import scripted_model_server
from tests.support.notebooks import write_ipynb

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CELLS = [
    ("markdown", "# Line counts"),
    ("code", "import os\n\nROOT = os.getcwd()"),
    (
        "code",
        "def count_lines(path):\n    with open(path) as handle:\n"
        "        return sum(1 for _ in handle)",
    ),
    ("code", "total = "),
]
TYPED = "count_"
ANSWER = "lines(os.path.join(ROOT, 'data.txt'))"
PROMPT_END = "return sum(1 for _ in handle)\n\n# %%\ntotal = count_"
"""What the prompt must end with: the second code cell's end, the cell marker, the third cell."""


@contextlib.contextmanager
def notebook_vscode(tmp_path: Path) -> Iterator[tuple[CodeServer, Path]]:
    vsix = require_vscode()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    notebook = write_ipynb(workspace / "analysis.ipynb", CELLS)
    with scripted_model_server("", tmp_path, answers=[(PROMPT_END, ANSWER)]) as scripted:
        settings = scripted_editor_settings(scripted)
        # Opened from the URL's payload, a file gets the text editor unless told otherwise.
        settings["workbench.editorAssociations"] = {"*.ipynb": "jupyter-notebook"}
        server = CodeServer(tmp_path, vsix, workspace, settings)
        try:
            yield server, notebook
        finally:
            log = server.extension_log()
            if log:
                print(f"--- extension log ---\n{log}")
            server.close()


def saved_cells(notebook: Path) -> list[str]:
    with contextlib.suppress(ValueError, OSError):
        return ["".join(cell["source"]) for cell in json.loads(notebook.read_text())["cells"]]
    return []


def test_ghost_text_in_a_notebook_cell_uses_the_cells_above(
    tmp_path: Path,
    browser: WebDriver,  # noqa: F811 (the fixture imported above)
    artifacts_dir: Path,
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver = browser
    with notebook_vscode(tmp_path) as (server, notebook):
        workspace = notebook.parent
        payload = json.dumps([["openFile", f"vscode-remote://{notebook}"]])
        driver.get(f"{server.url}/?folder={workspace}&payload={urllib.parse.quote(payload)}")

        def describe() -> str:
            with contextlib.suppress(Exception):
                driver.save_screenshot(str(artifacts_dir / "vscode-notebook-failure.png"))
            ghost = driver.execute_script(GHOST_JS)
            return (
                f"status bar: {status_text(driver)!r}\nghost: {ghost!r}\n"
                f"extension log:\n{server.extension_log()}"
            )

        def code_cells() -> list[Any] | None:
            selector = ".cell-editor-container .monaco-editor .view-lines"
            found = list(driver.find_elements(By.CSS_SELECTOR, selector))
            return found if len(found) >= 3 else None

        editors = wait_until(code_cells, 90, "the notebook's three code cells", 0.3, describe)
        wait_until(lambda: "ready" in status_text(driver), 90, "ready", 0.2, describe)
        editors[2].click()
        ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.END).key_up(
            Keys.CONTROL
        ).perform()
        for key in TYPED:
            ActionChains(driver).send_keys(key).perform()
            time.sleep(0.08)
        ghost = wait_until(
            lambda: (g := driver.execute_script(GHOST_JS)) == ANSWER and g,
            30,
            f"the ghost text {ANSWER!r}",
            0.1,
            describe,
        )
        driver.save_screenshot(str(artifacts_dir / "vscode-notebook-ghost-text.png"))
        print(f"ghost text in the third cell after {TYPED!r}: {ghost!r}")

        ActionChains(driver).send_keys(Keys.TAB).perform()
        want = CELLS[3][1] + TYPED + ANSWER

        def saved_with_accept() -> list[str] | None:
            cells = saved_cells(notebook)
            return cells if len(cells) == 4 and cells[3] == want else None

        cells = wait_until(
            saved_with_accept,
            30,
            "the notebook saved with the accepted text",
            0.2,
            lambda: f"saved cells: {saved_cells(notebook)!r}\n{describe()}",
        )
        assert cells[:3] == [source for _kind, source in CELLS[:3]]
