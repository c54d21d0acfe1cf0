"""Replay realistic typing through the real server over stdio; compare with a naive server.

Two traces (``--trace``):

- ``fast``: a very fast typist in standard-library files (1,300–1,700 tokens before the
  cursor): keys at 20–40 ms, hesitations of 80–300 ms;
- ``person``: a person's speed in third-party files (1,800–4,700 tokens before the cursor):
  keys at 40–120 ms, hesitations of 300–800 ms.

In both the user fixes typos with backspace, pauses at line ends where they wait for the
completion, then accept it (the item's text is applied and its ``codellama.accepted`` command
sent), type its first characters, ask again at the same place, accept its next word (Copilot's
``textDocument/didPartiallyAcceptCompletion``), or ignore it; the server's acceptance figures
are checked against what the simulated user did (``acceptance_matches``). Every edit sends
``didChange`` and an inline completion request, and like Neovim the client never sends
``$/cancelRequest``: the server must supersede stale requests itself.

The same trace runs against three servers, in the same invocation, per model (``--modes``):

- after: the default settings (adaptive debounce, idle-time prefill, supersession, cache,
  typing-through, KV reuse);
- before: the same with the former fixed 60 ms debounce, no idle-time prefill and no
  speculative decoding (issue 4's server);
- naive: ``NAIVE`` below (no supersession, debounce, caches, KV reuse or speculation): every
  request runs its own fresh generation to the end, in arrival order;
- after-plain (only when asked for): the default settings without speculative decoding.

A user waits at most ``--max-wait`` seconds at a pause; a naive server that is further
behind is recorded at that bound (a lower bound on its latency) and the queue it still holds
at the end is counted as generations it would run, then dropped (the process is stopped).

    python -m benchmarks.typing_replay                   # fast typist, all modes
    python -m benchmarks.typing_replay --trace person    # a person's speed
    python -m benchmarks.typing_replay --quick           # smoke run
    python -m benchmarks.typing_replay --quick --workspace   # with the workspace index

Results and their reading: docs/benchmarks.md, "Typing speed".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import re
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp.client import make_test_lsp_client

from benchmarks.common import ROOT

RANDOM_MODEL = "random:hidden=768,layers=8"  # 62.8M parameters with the demo tokenizer
FILES = ("textwrap.py", "shlex.py", "calendar.py", "gettext.py", "argparse.py")
THIRD_PARTY = ("cachetools", "pygls.protocol.json_rpc", "requests.models", "jinja2.lexer")
COMMON: dict[str, Any] = {
    "temperature": 0,
    "max_context_tokens": 2048,
    "max_new_tokens": 12,
    "max_new_tokens_single_line": 12,
    "log_level": "WARNING",
}
MODELS: dict[str, dict[str, Any]] = {
    # Prefix-only prompts, as Code Llama 70B and the Python models (the default model).
    "random-63M": {"model": RANDOM_MODEL, "prompt_format": "prefix"},
    # The tiny demo model, prompted as `prompt_format = auto` does (left to right since issue
    # 16's last stop; FIM before); it was trained on 256-token windows, so it gets the last 256
    # tokens.
    "demo": {"model": "demo", "max_context_tokens": 256},
    # The demo model's text at Code Llama 70B's pace on one GPU (4-bit: 25 tokens/s, a prompt
    # token in 0.25 ms): blocks of up to 48 tokens take seconds, their first line a fraction.
    "demo-70b-pace": {"model": "demo", "max_context_tokens": 256, "max_new_tokens": 48},
}
PACE = {"demo-70b-pace": "decode_ms=40,prefill_ms_per_token=0.25"}
"""``CODELLAMA_LSP_PACE`` for the server of these models (``engines/pace.py``)."""
NAIVE = {
    "supersede": False,
    "debounce_ms": 0,
    "cache_size": 0,
    "kv_cache_slots": 0,
    "idle_prefill": False,
    "prefetch_after_accept": False,
    "speculative": False,
}
MODES: dict[str, dict[str, Any]] = {
    "after": {},
    # Issue 4's server: fixed debounce, no idle prefill, one token per forward pass.
    "before": {
        "debounce_ms": 60,
        "idle_prefill": False,
        "speculative": False,
        "keep_matching_generations": False,
    },
    "naive": NAIVE,
    # The default settings without speculative decoding: what speculation adds to "after".
    "after-plain": {"speculative": False},
    # Issue 27: a multi-line suggestion answered whole (today's server) or at its first line,
    # growing to the block when it is done (the client asks again, as the editors do).
    "whole": {"early_first_line": "never"},
    "first-line": {"early_first_line": "always"},
}


FULL_TRACE = (2, 3, 90)
"""Files, edit sites per file, characters retyped per site (``--quick``: 1, 2, 40)."""
ACCEPT = 0.25
"""A pause's ``choice`` below this: the user accepts the suggestion shown (Tab)."""


