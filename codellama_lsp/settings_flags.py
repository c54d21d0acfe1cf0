"""What every subcommand's command line shares: the setting flags and where logs go.

Its own module so that ``cli`` (which dispatches to ``serve``) and ``model_server.serve`` both
use it without importing each other.
"""

from __future__ import annotations

import argparse
import logging
import sys

from codellama_lsp.config import Settings, SettingsError, describe, from_environment


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (also CODELLAMA_LSP_<NAME> env vars)")
    for name, kind, default, text in describe():
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=None,
            metavar="VALUE",
            help=f"{text} ({kind.replace(chr(92), '')}, default {default})".replace("%", "%%"),
        )


def settings_from(args: argparse.Namespace) -> Settings:
    """Defaults < environment < flags; exits with the message on a bad value."""
    flags = {
        name: getattr(args, name)
        for name, *_ in describe()
        if getattr(args, name, None) is not None
    }
    try:
        return Settings().merged(from_environment()).merged(flags)
    except SettingsError as exc:
        raise SystemExit(str(exc)) from exc


def configure_logging(level: str) -> None:
    # stdout carries the protocol: logs go to stderr only.
    logging.basicConfig(
        stream=sys.stderr,
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pygls logs whole messages (document text) at INFO: keep them for DEBUG only.
    if level.upper() != "DEBUG":
        logging.getLogger("pygls").setLevel(logging.WARNING)
    logging.getLogger("transformers").setLevel(logging.ERROR)
