"""What people do with suggestions: shown, accepted (wholly or in part), dismissed, and kept.

Counts stay in the server's memory and are only read through ``codellama.stats``; nothing
leaves the machine. This module is all of it, from the command an item carries and what
clients send back (``codellama.accepted``, Copilot's ``textDocument/didShowCompletion`` and
``didPartiallyAcceptCompletion``) to the figures (:class:`Acceptance`).

* A **suggestion** is one completion at one place. While the user types it through or accepts
  it a word at a time, the server answers with the rest of it: that is the same suggestion, not
  a new one (see :meth:`Acceptance.offered`).
* **Shown** counts suggestions the server answered with, or, once a client reports what it
  really showed (Copilot's ``textDocument/didShowCompletion``), the ones it reports.
* **Dismissed** counts suggestions replaced by another one before any of it was accepted (an
  empty answer says nothing: it may be a request the user typed past).
* **Retention**: the accepted text is followed through the document's edits (``didChange``);
  after :data:`RETENTION_SECONDS` and after :data:`RETENTION_EDITS` edits, the characters of it
  still there are counted (a character-level diff of the accepted text and its span now).
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

from codellama_lsp.lsp.documents import LspTextDocument, cursor_at
from codellama_lsp.lsp.protocol import strict_int

RETENTION_SECONDS = 30.0
RETENTION_EDITS = 20
PENDING_EDITS = 4
"""An accept whose text is not in the document after this many edits is not followed (the
client applied something else, or its ``didChange`` never came)."""
MAX_FOLLOWED = 200
"""Accepts followed at once; the oldest are let go (a long session in an idle document)."""

ACCEPTED_COMMAND = "codellama.accepted"


def accept_command(uri: str, edit_range: types.Range, text: str) -> types.Command:
    """The command an item runs when the user accepts it (inline completions)."""
    start, end = edit_range.start, edit_range.end
    return types.Command(
        title="codellama: accepted",
        command=ACCEPTED_COMMAND,
        arguments=[
            {
                "uri": uri,
                "line": start.line,
                "character": start.character,
                "end_line": end.line,
                "end_character": end.character,
                "text": text,
            }
        ],
    )


def accepted_info(args: Sequence[Any]) -> Mapping[str, Any] | None:
    """The command's argument object; clients send ``[info]`` or ``[[info]]``."""
    first = args[0] if args else None
    if isinstance(first, list) and first:
        first = first[0]
    return first if isinstance(first, Mapping) else None


Position = tuple[int, int]
"""(line, character) in the client's units, as LSP positions are."""
Units = Callable[[str], int]
"""The length of a line of text in the client's units (UTF-16 by default)."""


def end_of(start: Position, text: str, units: Units) -> Position:
    """Where ``text`` inserted at ``start`` ends."""
    newlines = text.count("\n")
    last = text.rsplit("\n", 1)[-1]
    return (start[0] + newlines, (0 if newlines else start[1]) + units(last))


@dataclass(frozen=True)
class Change:
    """One ``didChange`` content change: the range it replaced and the end of the new text."""

    start: Position
    end: Position
    new_end: Position

    @classmethod
    def of(cls, start: Position, end: Position, text: str, units: Units) -> Change:
        return cls(start, end, end_of(start, text, units))


def leading(text: str, length: int, units: Units) -> str:
    """The beginning of ``text`` that is ``length`` client units long (LSP's
    ``acceptedLength``); a character cut in two is left out."""
    if text.isascii():
        return text[:length]
    count = 0
    for index, ch in enumerate(text):
        count += units(ch)
        if count > length:
            return text[:index]
    return text


def moved(pos: Position, change: Change, *, after_insert: bool) -> Position:
    """Where ``pos`` is after ``change``.

    Text inserted exactly at ``pos`` lands before it when ``after_insert`` (the start of a
    span: typing in front of accepted text is not part of it), else after it (the end of a
    span: typing on after accepted text is not part of it). A position inside the replaced
    range moves to the end of the new text when ``after_insert``, else to its start.
    """
    start, end = change.start, change.end
    if pos < start or (pos == start and not after_insert):
        return pos
    if pos < end:
        return change.new_end if after_insert else start
    if pos[0] == end[0]:
        return (change.new_end[0], change.new_end[1] + pos[1] - end[1])
    return (pos[0] + change.new_end[0] - end[0], pos[1])


