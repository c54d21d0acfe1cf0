"""Does the prompt hold the definition the next line needs? Recall per context source.

On real multi-file projects this project did not write (installed packages), positions are
chosen whose true next line uses a name defined in another file of the same project: a name
the file imports from the project (``from .helpers import parse``, ``from pkg.mod import X``)
or an attribute of a project module it imports (``helpers.parse``). The cursor sits at the
start of that line (its indentation typed, the rest of the line removed; the lines below stay,
as when editing inside a file). The definition is found when the prompt has it as a comment
line: ``# def parse(``, ``# class X``, ``# X =``.

Sources, each with the context budget ``--budget`` tokens (the completer gives the context a
quarter of the prompt: prompts are built with 4 × budget):

- none: no context;
- open: today's open-documents context, with the 3 files nearest in the same folder open;
- index: the workspace index, no other file open;
- all: every source (index, recent edits, open documents) with the same 3 files open.

Then, on a workspace of at least 1,000 files (``--big``), the index build time and memory
(tracemalloc) and the time to build one prompt (context + ``build_prompt``) at the same kind
of positions.

    python -m benchmarks.context_recall        # 4 projects + transformers: ~7 min on 2 busy cores
    python -m benchmarks.context_recall --positions 40 --big ''   # quick: ~40 s

Results: docs/benchmarks.md, "Workspace context".
"""

from __future__ import annotations

import argparse
import ast
import gc
import json
import random
import re
import statistics
import sys
import sysconfig
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codellama_lsp.completion.prompt import LineCounter, build_prompt
from codellama_lsp.config import Settings
from codellama_lsp.context.open_documents import OpenDocumentsSource
from codellama_lsp.context.recent_edits import RecentEdits
from codellama_lsp.context.sources import (
    ContextSource,
    ContextSources,
    OpenDocument,
    Snapshot,
)
from codellama_lsp.context.workspace_index import WorkspaceIndex
from codellama_lsp.context.workspace_source import WorkspaceSource
from codellama_lsp.cursor import Cursor, lsp_lines
from codellama_lsp.engines.tokenization import CodeTokens

SITE = Path(sysconfig.get_paths()["purelib"])
PROJECTS = ("pygls", "aiohttp", "hypothesis", "cachetools")
SOURCES = ("none", "open", "index", "all")
_WORD = re.compile(r"[A-Za-z_]\w*")
_STRING = re.compile(r"([\'\"]).*?\1")


@dataclass(frozen=True)
class Position:
    path: Path
    line: int
    names: frozenset[str]
    """Names on the true line that are defined in another file of the project."""


def top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    body = list(tree.body)
    for node in list(body):
        if isinstance(node, ast.If | ast.Try):
            body.extend(node.body + node.orelse)
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def positions(root: Path, files: list[Path], count: int, seed: int) -> list[Position]:
    """Lines that use a project name defined in another file (the ground truth is plain
    ``ast``, independent of the index)."""
    package = root.name
    trees: dict[Path, ast.Module] = {}
    defined_in: dict[str, set[Path]] = {}
    for path in files:
        try:
            tree = ast.parse(path.read_text(errors="replace"))
        except (SyntaxError, ValueError):
            continue
        trees[path] = tree
        for name in top_level_names(tree):
            defined_in.setdefault(name, set()).add(path)
    found: list[Position] = []
    for path, tree in trees.items():
        own = top_level_names(tree)
        imported: set[str] = set()
        modules: set[str] = set()
        import_lines: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                import_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
                if node.level or (node.module or "").split(".")[0] == package:
                    for alias in node.names:
                        local = alias.asname or alias.name
                        # `from . import helpers` imports a module, else a name.
                        if local not in defined_in:
                            modules.add(local)
                        else:
                            imported.add(local)
            elif isinstance(node, ast.Import):
                import_lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
                for alias in node.names:
                    if alias.name.split(".")[0] == package:
                        modules.add(alias.asname or alias.name.split(".")[0])
        lines = lsp_lines(path.read_text(errors="replace"))
        for number, text in enumerate(lines):
            if number + 1 in import_lines or not text.strip() or text.strip().startswith("#"):
                continue
            code = _STRING.sub("", text.split("#", 1)[0])
            names = {
                w
                for w in _WORD.findall(code)
                if w in imported and w not in own and defined_in.get(w, set()) - {path}
            }
            for alias, attribute in re.findall(r"\b([A-Za-z_]\w*)\.([A-Za-z_]\w*)", code):
                if alias in modules and defined_in.get(attribute, set()) - {path}:
                    names.add(attribute)
            if names:
                found.append(Position(path, number, frozenset(names)))
    random.Random(seed).shuffle(found)
    return sorted(found[:count], key=lambda p: (str(p.path), p.line))


def cursor_at(position: Position) -> Cursor:
    lines = lsp_lines(position.path.read_text(errors="replace"))
    indent = lines[position.line][: len(lines[position.line]) - len(lines[position.line].lstrip())]
    lines[position.line] = indent
    return Cursor("\n".join(lines), position.line, len(indent))