@dataclass(frozen=True)
class Speed:
    """How a trace's user types, and where."""

    key_s: tuple[float, float]
    hesitation_s: tuple[float, float]
    hesitation_rate: float
    sites_tokens: tuple[int, int]
    """Edit sites start this many tokens into the file."""
    file_tokens: int
    """Files are cut here."""


SPEEDS = {
    "fast": Speed((0.02, 0.04), (0.08, 0.3), 0.04, (1300, 1700), 1800),
    "person": Speed((0.04, 0.12), (0.3, 0.8), 0.04, (1800, 4700), 5000),
}


# ----------------------------------------------------------------------------- the trace


@dataclass
class Step:
    """One user action."""

    kind: str  # "type", "backspace", "pause", "jump"
    text: str = ""
    delay_s: float = 0.0
    line: int = 0  # for "jump": the line in the document as first opened
    think_s: float = 0.0
    choice: float = 0.0  # for "pause": what the user does with a shown completion
    through: int = 0  # for "pause": how many of its characters they type


@dataclass
class FileTrace:
    uri: str
    text: str
    steps: list[Step]
    prompt_tokens: list[int]
    key_s: tuple[float, float] = (0.02, 0.04)


def _count_tokens() -> Any:
    from codellama_lsp.engines.model_names import demo_model_dir
    from codellama_lsp.engines.tokenization import CodeTokens, load_tokenizer

    return CodeTokens(load_tokenizer(str(demo_model_dir()))).count


def source_files(trace: str) -> list[tuple[str, Path]]:
    """(name, path): standard-library files, or third-party ones (installed packages)."""
    if trace == "fast":
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        return [(name, stdlib / name) for name in FILES]
    found = []
    for module in THIRD_PARTY:
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(module)
            if spec is not None and spec.origin:
                found.append((module.replace(".", "/") + ".py", Path(spec.origin)))
    return found


