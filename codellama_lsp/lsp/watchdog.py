"""Exit when the editor that started the server is gone (it may die without ``shutdown``)."""

from __future__ import annotations

import asyncio
import logging
import os

log = logging.getLogger(__name__)


def process_exists(pid: int) -> bool:
    """Whether ``pid`` is a live process; 0 and negative numbers name process groups."""
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # it exists, owned by another user
    except (ProcessLookupError, OverflowError):
        return False
    return True


async def watch_parent(pid: int) -> None:
    """Poll ``pid`` every two seconds; end the process when it is gone."""
    while True:
        await asyncio.sleep(2)
        if not process_exists(pid):
            log.warning("parent process %s is gone: exiting", pid)
            os._exit(0)