def neighbours(path: Path, files: list[Path], n: int = 3) -> list[Path]:
    """The ``n`` files nearest ``path`` by name in its folder (what a user may have open)."""
    same = sorted(f for f in files if f.parent == path.parent)
    if path not in same:
        return []
    i = same.index(path)
    others = [f for f in same if f != path]
    return sorted(others, key=lambda f: (abs(same.index(f) - i), str(f)))[:n]


def has_definition(text: str, name: str) -> bool:
    pattern = rf"^# (?:async def |def |class ){re.escape(name)}\b|^# {re.escape(name)}\s*[:=]"
    return re.search(pattern, text, re.MULTILINE) is not None


def snapshot_of(path: Path, open_files: list[Path], root: Path) -> Snapshot:
    others = tuple(OpenDocument(f.as_uri(), 1, f.read_text(errors="replace")) for f in open_files)
    return Snapshot(path.as_uri(), tuple(sorted(others, key=lambda d: d.uri)), root.as_uri())


def provider(index: WorkspaceIndex, source: str, snapshot: Snapshot) -> ContextSources | None:
    chosen: list[ContextSource] = []
    if source == "open":
        chosen = [OpenDocumentsSource()]
    elif source == "index":
        chosen = [WorkspaceSource(index)]
    elif source == "all":
        chosen = [WorkspaceSource(index), OpenDocumentsSource(), RecentEdits()]
    if not chosen:
        return None
    return ContextSources(lambda _uri: snapshot, Settings, chosen)


def tokens() -> CodeTokens:
    from codellama_lsp.engines.model_names import resolve_model
    from codellama_lsp.engines.tokenization import load_tokenizer

    return CodeTokens(load_tokenizer(resolve_model("demo")))


def run_project(
    root: Path, count: int, budget: int, seed: int, code_tokens: CodeTokens
) -> dict[str, Any]:
    index = WorkspaceIndex()
    build = index.build([root])
    # Memory: a second build under tracemalloc (which slows it down), into a fresh index.
    gc.collect()
    tracemalloc.start()
    measured = WorkspaceIndex()
    measured.build([root])
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del measured
    files = [p for _root, p in index.discover([root])]
    chosen = positions(root, files, count, seed)
    counter = LineCounter(code_tokens)  # shared across prompts, as the completer's is
    found = dict.fromkeys(SOURCES, 0)
    times: list[float] = []
    for position in chosen:
        cursor = cursor_at(position)
        open_files = neighbours(position.path, files)
        for source in SOURCES:
            snapshot = snapshot_of(position.path, [] if source == "index" else open_files, root)
            context = provider(index, source, snapshot)
            started = time.perf_counter()
            extra = context.context(snapshot.uri, cursor, budget) if context else ""
            prompt = build_prompt(
                cursor,
                code_tokens,
                fmt="prefix",
                budget=4 * budget,
                extra_context=extra,
                counter=counter,
            )
            if source == "index":
                times.append((time.perf_counter() - started) * 1000)
            text = prompt.prefix_text
            if any(has_definition(text, name) for name in position.names):
                found[source] += 1
    n = max(1, len(chosen))
    return {
        "project": root.name,
        "files": build.files,
        "positions": len(chosen),
        "recall": {s: round(found[s] / n, 2) for s in SOURCES},
        "build_s": round(build.seconds, 2),
        "index_mib": round(current / 2**20, 1),
        "build_peak_mib": round(peak / 2**20, 1),
        "prompt_p50_ms": round(statistics.median(times), 1) if times else None,
        "prompt_p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 1) if times else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--projects", default=",".join(PROJECTS))
    parser.add_argument("--positions", type=int, default=100, help="per project")
    parser.add_argument("--budget", type=int, default=512, help="context tokens")
    parser.add_argument("--big", default="transformers", help="a package with ≥1,000 files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    code_tokens = tokens()
    rows = []
    names = [p for p in args.projects.split(",") if p]
    if args.big:
        names.append(args.big)
    for name in names:
        row = run_project(SITE / name, args.positions, args.budget, args.seed, code_tokens)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\ncontext budget {args.budget} tokens; recall = share of positions whose prompt")
    print("holds the definition of a name the next line uses\n")
    print("| project | files | positions | none | open (3 files) | index | all | build s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        rec = r["recall"]
        print(
            f"| {r['project']} | {r['files']} | {r['positions']} | {rec['none']} | "
            f"{rec['open']} | {rec['index']} | {rec['all']} | {r['build_s']} |"
        )
    print("\n| project | files | index MiB | build peak MiB | prompt p50 ms | prompt p95 ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['project']} | {r['files']} | {r['index_mib']} | {r['build_peak_mib']} | "
            f"{r['prompt_p50_ms']} | {r['prompt_p95_ms']} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
