"""Side by side with llama.vim: the person trace typed in headless Neovim on one llama-server.

Three clients type the same trace (``benchmarks/typing_replay.py``'s ``person`` trace: a
person's speed in third-party files, typos fixed at once, pauses where a suggestion is wanted):

- ``llama.vim``: llama.vim itself (MIT, vendored in ``benchmarks/peers/llama.vim`` with the
  commit it came from), its default settings but ``show_info = 0``, talking to llama-server's
  ``/infill`` as it does for its users;
- ``ours-http``: our Neovim plugin (``editors/nvim``) and language server, ``backend = http``,
  on the same llama-server (``/completion`` with token ids, its prompt cache);
- ``ours-http-fim``: the same with ``prompt_format = fim`` (FIM prompts, as llama.vim's; our
  default for this model, ``auto``, prompts it left to right);
- ``ours-local``: the same plugin and server with the in-process engine (transformers) on the
  same model (the demo model, of which the GGUF is a conversion).

The keys are fed inside Neovim at the trace's delays (``benchmarks/peers/replay.lua``); at each
pause the user waits for the ghost text (at most ``--max-wait`` s), reads it, and types on
(suggestions are not accepted, so that every client sees the same text). llama-server is
restarted for each client (a cold KV cache each time), with one slot and 1 thread; a proxy in
front of it counts the requests each client sends and whether they ran to the end or were
closed by the client (it passes a closed connection on at once, so cancellation works through
it). llama-server's ``/metrics`` give the tokens it prefilled and decoded, ``/proc`` its CPU
time. For the in-process engine the same figures come from ``codellama.stats`` (prompt tokens
less reused ones, plus idle-time prefill; generated tokens) and the language server's CPU time.

    python -m benchmarks.peer_llama_vim --seeds 0,1  # 2 traces × 2 files, 3 sites, 90 characters
    python -m benchmarks.peer_llama_vim --quick      # 1 file, 2 sites, 40 characters
    python -m benchmarks.peer_llama_vim --clients llama.vim,ours-http

Needs llama-server and the demo GGUF (``scripts/setup_llama_cpp.sh DEST``,
``CODELLAMA_LSP_LLAMA_CPP=DEST``) and Neovim 0.12 (``scripts/install_editor_deps.sh``,
``CODELLAMA_TOOLS_DIR``). Results and their reading: docs/benchmarks.md, "Side by side with
llama.vim".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT
from benchmarks.typing_replay import FileTrace, build_traces
from codellama_lsp.stats import percentile

CLIENTS = ("llama.vim", "ours-http", "ours-http-fim", "ours-local")
HTTP_CLIENTS = ("ours-http", "ours-http-fim")
PEERS = Path(__file__).resolve().parent / "peers"
LLAMA_VIM = PEERS / "llama.vim"
REPLAY = PEERS / "replay.lua"
SERVER_ARGS = ("--parallel", "1", "--metrics", "--ctx-size", "8192", "--threads", "1")
"""One slot (llama.vim always asks for slot 0), 8k context, one thread (a shared 2-core box)."""
OUR_SETTINGS: dict[str, Any] = {"model": "demo", "log_level": "WARNING"}
"""Our defaults but the model: the demo model (the GGUF's source)."""


# ------------------------------------------------------------------------------ the proxy


@dataclass
class Forwarded:
    path: str
    n_predict: int | None
    started: float
    ended: float = 0.0
    status: int = 0
    finished: bool = False
    """The server's whole answer reached the client (it ran to its own end)."""
    closed_by_client: bool = False


class CountingProxy:
    """Passes HTTP through to llama-server and notes each completion request. A client that
    closes its connection while the server works has the upstream connection closed at once
    (the server then stops), as if it were connected directly."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests: list[Forwarded] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.forward(self, "GET", b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.forward(self, "POST", body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def forward(self, handler: BaseHTTPRequestHandler, method: str, body: bytes) -> None:
        import http.client

        record = None
        if method == "POST" and handler.path in ("/completion", "/infill", "/v1/completions"):
            fields = json.loads(body or b"{}")
            n_predict = fields.get("n_predict", fields.get("max_tokens"))
            record = Forwarded(handler.path, n_predict, time.monotonic())
            self.requests.append(record)
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=600)
        done = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(handler.connection, conn, done, record), daemon=True
        )
        try:
            headers = {"Content-Type": "application/json"}
            auth = handler.headers.get("Authorization")
            if auth:
                headers["Authorization"] = auth
            conn.request(method, handler.path, body or None, headers)
            watcher.start()
            response = conn.getresponse()
            self._relay(handler, response, record, done)
        except OSError:
            pass  # either side went away
        finally:
            done.set()
            conn.close()
            if record is not None:
                record.ended = time.monotonic()

    @staticmethod
    def _relay(
        handler: BaseHTTPRequestHandler,
        response: Any,
        record: Forwarded | None,
        done: threading.Event,
    ) -> None:
        """Pass the answer on. Once the server's whole answer is read, the request has run to
        its end (``finished``) unless the client left before; the watcher stops then (a
        client closing after it has its answer is not closing it early)."""
        streamed = "event-stream" in (response.getheader("Content-Type") or "")
        if record is not None:
            record.status = response.status
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.getheader("Content-Type") or "text/plain")
        handler.send_header("Connection", "close")
        if not streamed:
            data = response.read()
            done.set()
            if record is not None and not record.closed_by_client:
                record.finished = response.status == 200
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.end_headers()
        while line := response.readline():
            if record is not None and line.startswith(b"data:") and b'"stop":true' in line:
                done.set()
                record.finished = not record.closed_by_client
            handler.wfile.write(line)
            handler.wfile.flush()
        handler.close_connection = True

    @staticmethod
    def _watch(
        client: socket.socket, upstream: Any, done: threading.Event, record: Forwarded | None
    ) -> None:
        """Close the upstream connection as soon as the client closes its own."""
        while not done.is_set():
            try:
                readable, _, _ = select.select([client], [], [], 0.05)
            except (OSError, ValueError):
                return  # the handler has closed it: the request is over
            if not readable or done.is_set():
                continue
            try:
                peek = client.recv(1, socket.MSG_PEEK)
            except OSError:
                peek = b""
            if peek:
                time.sleep(0.05)  # a pipelined request: not ours to read
                continue
            if record is not None:
                record.closed_by_client = True
            sock = upstream.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------------------- llama-server


def metrics(url: str) -> dict[str, float]:
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name.removeprefix("llamacpp:")] = float(value)
    return values


def flush_metrics(url: str) -> None:
    """A one-token prompt with nothing to generate: the slot is reset for it, which adds the
    previous task's generated tokens to ``tokens_predicted_total`` (counted at a reset)."""
    import urllib.request

    body = json.dumps({"prompt": [1], "n_predict": 0, "cache_prompt": False}).encode()
    request = urllib.request.Request(
        f"{url}/completion", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ one client


@dataclass
class ClientRun:
    client: str
    keys: int = 0
    latencies_s: list[float | None] = field(default_factory=list)
    after_jump: list[bool] = field(default_factory=list)
    """Per pause: the first one at a new place (a full prefill there)."""
    requests: list[Forwarded] = field(default_factory=list)
    prefilled: float = 0.0
    decoded: float = 0.0
    engine_cpu_s: float = 0.0
    editor_cpu_s: float = 0.0
    """The editor side: Neovim with what it ran and reaped (llama.vim's curl jobs), and for
    ``ours-http`` our language server."""
    stats: list[dict[str, Any]] = field(default_factory=list)


def nvim_binary() -> Path:
    tools = Path(os.environ.get("CODELLAMA_TOOLS_DIR", ROOT / ".tools"))
    return tools / "nvim-0.12" / "bin" / "nvim"


def type_trace(
    client: str, trace: FileTrace, work: Path, endpoint: str, max_wait: float
) -> dict[str, Any]:
    """One file typed in a fresh headless Neovim; the driver's results."""
    from tests.support.editors import isolated_env, server_command

    work.mkdir(parents=True)
    file = work / Path(trace.uri).name
    file.write_text(trace.text)
    steps = work / "steps.json"
    steps.write_text(json.dumps({"steps": [asdict(s) for s in trace.steps]}))
    out = work / "out.json"
    settings = {**OUR_SETTINGS, "backend": "local"}
    if client in HTTP_CLIENTS:
        settings = {**OUR_SETTINGS, "backend": "http", "server_url": endpoint}
    if client == "ours-http-fim":
        settings["prompt_format"] = "fim"  # as llama.vim prompts (ours: prefix for this model)
    env = {
        **isolated_env(work),
        "BENCH_PLUGIN": "llama.vim" if client == "llama.vim" else "codellama",
        "BENCH_PLUGIN_DIR": str(LLAMA_VIM if client == "llama.vim" else ROOT / "editors" / "nvim"),
        "BENCH_ENDPOINT": f"{endpoint}/infill",
        "BENCH_SERVER_CMD": server_command(),
        "BENCH_SETTINGS_JSON": json.dumps(settings),
        "BENCH_STEPS": str(steps),
        "BENCH_OUT": str(out),
        "BENCH_MAX_WAIT": str(max_wait),
        "BENCH_CLK_TCK": str(os.sysconf("SC_CLK_TCK")),
    }
    command = [str(nvim_binary()), "--headless", "--clean", "--noplugin", "-u", str(REPLAY)]
    with (work / "nvim.log").open("wb") as log:
        done = subprocess.run(
            ["timeout", "1800", *command, str(file)],
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if not out.exists():
        raise RuntimeError(
            f"{client}: Neovim exited ({done.returncode}) without results:\n"
            + (work / "nvim.log").read_text(errors="replace")[-3000:]
        )
    return dict(json.loads(out.read_text()))


def run_client(
    client: str, traces: list[FileTrace], tmp: Path, max_wait: float, dest: Path
) -> ClientRun:
    from tests.support.llama_server import LlamaServer, demo_gguf, server_binary
    from tests.support.model_servers import free_port

    run = ClientRun(client)
    server = proxy = None
    if client != "ours-local":
        server = LlamaServer(
            server_binary(dest), demo_gguf(dest), free_port(), tmp / f"{client}.log", SERVER_ARGS
        )
        server.start()
        proxy = CountingProxy(server.port)
    try:
        before = metrics(server.url) if server else {}
        cpu_before = cpu_seconds(server.proc.pid) if server and server.proc else 0.0
        for n, trace in enumerate(traces):
            work = tmp / f"{client}-{n}-{Path(trace.uri).stem}"
            out = type_trace(client, trace, work, proxy.url if proxy else "", max_wait)
            run.keys += int(out["keys"])
            run.latencies_s += [p["latency_s"] for p in out["pauses"]]
            run.after_jump += [bool(p.get("after_jump")) for p in out["pauses"]]
            run.editor_cpu_s += float(out.get("editor_cpu_s", 0.0))
            if client == "ours-local":
                run.engine_cpu_s += float(out.get("server_cpu_s", 0.0))
            else:
                run.editor_cpu_s += float(out.get("server_cpu_s", 0.0))
            if "stats" in out and isinstance(out["stats"], dict):
                run.stats.append(out["stats"])
            if server:
                flush_metrics(server.url)
        if server and proxy and server.proc:
            after = metrics(server.url)
            run.prefilled = after["prompt_tokens_total"] - before["prompt_tokens_total"]
            run.prefilled -= len(traces)  # the flushes' one-token prompts
            run.decoded = after["tokens_predicted_total"] - before["tokens_predicted_total"]
            run.engine_cpu_s = cpu_seconds(server.proc.pid) - cpu_before
            run.requests = list(proxy.requests)
        else:
            for st in run.stats:
                run.prefilled += st["prompt_tokens"] - st["reused_prompt_tokens"]
                run.prefilled += st["idle_prefill_tokens"]
                run.decoded += st["generated_tokens"]
    finally:
        if proxy:
            proxy.close()
        if server:
            server.kill()
    return run


# ------------------------------------------------------------------------------- summary


def summarize(run: ClientRun, max_wait: float) -> dict[str, Any]:
    """Per 100 keys. A generation "ran to the end" when it stopped by its own rule (length,
    end token, a stop sequence, or for ours: the suggestion's block ended and the stream was
    closed); "stopped early" when a newer keystroke cancelled it."""
    per100 = 100.0 / max(1, run.keys)
    shown = [x * 1000 for x in run.latencies_s if x is not None]
    waited = [x * 1000 if x is not None else max_wait * 1000 for x in run.latencies_s]
    total = {key: sum(int(st.get(key, 0)) for st in run.stats) for key in STAT_KEYS}
    if run.client == "llama.vim":
        generating = [r for r in run.requests if r.n_predict != 0]
        started = len(generating)
        completed = sum(1 for r in generating if r.finished)
        cancelled = started - completed
        warmups = len(run.requests) - started
    else:
        started, warmups = total["generations_started"], total["idle_prefills_started"]
        completed, cancelled = total["generations_completed"], total["generations_cancelled"]
        if run.client in HTTP_CLIENTS:
            warmups = sum(1 for r in run.requests if r.n_predict == 0)
            started = len(run.requests) - warmups
    return {
        "client": run.client,
        "keys": run.keys,
        "requests": round((started + warmups) * per100, 1),
        "generations": round(started * per100, 1),
        "run_to_end": round(completed * per100, 1),
        "stopped_early": round(cancelled * per100, 1),
        "prefill_only": round(warmups * per100, 1),
        "prefilled": round(run.prefilled * per100),
        "decoded": round(run.decoded * per100),
        "engine_cpu_s": round(run.engine_cpu_s * per100, 2),
        "editor_cpu_s": round(run.editor_cpu_s * per100, 2),
        "pauses": len(run.latencies_s),
        "shown": len(shown),
        "p50_ms": percentile(waited, 50),
        "p95_ms": percentile(waited, 95),
        "p50_shown_ms": percentile(shown, 50),
        "p95_shown_ms": percentile(shown, 95),
        "after_jump_ms": [
            None if x is None else round(x * 1000)
            for x, jump in zip(run.latencies_s, run.after_jump, strict=True)
            if jump
        ],
        "slowest_ms": sorted(shown)[-5:],
        "statuses": sorted({r.status for r in run.requests}),
        "closed_by_client": sum(1 for r in run.requests if r.closed_by_client),
        "not_ok": sum(1 for r in run.requests if r.status != 200),
    }


STAT_KEYS = (
    "generations_started",
    "generations_completed",
    "generations_cancelled",
    "idle_prefills_started",
)


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| client → engine | requests to the engine | generations | run to the end "
        "| stopped early | prefill-only | tokens prefilled | tokens decoded | engine CPU s "
        "| editor-side CPU s | ghost shown at pauses | pause → ghost p50 / p95 (ms) "
        "| p50 / p95 with no ghost as 3 s |"
    )
    lines = [head, "|" + "---|" * 13]
    engines = {
        "llama.vim": "llama.vim → llama-server `/infill`",
        "ours-http": "ours (`backend = http`) → llama-server `/completion`",
        "ours-http-fim": "ours (`http`, `prompt_format = fim`) → llama-server `/completion`",
        "ours-local": "ours (`backend = local`) → in-process transformers",
    }
    for r in rows:
        lines.append(
            f"| {engines[r['client']]} | {r['requests']} | {r['generations']} | {r['run_to_end']}"
            f" | {r['stopped_early']} | {r['prefill_only']} | {r['prefilled']} | {r['decoded']}"
            f" | {r['engine_cpu_s']} | {r['editor_cpu_s']} | {r['shown']}/{r['pauses']}"
            f" | {ms(r['p50_shown_ms'])} / {ms(r['p95_shown_ms'])}"
            f" | {ms(r['p50_ms'])} / {ms(r['p95_ms'])} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 file, 2 sites, 40 characters")
    parser.add_argument("--clients", default=",".join(CLIENTS), help=", ".join(CLIENTS))
    parser.add_argument("--max-wait", type=float, default=3.0, help="seconds a user waits")
    parser.add_argument(
        "--seeds", default="0", help="comma-separated: a trace per seed, one after the other"
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--requests", help="and every request the proxy saw, here")
    args = parser.parse_args()
    default = Path.home() / ".cache" / "codellama-lsp" / "llama-cpp"
    dest = Path(os.environ.get("CODELLAMA_LSP_LLAMA_CPP", default))
    n_files, sites, chars = (1, 2, 40) if args.quick else (2, 3, 90)
    traces = [
        trace
        for seed in args.seeds.split(",")
        for trace in build_traces(n_files, sites, chars, int(seed), trace="person")
    ]
    rows = []
    records: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="peer-llama-vim-") as tmp:
        for client in args.clients.split(","):
            started = time.monotonic()
            run = run_client(client, traces, Path(tmp), args.max_wait, dest)
            rows.append(summarize(run, args.max_wait))
            records[client] = [asdict(r) for r in run.requests]
            print(f"{client}: {time.monotonic() - started:.0f} s", json.dumps(rows[-1]), flush=True)
    print("\nPer 100 keys (the person trace, " + f"{rows[0]['keys']} keys):\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.requests:
        Path(args.requests).write_text(json.dumps(records, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
