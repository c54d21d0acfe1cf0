"""No import cycles among the package's modules, counting imports inside functions too.

A cycle hidden in a function body (``cli`` → ``model_server`` → ``cli``) still ties two modules
together: neither can be understood, moved or tested without the other.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "codellama_lsp"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def imported_modules(path: Path) -> set[str]:
    """Every ``codellama_lsp`` module or name that ``path`` imports, anywhere in the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {
        # A package importing its own submodules is how packages work, not a cycle.
        name: {
            other
            for other in imported_modules(path)
            if other in modules and other != name and not other.startswith(name + ".")
        }
        for name, path in modules.items()
    }


def test_the_package_has_no_import_cycles() -> None:
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_cycle_check_sees_imports_inside_functions() -> None:
    graph = import_graph()
    assert "codellama_lsp.model_server" in graph["codellama_lsp.cli"]
