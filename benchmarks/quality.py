"""Completion quality on real Python files the project did not write (the standard library).

At many cursor positions of four kinds — mid-line, end of line, blank line in a block, after a
``def …:`` line — the true text up to its natural end (end of line for mid-line, end of block
otherwise) is cut out of the file; the real server (over stdio, the real LSP path) is asked for
an inline completion; the engine is a continuation oracle that answers with what truly follows
in the original file *and more* (see ``_oracle_server.py``). So every difference from the true
text is ours: prompt, LSP handling or clean-up. Reported per kind and format:

* natural-end exact match (goal ≥ 90 %), suffix repeats, leaked special tokens, wrong
  first-line indentation (goals 0), prompts over the token budget (goal 0);
* with ``--model demo`` (a real model) instead: exact match and edit similarity;
* the parse check (``--parse-check on|off``): of the suggestions shown where the code around the
  cursor parsed before, how many make it stop parsing, and the check's cost per suggestion.

    .venv/bin/python -m benchmarks.quality               # oracle, both prompt formats
    .venv/bin/python -m benchmarks.quality --model demo  # the real demo model
    .venv/bin/python -m benchmarks.quality --corpus sealed   # the never-read split (below)

**The two splits of issue 28.** Rules written while their positions are in view score well on
those positions and say little about code nobody looked at. So the installed third-party
packages' files are split once by a hash of their names (:func:`split_of`): ``open`` may be
read, printed and tuned on; ``sealed`` is never read while rules are written. Positions are
drawn by ``--seed`` from both the same way, with four more kinds that keep the code after the
cursor's line (the rest of a code, comment or docstring line cut; a whole line's code cut):
there the completion must end where it rejoins the lines below. For ``sealed`` this script
never prints a text, a file name or a position: only counts, per kind, and the categories of
the misses (``--show-failures`` is refused).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import hashlib
import importlib.metadata
import io
import json
import random
import re
import sys
import tempfile
import time
import tokenize
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from benchmarks.common import ROOT
from codellama_lsp.completion.parse_check import parses, window
from codellama_lsp.cursor import Cursor
from codellama_lsp.demo import corpus as demo_corpus

STDLIB = Path(tokenize.__file__).parent
FILES = [
    "textwrap.py",
    "shlex.py",
    "fractions.py",
    "statistics.py",
    "dataclasses.py",
    "argparse.py",
    "json/decoder.py",
    "csv.py",
    "difflib.py",
    "configparser.py",
]
THIRD_PARTY = [
    # Installed with the project (its dependencies and theirs); never used to tune the rules.
    "aiohttp/helpers.py",
    "cachetools/__init__.py",
    "pygls/workspace/text_document.py",
    "attr/_make.py",
    "jinja2/lexer.py",
    "packaging/version.py",
    "tqdm/std.py",
    "idna/core.py",
    "huggingface_hub/utils/_paths.py",
    "yaml/constructor.py",
]
SITE_PACKAGES = Path(aiohttp.__file__).parent.parent
CORPORA = {
    "stdlib": [STDLIB / f for f in FILES],
    "third-party": [SITE_PACKAGES / f for f in THIRD_PARTY],
}


def held_out_files(count: int, seed: int) -> list[Path]:
    """``count`` of the demo corpus's held-out files (never trained on), in a seeded order."""
    files = [f.path for f in demo_corpus.corpus("held-out") if f.path.stat().st_size >= 3000]
    random.Random(seed).shuffle(files)
    return files[:count]


# The never-read split and the one that may be read (issue 28): installed third-party files,
# split once by a hash of "<distribution>/<path>", never by what their positions show.
SPLITS = ("open", "sealed")
SPLIT_EVERY = 10
SPLIT_SALT = "codellama-lsp quality split, issue 28"
SPLIT_MIN_BYTES = 3_000
SPLIT_MAX_BYTES = 200_000
SPLIT_PER_DISTRIBUTION = 2
"""At most this many files of one distribution among the files chosen (torch has thousands)."""
_SPLIT_SKIP_DIRS = {"test", "tests", "testing", "_vendor", "vendor", "examples", "benchmarks"}


