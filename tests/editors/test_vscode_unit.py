"""The VS Code extension's own checks, from the project's one test command: `npm test` (node's
test runner on the settings/status logic) and the TypeScript type check (strict)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support import ROOT
from tests.support.editors import INSTALL_HINT

VSCODE_DIR = ROOT / "editors" / "vscode"
# Server settings deliberately not offered in the VS Code settings UI.
SERVER_ONLY = {"naive"}  # a benchmark baseline (no debounce, caches, KV reuse), not for users


def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        pytest.skip("npm is not installed")
    if not (VSCODE_DIR / "node_modules").is_dir():
        pytest.skip(f"editors/vscode/node_modules is missing (npm ci): {INSTALL_HINT}")
    return found


def test_extension_unit_tests() -> None:
    out = subprocess.run(
        ["timeout", "180", npm(), "test"],
        cwd=VSCODE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    print(out.stdout[-3000:])
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-3000:]
    assert "# fail 0" in out.stdout


def test_extension_typechecks() -> None:
    out = subprocess.run(
        ["timeout", "180", npm(), "run", "-s", "typecheck"],
        cwd=VSCODE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_extension_settings_mirror_the_server_settings() -> None:
    """Every server setting the extension contributes exists in the server (no drift), and every
    server setting has a VS Code setting."""
    import dataclasses
    import json
    import re

    from codellama_lsp.config import Settings

    package = json.loads((VSCODE_DIR / "package.json").read_text())
    properties = package["contributes"]["configuration"]["properties"]
    client_only = {
        "server.command",
        "server.pythonPath",
        "server.args",
        "server.env",
        "languages",
        "trace.server",
    }
    mirrored = {
        re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key.removeprefix("codellama."))
        for key in properties
        if key.removeprefix("codellama.") not in client_only
    }
    server = {f.name for f in dataclasses.fields(Settings)}
    assert mirrored - server == set(), "VS Code settings the server does not know"
    assert server - mirrored - SERVER_ONLY == set(), "server settings missing in the extension"
