"""End-to-end: the VS Code extension (editors/vscode) in real VS Code with the real server.

VS Code runs as code-server (VS Code for the web) with headless Debian Chromium driven by
selenium, all installed by scripts/install_editor_deps.sh. The test installs the built .vsix,
opens a Python file, types like a user, waits for the ghost text from the demo model, takes a
screenshot (artifacts/vscode-ghost-text.png), accepts with Tab, checks the saved file, the status
bar ("Code Llama: ready · N ms") and the "Code Llama: Show Stats" command (the accept reached
the server).
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from tests.support.model_servers import free_port, scripted_model_server
from tests.support.scripted_model_server import TYPING_TARGET

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CODE_SERVER = TOOLS / "code-server" / "bin" / "code-server"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
VSCODE_DIR = ROOT / "editors" / "vscode"

SOURCE = "import math\n\n\ndef area(radius):\n"

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,720",
]

# Ghost text as the user sees it in the focused editor: the inline part after the cursor
# (.ghost-text-decoration) and the preview lines below it (view zone .suggest-preview-text).
GHOST_JS = r"""
const editor = document.activeElement && document.activeElement.closest('.monaco-editor');
if (!editor) return null;
const text = (el) => el.textContent.replace(/\u00a0/g, ' ');
const all = (selector) => Array.from(editor.querySelectorAll(selector)).map(text);
const inline = all('.view-lines .ghost-text-decoration, .view-lines .ghost-text').join('');
const below = all('.view-zones .suggest-preview-text .view-line');
if (inline === '' && below.length === 0) return null;
return below.length ? [inline, ...below].join('\n') : inline;
"""


def vsix_path() -> Path | None:
    found = sorted(VSCODE_DIR.glob("*.vsix"))
    return found[-1] if found else None


def require_vscode() -> Path:
    missing = [str(p) for p in (CODE_SERVER, CHROMIUM, CHROMEDRIVER) if not p.exists()]
    vsix = vsix_path()
    if vsix is None:
        missing.append(f"{VSCODE_DIR}/*.vsix")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip)")
    if missing:
        pytest.skip(f"VS Code test needs {', '.join(missing)}: {INSTALL_HINT}")
    assert vsix is not None
    return vsix


class CodeServer:
    def __init__(self, tmp: Path, vsix: Path, workspace: Path, settings: dict[str, Any]) -> None:
        self.tmp = tmp
        self.user_data = tmp / "user-data"
        self.extensions = tmp / "extensions"
        (self.user_data / "User").mkdir(parents=True)
        (self.user_data / "User" / "settings.json").write_text(json.dumps(settings, indent=2))
        self.env = isolated_env(tmp)
        common = ["--user-data-dir", str(self.user_data), "--extensions-dir", str(self.extensions)]
        out = subprocess.run(
            ["timeout", "120", str(CODE_SERVER), *common, "--install-extension", str(vsix)],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0 and "successfully installed" in out.stdout, (
            out.stdout + out.stderr
        )
        self.port = free_port()
        self.log = tmp / "code-server.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                "timeout",
                "600",
                str(CODE_SERVER),
                *common,
                "--auth",
                "none",
                "--bind-addr",
                f"127.0.0.1:{self.port}",
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                "--disable-getting-started-override",
                str(workspace),
            ],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._healthy, 60, "code-server to answer /healthz", 0.3, self.read_log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"code-server exited:\n{self.read_log()}")
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def read_log(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def extension_log(self) -> str:
        logs = sorted(self.user_data.glob("logs/*/exthost*/codellama-lsp.codellama-lsp/*.log"))
        return "\n".join(p.read_text(errors="replace")[-5000:] for p in logs)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log_file.close()


def editor_settings(server_settings: dict[str, Any]) -> dict[str, Any]:
    """The extension's settings, as a user would set them, in a quiet, deterministic editor."""
    return {
        "codellama.server.command": server_command(),
        **{f"codellama.{key}": value for key, value in server_settings.items()},
        # No welcome page, no other suggestions, saved at once.
        "workbench.startupEditor": "none",
        "workbench.secondarySideBar.defaultVisibility": "hidden",
        "workbench.tips.enabled": False,
        "security.workspace.trust.enabled": False,
        "files.autoSave": "afterDelay",
        "files.autoSaveDelay": 100,
        "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
        "editor.suggestOnTriggerCharacters": False,
        "editor.minimap.enabled": False,
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "telemetry.telemetryLevel": "off",
        "update.mode": "none",
    }


