"""Snooze: no suggestions for a while (minutes) or until the server stops, then they come back.

The editors call the ``codellama.snooze`` command (VS Code's status bar menu, Neovim's
``:CodellamaSnooze``); the server answers every completion request empty meanwhile, says so in
its status (``state: snoozed``, ``snoozed_until``) and sends the status again when it ends.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

SNOOZE_COMMAND = "codellama.snooze"
MAX_MINUTES = 7 * 24 * 60


class SnoozeError(ValueError):
    """The command's argument is not a number of minutes."""


def minutes_argument(args: Sequence[Any]) -> float | None:
    """``codellama.snooze``'s argument: ``[5]`` or ``[{"minutes": 5}]`` (minutes; 0 ends a
    snooze), ``[]``, ``[null]`` or ``[{"minutes": null}]`` (until the server stops)."""
    value = args[0] if args else None
    if isinstance(value, Mapping):
        value = value.get("minutes")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SnoozeError(f"codellama.snooze: minutes must be a number (got {value!r})")
    try:
        minutes = float(value)
    except ValueError as exc:
        raise SnoozeError(f"codellama.snooze: minutes must be a number (got {value!r})") from exc
    if not math.isfinite(minutes) or minutes < 0 or minutes > MAX_MINUTES:
        raise SnoozeError(f"codellama.snooze: minutes must be between 0 and {MAX_MINUTES}")
    return minutes


class Snooze:
    """The snooze of one server (one editor window or workspace)."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change
        self._ends: float | None = None
        """``time.monotonic()`` when it ends; ``math.inf`` until the server stops."""
        self._until: float | None = None
        """The same moment as wall-clock time (``time.time()``), for the editors to show."""
        self._timer: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        if self._ends is None:
            return False
        if time.monotonic() >= self._ends:
            self._end()
            return False
        return True

    def start(self, minutes: float | None) -> None:
        """Snooze for ``minutes`` (None: until the server stops; 0: end the snooze now)."""
        self._cancel_timer()
        if minutes is not None and minutes <= 0:
            self._end()
            return
        if minutes is None:
            self._ends, self._until = math.inf, None
        else:
            seconds = minutes * 60
            self._ends, self._until = time.monotonic() + seconds, time.time() + seconds
            self._timer = asyncio.get_running_loop().call_later(seconds, self._end)
        self.on_change()

    def status(self) -> dict[str, Any]:
        """``snoozed`` and ``snoozed_until`` (Unix time in seconds; null: until the server
        stops, or not snoozed)."""
        active = self.active
        return {"snoozed": active, "snoozed_until": self._until if active else None}

    def _end(self) -> None:
        was = self._ends is not None
        self._cancel_timer()
        self._ends = self._until = None
        if was:
            self.on_change()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


__all__ = ["SNOOZE_COMMAND", "Snooze", "SnoozeError", "minutes_argument"]