def kept_characters(accepted: str, now: str) -> int:
    """How many characters of ``accepted`` are still in ``now`` (its span in the document)."""
    matcher = difflib.SequenceMatcher(None, accepted, now, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks())


@dataclass
class Suggestion:
    """The suggestion on screen in a document: where it started and its whole text."""

    before: str
    text: str
    used: bool = False


@dataclass
class Followed:
    """Accepted text being followed through the document's edits."""

    uri: str
    text: str
    start: Position
    end: Position
    accepted_at: float
    pending: bool = True
    """Until the document is seen to hold the text (the client's ``didChange`` may come later)."""
    edits: int = 0
    measured_time: bool = False
    measured_edits: bool = False

    @property
    def done(self) -> bool:
        if self.pending:
            return self.measured_time or self.edits >= PENDING_EDITS
        return self.measured_time and self.measured_edits


@dataclass
class Retention:
    """Accepted characters measured at one point, and how many of them were still there."""

    accepted_chars: int = 0
    kept_chars: int = 0

    def add(self, accepted: int, kept: int) -> None:
        self.accepted_chars += accepted
        self.kept_chars += kept

    def snapshot(self) -> dict[str, Any]:
        share = self.kept_chars / self.accepted_chars if self.accepted_chars else None
        return {
            "accepted_chars": self.accepted_chars,
            "kept_chars": self.kept_chars,
            "kept_share": round(share, 3) if share is not None else None,
        }


TextAt = Callable[[str, Position, Position], str | None]
"""The document's text between two positions, or None when the document is not open."""


