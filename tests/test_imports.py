"""Imports point one way, down the layers, with no cycle anywhere, counting imports inside
functions too.

A cycle hidden in a function body (``cli`` → ``model_server`` → ``cli``) still ties two modules
together: neither can be understood, moved or tested without the other. An import up a layer
(an engine reaching for the completion's clean-up rules) does the same to whole folders.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "codellama_lsp"
BENCHMARKS = ROOT / "benchmarks"

LAYERS: dict[str, int] = {
    "core": 0,
    "engines": 1,
    "context": 2,
    "completion": 2,
    "lsp": 3,
    "model_server": 3,
    "demo": 4,
    "cli": 5,
}
"""Each layer's rank: a module imports only from its own layer and from lower ranks. Layers of
one rank are peers and never import each other (context and completion; lsp and the model
server). ``cli`` dispatches to every subcommand (``demo`` included), so it sits above ``demo``."""

TOP_LEVEL: dict[str, str] = {
    "codellama_lsp": "core",
    "codellama_lsp.config": "core",
    "codellama_lsp.cursor": "core",
    "codellama_lsp.memory": "core",
    "codellama_lsp.settings_flags": "core",
    "codellama_lsp.stats": "core",
    "codellama_lsp.cli": "cli",
    "codellama_lsp.diagnose": "cli",
}
"""The layer of each module at the package's top level; a subpackage is a layer of its own."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
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


def import_graph(*folders: Path) -> dict[str, set[str]]:
    """Module → the modules it imports, among the modules in ``folders`` (the package when
    none is named)."""
    modules = {
        module_name(path): path for folder in folders or (PACKAGE,) for path in folder.rglob("*.py")
    }
    return {
        # A package importing its own submodules is how packages work, not a cycle.
        name: {
            other
            for other in imported_modules(path)
            if other in modules and other != name and not other.startswith(name + ".")
        }
        for name, path in modules.items()
    }


def layer_of(module: str) -> str:
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    folder = module.split(".")[1]
    assert folder in LAYERS, f"{module}: neither in TOP_LEVEL nor in a folder named in LAYERS"
    return folder


def upward_imports() -> list[str]:
    wrong = []
    for name, imports in import_graph().items():
        layer = layer_of(name)
        for other in imports:
            target = layer_of(other)
            if target != layer and LAYERS[target] >= LAYERS[layer]:
                wrong.append(f"{name} ({layer}) imports {other} ({target})")
    return sorted(wrong)


def test_the_package_and_the_benchmarks_have_no_import_cycles() -> None:
    graph = import_graph(PACKAGE, BENCHMARKS)
    assert "benchmarks.common" in graph["benchmarks.soak_model_server"]
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_the_cycle_check_sees_imports_inside_functions() -> None:
    graph = import_graph()
    assert "codellama_lsp.model_server" in graph["codellama_lsp.cli"]


def test_every_module_has_a_layer() -> None:
    assert {layer_of(name) for name in import_graph()} == set(LAYERS)


def test_imports_point_down_the_layers_and_peers_do_not_import_each_other() -> None:
    assert upward_imports() == []


def test_the_layer_check_sees_imports_inside_functions() -> None:
    # cli imports the LSP server only when asked to run it: still an edge, downward.
    assert "codellama_lsp.lsp.server" in import_graph()["codellama_lsp.cli"]
    assert LAYERS[layer_of("codellama_lsp.lsp.server")] < LAYERS[layer_of("codellama_lsp.cli")]
