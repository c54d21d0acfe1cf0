"""The VS Code extension's own checks, from the project's one test command: `npm test` (node's
test runner on the settings/status logic) and the TypeScript type check (strict)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support import ROOT
from tests.support.editors import INSTALL_HINT

VSCODE_DIR = ROOT / "editors" / "vscode"


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
