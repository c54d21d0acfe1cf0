"""``codellama-lsp serve``: the command line, and the aiohttp site it runs until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from codellama_lsp.engines.http_api import DEFAULT_PORT
from codellama_lsp.model_server.admission import Limits
from codellama_lsp.model_server.auth import is_loopback
from codellama_lsp.settings_flags import add_setting_flags, configure_logging, settings_from

if TYPE_CHECKING:
    from codellama_lsp.model_server.app import ModelServer


def serve_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="codellama-lsp serve",
        description="Load the model once and serve every editor over an OpenAI-compatible "
        "HTTP API (/v1/completions, /v1/models, /score, /health, /metrics).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 = any free port")
    limits = Limits()
    parser.add_argument("--max-body-bytes", type=int, default=limits.max_body_bytes)
    parser.add_argument("--max-tokens-limit", type=int, default=limits.max_tokens)
    parser.add_argument(
        "--max-prompt-tokens", type=int, default=0, help="0 = the model's context limit"
    )
    parser.add_argument(
        "--max-streams-per-client",
        type=int,
        default=limits.max_streams_per_client,
        help="generating requests in flight per client address (editors on one host share it)",
    )
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    settings = settings_from(args)
    api_key = settings.api_key  # --api-key KEY or CODELLAMA_LSP_API_KEY
    configure_logging(settings.log_level)
    if not is_loopback(args.host) and not api_key:
        print(
            f"codellama-lsp serve: refusing to listen on {args.host} without an API key: "
            "anyone who can reach it could use the model. Pass --api-key KEY (or set "
            "CODELLAMA_LSP_API_KEY), or bind 127.0.0.1.",
            flush=True,
        )
        return 2
    # Only now the model's packages: a refusal above takes a fraction of a second.
    from codellama_lsp.engines.factory import LOCAL_EXTRA

    try:  # the model server runs the model in its own process
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise SystemExit(f"codellama-lsp serve needs {exc.name}: {LOCAL_EXTRA}") from exc
    from codellama_lsp.model_server.app import ModelServer

    server = ModelServer(
        settings,
        api_key=api_key,
        limits=Limits(
            max_body_bytes=args.max_body_bytes,
            max_tokens=args.max_tokens_limit,
            max_prompt_tokens=args.max_prompt_tokens,
            max_streams_per_client=args.max_streams_per_client,
        ),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server, args.host, args.port))
    return 0


async def _serve(server: ModelServer, host: str, port: int) -> None:
    from aiohttp import web

    from codellama_lsp.memory import bound_helper_threads

    bound_helper_threads(asyncio.get_running_loop())
    # handler_cancellation: a client that disconnects cancels its handler, which stops its job.
    runner = web.AppRunner(server.app(), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    shown = f"[{host}]" if ":" in host else host
    print(f"codellama-lsp serve: listening on http://{shown}:{bound}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