@pytest.fixture
def code_server(tmp_path: Path) -> Iterator[tuple[CodeServer, Path]]:
    vsix = require_vscode()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "geometry.py").write_text(SOURCE)
    settings = editor_settings(
        {
            "model": "demo",
            "temperature": 0,
            "debounceMs": 0,
            "maxNewTokens": 48,
            "earlyFirstLine": "never",
        }
    )
    server = CodeServer(tmp_path, vsix, workspace, settings)
    try:
        yield server, workspace
    finally:
        server.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        with contextlib.suppress(Exception):
            driver.quit()


def scripted_editor_settings(scripted: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """:func:`editor_settings` for a language server that asks the scripted model server
    (``scripted``: its server settings), plus ``extra`` VS Code settings."""
    return editor_settings(
        {
            "model": scripted["model"],
            "backend": scripted["backend"],
            "serverUrl": scripted["server_url"],
            "promptFormat": scripted["prompt_format"],
            "temperature": scripted["temperature"],
            "debounceMs": scripted["debounce_ms"],
            **extra,
        }
    )


def texts(driver: Any, selector: str) -> list[str]:
    """The visible text of the elements matching `selector`, read in one go (the workbench
    re-renders often, so element handles go stale)."""
    script = (
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText.trim())"
    )
    return list(driver.execute_script(script, selector) or [])


# The extension's status bar item: VS Code gives it the id "<publisher>.<name>.<item id>".
STATUS_ITEM = "#codellama-lsp\\.codellama-lsp\\.codellama\\.status"


def status_text(driver: Any) -> str:
    found = texts(driver, STATUS_ITEM)
    return found[0] if found else ""


