"""Settings: precedence, coercion, and messages for bad values."""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from pathlib import Path

import pytest

from codellama_lsp.completion.completer import Completer
from codellama_lsp.config import (
    CACHE_KEY_SETTINGS,
    DEFAULT_EXCLUDE_FILES,
    EDITOR_SETTINGS,
    ENGINE_SETTINGS,
    Settings,
    SettingsError,
    client_name,
    client_overrides,
    describe,
    from_environment,
)
from codellama_lsp.cursor import Cursor


def test_defaults_follow_model_card() -> None:
    s = Settings()
    assert s.model == "codellama/CodeLlama-70b-Python-hf"
    assert (s.temperature, s.top_p) == (0.2, 0.9)
    assert s.max_new_tokens_single_line < s.max_new_tokens


def test_strings_from_env_and_cli_are_coerced() -> None:
    env = from_environment({"CODELLAMA_LSP_MAX_NEW_TOKENS": "64", "CODELLAMA_LSP_ENABLED": "no"})
    s = Settings().merged(env)
    assert s.max_new_tokens == 64 and s.enabled is False


def test_nested_client_section() -> None:
    assert client_overrides({"codellama": {"temperature": 0}}) == {"temperature": 0}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"temperature": "hot"}, "temperature must be a float"),
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ({"prompt_format": "sideways"}, "prompt_format must be one of auto, fim, prefix"),
        ({"no_such_setting": 1}, "unknown setting 'no_such_setting'"),
        ({"top_p": 0}, "top_p must be in (0, 1]"),
    ],
)
def test_bad_values_explain_themselves(override: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace("]", r"\]")):
        Settings().merged(override)


def test_readme_settings_table_matches_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's table is `codellama-lsp settings`' output, row for row, in the same order."""
    from codellama_lsp.cli import settings_main

    settings_main([])
    table = capsys.readouterr().out.strip().splitlines()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text().splitlines()
    start = readme.index(table[0])
    assert readme[start : start + len(table)] == table, "update README.md: codellama-lsp settings"


def test_every_setting_says_what_it_does() -> None:
    assert all(text for *_, text in describe())


def test_settings_the_engines_read_are_the_reload_settings() -> None:
    """Engines keep the settings they were loaded with: a setting they read from that copy
    must reload the engine when it changes, or a live change would not take effect."""
    engines = Path(__file__).resolve().parents[1] / "codellama_lsp" / "engines"
    read = set()
    for source in engines.glob("*.py"):
        read |= set(re.findall(r"settings\.([a-z_]+)", source.read_text()))
    # Defaults for a request that does not say (the completer always says).
    request_defaults = {"speculative", "speculative_max_draft"}
    assert read - request_defaults <= ENGINE_SETTINGS
    assert read >= ENGINE_SETTINGS, "marked reload, but no engine reads it"


@pytest.mark.parametrize("name", CACHE_KEY_SETTINGS)
def test_a_cache_key_setting_changes_the_cache_key(name: str) -> None:
    changed = {
        "prompt_format": "prefix",
        "stop_sequences": ["\n"],
        "temperature": 0.0,
        "top_p": 0.5,
        "fim_suffix_share": 0.5,
        "max_context_tokens": 999,
        "parse_check": False,
        "parse_check_retries": 0,
    }.get(name, 9)
    completer = Completer(Settings())
    ctx = Cursor("x = 1\ny = ", 1, 4)
    before = completer.cache_key("file:///a.py", ctx)
    completer.apply_settings(Settings().merged({name: changed}))
    assert completer.cache_key("file:///a.py", ctx) != before


def test_other_settings_keep_the_cache_key() -> None:
    completer = Completer(Settings())
    ctx = Cursor("x = 1\ny = ", 1, 4)
    before = completer.cache_key("file:///a.py", ctx)
    completer.apply_settings(Settings().merged({"debounce_ms": 0, "log_level": "DEBUG"}))
    assert completer.cache_key("file:///a.py", ctx) == before


VSCODE = Path(__file__).resolve().parents[1] / "editors" / "vscode"
VSCODE_ONLY = {"server.command", "server.pythonPath", "server.args", "server.env"}
VSCODE_ONLY |= {"apiKey"}  # deprecated: read only to move it into VS Code's secret storage
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", tuple: "array"}


def test_vscode_offers_every_editor_setting_with_its_type() -> None:
    """`package.json` lists each editor setting under its client name, with a matching JSON
    type, and a default that is the server's own or "the server's default" (null or empty)."""
    package = json.loads((VSCODE / "package.json").read_text())
    properties = package["contributes"]["configuration"]["properties"]
    offered = {
        key.removeprefix("codellama.")
        for key in properties
        if key.removeprefix("codellama.") not in VSCODE_ONLY and key != "codellama.trace.server"
    }
    assert offered == {client_name(name) for name in EDITOR_SETTINGS}
    for field in dataclasses.fields(Settings):
        if field.name not in EDITOR_SETTINGS:
            continue
        entry = properties[f"codellama.{client_name(field.name)}"]
        kind = typing.get_type_hints(Settings)[field.name]
        base = str if typing.get_origin(kind) is typing.Literal else typing.get_origin(kind) or kind
        assert JSON_TYPES[base] in entry["type"], field.name
        default = list(field.default) if isinstance(field.default, tuple) else field.default
        assert entry["default"] in (None, "", default), field.name


def test_vscode_extension_sends_each_setting_under_its_server_name() -> None:
    source = (VSCODE / "src" / "settings.ts").read_text()
    table = source[source.index("SERVER_SETTING_KEYS") : source.index("};")]
    pairs = dict(re.findall(r"^\s+(\w+): \"(\w+)\",$", table, re.M))
    assert pairs == {client_name(name): name for name in EDITOR_SETTINGS}


RULE_SETTINGS = ("languages", "exclude_files", "complete_in_comments", "complete_in_strings")
"""Where suggestions appear (issue 30): every editor's settings UI and docs list them."""


def test_the_editors_docs_list_where_suggestions_appear() -> None:
    root = VSCODE.parents[1]
    neovim_help = (root / "editors" / "nvim" / "doc" / "codellama.txt").read_text()
    editors_md = (root / "docs" / "editors.md").read_text()
    properties = json.loads((VSCODE / "package.json").read_text())["contributes"]["configuration"]
    for name in RULE_SETTINGS:
        assert name in neovim_help, f"doc/codellama.txt: {name}"
        assert f"`{name}`" in editors_md, f"docs/editors.md: {name}"
        assert f"codellama.{client_name(name)}" in properties["properties"], name
    # The default globs, each where a user reads what it does.
    vscode_text = properties["properties"]["codellama.excludeFiles"]["markdownDescription"]
    for glob in DEFAULT_EXCLUDE_FILES:
        for where, text in [("help", neovim_help), ("editors.md", editors_md)]:
            assert f"`{glob}`" in text, f"{where}: {glob}"
        assert f"`{glob}`" in vscode_text, f"package.json excludeFiles: {glob}"
