"""Context from the whole workspace: the index, its freshness, what it skips, recent edits.

The end-to-end test reads the prompt the model receives (the scripted model server logs
them) after the real server indexed a workspace folder.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from lsprotocol import types

from codellama_lsp.config import Settings
from codellama_lsp.context.open_documents import OpenDocumentsSource
from codellama_lsp.context.recent_edits import RecentEdits
from codellama_lsp.context.sources import ContextSources, OpenDocument, Snapshot, take_snapshot
from codellama_lsp.context.workspace_index import MAX_FILE_BYTES, WorkspaceIndex
from codellama_lsp.context.workspace_source import WorkspaceSource
from codellama_lsp.cursor import Cursor
from tests.support.lsp_session import Session, lsp_session
from tests.support.model_servers import scripted_model_server

HEADERS = '''"""HTTP header helpers."""

SEPARATOR = ":"


def parse_header(line: str, sep: str = SEPARATOR) -> tuple[str, str]:
    """Split one header line into name and value.

    More text.
    """
    name, _, value = line.partition(sep)
    return name.strip(), value.strip()


class Headers:
    """Case-insensitive headers."""

    def get(self, name: str, default: str | None = None) -> str | None:
        return None

    def _private(self) -> None:
        pass
'''

MAIN = """from pkg.headers import Headers, parse_header