def split_of(name: str) -> str | None:
    """``sealed``, ``open`` or None (in neither) for a file named ``<distribution>/<path>``."""
    digest = hashlib.sha256(f"{SPLIT_SALT}\0{name}".encode()).digest()
    bucket = int.from_bytes(digest[:4], "big") % SPLIT_EVERY
    return {0: "sealed", 1: "open"}.get(bucket)


def installed_files() -> list[tuple[str, Path]]:
    """``(<distribution>/<path>, path)`` of the installed distributions' Python files: ours,
    tests and vendored copies left out, and the files of the ``third-party`` corpus."""
    named = {SITE_PACKAGES / f for f in THIRD_PARTY}
    found: dict[str, Path] = {}
    for dist in importlib.metadata.distributions():
        dist_name = str(dist.metadata["Name"] or "").lower()
        if not dist_name or dist_name == "codellama-lsp":
            continue
        for rel in dist.files or []:
            parts = Path(str(rel)).parts
            if not str(rel).endswith(".py") or ".." in parts:
                continue
            if any(p in _SPLIT_SKIP_DIRS or p.startswith("test") for p in parts):
                continue
            path = Path(str(dist.locate_file(rel)))
            try:
                size = path.stat().st_size
            except OSError:
                continue
            if SPLIT_MIN_BYTES <= size <= SPLIT_MAX_BYTES and path not in named:
                found.setdefault(f"{dist_name}/{'/'.join(parts)}", path)
    return sorted(found.items())


def split_files(split: str, count: int) -> list[Path]:
    """``count`` files of ``split``, in a fixed order (by a second hash of the name), at most
    :data:`SPLIT_PER_DISTRIBUTION` per distribution."""
    chosen = [(name, path) for name, path in installed_files() if split_of(name) == split]
    chosen.sort(key=lambda item: hashlib.sha256(f"order\0{item[0]}".encode()).digest())
    per_dist: dict[str, int] = defaultdict(int)
    out: list[Path] = []
    for name, path in chosen:
        dist = name.split("/", 1)[0]
        if per_dist[dist] >= SPLIT_PER_DISTRIBUTION:
            continue
        per_dist[dist] += 1
        out.append(path)
        if len(out) == count:
            break
    return out


KINDS = ("mid-line", "end-of-line", "blank-line", "after-def")
LINE_KINDS = ("code-rest", "comment-rest", "docstring-rest", "line-body")
"""Kinds that keep the lines below the cursor (issue 28): the completion must stop where it
rejoins them. The rest of a code line, of a comment line, of a line inside a multi-line
string cut out; a whole line's code cut (the cursor after its indentation)."""
SPECIAL = re.compile(r"<(PRE|SUF|MID|EOT|FILL_ME)>|</?s>|<unk>")
CLOSERS = ")]}\"'`:,"


@dataclass
class Case:
    id: str
    kind: str
    file: str
    text: str  # the document the editor holds: original with the expected text cut out
    line: int
    column: int
    expected: str
    continuation: str  # what truly follows the cursor in the original file


def indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def string_and_comment_lines(source: str) -> set[int]:
    """0-based lines inside multi-line strings or that are comments: no cursor goes there."""
    skip: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.STRING and tok.start[0] != tok.end[0]:
                skip.update(range(tok.start[0] - 1, tok.end[0]))
            elif tok.type == tokenize.COMMENT:
                skip.add(tok.start[0] - 1)
    except (tokenize.TokenError, SyntaxError):
        pass
    return skip


def comment_and_string_lines(source: str) -> tuple[set[int], set[int]]:
    """0-based lines that are only a comment, and lines strictly inside a multi-line string
    (neither its first nor its last line)."""
    comments: set[int] = set()
    inside: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.STRING and tok.end[0] - tok.start[0] >= 2:
                inside.update(range(tok.start[0], tok.end[0] - 1))
            elif tok.type == tokenize.COMMENT and not tok.line[: tok.start[1]].strip():
                comments.add(tok.start[0] - 1)
    except (tokenize.TokenError, SyntaxError):
        pass
    return comments, inside


