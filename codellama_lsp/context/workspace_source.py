"""Definitions from the whole workspace (files that are not open), through the index.

For the cursor, the names the nearby code uses are resolved through the file's own imports
first (``from pkg.headers import parse_header`` → that function in ``pkg/headers.py``,
following re-exports), then by name anywhere in the workspace; then come the names the file
imports but the nearby code has not used yet (the next line often uses one). The chosen
definitions are cut to the budget and written as comments, grouped by file.

The text depends only on the complete lines (not the one being typed), on distances from a
line that moves in steps, and on the index; and the last text of a document is kept while the
definitions that matter most are all in it. So it stays the same while the user types and
moves about, and the KV cache keeps the prompt's start.
"""

from __future__ import annotations

import ast
import contextlib
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from codellama_lsp.context.open_documents import NEAR_LINES, identifiers
from codellama_lsp.context.python_outline import ModuleInfo, Symbol, cut, imports_of, module_name
from codellama_lsp.context.sources import CHARS_PER_TOKEN, Builder, Snapshot
from codellama_lsp.context.workspace_index import WorkspaceIndex
from codellama_lsp.cursor import Cursor

_IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import\b|import[ \t]+\w)", re.MULTILINE)
_DOTTED = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?")
_CALL = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
MAX_IMPORT_LINES = 40
SCAN_LINES = 200
ANCHOR_STEP = 8
FULL = 4
BRIEF = 8
BRIEF_CHARS = 120
KEEP_IF_SHOWN = FULL
"""The last text for a document is kept while its top candidates are all shown in it."""
REMEMBERED = 64
"""The first ``FULL`` definitions are shown whole (a class with its members), up to
``BRIEF`` by their first two lines (signature and docstring line), the rest by their
signature: more names fit, and a signature is most of what the next line needs."""


def uri_path(uri: str) -> str:
    return unquote(urlparse(uri).path) if uri.startswith("file:") else uri


def import_statements(lines: list[str], skip: int) -> tuple[list[ast.stmt], set[int]]:
    """The import statements among ``lines`` (all but line ``skip``, the one being typed),
    each parsed alone (the rest of the file may not parse), and the lines they take."""
    found: list[ast.stmt] = []
    taken: set[int] = set()
    text = "\n".join(lines)
    line, position = 0, 0
    for match in _IMPORT_LINE.finditer(text):
        line += text.count("\n", position, match.start())
        position = match.start()
        if line == skip or line in taken:
            continue
        statement = lines[line].strip()
        end = line
        while (
            statement.count("(") > statement.count(")") or statement.endswith("\\")
        ) and end + 1 < min(len(lines), line + MAX_IMPORT_LINES):
            end += 1
            statement = statement.rstrip("\\") + " " + lines[end].strip()
        with contextlib.suppress(SyntaxError, ValueError):
            found.extend(ast.parse(statement).body)
        taken.update(range(line, end + 1))
    return found, taken


def distances(lines: list[str], cursor_line: int, skip: set[int]) -> dict[str, int]:
    """How far from the cursor (on line ``cursor_line``) each identifier (and ``a.b`` pair) is
    used, in lines.

    Distances are counted from an anchor, the cursor's line rounded down to ``ANCHOR_STEP``
    lines, so that moving down a line or two does not reorder everything (the lines between
    the anchor and the cursor count as distance 0). Lines below count twice their distance
    (the code above says more about what comes next). Only ``SCAN_LINES`` either side are
    read, and never the cursor's own line (it changes on every keystroke) nor the ``skip``
    lines (imports).
    """
    anchor = cursor_line - cursor_line % ANCHOR_STEP
    found: dict[str, int] = {}
    first = max(0, anchor - SCAN_LINES)
    last = min(len(lines), anchor + ANCHOR_STEP + SCAN_LINES)
    order = sorted(
        (anchor - i if i < anchor else 0 if i < cursor_line else 2 * (i - anchor), i)
        for i in range(first, last)
        if i != cursor_line and i not in skip
    )
    # Nearest lines first: the first distance seen for a word is its smallest.
    for distance, i in order:
        for word in set(_DOTTED.findall(lines[i])):
            if word not in found:
                found[word] = distance
                head = word.split(".", 1)[0]
                if head not in found:
                    found[head] = distance
    return found


_BINDING = re.compile(r"\b([A-Za-z_]\w*)\s*(?:=(?!=)|:)|\b(?:as|for)\s+([A-Za-z_]\w*)")
_DEFINITION = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+([A-Za-z_]\w*)", re.MULTILINE)


def local_names(text: str, window: str) -> set[str]:
    """Names ``text`` defines (``def``, ``class``) and ``window`` assigns or takes as
    parameters or loop variables: not workspace definitions (a conservative guess: dict keys
    and slices count too)."""
    return {a or b for a, b in _BINDING.findall(window)} | set(_DEFINITION.findall(text))


def render(chosen: list[tuple[ModuleInfo, Symbol]]) -> str:
    out: list[str] = []
    previous = ""
    for info, symbol in chosen:
        if info.relative != previous:
            out.append(f"# {info.relative}\n")
            previous = info.relative
        out.extend(f"# {line}\n" for line in symbol.lines)
    return "".join(out)


