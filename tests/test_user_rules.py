"""The user decides when suggestions appear (issue 30), over the real server: each rule answers
empty without starting a generation, a live settings change takes effect at once, a snooze ends
by itself, and suggestions are indented in the document's style."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

from tests.support.lsp_session import Session, lsp_session
from tests.support.model_servers import request, scripted_model_server
from tests.support.scripted_model_server import (
    INDENT_ANSWERS,
    INDENT_HEAD,
    NEW_FILE,
    NEW_FILE_ANSWER,
    TYPING_HEAD,
    TYPING_TARGET,
    body_in,
)

QUIET = {"context_workspace": False, "prefetch_after_accept": False, "idle_prefill": False}


def open_as(s: Session, uri: str, text: str, language: str) -> None:
    s.version[uri] = 1
    s.client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=1, text=text
            )
        )
    )


def change_settings(s: Session, settings: dict[str, Any]) -> None:
    s.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"codellama": settings})
    )


async def refused(s: Session, uri: str, line: int, character: int, rule: str) -> None:
    """The request at (line, character) is answered empty, counted as refused by ``rule``, and
    starts no generation."""
    before = await s.stats()
    assert await s.inline(uri, line, character) == []
    after = await s.stats()
    assert after["generations_started"] == before["generations_started"], rule
    assert after[f"refused_{rule}"] == before[f"refused_{rule}"] + 1, rule
    assert after["requests_refused"] == before["requests_refused"] + 1


async def generates(s: Session, uri: str, line: int, character: int) -> list[str]:
    before = await s.stats()
    items = await s.inline(uri, line, character)
    after = await s.stats()
    assert after["requests_refused"] == before["requests_refused"]
    assert after["generations_started"] > before["generations_started"]
    return [str(item.insert_text) for item in items]


async def test_each_rule_answers_empty_at_once_and_a_live_change_takes_effect(
    tmp_path: Path,
) -> None:
    with scripted_model_server(TYPING_TARGET, tmp_path) as settings:
        async with lsp_session({**settings, **QUIET}) as s:
            # Languages: Python by default; another one once it is in `languages`.
            rust = "file:///src/main.rs"
            open_as(s, rust, "fn main() {\n    let x = \n", "rust")
            await refused(s, rust, 1, 12, "language")
            change_settings(s, {"languages": ["python", "rust"]})
            await generates(s, rust, 1, 12)

            # Files: a dotenv file is never completed, even with every language on.
            change_settings(s, {"languages": ["*"]})
            dotenv = "file:///project/.env"
            open_as(s, dotenv, "API_KEY=", "dotenv")
            await refused(s, dotenv, 0, 8, "file")
            change_settings(s, {"exclude_files": []})
            await generates(s, dotenv, 0, 8)

            # Comments and strings (Python's tokenizer at the cursor): on by default.
            uri = "file:///count.py"
            text = TYPING_HEAD + "        # count the lines\n" + '        name = "lines of '
            s.open(uri, text)
            comment = (text.count("\n") - 1, len("        # count the"))
            string = (text.count("\n"), len(text.rsplit("\n", 1)[1]))
            await generates(s, uri, *comment)
            change_settings(s, {"complete_in_comments": False, "complete_in_strings": False})
            await refused(s, uri, *comment, "comment")
            await refused(s, uri, *string, "string")
            code = (text.count("\n") - 2, len("    with open(path) as handle:"))
            await generates(s, uri, *code)
            change_settings(s, {"complete_in_strings": True})
            await generates(s, uri, *string)


async def test_the_completion_menu_fallback_is_refused_too(tmp_path: Path) -> None:
    with scripted_model_server(TYPING_TARGET, tmp_path) as settings:
        async with lsp_session({**settings, **QUIET, "complete_in_comments": False}) as s:
            uri = "file:///c.py"
            s.open(uri, "x = 1  # a note")
            before = await s.stats()
            result = await s.client.text_document_completion_async(
                types.CompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=0, character=15),
                )
            )
            assert isinstance(result, types.CompletionList) and not result.items
            after = await s.stats()
            assert after["refused_comment"] == before["refused_comment"] + 1
            assert after["generations_started"] == before["generations_started"]


async def test_snooze_answers_empty_and_ends_by_itself(tmp_path: Path) -> None:
    with scripted_model_server(TYPING_TARGET, tmp_path) as settings:
        async with lsp_session({**settings, **QUIET}) as s:
            uri = "file:///count.py"
            s.open(uri, TYPING_HEAD + "        f")
            where = (TYPING_HEAD.count("\n"), 9)
            assert await generates(s, uri, *where) == ["or line in handle:"]

            # Until the server stops (no argument), or until ended by hand (0 minutes).
            status = await s.command("codellama.snooze")
            assert status["state"] == "snoozed" and status["snoozed"] is True
            assert status["snoozed_until"] is None
            await refused(s, uri, *where, "snoozed")
            assert s.statuses[-1]["state"] == "snoozed"
            status = await s.command("codellama.snooze", 0)
            assert status["state"] == "ready" and status["snoozed"] is False
            assert await s.inline(uri, *where) != []

            # For minutes: it ends by itself, the server says so, and suggestions are back.
            status = await s.command("codellama.snooze", {"minutes": 0.05})  # 3 seconds
            assert status["state"] == "snoozed" and status["snoozed_until"] > time.time() - 1
            deadline = time.monotonic() + 60
            while s.statuses[-1].get("state") != "ready":
                assert time.monotonic() < deadline, s.statuses[-3:]
                await asyncio.sleep(0.1)
            assert s.statuses[-1]["snoozed"] is False
            assert await s.inline(uri, *where) != []

            # A bad argument is explained and changes nothing.
            status = await s.command("codellama.snooze", "soon")
            assert status["state"] == "ready"


async def test_suggestions_follow_the_documents_indentation(tmp_path: Path) -> None:
    """The model writes four spaces; a tab-indented file gets tabs, a two-space file two
    spaces, and a file with no indented line yet what the editor's options say."""
    with scripted_model_server(TYPING_TARGET, tmp_path, answers=INDENT_ANSWERS) as settings:
        async with lsp_session({**settings, **QUIET}) as s:
            for name, unit in [("tabs", "\t"), ("two", "  ")]:
                uri = f"file:///{name}.py"
                text = INDENT_HEAD.format(unit=unit)
                s.open(uri, text)
                shown = await s.inline(uri, 2, len(unit))
                assert [str(item.insert_text) for item in shown] == [body_in(unit)], name

            for options, unit in [({"tabSize": 4, "insertSpaces": False}, "\t"), (None, "    ")]:
                uri = f"file:///new-{unit == chr(9)}.py"
                s.open(uri, NEW_FILE)
                if options is not None:
                    s.client.protocol.notify(
                        "codellama/didChangeEditorOptions",
                        {"textDocument": {"uri": uri}, "options": options},
                    )
                shown = await s.inline(uri, 1, 0)
                assert [str(item.insert_text) for item in shown] == [
                    NEW_FILE_ANSWER.replace("    ", unit)
                ]