def build_traces(
    n_files: int, sites: int, chars: int, seed: int, trace: str = "fast", in_workspace: bool = False
) -> list[FileTrace]:
    """Files cut to ``file_tokens``; ``sites`` places per file where ``chars`` are retyped.

    ``in_workspace``: the documents' URIs are the files' own (for ``--trace fast`` inside the
    standard library folder, which the server then indexes as its workspace)."""
    rng = random.Random(seed)
    speed = SPEEDS[trace]
    count = _count_tokens()
    traces: list[FileTrace] = []
    for name, path in source_files(trace):
        if len(traces) == n_files:
            break
        if not path.exists():
            continue
        source = path.read_text()
        if not source.isascii():
            continue
        lines = source.split("\n")
        # Running token count at the start of each line.
        starts, total = [], 0
        for line in lines:
            starts.append(total)
            total += count(line + "\n")
        end = next((i for i, s in enumerate(starts) if s > speed.file_tokens), len(lines))
        low, high = speed.sites_tokens
        candidates = [
            i
            for i in range(end - 4)
            if low <= starts[i] <= high and lines[i].strip() and lines[i].strip()[0] not in "#\"'"
        ]
        if len(candidates) < sites:
            continue
        chosen = sorted(rng.sample(candidates[:: max(1, len(candidates) // (sites * 3))], sites))
        chosen = [c for k, c in enumerate(chosen) if k == 0 or c - chosen[k - 1] > 3]
        doc_lines: list[str] = []
        steps: list[Step] = []
        last = 0
        for site in chosen:
            target, n = "", 0
            while len(target) < chars and site + n < end:
                target += ("\n" if n else "") + lines[site + n]
                n += 1
            doc_lines += [*lines[last:site], ""]
            last = site + n
            steps.append(Step("jump", line=len(doc_lines) - 1, think_s=rng.uniform(0.15, 0.4)))
            steps += typing_steps(target, rng, speed)
            steps.append(pause(rng))
        doc_lines += lines[last:end]
        traces.append(
            FileTrace(
                path.as_uri() if in_workspace else f"file:///bench/{name}",
                "\n".join(doc_lines),
                steps,
                [starts[c] for c in chosen],
                speed.key_s,
            )
        )
    return traces


def pause(rng: random.Random) -> Step:
    return Step(
        "pause", think_s=rng.uniform(0.15, 0.4), choice=rng.random(), through=rng.randint(2, 4)
    )


def typing_steps(target: str, rng: random.Random, speed: Speed) -> list[Step]:
    steps: list[Step] = []
    for i, ch in enumerate(target):
        if (ch == "\n" and rng.random() < 0.6) or (i and rng.random() < 0.03):
            steps.append(pause(rng))
        delay = rng.uniform(*speed.key_s)
        if rng.random() < speed.hesitation_rate:
            delay = rng.uniform(*speed.hesitation_s)  # a hesitation longer than the debounce
        if ch != "\n" and rng.random() < 0.03:  # a typo, fixed at once
            steps.append(Step("type", rng.choice("qxzjv"), delay))
            steps.append(Step("backspace", delay_s=rng.uniform(0.1, 0.2)))
            delay = rng.uniform(*speed.key_s)
        steps.append(Step("type", ch, delay))
    return steps


# ------------------------------------------------------------------------------ the client


@dataclass
class Sent:
    version: int
    started: float
    expect: str = ""  # "typing-through" (with the text expected back) or "repeat"
    expected_text: str = ""
    done: float | None = None
    current: bool = False  # the document was unchanged when the answer came
    gave_up: bool = False  # the user stopped waiting (counted at --max-wait)
    waited: bool = False  # the user paused for this one
    after_jump: bool = False  # the first pause after moving to another place
    position: tuple[int, int] = (0, 0)  # (line, UTF-16 column) it was asked at
    whole: float | None = None  # when the whole block was shown (a grown suggestion: later)
    items: list[types.InlineCompletionItem] = field(default_factory=list)

    @property
    def whole_ms(self) -> float | None:
        return None if self.whole is None else (self.whole - self.started) * 1000

    @property
    def latency_ms(self) -> float | None:
        return None if self.done is None else (self.done - self.started) * 1000

    @property
    def text(self) -> str:
        if not self.items or not isinstance(self.items[0].insert_text, str):
            return ""
        return self.items[0].insert_text


class Editor:
    """A document as the client holds it, with UTF-16 positions for the protocol."""

    def __init__(self, client: Any, uri: str, text: str) -> None:
        self.client, self.uri = client, uri
        self.lines = text.split("\n")
        self.version = 1
        self.line = self.col = 0
        self.sent: list[Sent] = []
        self.keystrokes = 0
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )

    def position(self, line: int, col: int) -> types.Position:
        units = len(self.lines[line][:col].encode("utf-16-le")) // 2
        return types.Position(line=line, character=units)

    def column(self, position: types.Position) -> int:
        """Python index in the line of a UTF-16 position."""
        line, units, col = self.lines[position.line], 0, 0
        while col < len(line) and units < position.character:
            units += len(line[col].encode("utf-16-le")) // 2
            col += 1
        return col

    def replace(self, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        rng = types.Range(self.position(*start), self.position(*end))
        head = self.lines[start[0]][: start[1]]
        tail = self.lines[end[0]][end[1] :]
        new = (head + text + tail).split("\n")
        self.lines[start[0] : end[0] + 1] = new
        self.line = start[0] + len(new) - 1
        self.col = len(new[-1]) - len(tail)
        self.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                content_changes=[types.TextDocumentContentChangePartial(range=rng, text=text)],
            )
        )

    def key(self, text: str) -> None:
        self.keystrokes += 1
        if text == "\b":
            self.replace((self.line, self.col - 1), (self.line, self.col), "")
        else:
            self.replace((self.line, self.col), (self.line, self.col), text)

    def request(self, expect: str = "", expected_text: str = "") -> asyncio.Future[Any]:
        sent = Sent(self.version, time.perf_counter(), expect, expected_text)
        self.sent.append(sent)
        position = self.position(self.line, self.col)
        sent.position = (position.line, position.character)
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=self.uri),
            position=position,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
        future: asyncio.Future[Any] = asyncio.ensure_future(
            self.client.text_document_inline_completion_async(params)
        )

        def on_done(f: asyncio.Future[Any]) -> None:
            sent.done = time.perf_counter()
            sent.current = self.version == sent.version
            if not f.cancelled() and f.exception() is None and f.result() is not None:
                result = f.result()
                sent.items = list(getattr(result, "items", result) or [])

        future.add_done_callback(on_done)
        return future


@dataclass
class RunResult:
    sent: list[Sent]
    keystrokes: int
    censored: int
    stats: dict[str, Any]
    wall_s: float
    did: dict[str, int]
    """What the simulated user accepted: whole items, partial accepts and their characters."""
    accepted_texts: list[str] = field(default_factory=list)
    """The text of each suggestion accepted whole, in trace order."""


NEXT_WORD = re.compile(r"\s*(?:\w+|[^\w\s]+)")


async def replay(
    traces: list[FileTrace],
    options: dict[str, Any],
    *,
    mode: str,
    max_wait: float,
    workspace: Path | None = None,
    pace: str = "",
) -> RunResult:
    options = {**options, **MODES[mode]}
    command = [sys.executable, "-m", "codellama_lsp.cli"]
    client = make_test_lsp_client()
    client.feature("codellama/status")(lambda _params: None)
    grown: set[tuple[str, int, int]] = set()

    def on_grown(params: Any) -> None:
        position = params.position
        grown.add((params.textDocument.uri, position.line, position.character))

    client.feature("codellama/suggestionGrown")(on_grown)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if pace:
        env["CODELLAMA_LSP_PACE"] = pace
    await client.start_io(*command, env=env)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities()
                )
            ),
            initialization_options=options,
            root_uri=workspace.as_uri() if workspace else None,
            workspace_folders=(
                [types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)]
                if workspace
                else None
            ),
        )
    )
    if workspace is not None:
        # Replay once the index is built, as a user who has had the project open a while.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            stats = await client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="codellama.stats")
            )
            assert stats is not None
            index = dict(stats)["workspace_index"]
            built = index["last_build"] if isinstance(index, dict) else index.last_build
            if built:
                print(f"workspace index: {index}", flush=True)
                break
            await asyncio.sleep(0.5)

    async def command_(name: str, *args: Any) -> Any:
        return await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=name, arguments=list(args) or None)
        )

    while (await command_("codellama.status"))["state"] != "ready":
        await asyncio.sleep(0.1)
    editors: list[Editor] = []
    rng = random.Random(1)
    background: set[asyncio.Future[Any]] = set()
    censored = 0
    did = dict.fromkeys(("accepted", "partially_accepted", "partially_accepted_chars"), 0)
    accepted_texts: list[str] = []
    started = time.perf_counter()
    for trace in traces:
        ed = Editor(client, trace.uri, trace.text)
        editors.append(ed)
        last: asyncio.Future[Any] | None = None
        jumped = False
        for step in trace.steps:
            if step.kind == "jump":
                ed.line, ed.col = step.line + len(ed.lines) - len(trace.text.split("\n")), 0
                last = ed.request()
                jumped = True
                await asyncio.sleep(step.think_s)
            elif step.kind in ("type", "backspace"):
                await asyncio.sleep(step.delay_s)
                ed.key("\b" if step.kind == "backspace" else step.text)
                last = ed.request()
            elif step.kind == "pause" and last is not None:
                ed.sent[-1].after_jump, jumped = jumped, False
                censored += await wait(ed.sent[-1], last, max_wait)
                await whole_block(ed, ed.sent[-1], grown, command_, max_wait)
                await asyncio.sleep(step.think_s)
                shown = ed.sent[-1].text if ed.sent[-1].current else ""
                if not shown:
                    continue
                if step.choice < ACCEPT:  # accept it (Tab), then the editor asks again
                    item = ed.sent[-1].items[0]
                    end = (ed.line, ed.col)  # no range: insert at the cursor
                    if item.range is not None:
                        end = (item.range.end.line, ed.column(item.range.end))
                    ed.keystrokes += 1
                    ed.replace((ed.line, ed.col), end, shown)
                    did["accepted"] += 1
                    accepted_texts.append(shown)
                    if item.command is not None:
                        arguments = item.command.arguments or []
                        background.add(
                            asyncio.ensure_future(command_(item.command.command, *arguments))
                        )
                    last = ed.request()
                    censored += await wait(ed.sent[-1], last, max_wait)
                elif step.choice < 0.5:  # type its first characters
                    for k, ch in enumerate(shown.split("\n")[0][: step.through], 1):
                        await asyncio.sleep(rng.uniform(*trace.key_s))
                        ed.key(ch)
                        rest = shown[k:]
                        last = ed.request("typing-through" if rest else "", rest)
                elif step.choice < 0.7:  # the editor asks again at the same place
                    last = ed.request("repeat", shown)
                    censored += await wait(ed.sent[-1], last, max_wait)
                elif step.choice < 0.85 and (word := NEXT_WORD.match(shown)) and word[0] != shown:
                    # Accept its next word (the rest then comes by typing-through).
                    accepting = ed.sent[-1].items[0].command
                    ed.keystrokes += 1
                    ed.replace((ed.line, ed.col), (ed.line, ed.col), word[0])
                    accepted_arguments = accepting.arguments if accepting is not None else None
                    partial = {"insertText": shown, "command": {"arguments": accepted_arguments}}
                    length = len(word[0].encode("utf-16-le")) // 2
                    client.protocol.notify(
                        "textDocument/didPartiallyAcceptCompletion",
                        {"item": partial, "acceptedLength": length},
                    )
                    did["partially_accepted"] += 1
                    did["partially_accepted_chars"] += len(word[0])
                    last = ed.request("typing-through", shown[len(word[0]) :])
        if last is not None:
            censored += await wait(ed.sent[-1], last, max_wait)
    wall = time.perf_counter() - started
    stats = dict(await command_("codellama.stats"))
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.shutdown_session(), 3)
    server = getattr(client, "_server", None)
    if server is not None and server.returncode is None:
        server.terminate()
    await client.stop()
    sent = [s for ed in editors for s in ed.sent]
    keys = sum(ed.keystrokes for ed in editors)
    return RunResult(sent, keys, censored, stats, wall, did, accepted_texts)