def make_line_cases(path: Path, rng: random.Random, per_kind: int, max_chars: int) -> list[Case]:
    """Positions of :data:`LINE_KINDS` in ``path``: the text cut runs to the end of one line,
    and every line below stays in the document."""
    source = path.read_text(encoding="utf-8")
    lines = source.split("\n")
    skip = string_and_comment_lines(source)
    comments, inside = comment_and_string_lines(source)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    order = [i for i, line in enumerate(lines) if i > 20 and line.strip() and line == line.rstrip()]
    rng.shuffle(order)
    cases: list[Case] = []
    counts: dict[str, int] = defaultdict(int)

    def add(kind: str, line: int, column: int) -> None:
        start = offsets[line] + column
        end = offsets[line] + len(lines[line])
        expected = source[start:end]
        if not expected.strip() or len(expected) > max_chars or SPECIAL.search(expected):
            return
        if SPECIAL.search(source[start:]):
            return
        text = source[:start] + source[end:]
        cid = f"{path.name}:{line + 1}:{column + 1}:{kind}"
        cases.append(Case(cid, kind, str(path), text, line, column, expected, source[start:]))
        counts[kind] += 1

    for i in order:
        line = lines[i]
        width = indent(line)
        if i in comments:
            kind, first = "comment-rest", line.index("#") + 2
        elif i in inside:
            kind, first = "docstring-rest", width + 2
        elif i not in skip and not line.lstrip().startswith("@"):
            kind, first = "code-rest", width + 2
        else:
            continue
        if counts[kind] < per_kind and len(line) - first >= 4:
            add(kind, i, rng.randint(first, len(line) - 2))
        if kind == "code-rest" and counts["line-body"] < per_kind and len(line) - width >= 4:
            add("line-body", i, width)
        if all(counts[k] >= per_kind for k in LINE_KINDS):
            break
    return cases


def block_end(lines: list[str], start: int, base: int, *, inclusive: bool) -> int:
    """Index after the last non-blank line of the block that starts below line ``start``.

    The block ends at the first non-blank line indented less than ``base`` (``inclusive``:
    less than or equal, for the body of a ``def``).
    """
    last = start
    for i in range(start + 1, len(lines)):
        if not lines[i].strip():
            continue
        width = indent(lines[i])
        if width < base or (inclusive and width <= base):
            break
        last = i
    return last + 1


def make_cases(path: Path, rng: random.Random, per_kind: int, max_chars: int) -> list[Case]:
    source = path.read_text(encoding="utf-8")
    lines = source.split("\n")
    skip = string_and_comment_lines(source)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    code = [
        i
        for i, line in enumerate(lines)
        if i not in skip and line.strip() and i > 20 and not line.lstrip().startswith("@")
    ]
    rng.shuffle(code)
    cases: list[Case] = []
    counts: dict[str, int] = defaultdict(int)

    def add(kind: str, line: int, column: int, end_offset: int) -> None:
        start = offsets[line] + column
        expected = source[start:end_offset]
        if not expected.strip() or len(expected) > max_chars or SPECIAL.search(expected):
            return
        text = source[:start] + source[end_offset:]
        cid = f"{path.name}:{line + 1}:{column + 1}:{kind}"
        cases.append(Case(cid, kind, str(path), text, line, column, expected, source[start:]))
        counts[kind] += 1

    for i in code:
        line = lines[i]
        body = line.strip()
        # mid-line: cut a span inside the line, keep real code after it on the line.
        if counts["mid-line"] < per_kind and len(body) >= 16:
            first = indent(line) + 2
            last = len(line.rstrip()) - 2
            if last - first > 4:
                column = rng.randint(first, last - 3)
                end = rng.randint(column + 1, last)
                if line[end:].strip().strip(CLOSERS).strip():
                    add("mid-line", i, column, offsets[i] + end)
        # end of line: the rest of the line and of its block are cut.
        opens = body.endswith((":", "(", "[", "{", ",", "\\"))
        if counts["end-of-line"] < per_kind and indent(line) > 0 and len(body) >= 8 and not opens:
            column = rng.randint(indent(line) + 2, len(line.rstrip()) - 1)
            end_line = block_end(lines, i, indent(line), inclusive=False)
            add("end-of-line", i, column, offsets[end_line] - 1)
        # blank line in a block: cursor after the indentation of a line, block cut.
        if counts["blank-line"] < per_kind and indent(line) > 0 and not body.endswith(":"):
            end_line = block_end(lines, i, indent(line), inclusive=False)
            add("blank-line", i, indent(line), offsets[end_line] - 1)
        # after def: the whole body of a one-line def header.
        is_def = re.match(r"\s*(async\s+)?def .*\):\s*$", line) is not None
        has_body = i + 1 < len(lines) and indent(lines[i + 1]) > indent(line)
        if counts["after-def"] < per_kind and is_def and has_body:
            end_line = block_end(lines, i, indent(line), inclusive=True)
            add("after-def", i, len(line), offsets[end_line] - 1)
        if all(counts[k] >= per_kind for k in KINDS):
            break
    return cases


