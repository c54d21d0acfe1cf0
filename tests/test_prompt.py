"""Prompt building: formats, token budget, stable windows, imports and other files' context."""

from __future__ import annotations

import inspect
import textwrap
from functools import cache
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codellama_lsp.completion.prompt import LineCounter, build_prompt, choose_format, window_start
from codellama_lsp.context.open_documents import OpenDocumentsSource, definitions
from codellama_lsp.context.sources import take_snapshot
from codellama_lsp.cursor import Cursor
from codellama_lsp.engines.model_names import resolve_model
from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer


@cache
def tokens() -> CodeTokens:
    return CodeTokens(load_tokenizer(resolve_model("demo")))


SOURCE = inspect.getsource(textwrap)


# The twelve checkpoints of the Code Llama card's index and whether `auto` gives them FIM: the
# 7B, 13B and 70B base and Instruct models infill; the -Python models and the 34B do not.
FAMILY = {
    "codellama/CodeLlama-7b-hf": "fim",
    "codellama/CodeLlama-13b-hf": "fim",
    "codellama/CodeLlama-34b-hf": "prefix",
    "codellama/CodeLlama-70b-hf": "fim",
    "codellama/CodeLlama-7b-Python-hf": "prefix",
    "codellama/CodeLlama-13b-Python-hf": "prefix",
    "codellama/CodeLlama-34b-Python-hf": "prefix",
    "codellama/CodeLlama-70b-Python-hf": "prefix",
    "codellama/CodeLlama-7b-Instruct-hf": "fim",
    "codellama/CodeLlama-13b-Instruct-hf": "fim",
    "codellama/CodeLlama-34b-Instruct-hf": "prefix",
    "codellama/CodeLlama-70b-Instruct-hf": "fim",
}


@pytest.mark.parametrize("name", sorted(FAMILY))
def test_format_follows_the_checkpoint(name: str) -> None:
    t = tokens()
    assert t.infill is not None
    assert choose_format("auto", name, t) == FAMILY[name]
    # The same checkpoint as a local folder or a GGUF file.
    local = f"/models/{name.split('/')[1]}"
    assert choose_format("auto", local, t) == FAMILY[name]
    gguf = f"/models/{name.split('/')[1].lower().removesuffix('-hf')}.Q4_K_M.gguf"
    assert choose_format("auto", gguf, t) == FAMILY[name]


def test_format_of_other_models_and_overrides() -> None:
    t = tokens()
    # The demo model saw FIM samples in training but continues better than it infills.
    assert choose_format("auto", "demo", t) == "prefix"
    assert choose_format("fim", "demo", t) == "fim"
    # An unknown model infills only when its name says so.
    assert choose_format("auto", "random:hidden=64,layers=1", t) == "prefix"
    assert choose_format("auto", "/models/my-llama-python-coder", t) == "prefix"
    assert choose_format("auto", "/models/my-llama-fim", t) == "fim"
    assert choose_format("prefix", "codellama/CodeLlama-13b-hf", t) == "prefix"
    assert choose_format("fim", "codellama/CodeLlama-70b-Python-hf", t) == "fim"


def test_fim_prompt_layout_is_psm_built_from_ids() -> None:
    t = tokens()
    assert t.infill is not None
    ctx = Cursor("def f(x):\n    return x\n", 1, 11)
    prompt = build_prompt(ctx, t, fmt="fim", budget=200)
    ids = list(prompt.ids)
    assert ids[0] == t.bos_id and ids[1] == t.infill.prefix_id and ids[-1] == t.infill.middle_id
    suf = ids.index(t.infill.suffix_id)
    assert t.decode_prompt(ids[2:suf]) == "def f(x):\n    return "
    assert t.decode_continuation(ids[suf + 1 : -1]) == "x\n"


def test_prefix_prompt_is_the_text_before_the_cursor() -> None:
    t = tokens()
    text = "import os\n\n\ndef main():\n\tpath = os.getcwd()\n\t"
    ctx = Cursor(text, 5, 1)
    prompt = build_prompt(ctx, t, fmt="prefix", budget=200)
    assert prompt.ids[0] == t.bos_id
    assert t.decode_prompt(list(prompt.ids[1:])) == text


