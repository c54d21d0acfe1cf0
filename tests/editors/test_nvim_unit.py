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
