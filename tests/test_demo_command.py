"""The README's first command: ``codellama-lsp demo`` shows a plausible completion."""

from __future__ import annotations

import re
import subprocess

from codellama_lsp.completion.parse_check import window
from codellama_lsp.cursor import Cursor
from codellama_lsp.demo.client import EXAMPLE
from tests.support import CLI, ROOT


def test_the_demo_shows_loading_and_a_completion_that_keeps_the_example_parsing() -> None:
    run = subprocess.run(
        [*CLI, "demo"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Loading weights of demo" in run.stderr and "demo ready" in run.stderr
    shown = re.search(r"⟨(.*)⟩", run.stdout, re.S)
    assert shown, run.stdout
    completion = shown.group(1)
    assert completion.strip(), run.stdout  # ghost text, not nothing
    lines = EXAMPLE.split("\n")
    cursor = Cursor(EXAMPLE, len(lines) - 1, len(lines[-1]))
    block = window(cursor, cursor.character)
    assert block is not None
    assert block.keeps_parsing(completion), completion  # the loop body it writes is Python
