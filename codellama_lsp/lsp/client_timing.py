"""How long an editor already waits after the last key before it asks for a completion.

Neovim 0.12's built-in inline completion (``vim.lsp.inline_completion``) asks ~200 ms after
the last key (its own debounce). A server that then waits for a pause on top makes the user
wait for both: the adaptive debounce subtracts what the client already waited.
"""

from __future__ import annotations

import re

NEOVIM_INLINE_WAIT_MS = 200.0
"""Neovim 0.12's inline completion debounce (``runtime/lua/vim/lsp/inline_completion.lua``)."""


def client_wait_ms(name: str | None, version: str | None) -> float:
    """The wait (ms) the client ``name`` ``version`` (LSP ``clientInfo``) has before asking."""
    if (name or "").lower() != "neovim":
        return 0.0
    found = re.match(r"v?(\d+)\.(\d+)", version or "")
    if found is None:
        return 0.0
    major, minor = int(found.group(1)), int(found.group(2))
    return NEOVIM_INLINE_WAIT_MS if (major, minor) >= (0, 12) else 0.0