def handle(line):
    headers = Headers()
    name, value = parse_header(line)
    return """


def make_workspace(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("from .headers import parse_header as parse\n")
    (root / "pkg" / "headers.py").write_text(HEADERS)
    (root / ".gitignore").write_text("ignored/\n*.gen.py\n")
    (root / "ignored").mkdir()
    (root / "ignored" / "secret.py").write_text("def secret_helper(): ...\n")
    (root / "pkg" / "table.gen.py").write_text("def generated_table(): ...\n")
    (root / ".env-3.11").mkdir()
    (root / ".env-3.11" / "pyvenv.cfg").write_text("home = /usr\n")
    (root / ".env-3.11" / "lib.py").write_text("def venv_helper(): ...\n")
    (root / "build").mkdir()
    (root / "build" / "out.py").write_text("def built_helper(): ...\n")
    (root / "huge.py").write_text("X = 1\n" * (MAX_FILE_BYTES // 6 + 1))
    (root / "blob.py").write_bytes(b"def binary_helper(): ...\n\0\0\0")
    return root


def cursor_at_end(text: str) -> Cursor:
    lines = text.split("\n")
    return Cursor(text, len(lines) - 1, len(lines[-1]))


def test_index_skips_ignored_virtualenv_build_huge_and_binary_files(tmp_path: Path) -> None:
    index = WorkspaceIndex()
    report = index.build([make_workspace(tmp_path)])
    indexed = [Path(p).relative_to(tmp_path).as_posix() for p in index.paths()]
    assert indexed == ["pkg/__init__.py", "pkg/headers.py"]
    assert report.skipped == 2  # huge.py and blob.py: found, not read
    for name in ("secret_helper", "generated_table", "venv_helper", "built_helper"):
        assert index.by_name(name) is None


def test_imported_definitions_reach_the_context(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    index = WorkspaceIndex()
    index.build([root])
    source = WorkspaceSource(index)
    text = source.context((root / "main.py").as_uri(), cursor_at_end(MAIN), budget=200)
    assert text.startswith("# pkg/headers.py\n")
    assert (
        "# def parse_header(line: str, sep: str=SEPARATOR) -> tuple[str, str]\n"
        "#     Split one header line into name and value.\n"
    ) in text
    # A class with its public method signatures; private ones are left out.
    assert "# class Headers\n#     Case-insensitive headers.\n#     def get(self, name: str" in text
    assert "_private" not in text
    # Through a package's re-export, under another name.
    other = "from pkg import parse\n\nresult = parse(text)\n"
    text = source.context((root / "other.py").as_uri(), cursor_at_end(other), budget=200)
    assert "# def parse_header(line: str" in text


def test_context_is_stable_while_typing_on_a_line(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    index = WorkspaceIndex()
    index.build([root])
    source = WorkspaceSource(index)
    uri = (root / "main.py").as_uri()
    texts = {
        source.context(uri, cursor_at_end(MAIN + typed), budget=120)
        for typed in ("", "n", "name", "name.up", "name.upper(SEP")
    }
    assert len(texts) == 1 and "parse_header" in texts.pop()


def test_context_stays_while_moving_and_changes_for_a_new_name(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    (root / "pkg" / "tables.py").write_text("def build_table(rows: int) -> list[str]: ...\n")
    index = WorkspaceIndex()
    index.build([root])
    source = WorkspaceSource(index)
    uri = (root / "main.py").as_uri()
    first = source.context(uri, cursor_at_end(MAIN + "name\n    "), budget=200)
    moved = source.context(uri, cursor_at_end(MAIN + "name\n    count = 1\n    "), budget=200)
    assert moved == first and "build_table" not in first
    # A name defined elsewhere in the workspace, used on a line just finished.
    used = MAIN + "name\n    count = 1\n    table = build_table(count)\n    "
    changed = source.context(uri, cursor_at_end(used), budget=200)
    assert "# pkg/tables.py\n# def build_table(rows: int) -> list[str]\n" in changed


def test_budget_is_respected(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    index = WorkspaceIndex()
    index.build([root])
    text = WorkspaceSource(index).context((root / "main.py").as_uri(), cursor_at_end(MAIN), 40)
    assert 0 < len(text) <= 40 * 3


def test_update_and_delete_a_file(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    index = WorkspaceIndex()
    index.build([root])
    headers = root / "pkg" / "headers.py"
    headers.write_text(HEADERS.replace("sep: str = SEPARATOR", "sep: bytes = b':'"))
    generation = index.generation
    assert index.update(headers)
    assert index.generation > generation
    hit = index.by_name("parse_header")
    assert hit is not None and "sep: bytes=b':'" in hit[1].lines[0]
    (root / "pkg" / "new.py").write_text("def fresh_helper(x: int) -> int: ...\n")
    assert index.update(root / "pkg" / "new.py")
    assert index.by_name("fresh_helper") is not None
    # Saved again with the same outline (an edit inside a body): what prompts see is the same.
    generation = index.generation
    body = "return name.strip(), value.strip()"
    headers.write_text(headers.read_text().replace(body, f"{body}  # stripped"))
    assert index.update(headers)
    assert index.generation == generation
    headers.unlink()
    assert not index.update(headers)
    assert index.by_name("parse_header") is None
    assert not index.update(root / "ignored" / "secret.py")


def test_memory_is_bounded_by_max_files(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"m{i:02}.py").write_text(f"def f{i}(): ...\n")
    index = WorkspaceIndex(max_files=10)
    report = index.build([tmp_path])
    assert len(index) == 10 and report.truncated
    (tmp_path / "zz.py").write_text("def late(): ...\n")
    assert not index.update(tmp_path / "zz.py")  # full: new files wait for a rebuild
    assert len(index) == 10


def test_recent_edits_of_other_documents() -> None:
    edits = RecentEdits()
    lines = [f"line_{i} = {i}" for i in range(40)]
    before = OpenDocument("file:///ws/a.py", 1, "\n".join(lines))
    edits.prepare(Snapshot("file:///ws/b.py", (before,), "file:///ws"))
    lines[20] = "renamed_setting = compute(20)"
    after = OpenDocument("file:///ws/a.py", 2, "\n".join(lines))
    build = edits.prepare(Snapshot("file:///ws/b.py", (after,), "file:///ws"))
    text = build(cursor_at_end("x = "), 200)
    assert text.startswith("# a.py (edited)\n# line_18 = 18\n# line_19 = 19\n")
    assert "# renamed_setting = compute(20)\n# line_21 = 21\n# line_22 = 22\n" in text
    assert "line_17" not in text and "line_23" not in text
    # Not shown in the edited document itself.
    assert edits.prepare(Snapshot("file:///ws/a.py", (), None))(cursor_at_end(""), 200) == ""


def test_sources_share_the_budget_and_follow_their_settings(tmp_path: Path) -> None:
    root = make_workspace(tmp_path)
    index = WorkspaceIndex()
    index.build([root])
    other = OpenDocument("file:///elsewhere/util.py", 1, "def parse_header_loose(x):\n    ...\n")
    settings = Settings()
    snapshot = Snapshot((root / "main.py").as_uri(), (other,), root.as_uri())
    sources = ContextSources(
        lambda _uri: snapshot,
        lambda: settings,
        [WorkspaceSource(index), OpenDocumentsSource(), RecentEdits()],
    )
    ctx = cursor_at_end(MAIN + "\n    parse_header_loose(line)\n    ")
    text = sources.context(snapshot.uri, ctx, 300)
    assert text.index("# def parse_header(") < text.index("# def parse_header_loose(")
    assert len(text) <= 300 * 3
    settings = Settings(context_workspace=False)
    text = sources.context(snapshot.uri, ctx, 300)
    assert "# def parse_header(" not in text and "# def parse_header_loose(" in text
    assert take_snapshot("a", {"a": other, "b.txt": other}, None).others == ()


def _prompts(url: str) -> list[str]:
    with urllib.request.urlopen(f"{url}/prompts", timeout=10) as response:
        return list(json.loads(response.read()))


async def _wait_indexed(session: Session, files: int) -> None:
    """Until the index holds ``files`` files and its build has ended."""
    await session.wait_stats(
        lambda stats: (
            stats["workspace_index"]["files"] == files and stats["workspace_index"]["last_build"]
        ),
        30,
    )


@pytest.mark.asyncio
async def test_server_puts_workspace_definitions_in_the_prompt(tmp_path: Path) -> None:
    root = make_workspace(tmp_path / "ws")
    with scripted_model_server("x = 1\n", tmp_path) as settings:
        options = {**settings, "context_workspace": True}
        async with lsp_session(options, root=root) as s:
            await _wait_indexed(s, 2)
            # The build was shown as work-done progress, from begin to end.
            reports = [
                r
                for r in s.client.progress_reports.values()
                if getattr(r[0], "title", "") == "codellama: indexing the workspace"
            ]
            assert reports and getattr(reports[0][-1], "message", "") == "2 files indexed"
            uri = (root / "main.py").as_uri()
            s.open(uri, MAIN)
            await s.inline(uri, 6, 11)
            prompt = _prompts(settings["server_url"])[-1]
            assert "# def parse_header(line: str, sep: str=SEPARATOR) -> tuple[str, str]" in prompt
            assert "secret_helper" not in prompt

            # Files changed and created on disk (watched), and one saved: all are seen.
            pkg = root / "pkg"
            (pkg / "headers.py").write_text(
                HEADERS.replace("sep: str = SEPARATOR", "strict: bool = False")
            )
            (pkg / "fresh.py").write_text('def fresh_helper(n: int) -> str:\n    """New."""\n')
            changes = [
                types.FileEvent(
                    uri=(pkg / "headers.py").as_uri(), type=types.FileChangeType.Changed
                ),
                types.FileEvent(uri=(pkg / "fresh.py").as_uri(), type=types.FileChangeType.Created),
            ]
            s.client.workspace_did_change_watched_files(
                types.DidChangeWatchedFilesParams(changes=changes)
            )
            await _wait_indexed(s, 3)
            (pkg / "saved.py").write_text("LIMIT: int = 42\n")
            s.client.text_document_did_save(
                types.DidSaveTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=(pkg / "saved.py").as_uri())
                )
            )
            await _wait_indexed(s, 4)
            s.edit(
                uri,
                (0, 0),
                (0, 0),
                "from pkg.fresh import fresh_helper\nfrom .saved import LIMIT\n",
            )
            await s.inline(uri, 8, 11)
            prompt = _prompts(settings["server_url"])[-1]
            assert "# def parse_header(line: str, strict: bool=False)" in prompt
            assert "# def fresh_helper(n: int) -> str\n#     New." in prompt

            # A second workspace folder: indexed too.
            second = tmp_path / "second"
            second.mkdir()
            (second / "extra.py").write_text("def extra_helper(): ...\n")
            folder = types.WorkspaceFolder(uri=second.as_uri(), name="second")
            s.client.workspace_did_change_workspace_folders(
                types.DidChangeWorkspaceFoldersParams(
                    event=types.WorkspaceFoldersChangeEvent(added=[folder], removed=[])
                )
            )
            await _wait_indexed(s, 5)

            # Turned off: the index is dropped.
            s.client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings={"context_workspace": False})
            )
            await _wait_indexed(s, 0)
