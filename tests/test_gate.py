"""The rules that decide whether a request may be answered at all (issue 30): language, file
globs, comments and strings (Python's tokenizer), the snooze's argument."""

from __future__ import annotations

import pytest

from codellama_lsp.completion.gate import (
    document_refusal,
    excluded_file,
    language_of,
    refusal,
)
from codellama_lsp.completion.lexical import place_at, place_in, statement_starts, window_start
from codellama_lsp.config import DEFAULT_EXCLUDE_FILES, Settings, SettingsError
from codellama_lsp.cursor import Cursor
from codellama_lsp.lsp.snooze import SnoozeError, minutes_argument


def at(marked: str) -> Cursor:
    """A cursor where ``█`` is."""
    index = marked.index("█")
    text = marked.replace("█", "")
    before = text[:index]
    return Cursor(text, before.count("\n"), len(before.split("\n")[-1]))


@pytest.mark.parametrize(
    ("marked", "place"),
    [
        ("x = 1  # a comm█", "comment"),
        ("x = 1  #█", "comment"),
        ("# █", "comment"),
        ("x = 1  # note\ny = █", "code"),
        ('x = "a # not a comme█', "string"),
        ('x = "abc"█', "code"),
        ('x = "ab█"', "string"),  # an editor's auto-closed quote after the cursor
        ("x = 'it''s█", "string"),
        ('def f():\n    """Docstring.\n\n    More █\n    """', "string"),
        ('def f():\n    """█"""', "string"),
        ('def f():\n    """Doc."""\n    return █', "code"),
        ('x = rb"raw█', "string"),
        ("print(a, █", "code"),
        ('y = "#"  # real comment█', "comment"),
        ('x = (\n    "a",\n    "b█', "string"),
        # Indentation the tokenizer would refuse does not matter here.
        ("def f():\n        x = 1\n    y = 2  # █", "comment"),
        ("if x:\n\tpass\n        y = '█", "string"),
    ],
)
def test_place_at_the_cursor_from_the_tokenizer(marked: str, place: str) -> None:
    cursor = at(marked)
    assert place_at(cursor.lines, cursor.line, cursor.character) == place


def test_a_docstring_opened_far_above_is_found() -> None:
    lines = ["def f():", '    """Start.', *(["    text line"] * 300), "    more"]
    assert place_at(lines, len(lines) - 1, 8) == "string"


def test_the_window_starts_at_a_sure_statement() -> None:
    lines = ["import os", "", "class A:", "    def f(self):", "        if you:", "            x"]
    assert window_start(lines, 5) == 3  # the method's header
    prose = ['"""Module.', "", "from here on, if you like", '"""', "x = '"]
    assert window_start(prose, 4) == 0  # prose lines are not taken for statements
    assert place_in("x = '") == "string"


def test_statement_starts() -> None:
    code = "x = foo(\n    a,\n    b)\ny = '''\ntext\n'''\nz = 1 + \\\n    2\n# c\nw"
    assert statement_starts(code) == [
        True, False, False, True, False, False, True, False, True, True,
    ]  # fmt: skip


def test_languages_rule() -> None:
    settings = Settings()
    assert document_refusal(settings, "file:///a.py", "python") is None
    assert document_refusal(settings, "file:///a.rs", "rust") == "language"
    assert document_refusal(settings, "file:///a.py", None) is None  # a client that sent none
    assert language_of("untitled:Untitled-1", "") == ""
    rust = settings.merged({"languages": ["python", "Rust"]})
    assert document_refusal(rust, "file:///a.rs", "rust") is None
    every = settings.merged({"languages": "*"})
    assert document_refusal(every, "file:///notes.txt", "plaintext") is None
    with pytest.raises(SettingsError, match="languages must name"):
        settings.merged({"languages": []})


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("/p/.env", True),
        ("/p/.env.local", True),
        ("/p/prod.env", True),
        ("/p/certs/server.pem", True),
        ("/home/u/.ssh/id_ed25519", True),
        ("/home/u/.ssh/id_rsa.pub", True),
        ("/home/u/.aws/credentials", True),
        ("/home/u/.netrc", True),
        ("/p/infra/prod.tfvars", True),
        ("/p/app/environment.py", False),
        ("/p/app/keys.py", False),
        ("/p/.envrc.py", False),
    ],
)
def test_default_excluded_files_are_the_secret_ones(path: str, excluded: bool) -> None:
    settings = Settings().merged({"languages": "*"})
    assert excluded_file(settings, f"file://{path}") is excluded
    assert (document_refusal(settings, f"file://{path}", "x") == "file") is excluded


def test_exclude_globs_match_the_end_of_the_path() -> None:
    settings = Settings().merged({"exclude_files": ["secrets/*", "settings_local.py"]})
    assert excluded_file(settings, "file:///p/secrets/db.py")
    assert excluded_file(settings, "file:///p/app/settings_local.py")
    assert not excluded_file(settings, "file:///p/app/settings.py")
    assert excluded_file(settings, "file:///p/a%20b/secrets/x.py")  # percent-encoded
    assert not excluded_file(Settings().merged({"exclude_files": []}), "file:///p/.env")
    assert ".env" in DEFAULT_EXCLUDE_FILES


def test_comment_and_string_rules_only_when_turned_off() -> None:
    in_comment = at("x = 1  # █")
    in_string = at('x = "█')
    default = Settings()
    assert refusal(default, "file:///a.py", "python", in_comment) is None
    assert refusal(default, "file:///a.py", "python", in_string) is None
    quiet = default.merged({"complete_in_comments": False, "complete_in_strings": False})
    assert refusal(quiet, "file:///a.py", "python", in_comment) == "comment"
    assert refusal(quiet, "file:///a.py", "python", in_string) == "string"
    assert refusal(quiet, "file:///a.py", "python", at("x = █")) is None
    # Python's tokenizer decides for Python documents only.
    other = quiet.merged({"languages": "*"})
    assert refusal(other, "file:///a.js", "javascript", at("x = 1  // █")) is None
    assert refusal(quiet, "file:///a.py", "python", in_comment, snoozed=True) == "snoozed"


@pytest.mark.parametrize(
    ("args", "minutes"),
    [([5], 5.0), ([{"minutes": 30}], 30.0), ([], None), ([None], None), (["0"], 0.0)],
)
def test_snooze_argument(args: list[object], minutes: float | None) -> None:
    assert minutes_argument(args) == minutes


@pytest.mark.parametrize("bad", [["soon"], [-1], [True], [{"minutes": [1]}], [float("nan")]])
def test_bad_snooze_argument_explains_itself(bad: list[object]) -> None:
    with pytest.raises(SnoozeError, match="minutes must be"):
        minutes_argument(bad)
