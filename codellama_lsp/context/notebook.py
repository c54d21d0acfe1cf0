"""A notebook's cells as one Python file: what a completion in a cell is prompted with.

The cells are written in Jupytext's percent format, which code models have seen in training
and which VS Code, Spyder and Jupytext read as cells: ``# %%`` before each code cell, and
``# %% [markdown]`` before a markdown cell's first lines, as comments. Outputs are not part of
it (LSP does not carry them). The cell being edited is kept exactly as the editor has it, so
positions map by a number of lines; the other cells are written for the prompt:

* empty cells, and code cells in another language than the edited cell's, are left out;
* IPython's magics and shell lines (``%matplotlib inline``, ``!pip install x``) become
  comments, as Jupytext writes them; a cell that starts with a cell magic running other code
  (``%%bash``, ``%%html``) is left out;
* a markdown cell keeps its first :data:`MARKDOWN_LINES` lines of text, each cut to
  :data:`MARKDOWN_CHARS` characters: what it is about, at few tokens.

The marker lines keep the cell boundaries visible to the model and to the clean-up
(:func:`codellama_lsp.completion.cleanup.stop_at_cell_start`): a suggestion never runs on into
a next cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

CELL_MARKER = "# %%"
MARKDOWN_MARKER = "# %% [markdown]"
MARKDOWN_LINES = 3
MARKDOWN_CHARS = 100
PYTHON = "python"
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
"""Cell magics whose body is Python (the others run another language or show something)."""
_MAGIC_LINE = re.compile(r"^([ \t]*)([%!])", re.MULTILINE)
_CELL_MAGIC = re.compile(r"\s*%%(\w+)")


@dataclass(frozen=True)
class Cell:
    """One cell as the editor has it: its text, its language id, and whether it is markdown
    (LSP's ``NotebookCellKind.Markup``)."""

    text: str
    language: str
    markdown: bool = False


def is_python(cell: Cell) -> bool:
    return not cell.markdown and cell.language.lower() == PYTHON


def rendered(cell: Cell, language: str = PYTHON) -> str:
    """What a cell other than the edited one adds to the file (its marker line first), for an
    edited cell in ``language``; "" when it adds nothing."""
    if cell.markdown:
        lines = [line.strip() for line in cell.text.splitlines() if line.strip()]
        if not lines:
            return ""
        body = "".join(f"\n# {line[:MARKDOWN_CHARS]}" for line in lines[:MARKDOWN_LINES])
        return MARKDOWN_MARKER + body
    if cell.language.lower() != language.lower():
        return ""
    text = cell.text.replace("\r\n", "\n").replace("\r", "\n").strip("\n").rstrip()
    if not text.strip():
        return ""
    magic = _CELL_MAGIC.match(text)
    if magic is not None and magic.group(1) not in PYTHON_CELL_MAGICS:
        return ""
    return CELL_MARKER + "\n" + _MAGIC_LINE.sub(r"\1# \2", text)


@dataclass(frozen=True)
class Joined:
    """The file around the edited cell: ``before + cell text + after``."""

    before: str
    """The cells above and the edited cell's marker line (ends with a line break)."""
    after: str
    """The cells below ("" when there are none)."""

    @property
    def first_line(self) -> int:
        """The line of the file where the edited cell's text starts."""
        return self.before.count("\n")

    def text(self, cell_text: str) -> str:
        return self.before + cell_text + self.after


def joined(pieces_above: Sequence[str], cell_text: str, pieces_below: Sequence[str]) -> Joined:
    """The file from the :func:`rendered` pieces of the cells above and below the edited one
    ("" pieces are left out)."""
    before = "".join(piece + "\n\n" for piece in pieces_above if piece) + CELL_MARKER + "\n"
    below = [piece for piece in pieces_below if piece]
    if not below:
        return Joined(before, "")
    gap = "\n" if cell_text.endswith(("\n", "\r")) else "\n\n"
    return Joined(before, gap + "\n\n".join(below))


def join_cells(cells: Sequence[Cell], index: int) -> Joined:
    """The file around ``cells[index]`` (a Python code cell)."""
    language = cells[index].language
    above = [rendered(cell, language) for cell in cells[:index]]
    below = [rendered(cell, language) for cell in cells[index + 1 :]]
    return joined(above, cells[index].text, below)


__all__ = [
    "CELL_MARKER",
    "MARKDOWN_MARKER",
    "Cell",
    "Joined",
    "is_python",
    "join_cells",
    "joined",
    "rendered",
]