@settings(max_examples=40, deadline=None)
@given(
    line=st.integers(min_value=0, max_value=SOURCE.count("\n")),
    budget=st.integers(min_value=24, max_value=1500),
    fmt=st.sampled_from(["fim", "prefix"]),
)
def test_prompt_never_exceeds_the_budget(line: int, budget: int, fmt: str) -> None:
    lines = SOURCE.split("\n")
    ctx = Cursor(SOURCE, line, len(lines[line]) // 2)
    prompt = build_prompt(ctx, tokens(), fmt=fmt, budget=budget)  # type: ignore[arg-type]
    assert len(prompt.ids) <= budget


def test_window_start_moves_rarely_while_typing() -> None:
    t = tokens()
    counter = LineCounter(t)
    lines = SOURCE.split("\n")
    cursor_line = 300
    starts = set()
    typed = "        result = wrapper.fill(text)"
    for n in range(1, len(typed) + 1):
        text = "\n".join([*lines[:cursor_line], typed[:n], *lines[cursor_line:]])
        ctx = Cursor(text, cursor_line, n)
        prompt = build_prompt(ctx, t, fmt="prefix", budget=512, counter=counter)
        starts.add(prompt.window_start_line)
    assert len(starts) <= 2
    # And the prompt of one keystroke is the previous prompt plus a few tokens at the end.


def test_window_start_rounding() -> None:
    assert window_start([10] * 100, 10_000) == 0
    start = window_start([10] * 100, 305)
    assert 22 <= 100 - start <= 30  # rounding drops at most a quarter of the window
    assert window_start([100] * 10, 450) < 10  # token-heavy lines keep some lines


def test_imports_kept_when_the_window_starts_below_them() -> None:
    body = "\n".join(f"value_{i} = compute({i})" for i in range(400))
    text = '"""Helpers.\n\nMore."""\nimport os\nimport sys\nfrom pathlib import Path\n\n'
    text += body + "\nresult = "
    lines = text.split("\n")
    ctx = Cursor(text, len(lines) - 1, len(lines[-1]))
    prompt = build_prompt(ctx, tokens(), fmt="prefix", budget=300)
    assert prompt.window_start_line > 6
    assert prompt.prefix_text.startswith(
        '"""Helpers."""\nimport os\nimport sys\nfrom pathlib import Path\n'
    )
    assert prompt.prefix_text.endswith("value_399 = compute(399)\nresult = ")
    assert len(prompt.ids) <= 300


def test_empty_file_and_crlf() -> None:
    t = tokens()
    assert build_prompt(Cursor("", 0, 0), t, fmt="prefix", budget=50).ids == (t.bos_id,)
    ctx = Cursor("def f():\r\n    return 1\r\n", 1, 11)
    prompt = build_prompt(ctx, t, fmt="prefix", budget=100)
    assert "\r" not in t.decode_prompt(list(prompt.ids[1:]))


def test_definitions_found_in_half_typed_code() -> None:
    lines = [
        "class Cache:",
        '    """Keeps things. Really."""',
        "    def get(self, key,",
        "            default=None):",
        '        """Look a key up."""',
        "        return self.x[",  # unfinished
    ]
    found = {d.name: d for d in definitions(lines)}
    assert found["Cache"].doc == "Keeps things"
    assert found["get"].signature == "def get(self, key, default=None)"
    assert found["get"].doc == "Look a key up"


def test_other_documents_give_definitions_and_snippets() -> None:
    other = SimpleNamespace(
        uri="file:///ws/pkg/geometry.py",
        version=3,
        source=(
            "def distance(a, b):\n"
            '    """Euclidean distance between points."""\n'
            "    return math.hypot(a[0] - b[0], a[1] - b[1])\n"
        ),
    )
    current = SimpleNamespace(uri="file:///ws/main.py", version=1, source="")
    documents = {other.uri: other, current.uri: current}
    snapshot = take_snapshot(current.uri, documents, "file:///ws")
    provider = OpenDocumentsSource()
    ctx = Cursor("from pkg.geometry import distance\n\nd = distance(", 2, 13)
    text = provider.context(snapshot, ctx, budget=200)
    assert "# pkg/geometry.py\n# def distance(a, b)\n#     Euclidean distance" in text
    assert provider.fingerprint(snapshot) == ((other.uri, 3),)
    prompt = build_prompt(ctx, tokens(), fmt="prefix", budget=400, extra_context=text)
    assert prompt.prefix_text.startswith("# pkg/geometry.py")
