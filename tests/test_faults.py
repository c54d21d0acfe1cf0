"""Faults the user must survive: a model that does not load, a generation that raises, an
editor that dies without ``shutdown``. Each runs the real server process.

Faults inside the process are injected from outside the package: the server is started with
``python -c`` code that sets a memory limit or wraps ``LocalEngine.generate`` and then runs
the normal command line, so no test hook ships in the server itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from codellama_lsp.engines.model_names import resolve_model
from tests.support import DEMO, ROOT, wait_until
from tests.support.raw_client import RawClient

SAMPLE = (
    "import os\n\n\ndef list_files(root):\n    found = []\n"
    "    for name in os.listdir(root):\n        "
)
END = (6, 8)


@pytest.fixture
def client_factory() -> Iterator[list[RawClient]]:
    made: list[RawClient] = []
    yield made
    for client in made:
        client.close()


def start(made: list[RawClient], options: dict[str, object], **kwargs: object) -> RawClient:
    client = RawClient(**kwargs)  # type: ignore[arg-type]
    made.append(client)
    client.initialize(options)
    return client


# --------------------------------------------------------------------------- model load
@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", ["missing folder", "bad config.json"])
def test_failed_load_reports_keeps_answering_and_reload_recovers(
    tmp_path: Path, client_factory: list[RawClient], fault: str
) -> None:
    folder = tmp_path / "my-model"
    if fault == "bad config.json":
        shutil.copytree(resolve_model("demo"), folder)
        (folder / "config.json").write_text('{"model_type": "llama", "hidden_size": ')
    client = start(client_factory, {**DEMO, "model": str(folder)})
    status = client.wait_state("error", timeout=60)
    assert "my-model" in status["message"]
    wait_until(client.messages, 10, "a window/showMessage")
    assert any("my-model" in m for m in client.messages())
    # The server keeps answering, empty, at once.
    client.open("file:///a.py", SAMPLE)
    started = time.perf_counter()
    assert client.inline("file:///a.py", *END) == []
    assert time.perf_counter() - started < 5  # no model to wait for: a round trip, not a load
    assert (
        client.result(
            "textDocument/completion",
            {"textDocument": {"uri": "file:///a.py"}, "position": {"line": 6, "character": 8}},
        )["items"]
        == []
    )
    # A retry while it is still broken fails the same way; after the fix it loads.
    client.command("codellama.reload")
    client.wait_state("error", timeout=60)
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(resolve_model("demo"), folder)
    assert client.command("codellama.reload") == {"state": "loading"}
    client.wait_state("ready", timeout=60)
    assert client.inline("file:///a.py", *END)


RLIMIT_WRAPPER = """
import resource, sys
import torch, transformers  # imported before the limit: the limit is for the model
from codellama_lsp.engines import local
original = local.LocalEngine.load
def load(self, progress):
    # The machine is short of memory while the model loads; afterwards the memory the failed
    # load took is free again (as after a real out-of-memory). An address-space limit for the
    # whole process would also count what glibc keeps mapped after the failure.
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * resource.getpagesize()
    limit = size + int(sys.argv[1]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    try:
        return original(self, progress)
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
local.LocalEngine.load = load
from codellama_lsp.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.timeout(300)
def test_out_of_memory_while_loading(tmp_path: Path, client_factory: list[RawClient]) -> None:
    """A model larger than the memory left (a 64 MiB address-space allowance for ~170 MB of
    weights): a clear message, status error, the server lives and answers empty."""
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    spec = "random:hidden=512,layers=8"
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from codellama_lsp.engines.model_names import resolve_model; resolve_model({spec!r})",
        ],
        env={**os.environ, **env},
        cwd=ROOT,
        check=True,
        timeout=240,
    )
    client = start(
        client_factory,
        {**DEMO, "model": spec},
        env=env,
        command=[sys.executable, "-c", RLIMIT_WRAPPER, "64"],
    )
    status = client.wait_state("error", "ready", timeout=120)
    assert status["state"] == "error", status
    assert "memory" in status["message"].lower(), status
    wait_until(client.messages, 10, "a window/showMessage")
    assert any("memory" in m.lower() for m in client.messages())
    client.open("file:///a.py", SAMPLE)
    assert client.inline("file:///a.py", *END) == []
    # A retry under the same limit fails the same way, and the server still lives.
    client.command("codellama.reload")
    assert client.wait_state("error", "ready", timeout=120)["state"] == "error"
    assert client.alive()


# --------------------------------------------------------------------------- generation
RAISE_WRAPPER = """
import sys
from codellama_lsp.engines import local
original = local.LocalEngine.generate
def generate(self, request, cancel):
    if "explode" in request.session:
        raise RuntimeError("injected fault inside generation")
    return original(self, request, cancel)
local.LocalEngine.generate = generate
from codellama_lsp.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.timeout(120)
def test_exception_inside_generation_gives_empty_then_next_works(
    client_factory: list[RawClient],
) -> None:
    client = start(
        client_factory,
        {**DEMO, "context_other_documents": False},
        command=[sys.executable, "-c", RAISE_WRAPPER],
    )
    client.wait_state("ready")
    client.open("file:///explode.py", SAMPLE)
    client.open("file:///fine.py", SAMPLE)
    assert client.inline("file:///explode.py", *END) == []
    stats = client.command("codellama.stats")
    assert stats["generation_errors"] == 1
    assert client.inline("file:///fine.py", *END)
    # The same document keeps working once the fault is gone (here: another request type).
    assert client.result(
        "textDocument/completion",
        {"textDocument": {"uri": "file:///fine.py"}, "position": {"line": 6, "character": 8}},
    )["items"]
    assert client.command("codellama.status")["state"] == "ready"


# --------------------------------------------------------------------------- the editor dies
@pytest.mark.timeout(120)
def test_editor_killed_without_shutdown_server_exits(client_factory: list[RawClient]) -> None:
    """The editor (process_id) dies while our stdin stays open: the parent watch ends us."""
    editor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        client = RawClient()
        client_factory.append(client)
        client.initialize(DEMO, process_id=editor.pid)
        client.wait_state("ready")
        client.open("file:///a.py", SAMPLE)
        client.inline("file:///a.py", *END)
        server = psutil.Process(client.pid)
        family = [server, *server.children(recursive=True)]
        editor.send_signal(signal.SIGKILL)
        editor.wait(10)
        started = time.monotonic()
        client.proc.wait(15)
        took = time.monotonic() - started
        assert took < 15
        _gone, alive = psutil.wait_procs(family, timeout=5)
        assert not alive, f"stray processes: {alive}"
        print(f"\nserver exited {took:.1f} s after the editor was killed")
    finally:
        if editor.poll() is None:
            editor.kill()
            editor.wait(10)


@pytest.mark.timeout(120)
def test_pipes_closed_without_shutdown_server_exits(client_factory: list[RawClient]) -> None:
    client = RawClient()
    client_factory.append(client)
    client.initialize(DEMO)
    client.wait_state("ready")
    server = psutil.Process(client.pid)
    family = [server, *server.children(recursive=True)]
    assert client.proc.stdin is not None
    client.proc.stdin.close()
    client.proc.wait(15)
    _gone, alive = psutil.wait_procs(family, timeout=5)
    assert not alive, f"stray processes: {alive}"