def suffix_after(case: Case) -> str:
    start = sum(len(x) + 1 for x in case.text.split("\n")[: case.line]) + case.column
    return case.text[start:]


def repeats_suffix(completion: str, case: Case) -> bool:
    """Does the completion end with text already after the cursor?"""
    suffix = suffix_after(case)
    rest_of_line = suffix.split("\n", 1)[0].strip()
    if "\n" not in completion and rest_of_line and completion.rstrip().endswith(rest_of_line):
        return True
    upcoming = next((line.strip() for line in suffix.split("\n")[1:] if line.strip()), "")
    if not upcoming or len(upcoming) < 4:
        return False
    return any(line.strip() == upcoming for line in completion.split("\n")[1:])


def ends_with_next_line(completion: str, case: Case) -> bool:
    """Does the completion end with a copy of the first non-blank line below the cursor's
    line (at its indentation; any length), where the true text does not?"""

    def last_line(text: str) -> str:
        full = case.text.split("\n")[case.line][: case.column] + text
        return next((line for line in reversed(full.split("\n")) if line.strip()), "")

    below = next((line for line in suffix_after(case).split("\n")[1:] if line.strip()), "")
    if not completion.strip() or not below.strip():
        return False

    def same(line: str) -> bool:
        return line.strip() == below.strip() and indent(line) == indent(below)

    return same(last_line(completion)) and not same(last_line(case.expected))


MISS_CATEGORIES = (
    "ends with a copy of the next line",
    "nothing shown",
    "stops early (a prefix of the true text)",
    "runs on (the true text and more)",
    "differs inside",
)


def miss_category(completion: str, case: Case) -> str:
    """What kind of miss a completion is (for the sealed split: no text is printed)."""
    if ends_with_next_line(completion, case):
        return MISS_CATEGORIES[0]
    if not completion:
        return MISS_CATEGORIES[1]
    if case.expected.startswith(completion):
        return MISS_CATEGORIES[2]
    if completion.startswith(case.expected):
        return MISS_CATEGORIES[3]
    return MISS_CATEGORIES[4]


