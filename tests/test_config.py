"""Settings: precedence, coercion, and messages for bad values."""

from __future__ import annotations

import pytest

from codellama_lsp.config import Settings, SettingsError, client_overrides, from_environment


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
    from pathlib import Path

    from codellama_lsp.cli import settings_main

    settings_main([])
    table = capsys.readouterr().out.strip().splitlines()
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text().splitlines()
    start = readme.index(table[0])
    assert readme[start : start + len(table)] == table, "update README.md: codellama-lsp settings"
