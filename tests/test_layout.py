"""Measures of the package's shape that anyone can rerun: short functions, and modules on the
keystroke path small enough to read in one sitting (issue 26). Layers and cycles:
``tests/test_imports.py``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "codellama_lsp"
MAX_FUNCTION_LINES = 60
KEYSTROKE_PATH = ("lsp", "completion", "context")
"""The folders every keystroke's request goes through."""
MAX_KEYSTROKE_MODULE_LINES = 500


def function_lengths() -> dict[str, int]:
    """Lines of every function and method in the package, from ``def`` to its last line."""
    lengths = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"
                lengths[where] = node.end_lineno - node.lineno + 1
    return lengths


def keystroke_module_lengths() -> dict[str, int]:
    return {
        str(path.relative_to(PACKAGE.parent)): len(path.read_text().splitlines())
        for folder in KEYSTROKE_PATH
        for path in sorted((PACKAGE / folder).glob("*.py"))
    }


def test_no_function_is_longer_than_60_lines() -> None:
    lengths = function_lengths()
    assert len(lengths) > 500  # the measure sees the whole package
    assert {where: n for where, n in lengths.items() if n > MAX_FUNCTION_LINES} == {}


def test_no_module_on_the_keystroke_path_is_longer_than_500_lines() -> None:
    lengths = keystroke_module_lengths()
    assert "codellama_lsp/lsp/server.py" in lengths
    assert {name: n for name, n in lengths.items() if n > MAX_KEYSTROKE_MODULE_LINES} == {}
