"""Command line: ``codellama-lsp`` (the language server), ``demo``, ``serve``, ``settings``.

Every setting is also a flag: ``--max-new-tokens 64`` sets ``max_new_tokens``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from codellama_lsp import __version__
from codellama_lsp.config import describe
from codellama_lsp.settings_flags import add_setting_flags, configure_logging, settings_from

SUBCOMMANDS = ("demo", "serve", "settings", "check")


def server_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="codellama-lsp",
        description="Language server for AI code completions from Code Llama. "
        f"Subcommands: {', '.join(SUBCOMMANDS)} (see `codellama-lsp demo --help`).",
    )
    parser.add_argument("--version", action="version", version=__version__)
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--stdio", action="store_true", help="talk LSP over stdio (default)")
    transport.add_argument("--tcp", metavar="HOST:PORT", help="listen for one client on TCP")
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    settings = settings_from(args)
    configure_logging(settings.log_level)
    from codellama_lsp.lsp.handlers import create_server

    server = create_server(settings)
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
    return server.exit_code


def demo_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="codellama-lsp demo",
        description="Start the real language server over stdio, open a file, ask for an "
        "inline completion at a position and print it. Uses the offline demo model, prompted "
        "left to right like the default 70B-Python, unless --model names another.",
    )
    parser.add_argument(
        "target",
        nargs="?",
        help="FILE.py[:LINE[:COL]] (1-based; default: end of the file). "
        "Without it, a built-in example is completed.",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait in all")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name, *_ in describe() if getattr(args, name) is not None
    }
    overrides.setdefault("model", "demo")
    from codellama_lsp.demo.client import run_demo

    return run_demo(args.target, overrides, timeout=args.timeout, as_json=args.json)


def settings_main(argv: Sequence[str]) -> int:
    """Print the settings table (used for the README)."""
    print("| setting | type | default | what it does |\n|---|---|---|---|")
    for name, kind, default, text in describe():
        shown = default
        print(f"| `{name}` | {kind} | `{shown}` | {text} |")
    return 0


def check_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="codellama-lsp check",
        description="Say what this machine can run and what is missing for the chosen model "
        "(versions, CUDA devices and free memory, bitsandbytes, weights on disk, estimated "
        "memory, the model server). Exit status 1 when the model cannot load.",
    )
    add_setting_flags(parser)
    from codellama_lsp.diagnose import check_main

    return check_main(settings_from(parser.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "demo":
        return demo_main(args[1:])
    if args and args[0] == "settings":
        return settings_main(args[1:])
    if args and args[0] == "check":
        return check_command(args[1:])
    if args and args[0] == "serve":
        # It checks its command line (an API key off loopback) before importing torch.
        from codellama_lsp.model_server import serve_main

        return serve_main(args[1:])
    return server_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