async def whole_block(
    ed: Editor, sent: Sent, grown: set[tuple[str, int, int]], command_: Any, max_wait: float
) -> None:
    """After the answer at a pause: when it was a first line (``early_first_line``), wait for
    ``codellama/suggestionGrown`` and ask again, as the editors do, so the user sees the whole
    block; record when it was shown. Otherwise the answer was the whole block."""
    sent.whole = sent.done
    if not (sent.current and sent.text) or sent.gave_up:
        return
    place = (ed.uri, *sent.position)
    while place not in grown:
        if (await command_("codellama.stats"))["growing"] == 0 and place not in grown:
            return  # nothing more is coming for it
        if time.perf_counter() - sent.started > max_wait:
            return
        await asyncio.sleep(0.01)
    grown.discard(place)
    again = ed.request()
    try:
        await asyncio.wait_for(asyncio.shield(again), max_wait)
    except TimeoutError:
        return
    if ed.sent[-1].current:
        sent.whole = ed.sent[-1].done


async def wait(sent: Sent, future: asyncio.Future[Any], max_wait: float) -> int:
    """Wait for an answer as a user would; 1 if they gave up first."""
    sent.waited = True
    try:
        await asyncio.wait_for(asyncio.shield(future), max_wait)
        return 0
    except TimeoutError:
        sent.gave_up = True
        return 1


