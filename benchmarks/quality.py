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
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
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


KINDS = ("mid-line", "end-of-line", "blank-line", "after-def")
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
                # The requests are Invoked; the first candidate is the one measured.
                initialization_options={"candidates": 1, **options},
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
    for kind in (*KINDS, "all"):
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
        "wrong indent | prompt ends at cursor | over budget | max prompt/budget |"
    )
    rows.append(f"**{title}**\n")
    rows.append(header)
    rows.append("|" + "---|" * 10)
    total: dict[str, float] = defaultdict(float)
    for kind in (*KINDS, "all"):
        chosen = [r for r in results if kind == "all" or r["case"].kind == kind]
        if not chosen:
            continue
        n = len(chosen)
        exact = sum(r["completion"] == r["case"].expected for r in chosen)
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
            f"{wrong} | {at_cursor_text} | {over} | {worst:.2f} |"
        )
        if kind == "all":
            total.update(exact=exact / n, repeats=repeats, leaks=leaks, wrong=wrong, over=over)
    rows += ["", parse_check_line(results)]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kind", type=int, default=12, help="positions per kind per file")
    parser.add_argument("--files", type=int, default=len(FILES), help="files per corpus")
    parser.add_argument(
        "--corpus",
        default="stdlib",
        choices=[*CORPORA, "all", "held-out"],
        help="stdlib (the rules were tuned on it), third-party (held out), all, or held-out"
        " (the demo model's held-out split: files its training never read)",
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
    rng = random.Random(args.seed)
    oracle = args.model == "oracle"
    cases: list[Case] = []
    corpora = list(CORPORA) if args.corpus == "all" else [args.corpus]
    for corpus in corpora:
        paths = held_out_files(args.files, args.seed) if corpus == "held-out" else CORPORA[corpus]
        for path in paths[: args.files]:
            cases += make_cases(path, rng, args.per_kind, max_chars=400)
    print(f"{len(cases)} positions from {' + '.join(corpora)} files", file=sys.stderr)
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