def run_command(driver: Any, title: str, describe: Any) -> None:
    """Run a command from the command palette (F1), as a user would."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    ActionChains(driver).send_keys(Keys.F1).perform()
    box = wait_until(
        lambda: driver.find_elements(By.CSS_SELECTOR, ".quick-input-box input"),
        10,
        "the command palette",
        0.2,
        describe,
    )[0]
    box.send_keys(title)
    wait_until(
        lambda: any(title in t for t in texts(driver, ".quick-input-list .monaco-list-row")),
        10,
        f"command {title!r}",
        0.2,
        describe,
    )
    box.send_keys(Keys.ENTER)


def test_ghost_text_tab_accept_and_status(
    code_server: tuple[CodeServer, Path], browser: WebDriver, artifacts_dir: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    server, workspace = code_server
    file = workspace / "geometry.py"
    driver = browser
    payload = json.dumps([["openFile", f"vscode-remote://{file}"]])
    driver.get(f"{server.url}/?folder={workspace}&payload={urllib.parse.quote(payload)}")

    def describe() -> str:
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(artifacts_dir / "vscode-failure.png"))
        return f"status bar: {status_text(driver)!r}\nextension log:\n{server.extension_log()}"

    try:
        wait_until(
            lambda: driver.find_elements(By.CSS_SELECTOR, ".tab .label-name"),
            60,
            "the editor tab for geometry.py",
            0.3,
            describe,
        )
        # The status bar item walks starting → loading (with progress) → ready.
        seen: list[str] = []

        def ready_status() -> str | None:
            text = status_text(driver)
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            return text if "ready" in text else None

        ready = wait_until(ready_status, 90, "the status bar to show ready", 0.1, describe)
        print(f"status bar while starting: {seen!r}")
        assert ready.endswith("Code Llama: ready")

        driver.find_element(By.CSS_SELECTOR, ".monaco-editor .view-lines").click()
        ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.END).key_up(
            Keys.CONTROL
        ).perform()
        typed, ghost = type_until_ghost(
            lambda text: ActionChains(driver).send_keys(text).perform(),
            lambda: driver.execute_script(GHOST_JS),
        )
        driver.save_screenshot(str(artifacts_dir / "vscode-ghost-text.png"))
        print(f"ghost text after typing {typed!r}: {ghost!r}")
        assert "<PRE>" not in ghost and "<MID>" not in ghost and "<EOT>" not in ghost
        # Auto save has written what was typed; the ghost text is not in the file.
        before = wait_until(
            lambda: t if (t := file.read_text()).endswith(typed) else None,
            10,
            "the typed text to be saved",
            0.1,
            describe,
        )
        assert before == SOURCE + typed

        ActionChains(driver).send_keys(Keys.TAB).perform()
        expected = before + ghost
        saved = wait_until(
            lambda: t if (t := file.read_text()) != before and len(t) >= len(expected) else None,
            20,
            "the accepted text to be saved",
            0.2,
            describe,
        )
        print(f"file after Tab:\n{saved}")
        assert saved == expected

        # The status bar shows the latency of the last completion.
        latency = wait_until(
            lambda: t if "·" in (t := status_text(driver)) else None,
            20,
            "the status bar to show the last latency",
            0.3,
            describe,
        )
        print(f"status bar after the completion: {latency!r}")
        assert re.search(r"Code Llama: ready · \d+(\.\d+)? m?s$", latency), latency

        # "Code Llama: Show Stats" from the command palette: the accept reached the server.
        run_command(driver, "Code Llama: Show Stats", describe)
        toast = wait_until(
            lambda: next(
                (t for t in texts(driver, ".notification-list-item-message") if "requests" in t),
                None,
            ),
            20,
            "the stats notification",
            0.3,
            describe,
        )
        print(f"stats notification: {toast!r}")
        assert "1 accepted" in toast, toast

        # "Code Llama: Toggle Completions" turns them off and on; the status bar follows.
        run_command(driver, "Code Llama: Toggle Completions", describe)
        off = wait_until(
            lambda: t if "off" in (t := status_text(driver)) else None,
            20,
            "the status bar to show off",
            0.3,
            describe,
        )
        run_command(driver, "Code Llama: Toggle Completions", describe)
        on = wait_until(
            lambda: t if "ready" in (t := status_text(driver)) else None,
            20,
            "the status bar to show ready again",
            0.3,
            describe,
        )
        print(f"status bar after toggling: {off!r}, then {on!r}")
        assert off == "Code Llama: off"
        driver.save_screenshot(str(artifacts_dir / "vscode-after-accept.png"))
    finally:
        log = server.extension_log()
        if log:
            print(f"--- extension log ---\n{log}")


@pytest.fixture
def code_server_with_key_setting(tmp_path: Path) -> Iterator[tuple[CodeServer, Path]]:
    """code-server whose settings.json still holds an API key (as before SecretStorage)."""
    vsix = require_vscode()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "geometry.py").write_text(SOURCE)
    settings = editor_settings(
        {
            "model": "demo",
            "temperature": 0,
            "debounceMs": 0,
            "maxNewTokens": 48,
            "earlyFirstLine": "never",
        }
    )
    settings["codellama.apiKey"] = "sk-from-settings"
    server = CodeServer(tmp_path, vsix, workspace, settings)
    try:
        yield server, workspace
    finally:
        server.close()


def test_alt_bracket_cycles_candidates_and_the_key_leaves_settings_json(
    code_server_with_key_setting: tuple[CodeServer, Path], browser: WebDriver, artifacts_dir: Path
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    server, workspace = code_server_with_key_setting
    settings_file = server.user_data / "User" / "settings.json"
    file = workspace / "geometry.py"
    driver = browser
    payload = json.dumps([["openFile", f"vscode-remote://{file}"]])
    driver.get(f"{server.url}/?folder={workspace}&payload={urllib.parse.quote(payload)}")

    def describe() -> str:
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(artifacts_dir / "vscode-cycle-failure.png"))
        return f"status bar: {status_text(driver)!r}\nextension log:\n{server.extension_log()}"

    try:
        wait_until(lambda: "ready" in status_text(driver), 90, "ready", 0.2, describe)
        # The key moved from settings.json into secret storage when the extension started.
        wait_until(
            lambda: "sk-from-settings" not in settings_file.read_text(),
            20,
            "the API key to leave settings.json",
            0.3,
            describe,
        )
        assert "codellama.model" in settings_file.read_text()  # the rest stays

        driver.find_element(By.CSS_SELECTOR, ".monaco-editor .view-lines").click()
        ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.END).key_up(
            Keys.CONTROL
        ).perform()
        typed, first = type_until_ghost(
            lambda text: ActionChains(driver).send_keys(text).perform(),
            lambda: driver.execute_script(GHOST_JS),
        )
        # Alt+]: VS Code asks again (Invoked), gets several candidates and shows the next one.
        ActionChains(driver).key_down(Keys.ALT).send_keys("]").key_up(Keys.ALT).perform()

        def another() -> str | None:
            ghost = driver.execute_script(GHOST_JS)
            return str(ghost) if ghost and ghost != first else None

        second = wait_until(
            another,
            60,
            "another candidate after Alt+]",
            0.2,
            describe,
        )
        print(f"after typing {typed!r}: {first!r}, after Alt+]: {second!r}")
        ActionChains(driver).key_down(Keys.ALT).send_keys("[").key_up(Keys.ALT).perform()
        wait_until(
            lambda: driver.execute_script(GHOST_JS) == first,
            20,
            "the first candidate again after Alt+[",
            0.2,
            describe,
        )
    finally:
        log = server.extension_log()
        if log:
            print(f"--- extension log ---\n{log}")


@pytest.fixture
def scripted_code_server(tmp_path: Path) -> Iterator[tuple[CodeServer, Path]]:
    """code-server whose language server asks the scripted model server (known answers)."""
    vsix = require_vscode()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "count.py").write_text(SCRIPTED_START)
    with scripted_model_server(TYPING_TARGET, tmp_path) as scripted:
        settings = scripted_editor_settings(scripted)
        server = CodeServer(tmp_path, vsix, workspace, settings)
        try:
            yield server, workspace
        finally:
            server.close()


def test_ghost_text_while_typing_a_word(
    scripted_code_server: tuple[CodeServer, Path], browser: WebDriver, artifacts_dir: Path
) -> None:
    """Ghost text after a letter, a space, "(" and on a fresh indented line; Tab inserts it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    server, workspace = scripted_code_server
    file = workspace / "count.py"
    driver = browser
    payload = json.dumps([["openFile", f"vscode-remote://{file}"]])
    driver.get(f"{server.url}/?folder={workspace}&payload={urllib.parse.quote(payload)}")

    def describe() -> str:
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(artifacts_dir / "vscode-typing-failure.png"))
        return f"status bar: {status_text(driver)!r}\nextension log:\n{server.extension_log()}"

    def type_key(key: str) -> None:
        ActionChains(driver).send_keys(Keys.ENTER if key == "\n" else key).perform()

    try:
        wait_until(
            lambda: driver.find_elements(By.CSS_SELECTOR, ".tab .label-name"),
            60,
            "the editor tab for count.py",
            0.3,
            describe,
        )
        wait_until(lambda: "ready" in status_text(driver), 90, "ready", 0.2, describe)
        driver.find_element(By.CSS_SELECTOR, ".monaco-editor .view-lines").click()
        ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.END).key_up(
            Keys.CONTROL
        ).perform()
        seen = type_scripted_steps(
            type_key,
            lambda: driver.execute_script(GHOST_JS),
            lambda: ActionChains(driver).send_keys(Keys.TAB).perform(),
            file.read_text,
            describe,
            auto_indent=True,
        )
        print("\n".join(seen))
        driver.save_screenshot(str(artifacts_dir / "vscode-typing.png"))
    finally:
        log = server.extension_log()
        if log:
            print(f"--- extension log ---\n{log}")