@dataclass
class Acceptance:
    """Counts per session; the server calls it from its handlers (all on the event loop)."""

    clock: Callable[[], float] = time.monotonic
    shown: int = 0
    accepted: int = 0
    accepted_chars: int = 0
    partially_accepted: int = 0
    partially_accepted_chars: int = 0
    dismissed: int = 0
    used: int = 0
    client_reports_shown: bool = False
    after_time: Retention = field(default_factory=Retention)
    after_edits: Retention = field(default_factory=Retention)
    _current: dict[str, Suggestion] = field(default_factory=dict)
    _followed: list[Followed] = field(default_factory=list)
    _last_part: dict[str, tuple[Position, str]] = field(default_factory=dict)

    # --- shown and dismissed ------------------------------------------------------------
    def offered(self, uri: str, before: str, text: str) -> None:
        """The server answered with ``text`` at a cursor with ``before`` in front of it."""
        if not self.client_reports_shown:
            self._show(uri, before, text)

    def reported_shown(self, uri: str, before: str, text: str) -> None:
        """The client says it showed ``text`` (from then on, only its reports count)."""
        self.client_reports_shown = True
        self._show(uri, before, text)

    def _show(self, uri: str, before: str, text: str) -> None:
        current = self._current.get(uri)
        if current is not None and continues(current, before, text):
            return
        self._end(uri)
        if text:
            self._current[uri] = Suggestion(before, text)
            self.shown += 1

    def _end(self, uri: str) -> None:
        self._last_part.pop(uri, None)
        current = self._current.pop(uri, None)
        if current is not None and not current.used:
            self.dismissed += 1

    def closed(self, uri: str) -> None:
        self._end(uri)
        self._followed = [f for f in self._followed if f.uri != uri]

    def accepted_unknown(self) -> None:
        """An accept whose item the server cannot place (its document is not open)."""
        self.accepted += 1

    def _use(self, uri: str) -> None:
        current = self._current.get(uri)
        if current is not None and not current.used:
            current.used = True
            self.used += 1
        elif current is None:
            self.used += 1  # accepted without our knowing it was shown (another client)
            self.shown += 1

    # --- accepts ------------------------------------------------------------------------
    def accepted_whole(self, uri: str, start: Position, text: str, units: Units) -> None:
        """The client inserted all of the item ``text`` at ``start``."""
        self.accepted += 1
        start, text = self._new_part(uri, start, text, units)
        self._last_part.pop(uri, None)
        self.accepted_chars += len(text)
        self._use(uri)
        self._current.pop(uri, None)
        self._follow(uri, start, text, units)

    def accepted_part(self, uri: str, start: Position, text: str, units: Units) -> None:
        """The client inserted ``text``, the beginning of the item that starts at ``start``."""
        new_start, new = self._new_part(uri, start, text, units)
        if not new:
            return
        self._last_part[uri] = (start, text)
        self.partially_accepted += 1
        self.partially_accepted_chars += len(new)
        self._use(uri)
        self._follow(uri, new_start, new, units)

    def _new_part(self, uri: str, start: Position, text: str, units: Units) -> tuple[Position, str]:
        """Where the part of an accept not counted yet starts, and its text.

        Copilot's ``acceptedLength`` counts from the item's start: a second partial accept of
        one item (VS Code keeps the item and shows its rest), or the accept of its end,
        includes the parts accepted before.
        """
        last = self._last_part.get(uri)
        if last is None or last[0] != start or not text.startswith(last[1]):
            return start, text
        return end_of(start, last[1], units), text[len(last[1]) :]

    def _follow(self, uri: str, start: Position, text: str, units: Units) -> None:
        end = end_of(start, text, units)
        self._followed.append(Followed(uri, text, start, end, self.clock()))
        del self._followed[:-MAX_FOLLOWED]

    # --- retention ----------------------------------------------------------------------
    def edited(self, uri: str, changes: list[Change], text_at: TextAt) -> None:
        """``didChange`` (after the document took it): move spans, measure the 20th edit."""
        for followed in self._followed:
            if followed.uri != uri:
                continue
            if followed.pending:
                # The accept's own edit inserts at the span's start: keep the start in place.
                for change in changes:
                    followed.start = moved(followed.start, change, after_insert=False)
                    followed.end = moved(followed.end, change, after_insert=False)
                followed.edits += len(changes)
                self._confirm(followed, text_at)
                continue
            for change in changes:
                followed.start = moved(followed.start, change, after_insert=True)
                followed.end = moved(followed.end, change, after_insert=False)
            followed.edits += len(changes)
            if followed.edits >= RETENTION_EDITS and not followed.measured_edits:
                followed.measured_edits = True
                self.after_edits.add(len(followed.text), self._kept(followed, text_at))
        self.measure_due(text_at)

    def look(self, uri: str, text_at: TextAt) -> None:
        """After an accept: the client may have sent its edit before (VS Code) or not yet."""
        for followed in self._followed:
            if followed.uri == uri and followed.pending:
                self._confirm(followed, text_at)

    def _confirm(self, followed: Followed, text_at: TextAt) -> None:
        if text_at(followed.uri, followed.start, followed.end) == followed.text:
            followed.pending, followed.edits = False, 0

    def measure_due(self, text_at: TextAt) -> None:
        """Measure the accepts that are :data:`RETENTION_SECONDS` old (a timer calls this)."""
        now = self.clock()
        for followed in self._followed:
            if followed.measured_time or now - followed.accepted_at < RETENTION_SECONDS:
                continue
            followed.measured_time = True
            if not followed.pending:
                self.after_time.add(len(followed.text), self._kept(followed, text_at))
        self._followed = [f for f in self._followed if not f.done]

    def next_due_s(self) -> float | None:
        """Seconds until :meth:`measure_due` has something to measure; None: nothing left."""
        times = [f.accepted_at for f in self._followed if not f.measured_time]
        return max(0.0, min(times) + RETENTION_SECONDS - self.clock()) if times else None

    def _kept(self, followed: Followed, text_at: TextAt) -> int:
        now = text_at(followed.uri, followed.start, followed.end)
        return 0 if now is None else kept_characters(followed.text, now)

    # --- report -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        rate = self.used / self.shown if self.shown else None
        return {
            "shown": self.shown,
            "accepted": self.accepted,
            "accepted_chars": self.accepted_chars,
            "partially_accepted": self.partially_accepted,
            "partially_accepted_chars": self.partially_accepted_chars,
            "dismissed": self.dismissed,
            "acceptance_rate": round(rate, 3) if rate is not None else None,
            f"retained_after_{RETENTION_SECONDS:g}s": self.after_time.snapshot(),
            f"retained_after_{RETENTION_EDITS}_edits": self.after_edits.snapshot(),
            "followed": len(self._followed),
        }


