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
import threading
from collections import OrderedDict
from collections.abc import Container, Hashable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from codellama_lsp.context.sources import CHARS_PER_TOKEN, Builder, OpenDocument, Snapshot
from codellama_lsp.cursor import Cursor, lsp_lines

SNIPPET_LINES = 16
NEAR_LINES = 20
FAR_ABOVE_LINES = 80
OTHER_DOCUMENT_CHARS = 256_000
"""Of another open document, only its first so many characters are read: definitions and
snippets from a 20 MB file would cost a second per request (issue 28), and an editor's other
files are rarely that big."""
PARSED_DOCUMENTS = 16
"""Other documents whose lines, definitions and snippets are kept between requests."""
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEF = re.compile(r"[ \t]*(?:async[^\S\r\n]+)?(def|class)[^\S\r\n]+([A-Za-z_]\w*)")
"""A ``def``/``class`` header's start, matched at a line's start."""
_CELL_MARKER = re.compile(r"[ \t]*#[ \t]*%%")
"""A notebook cell's first line (:mod:`codellama_lsp.context.notebook`)."""
_ASSIGNED = re.compile(r"([A-Za-z_]\w*)[^\S\r\n]*(?::[^=\n]*)?=(?!=)")
"""A top-level assignment's start (``NAME = ...``, ``NAME: type = ...``)."""
_BLANK = (" ", "\t")
OUTLINE_LINE_CHARS = 80
"""A notebook's assignment far above goes into the context as its first so many characters."""
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


def definitions(lines: list[str], names: Container[str] | None = None) -> list[Definition]:
    """``def``/``class`` headers (joined across lines until ``:``) and first docstring line;
    only of ``names``, when given."""
    found = []
    text = "\n".join(lines)
    for i, match in _headers(text):
        if names is not None and match.group(2) not in names:
            continue
        header = lines[i].strip()
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
        found.append(Definition(match.group(2), header.rstrip(":").strip(), doc, i))
    return found


def _headers(text: str) -> list[tuple[int, re.Match[str]]]:
    """(line, match) of each ``def``/``class`` header in ``text``, in order. Found with
    ``str.find`` (C speed) rather than a regular expression tried at every character: the
    excerpt of a big document has thousands of lines, read at every request."""
    starts: set[int] = set()
    for keyword in ("def", "class"):
        at = text.find(keyword)
        while at >= 0:
            starts.add(text.rfind("\n", 0, at) + 1)
            at = text.find(keyword, at + len(keyword))
    found = []
    line, position = 0, 0
    for start in sorted(starts):
        match = _DEF.match(text, start)
        if match is not None:
            line += text.count("\n", position, start)
            position = start
            found.append((line, match))
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


def cell_names_below(cursor: Cursor) -> set[str]:
    """Identifiers of a notebook cell's lines below the cursor (up to the next cell's ``# %%``
    line): text that stays the same while the user types on the cursor's line."""
    below = []
    for line in cursor.lines[cursor.line + 1 :]:
        if _CELL_MARKER.match(line):
            break
        below.append(line)
    return identifiers("\n".join(below))


def notebook_outline(
    cursor: Cursor, seen: Container[str], wanted: set[str], chars: int
) -> list[str]:
    """A cell uses what earlier cells define, and the first cells (imports, data, helpers)
    are the first to leave the prompt's window: the top-level definitions (signatures) and
    assignments (their first line, cut) above the cursor's nearby lines, those of names used
    near the cursor first, then from the notebook's start; as many as fit ``chars``."""
    lines = cursor.lines[: max(0, cursor.line - NEAR_LINES)]
    found = [
        (d.line, d.name, d.signature)
        for d in definitions(lines)
        if lines[d.line][:1] not in _BLANK and d.name not in seen
    ]
    for number, line in enumerate(lines):
        match = _ASSIGNED.match(line)
        if match is not None and match.group(1) not in seen:
            found.append((number, match.group(1), line[:OUTLINE_LINE_CHARS].rstrip()))
    found.sort(key=lambda item: (item[1] not in wanted, item[0]))
    outline: list[str] = []
    size = 40  # the path's comment line
    for _line, _name, text in found:
        if size + len(text) + 3 > chars:
            break
        outline.append(text)
        size += len(text) + 3
    return outline


def readable_part(source: str) -> str:
    """What is read of another open document: its first :data:`OTHER_DOCUMENT_CHARS`
    characters, cut at a line's end."""
    if len(source) <= OTHER_DOCUMENT_CHARS:
        return source
    head = source[:OTHER_DOCUMENT_CHARS]
    return head[: max(head.rfind("\n"), 0)]


@dataclass(frozen=True)
class Parsed:
    """Another document as the source reads it, kept while its text stays the same."""

    text: str
    lines: list[str]
    definitions: list[Definition]
    windows: list[tuple[list[str], set[str]]]
    """Snippets (``SNIPPET_LINES`` lines, every half of that) and their identifiers."""


def parse_document(text: str) -> Parsed:
    lines = lsp_lines(text)
    windows = []
    for start in range(0, max(1, len(lines)), SNIPPET_LINES // 2):
        window = lines[start : start + SNIPPET_LINES]
        windows.append((window, identifiers("\n".join(window))))
    return Parsed(text, lines, definitions(lines), windows)


class OpenDocumentsSource:
    """Definitions and similar snippets from the other open documents."""

    setting = "context_other_documents"
    share = 0.35

    def __init__(self, definition_share: float = 0.4) -> None:
        self.definition_share = definition_share
        self._parsed: OrderedDict[str, Parsed] = OrderedDict()
        self._lock = threading.Lock()

    def parsed(self, doc: OpenDocument) -> Parsed:
        """``doc`` split and scanned, from the last request when its text is the same."""
        text = readable_part(doc.source)
        with self._lock:
            found = self._parsed.get(doc.uri)
        if found is not None and found.text == text:
            return found
        found = parse_document(text)
        with self._lock:
            self._parsed[doc.uri] = found
            self._parsed.move_to_end(doc.uri)
            while len(self._parsed) > PARSED_DOCUMENTS:
                self._parsed.popitem(last=False)
        return found

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
        if cursor.notebook:
            wanted |= cell_names_below(cursor)
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
        parsed = [(d, self.parsed(d)) for d in others]
        here = definitions(cursor.lines[: max(0, cursor.line - FAR_ABOVE_LINES)], wanted)
        sources = [(relative_path(uri, root), here)]
        sources += [(relative_path(d.uri, root), p.definitions) for d, p in parsed]
        seen: set[str] = set()
        for path, found_here in sources:
            for found in found_here:
                if found.name in wanted and found.name not in seen:
                    seen.add(found.name)
                    body = [found.signature] + ([f"    {found.doc}"] if found.doc else [])
                    add(as_comments(path, body), def_limit)
        if cursor.notebook and cursor.line > FAR_ABOVE_LINES:
            # Up to the whole budget: in a notebook nothing else is worth more. (A notebook
            # shorter than that above the cursor is in the prompt's window as it is.)
            outline = notebook_outline(cursor, seen, wanted, chars - used)
            if outline:
                add(as_comments(sources[0][0], outline), chars)

        # Then the most similar snippets of other documents.
        scored: list[tuple[float, str, list[str]]] = []
        for doc, p in parsed:
            for window, names in p.windows:
                score = jaccard(wanted, names)
                if score > 0.05:
                    scored.append((score, relative_path(doc.uri, root), window))
        scored.sort(key=lambda item: -item[0])
        for _score, path, window in scored[:3]:
            if not add(as_comments(path, window), chars):
                break
        return "".join(parts)
