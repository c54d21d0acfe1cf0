"""One client over stdio or TCP, read with :mod:`codellama_lsp.lsp.framing` (not pygls' reader).

Each returns the process's exit status: what pygls' ``exit`` handler says (0 after
``shutdown``, else 1), or 0 when the client went away.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from typing import Any

from pygls.io_ import StdoutWriter
from pygls.lsp.server import LanguageServer

from codellama_lsp.lsp.framing import read_messages
from codellama_lsp.lsp.protocol import CodeLlamaProtocol
from codellama_lsp.memory import bound_helper_threads

log = logging.getLogger(__name__)


def serve_stdio(ls: LanguageServer, stdin: Any = None, stdout: Any = None) -> int:
    """Serve over stdio until the client exits or the pipe breaks."""
    exit_code = 0
    source: Any = stdin or sys.stdin.buffer
    protocol = ls.protocol
    assert isinstance(protocol, CodeLlamaProtocol)
    ls._stop_event = stop = threading.Event()
    protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        bound_helper_threads(loop)
        await read_messages(
            lambda: loop.run_in_executor(ls.thread_pool, source.read1, 1 << 16),
            protocol.handle_body,
            stop.is_set,
        )

    try:
        asyncio.run(run())
    except BrokenPipeError:
        log.error("the connection to the client is lost: exiting")
    except SystemExit as exc:  # pygls' `exit` handler: 0 after `shutdown`, else 1
        exit_code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        pass
    finally:
        ls.shutdown()
    return exit_code


def serve_tcp(ls: LanguageServer, host: str, port: int) -> int:
    """Serve one client over TCP with the same reader and rules as stdio."""
    exit_code = 0
    protocol = ls.protocol
    assert isinstance(protocol, CodeLlamaProtocol)
    ls._stop_event = stop = threading.Event()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol.set_writer(writer)  # an asyncio writer: write() and close()
        try:
            await read_messages(lambda: reader.read(1 << 16), protocol.handle_body, stop.is_set)
        finally:
            ls.shutdown()

    async def serve() -> None:
        bound_helper_threads(asyncio.get_running_loop())
        server = await asyncio.start_server(connection, host, port)
        ls._server = server
        log.info("listening on %s:%s", host, port)
        async with server:
            await server.serve_forever()

    try:
        asyncio.run(serve())
    except asyncio.CancelledError:
        pass  # shutdown() closed the server after the client left
    except SystemExit as exc:
        exit_code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        pass
    return exit_code