def test_accept_next_word_then_the_rest_and_see_the_figures(
    scripted_code_server: tuple[CodeServer, Path], browser: WebDriver, artifacts_dir: Path
) -> None:
    """Ctrl+Right (VS Code's accept next word, through the extension) takes a word at a time
    and tells the server; Tab takes the rest; Show Stats shows what the user did."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    server, workspace = scripted_code_server
    file = workspace / "count.py"
    driver = browser
    payload = json.dumps([["openFile", f"vscode-remote://{file}"]])
    driver.get(f"{server.url}/?folder={workspace}&payload={urllib.parse.quote(payload)}")

    def describe() -> str:
        with contextlib.suppress(Exception):
            driver.save_screenshot(str(artifacts_dir / "vscode-partial-failure.png"))
        return f"status bar: {status_text(driver)!r}\nextension log:\n{server.extension_log()}"

    def ghost(want: str) -> str:
        return str(
            wait_until(
                lambda: driver.execute_script(GHOST_JS) == want and want,
                20,
                f"ghost text {want!r}",
                0.05,
                lambda: f"ghost now: {driver.execute_script(GHOST_JS)!r}\n{describe()}",
            )
        )

    def saved(want: str) -> str:
        return str(
            wait_until(
                lambda: file.read_text() == want and want,
                20,
                f"the file to end with {want[-30:]!r}",
                0.1,
                lambda: f"file: {file.read_text()!r}\n{describe()}",
            )
        )

    def grown_past(was: str) -> str | None:
        text = file.read_text()
        return text if len(text) > len(SCRIPTED_START + was) else None

    def ctrl_right() -> None:
        ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.ARROW_RIGHT).key_up(
            Keys.CONTROL
        ).perform()

    try:
        wait_until(
            lambda: driver.find_elements(By.CSS_SELECTOR, ".tab .label-name"),
            60,
            "the editor tab for count.py",
            0.3,
            describe,
        )
        wait_until(lambda: "ready" in status_text(driver), 90, "ready", 0.2, describe)
        driver.find_element(By.CSS_SELECTOR, ".monaco-editor .view-lines").click()
        ActionChains(driver).key_down(Keys.CONTROL).send_keys(Keys.END).key_up(
            Keys.CONTROL
        ).perform()
        ActionChains(driver).send_keys("f").perform()
        line = "for line in handle:"
        accepted = "f"
        ghost(line[1:])
        # VS Code decides what a word is (it takes leading blanks on their own): follow it.
        for _ in range(3):
            ctrl_right()
            now = wait_until(
                lambda: grown_past(accepted),  # noqa: B023 (called at once)
                20,
                "the next word in the file",
                0.1,
                describe,
            )
            accepted = now[len(SCRIPTED_START) :]
            assert line.startswith(accepted) and len(accepted) < len(line), now
            ghost(line[len(accepted) :])
        print(f"accepted by words: {accepted!r}")
        driver.save_screenshot(str(artifacts_dir / "vscode-partial-accept.png"))
        ActionChains(driver).send_keys(Keys.TAB).perform()
        saved(SCRIPTED_START + line)

        run_command(driver, "Code Llama: Show Stats", describe)
        toast = wait_until(
            lambda: next(
                (t for t in texts(driver, ".notification-list-item-message") if "shown" in t),
                None,
            ),
            20,
            "the stats notification",
            0.3,
            describe,
        )
        print(f"stats notification: {toast!r}")
        assert "1 shown, 1 accepted, 3 partly accepted, 0 dismissed (acceptance 100%)" in toast
        whole, parts = len(line) - len(accepted), len(accepted) - 1
        assert f"Accepted: {whole} chars whole, {parts} chars in parts" in toast
    finally:
        log = server.extension_log()
        if log:
            print(f"--- extension log ---\n{log}")