# ----------------------------------------------------------------------------- reporting


def pct(values: list[float], q: float) -> float | None:
    from codellama_lsp.stats import percentile

    return percentile(values, q)


def summarize(run: RunResult, max_wait: float, naive: bool) -> dict[str, Any]:
    st, keys = run.stats, max(1, run.keystrokes)
    latencies = [max_wait * 1000.0 for s in run.sent if s.gave_up] + [
        s.latency_ms for s in run.sent if s.latency_ms is not None and s.current and not s.gave_up
    ]
    waited = [max_wait * 1000.0 if s.gave_up else s.latency_ms or 0.0 for s in run.sent if s.waited]
    shown_at = [s for s in run.sent if s.waited and not s.gave_up and s.current and s.text]
    first_ghost = [s.latency_ms or 0.0 for s in shown_at]
    whole_ghost = [s.whole_ms or 0.0 for s in shown_at]
    first = [
        max_wait * 1000.0 if s.gave_up else s.latency_ms or 0.0 for s in run.sent if s.after_jump
    ]
    hits: list[float] = [
        s.latency_ms
        for s in run.sent
        if s.expect
        and s.latency_ms is not None
        and s.current
        and not s.gave_up
        and (naive or s.text == s.expected_text)
    ]
    started = st["generations_started"]
    # The naive server never drops a request: each one is a generation, run or still queued.
    committed = st["requests"] - st["cache_hits"] - st["typing_through_hits"] if naive else started
    new_tokens = st["prompt_tokens"] - st["reused_prompt_tokens"]
    timings = st.get("timings_ms", {})

    def timing(name: str, key: str) -> float | None:
        value = timings.get(name, {})
        return value.get(key) if value.get("count") else None

    acceptance = st.get("acceptance", {})
    return {
        "partial_accepts": run.did["partially_accepted"],
        "acceptance_matches": all(acceptance.get(k) == v for k, v in run.did.items()),
        "keystrokes": run.keystrokes,
        "requests": st["requests"],
        "wall_s": round(run.wall_s, 1),
        "latency_p50_ms": pct(latencies, 50),
        "latency_p95_ms": pct(latencies, 95),
        "latency_p99_ms": pct(latencies, 99),
        "latency_samples": len(latencies),
        "waited_p50_ms": pct(waited, 50),
        "waited_p95_ms": pct(waited, 95),
        "first_ghost_p50_ms": pct(first_ghost, 50),
        "first_ghost_p95_ms": pct(first_ghost, 95),
        "whole_block_p50_ms": pct(whole_ghost, 50),
        "whole_block_p95_ms": pct(whole_ghost, 95),
        "pauses_with_text": len(shown_at),
        "early_answers": st.get("early_answers", 0),
        "suggestions_grown": st.get("suggestions_grown", 0),
        "early_not_prefix": st.get("early_not_prefix", 0),
        "accepted_texts": run.accepted_texts,
        "after_jump_p50_ms": pct(first, 50),
        "after_jump_max_ms": round(max(first), 3) if first else None,
        "gave_up_waiting": run.censored,
        "shown": sum(1 for s in run.sent if s.current and s.text),
        "generations_per_100_keys": round(100 * committed / keys, 1),
        "started_per_100_keys": round(100 * started / keys, 1),
        "retries_per_100_keys": round(100 * st.get("parse_check_retries", 0) / keys, 1),
        "completed_per_100_keys": round(100 * st["generations_completed"] / keys, 1),
        "cancelled_per_100_keys": round(100 * st["generations_cancelled"] / keys, 1),
        "completed_share": round(st["generations_completed"] / max(1, started), 3),
        "kept_per_100_keys": round(100 * st.get("generations_kept", 0) / keys, 1),
        "kept_hits": st.get("kept_generation_hits", 0),
        "idle_prefills_per_100_keys": round(100 * st.get("idle_prefills_started", 0) / keys, 1),
        "idle_prefill_tokens": st.get("idle_prefill_tokens", 0),
        "debounce_wait_p50_ms": timing("debounce_wait", "p50"),
        "debounce_wait_max_ms": timing("debounce_wait", "max"),
        "unshown_tokens": st["discarded_tokens"],
        "generated_tokens": st["generated_tokens"],
        "cache_hit_rate": round(st["cache_hits"] / max(1, st["requests"]), 3),
        "typing_through_hit_rate": round(st["typing_through_hits"] / max(1, st["requests"]), 3),
        "hit_latency_p50_ms": pct(hits, 50),
        "hit_samples": len(hits),
        "prompt_tokens_per_generation": round(st["prompt_tokens"] / max(1, started), 1),
        "reused_per_generation": round(st["reused_prompt_tokens"] / max(1, started), 1),
        "prefilled_per_generation": round(new_tokens / max(1, started), 1),
        "prefilled_per_request": round(new_tokens / max(1, st["requests"]), 1),
        "cancel_to_idle_prefill_p50_ms": timing("cancel_to_idle_prefill", "p50"),
        "cancel_to_idle_prefill_max_ms": timing("cancel_to_idle_prefill", "max"),
        "cancels_in_prefill": timings.get("cancel_to_idle_prefill", {}).get("count", 0),
        "cancel_to_idle_decode_p50_ms": timing("cancel_to_idle_decode", "p50"),
        "cancel_to_idle_decode_max_ms": timing("cancel_to_idle_decode", "max"),
        "cancels_in_decode": timings.get("cancel_to_idle_decode", {}).get("count", 0),
        "interrupted_step_prefill_p50_ms": timing("interrupted_step_prefill", "p50"),
        "interrupted_step_prefill_max_ms": timing("interrupted_step_prefill", "max"),
        "interrupted_step_decode_p50_ms": timing("interrupted_step_decode", "p50"),
        "interrupted_step_decode_max_ms": timing("interrupted_step_decode", "max"),
        "prefill_chunk_p50_ms": timing("prefill_chunk", "p50"),
        "prefill_chunk_max_ms": timing("prefill_chunk", "max"),
        "decode_passes_per_token": round(
            st.get("decode_forward_passes", 0) / max(1, st["generated_tokens"]), 3
        ),
        "draft_acceptance": round(
            sum(v for k, v in st.items() if k.startswith("draft_accepted_"))
            / max(1, sum(v for k, v in st.items() if k.startswith("draft_tokens_"))),
            3,
        ),
        "decode_step_p50_ms": timing("decode_step", "p50"),
        "decode_step_max_ms": timing("decode_step", "max"),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


P50_TARGET = {"random-63M": 0.2, "demo": 1.0}
"""After vs naive p50 latency (issue 10: the demo model no longer worse, the 63M one <= 0.2x)."""


def targets(
    tuned: dict[str, Any], naive: dict[str, Any], prefix_format: bool, p50_target: float
) -> list[str]:
    """The issue's targets, each as 'PASS/FAIL text'."""
    checks: list[tuple[bool | None, str]] = []
    r = ratio(tuned["latency_p50_ms"], naive["latency_p50_ms"])
    text = f"p50 latency {r}x naive (target <= {p50_target}x)"
    checks.append((r is not None and r <= p50_target, text))
    r = ratio(tuned["generations_per_100_keys"], naive["generations_per_100_keys"])
    checks.append((r is not None and r <= 0.15, f"generations/100 keys {r}x (target <= 0.15x)"))
    r = ratio(tuned["prefilled_per_generation"], naive["prefilled_per_generation"])
    note = "" if prefix_format else " [FIM prompt: informational]"
    ok = r is not None and r <= 0.1
    checks.append((ok if prefix_format else None, f"prefilled tokens/generation {r}x{note}"))
    for phase, step in (("prefill", "prefill chunk"), ("decode", "decode step")):
        idle = tuned[f"cancel_to_idle_{phase}_max_ms"]
        bound = tuned[f"interrupted_step_{phase}_max_ms"]
        text = f"cancel->idle in {phase} max {idle} ms vs the {step} in flight, max {bound} ms"
        checks.append((None if idle is None else bound is not None and idle <= bound, text))
    hit = tuned["hit_latency_p50_ms"]
    checks.append((hit is not None and hit <= 3.0, f"cache/typing-through hit p50 {hit} ms (<= 3)"))
    return labelled(checks)


def person_targets(after: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """Issue 10's targets at a person's typing speed."""
    started, share = after["started_per_100_keys"], after["completed_share"]
    r = ratio(after["waited_p50_ms"], before["waited_p50_ms"])
    return labelled(
        [
            (started <= 10, f"generations started per 100 keys {started} (target <= 10)"),
            (share >= 0.8, f"share of them completed {share} (target >= 0.8)"),
            (r is not None and r <= 0.5, f"pause->ghost text p50 {r}x before (target <= 0.5x)"),
        ]
    )


def first_line_targets(early: dict[str, Any], whole: dict[str, Any]) -> list[str]:
    """Issue 27's targets: the first line sooner, the whole block no later, the same text."""
    first = ratio(early["first_ghost_p50_ms"], whole["first_ghost_p50_ms"])
    block = ratio(early["whole_block_p50_ms"], whole["whole_block_p50_ms"])
    a, b = early["accepted_texts"], whole["accepted_texts"]
    same = sum(x == y for x, y in zip(a, b, strict=False))
    identical = len(a) == len(b) and same == len(a)
    return labelled(
        [
            (first is not None and first <= 0.4, f"pause->first ghost p50 {first}x (<= 0.4x)"),
            (block is not None and block <= 1.05, f"pause->whole block p50 {block}x (<= 1.05x)"),
            (identical, f"accepted texts identical: {same} of {len(a)} / {len(b)}"),
            (early["early_not_prefix"] == 0, f"early not a prefix: {early['early_not_prefix']}"),
        ]
    )


def labelled(checks: list[tuple[bool | None, str]]) -> list[str]:
    label = {True: "PASS", False: "FAIL", None: "n/a "}
    return [f"{label[ok]} {text}" for ok, text in checks]


ROWS = [
    ("keystroke→completion latency p50 (ms)", "latency_p50_ms"),
    ("latency p95 (ms)", "latency_p95_ms"),
    ("latency p99 (ms)", "latency_p99_ms"),
    ("  answers counted (in time, or given up on)", "latency_samples"),
    ("pause → ghost text p50 (ms)", "waited_p50_ms"),
    ("pause → ghost text p95 (ms)", "waited_p95_ms"),
    ("pause → first ghost text p50 / p95 (ms, pauses that showed text)", "first_ghost"),
    ("pause → whole block shown p50 / p95 (ms)", "whole_block"),
    ("  pauses that showed text", "pauses_with_text"),
    ("answers at the first line / of them grown / not a prefix", "early"),
    ("first pause after a jump p50 / max (ms)", "after_jump"),
    ("user gave up waiting (pauses)", "gave_up_waiting"),
    ("completions shown (answered in time, not empty)", "shown"),
    ("generations per 100 keys (run or queued)", "generations_per_100_keys"),
    ("generations started per 100 keys", "started_per_100_keys"),
    ("  of them parse-check retries (a suggestion dropped)", "retries_per_100_keys"),
    ("generations completed per 100 keys", "completed_per_100_keys"),
    ("generations cancelled per 100 keys", "cancelled_per_100_keys"),
    ("share of started generations completed", "completed_share"),
    ("generations kept running by matching keys per 100 keys", "kept_per_100_keys"),
    ("  answers a kept generation gave at a pause", "kept_hits"),
    ("idle-time prefills per 100 keys", "idle_prefills_per_100_keys"),
    ("  tokens they prefilled", "idle_prefill_tokens"),
    ("debounce wait p50 / max (ms)", "debounce_wait"),
    ("tokens generated, never shown", "unshown_tokens"),
    ("tokens generated, all", "generated_tokens"),
    ("cache hit rate (of requests)", "cache_hit_rate"),
    ("typing-through hit rate", "typing_through_hit_rate"),
    ("hit latency p50 (ms) [naive: same requests]", "hit_latency_p50_ms"),
    ("prompt tokens per generation", "prompt_tokens_per_generation"),
    ("  reused from KV cache", "reused_per_generation"),
    ("  prefilled (new)", "prefilled_per_generation"),
    ("prefilled tokens per request", "prefilled_per_request"),
    ("cancel→idle in prefill p50 / max (ms)", "cancel_to_idle_prefill"),
    ("cancel→idle in decode p50 / max (ms)", "cancel_to_idle_decode"),
    ("  the prefill chunk it waited for p50 / max", "interrupted_step_prefill"),
    ("  the decode step it waited for p50 / max", "interrupted_step_decode"),
    ("one prefill chunk p50 / max (ms, mean per generation)", "prefill_chunk"),
    ("one decode step p50 / max (ms, mean per generation)", "decode_step"),
    ("decode forward passes per generated token", "decode_passes_per_token"),
    ("speculative drafts accepted (share)", "draft_acceptance"),
    ("keystrokes / requests", "keys"),
    ("replay wall time (s)", "wall_s"),
    ("partial accepts by the user", "partial_accepts"),
    ("server's acceptance figures = what the user did", "acceptance_matches"),
]


def cell(m: dict[str, Any], key: str) -> str:
    if key in ("cancel_to_idle_prefill", "cancel_to_idle_decode"):
        n = m[f"cancels_in_{key.rsplit('_', 1)[1]}"]
        return f"{m[key + '_p50_ms']} / {m[key + '_max_ms']} (n={n})" if n else "–"
    if key.startswith("interrupted_step"):
        n = m[f"cancels_in_{key.rsplit('_', 1)[1]}"]
        return f"{m[key + '_p50_ms']} / {m[key + '_max_ms']}" if n else "–"
    if key == "after_jump":
        return f"{m[key + '_p50_ms']} / {m[key + '_max_ms']}"
    if key in ("first_ghost", "whole_block"):
        return f"{m[key + '_p50_ms']} / {m[key + '_p95_ms']}"
    if key == "early":
        return f"{m['early_answers']} / {m['suggestions_grown']} / {m['early_not_prefix']}"
    if key in ("prefill_chunk", "decode_step", "debounce_wait"):
        return f"{m[key + '_p50_ms']} / {m[key + '_max_ms']}"
    if key == "keys":
        return f"{m['keystrokes']} / {m['requests']}"
    if key == "hit_latency_p50_ms":
        return f"{m[key]} (n={m['hit_samples']})"
    value = m[key]
    return "–" if value is None else str(value)


def table(name: str, results: dict[str, dict[str, Any]]) -> str:
    """One column per mode, then after/before and after/naive where both ran."""
    modes = list(results)
    known = (("after", "before"), ("after", "naive"), ("first-line", "whole"))
    pairs = [(a, b) for a, b in known if {a, b} <= set(modes)]
    head = [name, *modes, *(f"{a}/{b}" for a, b in pairs)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, key in ROWS:
        cells = [cell(results[m], key) for m in modes]
        for a, b in pairs:
            value = results[a].get(key)
            r = ratio(value, results[b].get(key)) if isinstance(value, int | float) else None
            cells.append(str(r or ""))
        lines.append("| " + " | ".join([label, *cells]) + " |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    from codellama_lsp.engines.model_names import resolve_model

    if args.quick:
        n_files, sites, chars = 1, 2, 40
    else:
        n_files, sites, chars = FULL_TRACE
    workspace = Path(sysconfig.get_paths()["stdlib"]) if args.workspace else None
    traces = build_traces(n_files, sites, chars, args.seed, args.trace, workspace is not None)
    print(
        f"trace: {len(traces)} files, {sum(len(t.steps) for t in traces)} steps, "
        f"tokens before the edit sites: {[t.prompt_tokens for t in traces]}",
        flush=True,
    )
    report: dict[str, Any] = {"command": " ".join(sys.argv), "models": {}}
    failed = False
    for name in args.models.split(","):
        options = {**COMMON, **MODELS[name]}
        resolve_model(str(options["model"]))  # build the random model once, before timing
        results = {}
        for mode in args.modes.split(","):
            t0 = time.perf_counter()
            run = await replay(
                traces,
                options,
                mode=mode,
                max_wait=args.max_wait,
                workspace=workspace,
                pace=PACE.get(name, ""),
            )
            results[mode] = summarize(run, args.max_wait, mode == "naive")
            print(f"[{name}] {mode}: {time.perf_counter() - t0:.0f} s", flush=True)
        checks = []
        if "after" in results and "naive" in results:
            prefix_format = options.get("prompt_format") == "prefix"
            p50_target = P50_TARGET.get(name, 0.2)
            checks += targets(results["after"], results["naive"], prefix_format, p50_target)
        if args.trace == "person" and "after" in results and "before" in results:
            checks += person_targets(results["after"], results["before"])
        if "first-line" in results and "whole" in results:
            checks += first_line_targets(results["first-line"], results["whole"])
        failed |= any(c.startswith("FAIL") for c in checks)
        print(f"\n### {name} ({options['model']})\n\n{table(name, results)}\n")
        print("\n".join(checks) + "\n", flush=True)
        report["models"][name] = {"options": options, **results, "targets": checks}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if failed and args.strict else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS)
    )
    parser.add_argument("--trace", choices=sorted(SPEEDS), default="fast", help="who types")
    parser.add_argument(
        "--modes", default="after,before,naive", help="comma-separated: " + ", ".join(MODES)
    )
    parser.add_argument("--max-wait", type=float, default=5.0, help="seconds a user waits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--workspace",
        action="store_true",
        help="open the standard library as the workspace (the index adds context)",
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
