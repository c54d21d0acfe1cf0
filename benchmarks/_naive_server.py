"""The naive baseline server, for a codellama-lsp whose Settings have no ``naive`` field yet.

Same as ``python -m codellama_lsp.cli`` except that the completer's ``naive`` switch is on
(no supersession, typing-through, coalescing or prefetch). typing_replay.py passes
``{"naive": true}`` as a setting instead when the settings know it.
"""

from __future__ import annotations

import sys

from codellama_lsp import completer, config

if __name__ == "__main__":
    if "naive" not in config.setting_names():
        completer.Completer.naive = property(lambda _self: True)  # type: ignore[assignment,method-assign]
    from codellama_lsp.cli import main

    sys.exit(main())