def miss_lines(results: list[dict[str, Any]]) -> list[str]:
    """Misses counted by category and kind: counts only, no text."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in results:
        if r["completion"] != r["case"].expected:
            table[miss_category(r["completion"], r["case"])][r["case"].kind] += 1
    if not table:
        return ["Misses: none."]
    out = ["Misses by category (counts per kind):"]
    for category in MISS_CATEGORIES:
        if category in table:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(table[category].items()))
            out.append(f"- {category}: {sum(table[category].values())} ({kinds})")
    return out


def wrong_indentation(completion: str, expected: str) -> bool:
    def first_indent(text: str) -> str | None:
        for n, line in enumerate(text.split("\n")):
            if line.strip():
                return ("first:" if n == 0 else "") + line[: indent(line)]
        return None

    return first_indent(completion) != first_indent(expected)


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


async def run_cases(
    cases: list[Case], options: dict[str, Any], *, oracle: bool, workdir: Path
) -> list[dict[str, Any]]:
    answers = workdir / "answer.json"
    log = workdir / "prompts.jsonl"
    log.write_text("")
    env_cmd = [sys.executable, "-m", "benchmarks._oracle_server"]  # from ROOT (cwd below)
    if not oracle:
        env_cmd = [sys.executable, "-m", "codellama_lsp.cli"]
    import os

    env = {**os.environ, "CODELLAMA_ORACLE_FILE": str(answers), "CODELLAMA_ORACLE_LOG": str(log)}
    client = LanguageClient("quality-benchmark", "1")

    @client.feature("codellama/status")
    def on_status(params: Any) -> None:
        """Status notifications are not needed here."""

    await client.start_io(*env_cmd, env=env, cwd=str(ROOT))
    results: list[dict[str, Any]] = []
    try:
        await client.initialize_async(
            types.InitializeParams(
                capabilities=types.ClientCapabilities(
                    text_document=types.TextDocumentClientCapabilities(
                        inline_completion=types.InlineCompletionClientCapabilities()
                    )
                ),
                # The requests are Invoked; the first candidate is the one measured, whole (an
                # early first line is a prefix of it: with ``auto`` the machine's speed decides).
                initialization_options={"candidates": 1, "early_first_line": "never", **options},
            )
        )
        client.initialized(types.InitializedParams())
        for _ in range(600):
            status = await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="codellama.status")
            )
            assert status is not None
            state = status["state"] if isinstance(status, dict) else status.state
            if state == "ready":
                break
            if state == "error":
                raise RuntimeError(str(status))
            await asyncio.sleep(0.1)
        for n, case in enumerate(cases):
            uri = f"file:///quality/{n}/{Path(case.file).name}"
            prefix_tail = case.text[: sum(len(x) + 1 for x in case.text.split("\n")[: case.line])]
            prefix_tail += case.text.split("\n")[case.line][: case.column]
            answers.write_text(
                json.dumps(
                    {
                        "id": case.id,
                        "continuation": case.continuation,
                        "prefix_tail": prefix_tail[-200:],
                    }
                )
            )
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uri, language_id="python", version=1, text=case.text
                    )
                )
            )
            line_text = case.text.split("\n")[case.line]
            result = await client.text_document_inline_completion_async(
                types.InlineCompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(
                        line=case.line, character=utf16(line_text[: case.column])
                    ),
                    context=types.InlineCompletionContext(
                        trigger_kind=types.InlineCompletionTriggerKind.Invoked
                    ),
                )
            )
            client.text_document_did_close(
                types.DidCloseTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=uri)
                )
            )
            items = result.items if isinstance(result, types.InlineCompletionList) else []
            completion = inserted_at_cursor(items[0], line_text, case.column) if items else ""
            results.append({"case": case, "completion": completion})
        stats = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codellama.stats")
        )
        results.append({"stats": stats})
        await client.shutdown_async(None)
        client.exit(None)
    finally:
        await client.stop()
    prompts = {}
    server_stats = results.pop()["stats"]
    for r in results:
        r["server_stats"] = server_stats
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        prompts[entry["id"]] = entry
    for r in results:
        r["prompt"] = prompts.get(r["case"].id)
    return results


def inserted_at_cursor(item: types.InlineCompletionItem, line_text: str, column: int) -> str:
    """What accepting ``item`` inserts at the cursor: an item whose range runs past the cursor
    puts the text it replaces back at its end (see ``cleanup.line_edit``)."""
    text = str(item.insert_text)
    if item.range is None or item.range.end.line != item.range.start.line:
        return text
    replaced = line_text[column : column + (item.range.end.character - item.range.start.character)]
    return text[: len(text) - len(replaced)] if replaced and text.endswith(replaced) else text


def breaks_parsing(case: Case, completion: str) -> bool | None:
    """None when the code around the cursor did not parse before (the parse check leaves such
    places alone) or nothing is shown; else whether inserting ``completion`` breaks it (a
    completion ending with a block header counts as whole: its body is typed next)."""
    win = window(Cursor(case.text, case.line, case.column), case.column)
    if not completion or win is None or not parses(win.before):
        return None
    return not win.keeps_parsing(completion)


def parse_check_line(results: list[dict[str, Any]]) -> str:
    """Shown suggestions that break code which parsed, and the parse check's cost."""
    verdicts = [breaks_parsing(r["case"], r["completion"]) for r in results]
    judged = [v for v in verdicts if v is not None]
    broken = sum(judged)
    stats = results[0]["server_stats"] if results else {}
    timing = stats.get("timings_ms", {}).get("parse_check", {})
    share = f"{100 * broken / len(judged):.1f}%" if judged else "n/a"
    return (
        f"Parse check: {sum(1 for r in results if r['completion'])} suggestions shown; "
        f"{broken} of the {len(judged)} where the code around the cursor parsed before "
        f"break it ({share}); trimmed {stats.get('parse_check_trimmed', 0)}, dropped "
        f"{stats.get('parse_check_dropped', 0)}; cost per suggestion p50 {timing.get('p50')} ms, "
        f"p95 {timing.get('p95')} ms, max {timing.get('max')} ms (n={timing.get('count', 0)})."
    )


