"""Jupyter notebooks over LSP 3.17 notebook sync (issue 29), over the real server: a completion
in a cell is prompted with the cells above it (the scripted model server records every
prompt), the prompt follows cells inserted, moved, edited and deleted, the answer's range is in
the cell's own positions, a suggestion stops at the next cell, imports of earlier cells reach
the workspace context, the KV cache is reused while typing in a cell, and bad input (a cell in
another language, an empty notebook, a cell deleted while its completion runs, URIs the server
never saw) is answered cleanly with nothing left behind once the notebook is closed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol import types

from tests.support import GREEDY
from tests.support.lsp_session import Session, capabilities, lsp_session
from tests.support.model_servers import request, scripted_model_server
from tests.support.notebooks import CAPABILITIES, MARKDOWN, ClientCell, NotebookClient

NOTEBOOK = "file:///project/analysis.ipynb"
QUIET = {"context_workspace": False, "prefetch_after_accept": False, "idle_prefill": False}
CELL_ANSWER = "lines(os.path.join(ROOT, 'data.txt'))"
ANSWERS = [("total = count_", CELL_ANSWER), ("x = ", "1\n\n# %%\ny = 2")]


def notebook_caps() -> types.ClientCapabilities:
    caps = capabilities()
    caps.notebook_document = CAPABILITIES
    return caps


def prompts(settings: dict[str, Any]) -> list[str]:
    port = int(str(settings["server_url"]).rsplit(":", 1)[1])
    _status, body = request(port, "GET", "/prompts")
    return list(body)


def file_of(*cells: ClientCell) -> str:
    """The notebook as one file, as the prompt must show it: every cell after a marker line."""
    pieces = []
    for cell in cells:
        if cell.language == MARKDOWN:
            body = "\n".join(f"# {line}" for line in cell.text.split("\n"))
            pieces.append(f"# %% [markdown]\n{body}")
        else:
            pieces.append(f"# %%\n{cell.text}")
    return "\n\n".join(pieces)


async def complete_at_end(s: Session, cell: ClientCell) -> list[types.InlineCompletionItem]:
    lines = cell.text.split("\n")
    return await s.inline(cell.uri, len(lines) - 1, len(lines[-1]))


async def prompted(s: Session, settings: dict[str, Any], cell: ClientCell) -> tuple[str, str]:
    """Complete at the end of ``cell``: (the prompt the model got, the first item's text)."""
    before = len(prompts(settings))
    items = await complete_at_end(s, cell)
    after = prompts(settings)
    assert len(after) == before + 1, "no generation ran"
    return after[-1], str(items[0].insert_text) if items else ""


async def test_a_cell_is_prompted_with_the_cells_above_and_the_prompt_follows_them(
    tmp_path: Path,
) -> None:
    with scripted_model_server("", tmp_path, answers=ANSWERS) as settings:
        async with lsp_session({**settings, **QUIET}, caps=notebook_caps()) as s:
            sync = s.capabilities.notebook_document_sync
            assert isinstance(sync, types.NotebookDocumentSyncOptions)
            nb = NotebookClient(s, NOTEBOOK)
            setup = nb.new_cell("import os\n\nROOT = os.getcwd()")
            helper = nb.new_cell(
                "def count_lines(path):\n    with open(path) as handle:\n"
                "        return sum(1 for _ in handle)"
            )
            typed = nb.new_cell("total = count_")
            nb.open(setup, helper, typed)
            prompt, text = await prompted(s, settings, typed)
            assert prompt == file_of(setup, helper, typed)
            assert text == CELL_ANSWER
            # The range is in the cell's own positions (line 0 of the third cell).
            items = await complete_at_end(s, typed)
            assert items[0].range == types.Range(
                start=types.Position(line=0, character=14),
                end=types.Position(line=0, character=14),
            )

            # A markdown cell inserted between them: its lines as comments, in its place.
            note = nb.new_cell("Counting\nEach file's lines are counted.", MARKDOWN)
            nb.insert(1, note)
            prompt, _ = await prompted(s, settings, typed)
            assert prompt == file_of(setup, note, helper, typed)

            # Moved: the helper above the set-up cell; then the edited cell to the top.
            nb.move(2, 0)
            prompt, _ = await prompted(s, settings, typed)
            assert prompt == file_of(helper, setup, note, typed)
            nb.move(3, 0)
            prompt, _ = await prompted(s, settings, typed)
            assert prompt == file_of(typed)
            nb.move(0, 3)

            # Edited: a cell above changes its text, the edited cell gets a second line.
            nb.edit(setup, (2, 0), (2, 4), "BASE")
            nb.type_at_end(typed, "lines('a.txt')\nx = ")
            prompt, text = await prompted(s, settings, typed)
            assert "BASE = os.getcwd()" in prompt and "ROOT" not in prompt
            assert prompt == file_of(helper, setup, note, typed)
            # The model wrote on into a next cell: the suggestion stops before it.
            assert text == "1"

            # Deleted: the helper cell is gone from the prompt and from the server.
            cells_before = (await s.stats())["notebook_cells"]
            nb.delete(0)
            prompt, _ = await prompted(s, settings, typed)
            assert prompt == file_of(setup, note, typed) and "count_lines(path)" not in prompt
            assert (await s.stats())["notebook_cells"] == cells_before - 1

            nb.close()
            stats = await s.wait_stats(lambda st: st["notebooks"] == 0)
            assert stats["notebook_cells"] == 0 and stats["open_documents"] == 0
            assert not [m for m in s.messages() if "rror" in m], s.messages()


async def test_bad_notebooks_are_answered_cleanly_and_leave_nothing_behind(
    tmp_path: Path,
) -> None:
    with scripted_model_server("", tmp_path, answers=ANSWERS) as settings:
        async with lsp_session({**settings, **QUIET}, caps=notebook_caps()) as s:
            # A cell in another language: left out of the Python cells' prompts, and not
            # completed itself (the `languages` rule, as for a file).
            nb = NotebookClient(s, NOTEBOOK)
            first = nb.new_cell("import os")
            r_cell = nb.new_cell("x <- c(1, 2, 3)", "r")
            typed = nb.new_cell("x = ")
            nb.open(first, r_cell, typed)
            prompt, _ = await prompted(s, settings, typed)
            assert prompt == file_of(first, typed)
            before = await s.stats()
            assert await complete_at_end(s, r_cell) == []
            assert (await s.stats())["refused_language"] == before["refused_language"] + 1

            # An empty notebook, then a cell added to it.
            empty = NotebookClient(s, "file:///project/empty.ipynb")
            empty.open()
            await s.wait_stats(lambda st: st["notebooks"] == 2)
            added = empty.new_cell("x = ")
            empty.insert(0, added)
            prompt, _ = await prompted(s, settings, added)
            assert prompt == file_of(added)

            # URIs the server never saw: a cell, a notebook's change, a change to an unknown
            # cell, a cell range outside the notebook. Answered or ignored; nothing breaks.
            assert await s.inline("vscode-notebook-cell:/project/nope.ipynb#W9", 0, 0) == []
            ghost = NotebookClient(s, "file:///project/never-opened.ipynb")
            ghost.version = 1
            ghost.splice(0, 0, [ghost.new_cell("y = 1")])
            stranger = nb.new_cell("z = 1")
            nb.edit(stranger, (0, 0), (0, 0), "# ")
            nb.splice(7, 5, [])
            # The same file as before: the same answer, from the cache.
            before = await s.stats()
            assert [item.insert_text for item in await complete_at_end(s, typed)] == ["1"]
            assert (await s.stats())["cache_hits"] == before["cache_hits"] + 1

            # A close that lists no cell still frees them all; so does a plain close.
            nb.close(listed=[])
            empty.close()
            stats = await s.wait_stats(lambda st: st["notebooks"] == 0)
            assert stats["notebook_cells"] == 0 and stats["open_documents"] == 0
            assert stats["typing_through_entries"] == 0 and stats["inflight"] == 0
            assert not [m for m in s.messages() if "rror" in m], s.messages()


async def test_a_cell_deleted_while_its_completion_runs_gets_no_answer(tmp_path: Path) -> None:
    slow = [("x = ", "[" + ", ".join(str(i) for i in range(60)) + "]")]
    with scripted_model_server("", tmp_path, piece_delay=0.2, answers=slow) as settings:
        async with lsp_session({**settings, **QUIET}, caps=notebook_caps()) as s:
            nb = NotebookClient(s, NOTEBOOK)
            first, typed = nb.new_cell("import os"), nb.new_cell("x = ")
            nb.open(first, typed)
            pending = asyncio.ensure_future(complete_at_end(s, typed))
            await s.wait_stats(lambda st: st["generations_started"] == 1)
            nb.delete(1)
            assert await pending == []
            nb.close()
            stats = await s.wait_stats(lambda st: st["generating"] == 0 and st["notebooks"] == 0)
            assert stats["notebook_cells"] == 0 and stats["open_documents"] == 0
            assert stats["typing_through_entries"] == 0 and stats["inflight"] == 0
            assert stats["acceptance"]["shown"] == 0


async def test_imports_of_earlier_cells_reach_the_workspace_context(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "tables.py").write_text(
        'def load_table(path, sep=","):\n    """Read a table of rows from a text file."""\n'
        "    return [line.split(sep) for line in open(path)]\n"
    )
    with scripted_model_server("", tmp_path, answers=ANSWERS) as settings:
        options = {**settings, **QUIET, "context_workspace": True}
        async with lsp_session(options, caps=notebook_caps(), root=project) as s:
            await s.wait_stats(lambda st: st["workspace_index"]["files"] == 1)
            nb = NotebookClient(s, (project / "analysis.ipynb").as_uri())
            imports = nb.new_cell("from tables import load_table")
            typed = nb.new_cell("x = ")
            nb.open(imports, nb.new_cell("Tables", MARKDOWN), typed)
            prompt, _ = await prompted(s, settings, typed)
            assert "# tables.py\n# def load_table(path, sep=',')\n" in prompt
            assert prompt.endswith(file_of(imports, nb.cells[1], typed))


async def test_the_cells_above_are_a_stable_prefix_for_the_kv_cache() -> None:
    options = {**GREEDY, **QUIET, "prompt_format": "prefix", "max_new_tokens": 8}
    options["parse_check_retries"] = 0  # one generation a request
    async with lsp_session(options, caps=notebook_caps()) as s:
        nb = NotebookClient(s, NOTEBOOK)
        cells = [
            nb.new_cell("import os\nimport sys"),
            nb.new_cell(
                "def list_files(root):\n    found = []\n    for name in os.listdir(root):\n"
                "        found.append(os.path.join(root, name))\n    return found"
            ),
            nb.new_cell("The files", MARKDOWN),
            nb.new_cell("files = list_files(sys.argv[1])\nfor path in files:\n    "),
        ]
        nb.open(*cells)
        typed = cells[-1]
        await complete_at_end(s, typed)
        first = await s.stats()
        assert first["generations_started"] == 1
        nb.type_at_end(typed, "print(")
        await complete_at_end(s, typed)
        second = await s.stats()
        assert second["generations_started"] == 2
        prompt = second["prompt_tokens"] - first["prompt_tokens"]
        reused = second["reused_prompt_tokens"] - first["reused_prompt_tokens"]
        # Everything but what was typed (and a token or two at the edit) comes from the cache.
        assert prompt > 60 and prompt - reused <= 6, (prompt, reused)


async def test_the_cells_below_are_the_suffix_of_a_fim_prompt(tmp_path: Path) -> None:
    # The scripted server reads the prompt's token ids back as text, without the FIM marker
    # tokens: the prefix, then the suffix. A prefix prompt would end at the cursor.
    answers = [("print(total)", "count_lines('a.txt')\n\n# %%\nprint(total)")]
    with scripted_model_server("", tmp_path, answers=answers) as settings:
        options = {**settings, **QUIET, "prompt_format": "fim"}
        async with lsp_session(options, caps=notebook_caps()) as s:
            nb = NotebookClient(s, NOTEBOOK)
            above = nb.new_cell("def count_lines(path):\n    return len(open(path).readlines())")
            typed = nb.new_cell("total = ")
            below = nb.new_cell("print(total)")
            nb.open(above, nb.new_cell("Results", MARKDOWN), typed, below)
            prompt, text = await prompted(s, settings, typed)
            assert prompt == file_of(*nb.cells)
            # What the model wrote on into the next cell is not suggested.
            assert text == "count_lines('a.txt')"


async def test_a_percent_format_file_is_plain_python(tmp_path: Path) -> None:
    """A ``# %%`` file (VS Code's interactive window, Jupytext, Spyder; what Neovim users
    get): prompted as the file it is, and a suggestion stops at the next cell marker."""
    uri = "file:///project/analysis.py"
    text = "# %%\nimport os\n\n# %% [markdown]\n# Counting\n\n# %%\nx = "
    with scripted_model_server("", tmp_path, answers=ANSWERS) as settings:
        async with lsp_session({**settings, **QUIET}) as s:
            s.open(uri, text)
            items = await s.inline(uri, 7, 4)
            assert prompts(settings)[-1] == text
            assert [item.insert_text for item in items] == ["1"]


async def test_a_long_notebook_keeps_an_outline_of_its_first_cells(tmp_path: Path) -> None:
    """The cells far above leave the prompt's window; their definitions stay, as comments."""
    filler = "\n".join(f"value_{i} = value_{i - 1} + {i}" for i in range(1, 160))
    with scripted_model_server("", tmp_path, answers=ANSWERS) as settings:
        options = {**settings, **QUIET, "max_context_tokens": 1024, "max_new_tokens": 64}
        async with lsp_session(options, caps=notebook_caps()) as s:
            nb = NotebookClient(s, NOTEBOOK)
            helper = nb.new_cell("def load_table(path, sep=','):\n    return open(path).read()")
            typed = nb.new_cell("x = ")
            nb.open(helper, nb.new_cell("value_0 = 0\n" + filler), typed)
            prompt, _ = await prompted(s, settings, typed)
            assert "\ndef load_table" not in prompt  # out of the window
            assert "# def load_table(path, sep=',')\n" in prompt
            assert "# value_0 = 0\n" in prompt
