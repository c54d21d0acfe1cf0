"""What a Python file defines, as the prompt shows it: its top-level functions (signature, first
docstring line), classes (bases, fields, method signatures) and constants, and its imports (to
follow re-exports).

Why the standard ``ast`` and not jedi: ``ast`` gives exactly that in about a millisecond per
file, with nothing to install and no inference cache that grows with the workspace; jedi's
type inference costs tens of milliseconds per lookup, too slow for a 50 ms prompt budget,
and what it adds (types of expressions) is not what the prompt shows. Files on disk are
mostly complete; one that does not parse falls back to the header regex of
:mod:`codellama_lsp.context.open_documents`. Each definition is cut to a few lines and a file
to ``FILE_TEXT_LIMIT`` characters of definitions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codellama_lsp.context.open_documents import definitions
from codellama_lsp.cursor import lsp_lines

Kind = Literal["function", "class", "constant"]
FILE_TEXT_LIMIT = 40_000
SIGNATURE_CHARS = 240
VALUE_CHARS = 80
DOC_CHARS = 100
CLASS_MEMBERS = 12


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    kind: Kind
    lines: tuple[str, ...]
    """What the prompt shows, without comment marks: ``def f(a, b) -> int`` + doc line, …"""


@dataclass(frozen=True, slots=True)
class ModuleInfo:
    path: str
    module: str
    """Dotted name from its root: ``pkg.sub.mod``; a package's ``__init__`` is ``pkg.sub``."""
    relative: str
    """Path from its root, shown above its definitions in the prompt."""
    symbols: dict[str, Symbol]
    imports: dict[str, tuple[str, str | None]]
    """Local name → (absolute module, imported name or None for a module import)."""
    is_package: bool


def package_prefix(root: Path) -> str:
    """``pkg.sub.`` when the root itself is inside packages (a workspace opened on a package
    folder), so that module names match the imports that name them absolutely."""
    names: list[str] = []
    folder = root
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        names.insert(0, folder.name)
        folder = folder.parent
    return "".join(f"{name}." for name in names)


def module_name(relative: str, prefix: str = "") -> tuple[str, bool]:
    """(dotted module, is package) of a path relative to its root (with ``prefix``)."""
    parts = (prefix.replace(".", "/") + relative[: -len(Path(relative).suffix)]).split("/")
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def absolute_module(current: str, is_package: bool, level: int, module: str | None) -> str:
    """The module ``from {'.' * level}{module} import …`` names, seen from ``current``."""
    if level == 0:
        return module or ""
    parts = current.split(".") if current else []
    if not is_package:
        parts = parts[:-1]
    if level > 1:
        parts = parts[: max(0, len(parts) - (level - 1))]
    return ".".join([*parts, *([module] if module else [])])


def imports_of(
    statements: Iterable[ast.stmt], current: str, is_package: bool
) -> dict[str, tuple[str, str | None]]:
    found: dict[str, tuple[str, str | None]] = {}
    for node in statements:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    found[alias.asname] = (alias.name, None)
                else:
                    top = alias.name.split(".")[0]
                    found[top] = (top, None)
        elif isinstance(node, ast.ImportFrom):
            base = absolute_module(current, is_package, node.level, node.module)
            for alias in node.names:
                if alias.name != "*":
                    found[alias.asname or alias.name] = (base, alias.name)
    return found


def cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _doc_line(node: ast.AST) -> str:
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Module):
        return ""
    doc = ast.get_docstring(node, clean=True) or ""
    first = doc.strip().split("\n", 1)[0].strip()
    return cut(first, DOC_CHARS)


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    keyword = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return cut(f"{keyword} {node.name}({ast.unparse(node.args)}){returns}", SIGNATURE_CHARS)


def _function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> Symbol:
    doc = _doc_line(node)
    return Symbol(node.name, "function", (_signature(node), *([f"    {doc}"] if doc else [])))


def _class(node: ast.ClassDef) -> Symbol:
    bases = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
    header = cut(f"class {node.name}({', '.join(bases)})" if bases else f"class {node.name}", 200)
    lines = [header]
    doc = _doc_line(node)
    if doc:
        lines.append(f"    {doc}")
    members = 0
    for item in node.body:
        if members >= CLASS_MEMBERS:
            lines.append("    ...")
            break
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            value = f" = {cut(ast.unparse(item.value), VALUE_CHARS)}" if item.value else ""
            lines.append(f"    {item.target.id}: {cut(ast.unparse(item.annotation), 60)}{value}")
            members += 1
        elif isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
            name = item.name
            if name.startswith("_") and name not in ("__init__", "__call__"):
                continue
            lines.append(f"    {_signature(item)}")
            members += 1
    return Symbol(node.name, "class", tuple(lines))


def _constant(target: ast.expr, value: ast.expr | None, annotation: ast.expr | None) -> Symbol:
    assert isinstance(target, ast.Name)
    text = target.id
    if annotation is not None:
        text += f": {cut(ast.unparse(annotation), 60)}"
    if value is not None:
        text += f" = {cut(ast.unparse(value), VALUE_CHARS)}"
    return Symbol(target.id, "constant", (text,))


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module statements, and those one level inside top-level ``if``/``try`` blocks."""
    for node in body:
        if isinstance(node, ast.If):
            yield from node.body
            yield from node.orelse
        elif isinstance(node, ast.Try):
            yield from node.body
            for handler in node.handlers:
                yield from handler.body
            yield from node.orelse
        else:
            yield node


def symbols_of(statements: Iterable[ast.stmt]) -> dict[str, Symbol]:
    found: dict[str, Symbol] = {}
    used = 0
    for node in statements:
        symbol: Symbol | None = None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            symbol = _function(node)
        elif isinstance(node, ast.ClassDef):
            symbol = _class(node)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            if isinstance(node.targets[0], ast.Name):
                symbol = _constant(node.targets[0], node.value, None)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            symbol = _constant(node.target, node.value, node.annotation)
        if symbol is None or symbol.name in found:
            continue
        used += sum(len(line) + 3 for line in symbol.lines)
        if used > FILE_TEXT_LIMIT:
            break
        found[symbol.name] = symbol
    return found


def parse_file(source: str, relative: str, path: str, prefix: str = "") -> ModuleInfo:
    module, is_package = module_name(relative, prefix)
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        # Half-written file: the definition headers a regex finds, no imports.
        fallback = {
            d.name: Symbol(d.name, "function", (d.signature, *([f"    {d.doc}"] if d.doc else [])))
            for d in definitions(lsp_lines(source))
            if not d.signature.startswith((" ", "\t"))
        }
        return ModuleInfo(path, module, relative, fallback, {}, is_package)
    statements = list(_top_level(tree.body))
    return ModuleInfo(
        path,
        module,
        relative,
        symbols_of(statements),
        imports_of(statements, module, is_package),
        is_package,
    )