def next_line(text: str) -> str:
    """The first line with code in it: what a ghost text's first visible line shows."""
    return next((line.rstrip() for line in text.split("\n") if line.strip()), "")


def keeps_block_parsing(case: Case, completion: str) -> bool | None:
    """Whether the block around the cursor parses with ``completion`` inserted; None when
    nothing is shown or the true text itself would not make it parse (too large, or a span
    cut from inside a string)."""
    win = window(Cursor(case.text, case.line, case.column), case.column)
    if not completion.strip() or win is None or not win.keeps_parsing(case.expected):
        return None
    return win.keeps_parsing(completion)


def model_rows(results: list[dict[str, Any]]) -> list[str]:
    """What a model's suggestions are worth (issue 16): shown at all, keeping the code around
    the cursor parsing, first line exactly right, edit similarity; per kind."""
    rows = [
        "| kind | n | non-empty | keeps parsing | next line exact | edit sim |",
        "|---|---|---|---|---|---|",
    ]
    for kind in (*KINDS, *LINE_KINDS, "all"):
        chosen = [r for r in results if kind == "all" or r["case"].kind == kind]
        if not chosen:
            continue
        n = len(chosen)
        shown = [r for r in chosen if r["completion"].strip()]
        verdicts = [keeps_block_parsing(r["case"], r["completion"]) for r in shown]
        judged = [v for v in verdicts if v is not None]
        keeps = f"{100 * sum(judged) / len(judged):.1f}%" if judged else "n/a"
        exact = sum(
            bool(r["completion"].strip())
            and next_line(r["completion"]) == next_line(r["case"].expected)
            for r in chosen
        )
        sim = sum(
            difflib.SequenceMatcher(None, r["completion"], r["case"].expected).ratio()
            for r in chosen
        )
        rows.append(
            f"| {kind} | {n} | {100 * len(shown) / n:.1f}% | {keeps} (of {len(judged)}) | "
            f"{100 * exact / n:.1f}% | {sim / n:.3f} |"
        )
    return rows


def budget_for(options: dict[str, Any], kind: str) -> int:
    new = options["max_new_tokens_single_line"] if kind == "mid-line" else options["max_new_tokens"]
    return int(options["max_context_tokens"]) - int(new)