def continues(current: Suggestion, before: str, text: str) -> bool:
    """Whether ``text`` at ``before`` is the rest of ``current`` (typed through or partly
    accepted), or ``current`` itself again."""
    if not before.startswith(current.before):
        return False
    typed = before[len(current.before) :]
    return current.text == typed + text


# --- what clients report (the server's handlers call these) -------------------------------
class Server(Protocol):
    """What the reports need of the language server (:class:`~.lsp.server.CodeLlamaServer`)."""

    acceptance: Acceptance
    retention_timer: asyncio.Task[None] | None

    @property
    def workspace(self) -> Workspace: ...

    def spawn(self, coro: Any) -> asyncio.Task[Any]: ...


@dataclass(frozen=True)
class ItemInfo:
    """An inline completion item of ours, as a client sends it back (its command's argument)."""

    uri: str
    start: Position
    text: str
    before: str
    """The document's text before the item's start, as the server reads it now."""
    doc: TextDocument


def plain(value: Any) -> Any:
    """Params of a method pygls does not know, as JSON values (pygls makes namedtuples)."""
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def command_info(item: Any) -> Mapping[str, Any] | None:
    """The ``codellama.accepted`` argument inside an item a client sent back."""
    command = item.get("command") if isinstance(item, Mapping) else None
    arguments = command.get("arguments") if isinstance(command, Mapping) else None
    if isinstance(arguments, list) and arguments and isinstance(arguments[0], Mapping):
        return arguments[0]
    return None


def item_info_of(ls: Server, info: Mapping[str, Any] | None) -> ItemInfo | None:
    if info is None:
        return None
    uri, text = info.get("uri"), info.get("text")
    if not (isinstance(uri, str) and isinstance(text, str)):
        return None
    try:
        position = types.Position(
            line=strict_int(info["line"]), character=strict_int(info["character"])
        )
    except (KeyError, TypeError, ValueError):
        return None
    doc = ls.workspace.text_documents.get(unquote(uri))
    if doc is None:
        return None
    before = cursor_at(doc, position).prefix
    return ItemInfo(uri, (position.line, position.character), text, before, doc)


def record_accept(ls: Server, info: Mapping[str, Any] | None, length: int | None) -> None:
    """An accept: whole (``length`` None) or the first ``length`` client units of the item."""
    item = item_info_of(ls, info)
    if item is None:
        if length is None:
            ls.acceptance.accepted_unknown()
        return
    codec = item.doc.position_codec

    def units(text: str) -> int:
        return int(codec.client_num_units(text))

    text = item.text.replace("\r\n", "\n")
    if length is None:
        ls.acceptance.accepted_whole(item.uri, item.start, text, units)
    else:
        ls.acceptance.accepted_part(item.uri, item.start, leading(text, length, units), units)
    ls.acceptance.look(item.uri, document_text(ls))
    if ls.retention_timer is None or ls.retention_timer.done():
        ls.retention_timer = ls.spawn(measure_retention(ls))


async def measure_retention(ls: Server) -> None:
    """One timer for all accepts: measure each :data:`RETENTION_SECONDS` after it."""
    while (wait := ls.acceptance.next_due_s()) is not None:
        await asyncio.sleep(wait + 0.05)
        ls.acceptance.measure_due(document_text(ls))


def changes_of(doc: TextDocument, changes: Sequence[Any]) -> list[Change]:
    """``didChange``'s incremental changes as :class:`Change` (in the client's units)."""

    def units(line: str) -> int:
        return int(doc.position_codec.client_num_units(line))

    return [
        Change.of(
            (c.range.start.line, c.range.start.character),
            (c.range.end.line, c.range.end.character),
            c.text,
            units,
        )
        for c in changes
        if isinstance(c, types.TextDocumentContentChangePartial)
    ]


def document_text(ls: Server) -> Callable[[str, Position, Position], str | None]:
    def text_at(uri: str, start: Position, end: Position) -> str | None:
        doc = ls.workspace.text_documents.get(unquote(uri))
        if not isinstance(doc, LspTextDocument):
            return None
        a = doc.offset_of(types.Position(line=start[0], character=start[1]))
        b = doc.offset_of(types.Position(line=end[0], character=end[1]))
        return doc.source[a:b].replace("\r\n", "\n")

    return text_at
