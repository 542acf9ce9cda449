"""The change feed's events as the API sends them (SPEC §6): read from a namespace's
stream (scripts/events.lua writes it) and rendered once, with the session's list item
and message as the list and ingest answer them."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .record import message_of, text_of

# A stream entry id: milliseconds and a sequence number.
EVENT_ID = re.compile(r"^(0|[1-9][0-9]{0,19})-(0|[1-9][0-9]{0,19})$")
# "After 0" is before every event: such a reader gets every event still kept.
FIRST = "0-0"
RESET = "reset"


class InvalidEventId(ValueError):
    """An event id that no stream gives: a malformed Last-Event-ID or since."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def event_id(text: str) -> str:
    """``text`` as an event id (``0`` stands for ``0-0``); raises InvalidEventId."""
    text = text.strip()
    if text == "0":
        return FIRST
    if not EVENT_ID.match(text) or max(int(part) for part in text.split("-")) >= 2**64:
        raise InvalidEventId(text)
    return text


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One event: its id in the stream, its type (session.created, session.updated,
    session.deleted or reset), the session's id and channel, and ``data``, its JSON."""

    id: str
    type: str
    session_id: str
    channel: str
    data: bytes

    def json(self) -> bytes:
        """The event as a webhook receives it: ``{"id", "type", "data"}``."""
        return b'{"id":%b,"type":%b,"data":%b}' % (
            orjson.dumps(self.id),
            orjson.dumps(self.type),
            self.data,
        )


def reset_event(position: str) -> ChangeEvent:
    """The event that tells a reader its position is no longer kept: it re-reads the
    list, then goes on after ``position``."""
    detail = (
        "events after the position asked for are no longer kept; read the list again, "
        "then go on from this event's id"
    )
    return ChangeEvent(position, RESET, "", "", orjson.dumps({"detail": detail}))


def _session_json(session_id: str, item: bytes, active: bool) -> bytes:
    return b'{"id":%b,%b,"active":%b}' % (
        orjson.dumps(session_id),
        item,
        b"true" if active else b"false",
    )


def event_of(entry_id: bytes | str, fields: Mapping[bytes, bytes], cutoff: int) -> ChangeEvent:
    """The event of a stream entry; the session is active when its score is at or
    after ``cutoff`` (epoch ms), as in the list."""
    kind, session_id = text_of(fields[b"type"]), text_of(fields[b"id"])
    item = fields.get(b"item")
    if item is None:
        data = b'{"session":{"id":%b}}' % orjson.dumps(session_id)
    else:
        session = _session_json(session_id, item, int(fields[b"score"]) >= cutoff)
        stored = fields.get(b"message")
        if stored is None:
            data = b'{"session":%b}' % session
        else:
            message = orjson.dumps(message_of(stored).as_dict())
            data = b'{"session":%b,"message":%b}' % (session, message)
    return ChangeEvent(text_of(entry_id), kind, session_id, text_of(fields[b"channel"]), data)


def _fields(raw: Any) -> Mapping[bytes, bytes]:
    """An entry's fields, as a script answers them (a flat list) or redis-py (a dict)."""
    if isinstance(raw, Mapping):
        return raw
    return dict(zip(raw[0::2], raw[1::2], strict=True))


def events_of(entries: Sequence[Any], cutoff: int) -> list[ChangeEvent]:
    """The events of stream entries ``[[id, fields], …]``."""
    return [event_of(entry_id, _fields(raw), cutoff) for entry_id, raw in entries]


@dataclass(frozen=True, slots=True)
class Replay:
    """Events after a position: ``reset`` when that position is no longer kept (or was
    never the stream's); ``newest`` is the stream's latest id (FIRST when it has none)."""

    events: list[ChangeEvent]
    reset: bool
    newest: str