def report(results: list[dict[str, Any]], options: dict[str, Any], title: str) -> list[str]:
    rows = []
    header = (
        "| kind | n | exact | edit sim | suffix repeats | special tokens | "
        "ends with next line | wrong indent | prompt ends at cursor | over budget | "
        "max prompt/budget |"
    )
    rows.append(f"**{title}**\n")
    rows.append(header)
    rows.append("|" + "---|" * 11)
    total: dict[str, float] = defaultdict(float)
    for kind in (*KINDS, *LINE_KINDS, "all"):
        chosen = [r for r in results if kind == "all" or r["case"].kind == kind]
        if not chosen:
            continue
        n = len(chosen)
        exact = sum(r["completion"] == r["case"].expected for r in chosen)
        copies = sum(ends_with_next_line(r["completion"], r["case"]) for r in chosen)
        sim = sum(
            difflib.SequenceMatcher(None, r["completion"], r["case"].expected).ratio()
            for r in chosen
        )
        repeats = sum(repeats_suffix(r["completion"], r["case"]) for r in chosen)
        leaks = sum(bool(SPECIAL.search(r["completion"])) for r in chosen)
        wrong = sum(
            bool(r["completion"]) and wrong_indentation(r["completion"], r["case"].expected)
            for r in chosen
        )
        prompted = [r for r in chosen if r["prompt"]]
        at_cursor = sum(r["prompt"]["prompt_ends_at_cursor"] for r in prompted)
        over = sum(
            r["prompt"]["prompt_tokens"] > budget_for(options, r["case"].kind) for r in prompted
        )
        worst = max(
            (r["prompt"]["prompt_tokens"] / budget_for(options, r["case"].kind) for r in prompted),
            default=0.0,
        )
        at_cursor_text = f"{at_cursor}/{len(prompted)}" if prompted else "n/a"
        rows.append(
            f"| {kind} | {n} | {100 * exact / n:.1f}% | {sim / n:.3f} | {repeats} | {leaks} | "
            f"{copies} | {wrong} | {at_cursor_text} | {over} | {worst:.2f} |"
        )
        if kind == "all":
            total.update(exact=exact / n, repeats=repeats, leaks=leaks, wrong=wrong, over=over)
    rows += ["", parse_check_line(results), "", *miss_lines(results)]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--per-kind", type=int, default=None, help="positions per kind per file (12; splits: 3)"
    )
    parser.add_argument(
        "--files", type=int, default=None, help="files per corpus (10; open/sealed: 60)"
    )
    parser.add_argument(
        "--corpus",
        default="stdlib",
        choices=[*CORPORA, "all", "held-out", *SPLITS],
        help="stdlib (the rules were tuned on it), third-party (held out), all, held-out"
        " (the demo model's held-out split: files its training never read), open (installed"
        " packages' files that may be read) or sealed (never read while writing rules: only"
        " counts are printed)",
    )
    parser.add_argument(
        "--model", default="oracle", help="oracle (default), a model name or a model folder"
    )
    parser.add_argument("--formats", default="prefix,fim")
    parser.add_argument("--max-context-tokens", type=int, default=768)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show-failures", type=int, default=0)
    parser.add_argument("--parse-check", choices=("on", "off"), default="on")
    parser.add_argument(
        "--parse-check-retries", type=int, default=None, help="default: the server's setting"
    )
    args = parser.parse_args()
    split = args.corpus in SPLITS
    if args.corpus == "sealed" and args.show_failures:
        parser.error("the sealed split is never printed: --show-failures is for the others")
    files = args.files if args.files is not None else (60 if split else len(FILES))
    per_kind = args.per_kind if args.per_kind is not None else (3 if split else 12)
    rng = random.Random(args.seed)
    oracle = args.model == "oracle"
    cases: list[Case] = []
    corpora = list(CORPORA) if args.corpus == "all" else [args.corpus]
    for corpus in corpora:
        if corpus in SPLITS:
            paths = split_files(corpus, files)
        elif corpus == "held-out":
            paths = held_out_files(files, args.seed)
        else:
            paths = CORPORA[corpus]
        for path in paths[:files]:
            try:
                cases += make_cases(path, rng, per_kind, max_chars=400)
                if corpus in SPLITS:
                    cases += make_line_cases(path, rng, per_kind, max_chars=400)
            except (UnicodeDecodeError, OSError):
                continue
    counts = ", ".join(
        f"{k} {n}" for k in (*KINDS, *LINE_KINDS) if (n := sum(c.kind == k for c in cases))
    )
    print(
        f"{len(cases)} positions ({counts}) from {len({c.file for c in cases})}"
        f" {' + '.join(corpora)} files",
        file=sys.stderr,
    )
    lines = []
    for fmt in args.formats.split(","):
        options = {
            "model": "demo" if oracle else args.model,
            "temperature": 0,
            "debounce_ms": 0,
            "prompt_format": fmt,
            "max_context_tokens": args.max_context_tokens,
            "max_new_tokens": 160,
            "max_new_tokens_single_line": 48,
            "parse_check": args.parse_check == "on",
        }
        if args.parse_check_retries is not None:
            options["parse_check_retries"] = args.parse_check_retries
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            results = asyncio.run(run_cases(cases, options, oracle=oracle, workdir=Path(tmp)))
        seconds = time.perf_counter() - started
        title = f"{'continuation oracle' if oracle else args.model}, prompt format `{fmt}`"
        title += f", max_context_tokens {args.max_context_tokens} ({seconds:.0f} s)"
        lines += [*report(results, options, title), ""]
        if not oracle:
            lines += [*model_rows(results), ""]
        failures = [r for r in results if r["completion"] != r["case"].expected]
        for r in failures[: args.show_failures]:
            print(
                f"--- {r['case'].id}\nexpected {r['case'].expected!r}\ngot      {r['completion']!r}"
            )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