@dataclass(frozen=True)
class _Shown:
    """The text last built for a document, and the definitions in it."""

    budget: int
    shown: dict[tuple[str, str], tuple[str, ...]]
    """(path, name) → the definition's lines when it was shown."""
    text: str

    def still_good(self, candidates: list[tuple[ModuleInfo, Symbol]], budget: int) -> bool:
        """The text can stay: the most relevant definitions are all in it, and nothing in
        it changed. A new name used near the cursor changes it; moving around does not."""
        if budget != self.budget:
            return False
        for info, symbol in candidates[:KEEP_IF_SHOWN]:
            if (info.path, symbol.name) not in self.shown:
                return False
        return all(
            self.shown.get((info.path, symbol.name), symbol.lines) == symbol.lines
            for info, symbol in candidates
        )


def _module_of_file(index: WorkspaceIndex, path: str) -> tuple[str, bool]:
    """The dotted module name of ``path`` in the index, and whether it is a package."""
    root = index.root_of(Path(path))
    if root is None:
        return "", False
    return module_name(Path(path).relative_to(root).as_posix(), index.prefix(root))


class WorkspaceSource:
    """The ``context_workspace`` source."""

    setting = "context_workspace"
    share = 1.0

    def __init__(self, index: WorkspaceIndex) -> None:
        self.index = index
        self._last: OrderedDict[str, _Shown] = OrderedDict()
        self._lock = threading.Lock()

    def fingerprint(self, snapshot: Snapshot) -> Hashable:
        return self.index.generation

    def prepare(self, snapshot: Snapshot) -> Builder:
        return lambda cursor, budget: self.context(snapshot.uri, cursor, budget)

    def candidates(self, uri: str, cursor: Cursor) -> list[tuple[ModuleInfo, Symbol]]:
        """Definitions for the cursor, the most relevant first."""
        index = self.index
        path = uri_path(uri)
        module, is_package = _module_of_file(index, path)
        statements, import_lines = import_statements(cursor.lines, cursor.line)
        imports = imports_of(statements, module, is_package)
        near = distances(cursor.lines, cursor.line, import_lines)
        window = cursor.lines[max(0, cursor.line - SCAN_LINES) : cursor.line + SCAN_LINES]
        defined_here = local_names(cursor.text, "\n".join(window)) - set(imports)
        above = cursor.lines[max(0, cursor.line - NEAR_LINES) : cursor.line]
        called = set(_CALL.findall("\n".join(above)))

        found: list[tuple[ModuleInfo, Symbol]] = []
        seen: set[tuple[str, str]] = set()

        def add(hit: tuple[ModuleInfo, Symbol] | None) -> None:
            if hit is None or hit[0].path == path:
                return
            key = (hit[0].path, hit[1].name)
            if key not in seen:
                seen.add(key)
                found.append(hit)

        def module_of(alias: str) -> str | None:
            base, name = imports[alias]
            if name is None:
                return base
            dotted = f"{base}.{name}" if base else name
            return dotted if index.module(dotted, path) is not None else None

        # 1. Names the code around the cursor uses, the nearest first: through the file's
        # imports (`name`, `module.name`), else by name when used in the nearest lines and
        # not bound in this file.
        for word in sorted(near, key=lambda w: (near[w], w)):
            alias, _, attribute = word.partition(".")
            if alias not in imports:
                if (
                    not attribute
                    and near[word] <= NEAR_LINES
                    and (word in called or word[:1].isupper())
                    and word not in defined_here
                    and word in identifiers(word)
                ):
                    add(index.by_name(word, path))
                continue
            base, original = imports[alias]
            if attribute:
                target = module_of(alias)
                if target is not None:
                    add(index.resolve(target, attribute, path))
            elif original is not None:
                add(index.resolve(base, original, path))
        # 2. What the file imports from the workspace and does not use yet.
        for _name, (base, original) in imports.items():
            if original is not None:
                add(index.resolve(base, original, path))
        return found

    def context(self, uri: str, cursor: Cursor, budget: int) -> str:
        chars = budget * CHARS_PER_TOKEN
        if chars <= 0 or not len(self.index):
            return ""
        candidates = self.candidates(uri, cursor)
        with self._lock:
            last = self._last.get(uri)
        if last is not None and last.still_good(candidates, budget):
            return last.text
        text, shown = self._choose(candidates, chars)
        with self._lock:
            self._last[uri] = _Shown(budget, shown, text)
            self._last.move_to_end(uri)
            while len(self._last) > REMEMBERED:
                self._last.popitem(last=False)
        return text

    def _choose(
        self, candidates: list[tuple[ModuleInfo, Symbol]], chars: int
    ) -> tuple[str, dict[tuple[str, str], tuple[str, ...]]]:
        chosen: list[tuple[ModuleInfo, Symbol]] = []
        shown: dict[tuple[str, str], tuple[str, ...]] = {}
        used = 0
        for rank, (info, symbol) in enumerate(candidates):
            brief = (cut(symbol.lines[0], BRIEF_CHARS),)
            if rank < FULL:
                shapes = [symbol.lines, symbol.lines[:2], brief]
            elif rank < BRIEF:
                shapes = [symbol.lines[:2], brief]
            else:
                shapes = [brief]
            for lines in shapes:
                cost = sum(len(line) + 3 for line in lines) + len(info.relative) + 3
                # No definition takes more than a quarter of the budget (a big class would
                # push out everything after it), unless in its shortest form.
                if used + cost <= chars and (cost <= chars // 4 or lines is brief):
                    chosen.append((info, Symbol(symbol.name, symbol.kind, lines)))
                    shown[(info.path, symbol.name)] = symbol.lines
                    used += cost
                    break
        # In a fixed order (by file, then name), not by rank: the text then changes only
        # when the chosen set does, and the KV cache keeps more of the prompt.
        text = render(sorted(chosen, key=lambda hit: (hit[0].relative, hit[1].name)))
        return text, shown