async def test_an_excluded_files_text_never_goes_into_a_prompt(tmp_path: Path) -> None:
    """Neither from the workspace index nor as an open document; with the rule gone, it does
    (so the check is not empty)."""
    root = tmp_path / "project"
    root.mkdir()
    secret = 'SECRET_TOKEN = "sk-live-0123456789"\n'
    (root / "settings_local.py").write_text(secret)
    app = "from settings_local import SECRET_TOKEN\n\n\ndef token():\n    return "
    (root / "app.py").write_text(app)
    options = {"exclude_files": ["settings_local.py"], "prefetch_after_accept": False}
    with scripted_model_server(TYPING_TARGET, tmp_path) as settings:
        port = int(settings["server_url"].rsplit(":", 1)[1])

        def prompts() -> list[str]:
            return list(request(port, "GET", "/prompts")[1])

        async with lsp_session({**settings, **options}, root=root) as s:
            await s.wait_stats(lambda st: st["workspace_index"]["last_build"] is not None)
            assert (await s.stats())["workspace_index"]["files"] == 1  # app.py only
            s.open((root / "settings_local.py").as_uri(), secret)
            s.open((root / "app.py").as_uri(), app)
            await s.inline((root / "app.py").as_uri(), 4, 11)
            assert prompts() and not any("sk-live" in p for p in prompts())

            change_settings(s, {"exclude_files": []})
            s.edit((root / "app.py").as_uri(), (4, 11), (4, 11), "S")
            await s.inline((root / "app.py").as_uri(), 4, 12)
            assert "sk-live" in prompts()[-1]
