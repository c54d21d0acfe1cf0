"""Notebooks: is the definition a cell needs, made in an earlier cell, in the cell's prompt?

Notebooks are built from real code (this repository's own modules, ``codellama_lsp/``), each
module split into cells as a notebook would hold it: the module docstring as a markdown cell,
the imports in one cell, each function or class in a cell of its own, consecutive other
top-level statements (constants, assignments) together in one cell. Comment lines go with the
statement below them.

Positions: lines of a cell (not the first cell) that use a name defined at the top level of an
earlier cell (a function, class or constant; found with ``ast`` on the module, so names in
strings and comments do not count) and not defined in the cell itself. The cursor sits at the
start of the line (its indentation typed, the rest removed; the lines below stay).

Two prompts at each position, built as the server builds them (``build_prompt`` with the
budget of ``max_context_tokens`` less ``max_new_tokens``, the default context sources with no
other document open, the demo tokenizer):

- **cell**: today's per-cell prompt: the cell is a document of its own;
- **window**: the notebook as one file (``codellama_lsp.context.notebook``: cells above,
  the cell, cells below), the cursor the server's (``codellama_lsp.lsp.notebooks``), with the
  open-documents context off: what the prompt's window of the file holds;
- **notebook**: the same with the server's default context, which adds an outline of the
  earlier cells' definitions to a long notebook's prompt.

The definition is present when the prompt's text before the cursor has its header as code
(``def name(``, ``class name``, ``NAME =`` at a line's start) or as the context's comment line
(``# def name(``).

    python -m benchmarks.notebook_recall              # every module, 2,048 tokens: ~1 min
    python -m benchmarks.notebook_recall --context 4096 --format prefix

Results: docs/benchmarks.md, "Notebooks".
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import random
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT
from codellama_lsp.completion.prompt import LineCounter, build_prompt
from codellama_lsp.config import Settings
from codellama_lsp.context.notebook import Cell, join_cells
from codellama_lsp.context.open_documents import OpenDocumentsSource
from codellama_lsp.context.recent_edits import RecentEdits
from codellama_lsp.context.sources import ContextSources, Snapshot
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.tokenization import CodeTokens
from codellama_lsp.lsp.notebooks import notebook_cursor

PROMPTS = ("cell", "window", "notebook")
MIN_CELLS = 3


@dataclass(frozen=True)
class Notebook:
    name: str
    cells: list[Cell]
    defined: list[set[str]]
    """Top-level names each cell defines (functions, classes, assigned names)."""


@dataclass(frozen=True)
class Position:
    notebook: Notebook
    cell: int
    line: int
    """The line in the cell."""
    names: frozenset[str]


def defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def kind_of(node: ast.stmt) -> str:
    if isinstance(node, ast.Import | ast.ImportFrom):
        return "import"
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return "definition"
    return "statement"


def groups(tree: ast.Module) -> Iterator[list[ast.stmt]]:
    """The top-level statements, one group per cell: a definition alone, runs of imports or
    of other statements together."""
    group: list[ast.stmt] = []
    for node in tree.body:
        if group and (kind_of(node) == "definition" or kind_of(node) != kind_of(group[-1])):
            yield group
            group = []
        group.append(node)
    if group:
        yield group


def first_line(node: ast.stmt) -> int:
    decorators = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def notebook_of(path: Path) -> Notebook | None:
    source = path.read_text()
    tree = ast.parse(source)
    lines = source.split("\n")
    body = list(tree.body)
    cells: list[Cell] = []
    defined: list[set[str]] = []
    docstring = ast.get_docstring(tree)
    if docstring and body and isinstance(body[0], ast.Expr):
        cells.append(Cell(docstring, "markdown", markdown=True))
        defined.append(set())
        tree = ast.Module(body=body[1:], type_ignores=[])
    start = first_line(tree.body[0]) - 1 if tree.body else len(lines)
    for group in groups(tree):
        end = group[-1].end_lineno or group[-1].lineno
        text = "\n".join(lines[start:end]).strip("\n")
        cells.append(Cell(text, "python"))
        defined.append(set().union(*(defined_names(node) for node in group)))
        start = end
    if sum(not c.markdown for c in cells) < MIN_CELLS:
        return None
    return Notebook(str(path.relative_to(ROOT)), cells, defined)


def positions(notebook: Notebook) -> Iterator[Position]:
    earlier: set[str] = set()
    for index, cell in enumerate(notebook.cells):
        if cell.markdown:
            continue
        wanted = earlier - notebook.defined[index]
        tree = ast.parse(cell.text)
        uses: dict[int, set[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in wanted:
                uses.setdefault(node.lineno - 1, set()).add(node.id)
        for line, names in sorted(uses.items()):
            yield Position(notebook, index, line, frozenset(names))
        earlier |= notebook.defined[index]


def cell_cursor(position: Position) -> tuple[str, int]:
    """The cell's text with the position's line cut to its indentation, and that column."""
    lines = position.notebook.cells[position.cell].text.split("\n")
    text = lines[position.line]
    indent = text[: len(text) - len(text.lstrip())]
    lines[position.line] = indent
    return "\n".join(lines), len(indent)


def cursors(position: Position) -> dict[str, Cursor]:
    text, column = cell_cursor(position)
    cells = list(position.notebook.cells)
    cells[position.cell] = Cell(text, "python")
    around = join_cells(cells, position.cell)
    joined = notebook_cursor(around, text, position.line, column)
    return {"cell": Cursor(text, position.line, column), "window": joined, "notebook": joined}


def has_definition(text: str, name: str) -> bool:
    header = rf"(?:async def |def |class ){re.escape(name)}\b|{re.escape(name)}\s*[:=]"
    return re.search(rf"^(?:# )?(?:{header})", text, re.MULTILINE) is not None


def tokens() -> CodeTokens:
    from codellama_lsp.engines.model_names import resolve_model
    from codellama_lsp.engines.tokenization import load_tokenizer

    return CodeTokens(load_tokenizer(resolve_model("demo")))


def prompt_text(cursor: Cursor, settings: Settings, code: CodeTokens, counter: LineCounter) -> str:
    """The text before the cursor of the server's prompt (``PromptMaker.make``'s budgets,
    the default context sources with no other document open)."""
    new_tokens = (
        settings.max_new_tokens_single_line if cursor.single_line else settings.max_new_tokens
    )
    budget = settings.max_context_tokens - new_tokens
    snapshot = Snapshot("file:///notebook.ipynb", (), None)
    sources = ContextSources(
        lambda _uri: snapshot, lambda: settings, [OpenDocumentsSource(), RecentEdits()]
    )
    extra = sources.context(snapshot.uri, cursor, budget // 4)
    fmt = settings.prompt_format if settings.prompt_format != "auto" else "fim"
    prompt = build_prompt(
        cursor,
        code,
        fmt=fmt,
        budget=budget,
        suffix_share=settings.fim_suffix_share,
        extra_context=extra,
        counter=counter,
    )
    return prompt.prefix_text


def run(settings: Settings, per_notebook: int, seed: int) -> dict[str, Any]:
    code, rng = tokens(), random.Random(seed)
    counter = LineCounter(code)
    files = sorted((ROOT / "codellama_lsp").rglob("*.py"))
    notebooks = [nb for nb in map(notebook_of, files) if nb is not None]
    found = dict.fromkeys(PROMPTS, 0)
    without_context = dataclasses.replace(settings, context_other_documents=False)
    chosen: list[Position] = []
    for notebook in notebooks:
        every = list(positions(notebook))
        rng.shuffle(every)
        chosen += every[:per_notebook]
    missed: list[str] = []
    for position in chosen:
        for name, cursor in cursors(position).items():
            context = settings if name != "window" else without_context
            text = prompt_text(cursor, context, code, counter)
            if any(has_definition(text, wanted) for wanted in position.names):
                found[name] += 1
            elif name == "notebook":
                missed.append(f"{position.notebook.name} cell {position.cell}")
    n = max(1, len(chosen))
    recall = {name: round(found[name] / n, 3) for name in PROMPTS}
    return {
        "notebooks": len(notebooks),
        "cells": sum(len(nb.cells) for nb in notebooks),
        "positions": len(chosen),
        "recall": recall,
        "ratio": round(recall["notebook"] / recall["cell"], 1) if recall["cell"] else None,
        "missed": missed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--context", type=int, default=2048, help="max_context_tokens")
    parser.add_argument("--format", default="fim", choices=("fim", "prefix"))
    parser.add_argument("--positions", type=int, default=10, help="most per notebook")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    settings = Settings(max_context_tokens=args.context, prompt_format=args.format)
    result = run(settings, args.positions, args.seed)
    print(json.dumps({k: v for k, v in result.items() if k != "missed"}))
    rec = result["recall"]
    print(f"\nmax_context_tokens {args.context}, {args.format} prompts, demo tokenizer")
    print("| notebooks | cells | positions | per-cell (today) | notebook, window only | notebook |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {result['notebooks']} | {result['cells']} | {result['positions']} | "
        f"{rec['cell']:.3f} | {rec['window']:.3f} | {rec['notebook']:.3f} |"
    )
    ratio = result["ratio"] if result["ratio"] is not None else "∞ (the per-cell prompt finds none)"
    print(f"\nratio, notebook to per-cell: {ratio}")
    if result["missed"]:
        print("\nmissed by the notebook prompt:", ", ".join(result["missed"][:20]))
    if args.json:
        Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
