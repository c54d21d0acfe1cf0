"""Context from other open documents, written as Python comments at the top of the prompt.

Two kinds, each under its own share of the budget:

* definitions (signature + first docstring line) of names used near the cursor that are
  defined in another open document or far above the cursor in the same one;
* snippets of other open documents ranked by Jaccard similarity of identifiers with the code
  around the cursor.

Regular expressions rather than ``ast``: the user's files are half-typed most of the time.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from codellama_lsp.context.sources import CHARS_PER_TOKEN, Builder, Snapshot
from codellama_lsp.cursor import Cursor, lsp_lines

SNIPPET_LINES = 16
NEAR_LINES = 20
FAR_ABOVE_LINES = 80
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEF = re.compile(r"^([ \t]*)(?:async\s+)?(def|class)\s+([A-Za-z_]\w*)")
_KEYWORDS = frozenset(
    [
        "False",
        "None",
        "True",
        "and",
        "as",
        "assert",
        "async",
        "await",
        "break",
        "class",
        "continue",
        "def",
        "del",
        "elif",
        "else",
        "except",
        "finally",
        "for",
        "from",
        "global",
        "if",
        "import",
        "in",
        "is",
        "lambda",
        "nonlocal",
        "not",
        "or",
        "pass",
        "raise",
        "return",
        "try",
        "while",
        "with",
        "yield",
        "self",
    ]
)


@dataclass(frozen=True)
class Definition:
    name: str
    signature: str
    doc: str
    line: int


def identifiers(text: str) -> set[str]:
    return {w for w in _IDENT.findall(text) if w not in _KEYWORDS and len(w) > 1}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def definitions(lines: list[str]) -> list[Definition]:
    """``def``/``class`` headers (joined across lines until ``:``) and first docstring line."""
    found = []
    for i, line in enumerate(lines):
        match = _DEF.match(line)
        if not match:
            continue
        header = line.strip()
        j = i
        while not header.rstrip().endswith(":") and j + 1 < len(lines) and j - i < 6:
            j += 1
            header += " " + lines[j].strip()
        doc = ""
        for follow in lines[j + 1 : j + 3]:
            stripped = follow.strip()
            if stripped.startswith(('"""', "'''")):
                doc = stripped.strip("\"' ").split(".")[0]
                break
            if stripped:
                break
        found.append(Definition(match.group(3), header.rstrip(":").strip(), doc, i))
    return found


def relative_path(uri: str, root: str | None) -> str:
    path = unquote(urlparse(uri).path) if uri.startswith("file:") else uri
    if root:
        root_path = unquote(urlparse(root).path).rstrip("/") + "/"
        if path.startswith(root_path):
            return path[len(root_path) :]
    return path.rsplit("/", 1)[-1]


def as_comments(path: str, body: Iterable[str]) -> str:
    return f"# {path}\n" + "".join(f"# {line}\n" if line else "#\n" for line in body)


def nearby_names(cursor: Cursor, lines: int = NEAR_LINES) -> set[str]:
    """Identifiers of the ``lines`` complete lines above the cursor.

    The cursor's own line is left out: it changes on every keystroke, and the context must
    stay the same while the user types on one line (the KV cache reuses the prompt's start).
    """
    return identifiers("\n".join(cursor.lines[max(0, cursor.line - lines) : cursor.line]))


class OpenDocumentsSource:
    """Definitions and similar snippets from the other open documents."""

    setting = "context_other_documents"
    share = 0.35

    def __init__(self, definition_share: float = 0.4) -> None:
        self.definition_share = definition_share

    def fingerprint(self, snapshot: Snapshot) -> Hashable:
        return tuple((d.uri, d.version) for d in snapshot.others)

    def prepare(self, snapshot: Snapshot) -> Builder:
        return lambda cursor, budget: self.context(snapshot, cursor, budget)

    def context(self, snapshot: Snapshot, cursor: Cursor, budget: int) -> str:
        others = snapshot.others
        chars = budget * CHARS_PER_TOKEN
        if chars <= 0:
            return ""
        root = snapshot.root_uri
        wanted = nearby_names(cursor)
        parts: list[str] = []
        used = 0

        def add(text: str, limit: int) -> bool:
            nonlocal used
            if used + len(text) > limit:
                return False
            parts.append(text)
            used += len(text)
            return True

        # Definitions first: the most information per token.
        def_limit = int(chars * self.definition_share)
        uri = snapshot.uri
        other_lines = [(d, lsp_lines(d.source)) for d in others]
        sources = [
            (relative_path(uri, root), cursor.lines[: max(0, cursor.line - FAR_ABOVE_LINES)])
        ]
        sources += [(relative_path(d.uri, root), lines) for d, lines in other_lines]
        seen: set[str] = set()
        for path, lines in sources:
            for found in definitions(lines):
                if found.name in wanted and found.name not in seen:
                    seen.add(found.name)
                    body = [found.signature] + ([f"    {found.doc}"] if found.doc else [])
                    add(as_comments(path, body), def_limit)

        # Then the most similar snippets of other documents.
        scored: list[tuple[float, str, list[str]]] = []
        for doc, lines in other_lines:
            for start in range(0, max(1, len(lines)), SNIPPET_LINES // 2):
                window = lines[start : start + SNIPPET_LINES]
                score = jaccard(wanted, identifiers("\n".join(window)))
                if score > 0.05:
                    scored.append((score, relative_path(doc.uri, root), window))
        scored.sort(key=lambda item: -item[0])
        for _score, path, window in scored[:3]:
            if not add(as_comments(path, window), chars):
                break
        return "".join(parts)
