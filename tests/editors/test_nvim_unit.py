"""Unit tests of the Neovim plugin's pure Lua logic (tests/editors/nvim/unit_spec.lua), in each
installed Neovim build."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.editors import INSTALL_HINT, TOOLS, isolated_env

SPEC = Path(__file__).parent / "nvim" / "unit_spec.lua"


@pytest.mark.parametrize("build", ["nvim-0.12", "nvim-0.11"])
def test_lua_unit_spec(build: str, tmp_path: Path) -> None:
    nvim = TOOLS / build / "bin" / "nvim"
    if not nvim.exists():
        pytest.skip(f"Neovim ({build}) is not installed at {nvim}: {INSTALL_HINT}")
    out = subprocess.run(
        [
            "timeout",
            "60",
            str(nvim),
            "--headless",
            "--clean",
            "-l",
            str(SPEC),
            str(ROOT / "editors" / "nvim"),
        ],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed, 0 failed" in out.stdout


def test_help_file_has_its_tags(tmp_path: Path) -> None:
    """`:help codellama-candidates` and friends resolve (helptags reads the file cleanly)."""
    import shutil

    nvim = TOOLS / "nvim-0.12" / "bin" / "nvim"
    if not nvim.exists():
        pytest.skip(f"Neovim 0.12 is not installed at {nvim}: {INSTALL_HINT}")
    doc = tmp_path / "doc"
    shutil.copytree(ROOT / "editors" / "nvim" / "doc", doc)
    out = subprocess.run(
        ["timeout", "60", str(nvim), "--headless", "--clean", "-c", f"helptags {doc}", "-c", "qa"],
        env=isolated_env(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    tags = {line.split("\t")[0] for line in (doc / "tags").read_text().splitlines()}
    assert {"codellama-candidates", "codellama-api-key", "codellama-keys"} <= tags
    assert {"codellama-rules", "codellama-snooze", ":CodellamaSnooze", "codellama-menu"} <= tags
    assert "codellama-indentation" in tags
