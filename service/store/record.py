"""The session record: how a session is stored, how it is written, and how it becomes
JSON. No other module renders a record; the scripts' Lua twin (scripts/record.lua)
is tested for equality with it.

A session is a Redis hash whose fields read as they are (``HGETALL`` in redis-cli
shows them): ``title``, ``title_source`` (default, auto or user), ``channel``,
``created_at`` and ``updated_at`` (RFC 3339, milliseconds, UTC), ``message_count``;
only when set: ``pinned`` and ``archived`` (``true``), ``tags`` (comma-joined),
``user``, ``metadata`` (JSON), ``read:<reader>`` (messages that reader has read) and
``read_to_end`` (a JSON array of the readers whose marks reach ``message_count``, so
that a message finds them without reading every reader's mark); and ``item``: the
session's list item as JSON members, ``"title":…,"created_at":…,"updated_at":…,
"message_count":…,"channel":…,"pinned":…,"archived":…,"tags":[…]`` and ``,"user":…``
when set.
Every write keeps ``item`` true to the other fields, so that a page reads one field
per session (one GET pattern of its SORT) and joins it as it is
(``{"id":…,<item>,"active":…}``).

A stored message is the JSON array ``[id, role, content, timestamp_ms, metadata]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ..models import MessageIn, auto_title, format_time
from .cursor import Cursor, encode_cursor
from .types import Message, Session, SessionPage

TITLE_DEFAULT = "default"
TITLE_AUTO = "auto"
TITLE_USER = "user"

# A user message whose content is ASCII sends this instead of its auto title: the
# script derives the title itself, and only for the message that gets to set it (the
# first stored user message of a session without a title). Content beyond ASCII is
# titled in Python, where str.split knows Unicode's whitespace.
DERIVE_TITLE = "+"


def render_item(
    title: str,
    created_at: str,
    updated_at: str,
    message_count: int,
    channel: str,
    *,
    pinned: bool = False,
    archived: bool = False,
    tags: Sequence[str] = (),
    user: str | None = None,
) -> bytes:
    """The ``item`` field, as scripts/record.lua's ``record_item`` writes it."""
    item = (
        b'"title":%b,"created_at":"%b","updated_at":"%b","message_count":%d,"channel":"%b",'
        b'"pinned":%b,"archived":%b,"tags":%b'
        % (
            orjson.dumps(title),
            created_at.encode(),
            updated_at.encode(),
            message_count,
            channel.encode(),
            b"true" if pinned else b"false",
            b"true" if archived else b"false",
            orjson.dumps(list(tags)),
        )
    )
    return item if user is None else item + b',"user":' + orjson.dumps(user)


def record_fields(
    *,
    title: str,
    title_source: str,
    channel: str,
    created_at: str,
    updated_at: str,
    message_count: int,
    metadata: bytes | None,
) -> list[str | bytes]:
    """The record as HSET takes it: field, value, field, value, …"""
    fields: list[str | bytes] = [
        "title",
        title,
        "title_source",
        title_source,
        "channel",
        channel,
        "created_at",
        created_at,
        "updated_at",
        updated_at,
        "message_count",
        str(message_count),
        "item",
        render_item(title, created_at, updated_at, message_count, channel),
    ]
    if metadata:
        fields += ["metadata", metadata]
    return fields


def _between(item: bytes, start: bytes, end: bytes) -> bytes:
    # The members' names can occur nowhere else with their quotes unescaped: the one
    # string before them, the title, is JSON, whose inner quotes are escaped.
    begin = item.index(start) + len(start)
    return item[begin : item.index(end, begin)]


def item_message_count(item: bytes) -> int:
    return int(_between(item, b'"message_count":', b',"channel":'))


def item_score(item: bytes) -> int:
    """The item's updated_at in epoch ms: exactly the session's score in the index."""
    return parse_time(_between(item, b'"updated_at":"', b'"').decode())


def session_of(
    session_id: str, item: bytes, title_source: str, active: bool, metadata: bytes | None
) -> Session:
    """The session of an item, its title's source, activity and metadata JSON."""
    fields = orjson.loads(b"{%b}" % item)
    return Session(
        id=session_id,
        title=fields["title"],
        title_source=title_source,
        channel=fields["channel"],
        created_at=fields["created_at"],
        updated_at=fields["updated_at"],
        message_count=fields["message_count"],
        active=active,
        metadata=orjson.loads(metadata) if metadata else None,
        pinned=fields.get("pinned", False),
        archived=fields.get("archived", False),
        tags=tuple(fields.get("tags", ())),
        user=fields.get("user"),
    )


def session_of_fields(session_id: str, fields: Sequence[str | bytes], active: bool) -> Session:
    """The session of its record as HGETALL answers it, or as :func:`record_fields`
    makes it (field, value, …)."""
    record: Mapping[str | bytes, str | bytes] = dict(zip(fields[0::2], fields[1::2], strict=True))

    def value(name: str) -> bytes | None:
        found = record.get(name.encode(), record.get(name))
        return found.encode() if isinstance(found, str) else found

    item, title_source = value("item"), value("title_source")
    assert item is not None and title_source is not None, "a record has its item and source"
    return session_of(session_id, item, title_source.decode(), active, value("metadata"))


def session_json(
    session_id: str, item: bytes, title_source: str, active: bool, metadata: bytes | None
) -> bytes:
    """``Session.as_dict()`` as JSON, joined from the item, which is JSON already, and the
    metadata, stored as orjson wrote it."""
    return b"".join(
        [
            b'{"id":',
            orjson.dumps(session_id),
            b",",
            item,
            b',"active":true,"title_source":"' if active else b',"active":false,"title_source":"',
            title_source.encode(),
            b'","metadata":',
            metadata or b"{}",
            b"}",
        ]
    )


@dataclass(slots=True)
class IngestResult:
    """A message's ingest and its session as the script left it, still as stored: the
    answer is joined from the item's bytes, and the Session is parsed only when asked
    for."""

    created: bool
    message: Message
    session_id: str
    item: bytes
    title_source: str
    active: bool
    metadata_json: bytes | None

    @property
    def session(self) -> Session:
        return session_of(
            self.session_id, self.item, self.title_source, self.active, self.metadata_json
        )

    @property
    def message_count(self) -> int:
        return item_message_count(self.item)

    @property
    def began_session(self) -> bool:
        """Whether the message was the session's first."""
        return self.created and self.message_count == 1

    def json(self) -> bytes:
        """The answer: ``{"message": …, "session": …}``."""
        return b"".join(
            [
                b'{"message":',
                # A dict, not the dataclass: orjson serialises a dict more cheaply.
                orjson.dumps(self.message.as_dict()),
                b',"session":',
                session_json(
                    self.session_id, self.item, self.title_source, self.active, self.metadata_json
                ),
                b"}",
            ]
        )


def stored_message(message: MessageIn) -> bytes:
    return stored_of(
        message.id, message.role, message.content, message.timestamp_ms, message.metadata
    )


def stored_of(
    message_id: str, role: str, content: str, timestamp_ms: int, metadata: dict[str, Any] | None
) -> bytes:
    """A stored message from its parts: how ingest and restore both write one."""
    return orjson.dumps([message_id, role, content, timestamp_ms, metadata])


def message_of(stored: bytes) -> Message:
    message_id, role, content, timestamp_ms, metadata = orjson.loads(stored)
    return Message(message_id, role, content, format_time(timestamp_ms), metadata or {})


def message_out(message: MessageIn, timestamp: str) -> Message:
    """The stored form of a message just written, without reading it back."""
    return Message(message.id, message.role, message.content, timestamp, message.metadata or {})


def auto_title_arg(message: MessageIn) -> str:
    """What the ingest script gets for the title a user message gives a session without
    one: the title as JSON, DERIVE_TITLE, or ``""`` for none."""
    if message.role != "user":
        return ""
    if message.content.isascii():
        return DERIVE_TITLE
    title = auto_title(message.content)
    return orjson.dumps(title).decode() if title else ""


# A page is joined, not formatted: an item is ``{"id":"<id>",<item>,"active":true}``,
# so the ids and items go into one list between the separators, and one bytes.join
# runs over it.
ITEM_OPEN = b'{"id":"'
AFTER_ID = b'",'
ITEM_CLOSE = {True: b',"active":true}', False: b',"active":false}'}
ITEM_SEPARATOR = {active: close + b"," + ITEM_OPEN for active, close in ITEM_CLOSE.items()}


def _item_parts(flat: list[bytes], active: bool) -> list[bytes]:
    """The parts of the items of sessions that are all active or all inactive, from
    SORT's id-item pairs, for one join.

    Stored ids are valid UTF-8 without control characters; only an id holding a quote
    or a backslash needs orjson, and then the items are built one by one.
    """
    if not flat:
        return []
    ids = b"".join(flat[0::2])
    if ids.find(b'"') >= 0 or ids.find(b"\\") >= 0:
        close = ITEM_CLOSE[active]
        items = [
            b'{"id":%b,%b%b' % (orjson.dumps(text_of(i)), item, close)
            for i, item in zip(flat[0::2], flat[1::2], strict=True)
        ]
        return [b",".join(items)]
    # [open, id, after id, item, separator, id, after id, item, …, close]: the slots
    # left empty are the odd ones, which take the ids and items as SORT gave them.
    parts = [ITEM_OPEN, *[b"", AFTER_ID, b"", ITEM_SEPARATOR[active]] * (len(flat) // 2)]
    parts[1::2] = flat
    parts[-1] = ITEM_CLOSE[active]
    return parts


def _active_and_inactive(flat: list[bytes], split: int) -> bytes:
    """Items of the first ``split`` sessions marked active, the rest inactive."""
    active, inactive = _item_parts(flat[: 2 * split], True), _item_parts(flat[2 * split :], False)
    return b"".join([*active, b",", *inactive] if active and inactive else active or inactive)


def page_of(total: int, first: int, n_active: int, flat: list[Any], *, more: bool) -> SessionPage:
    """The page from ranks ``first`` on, from SORT's [id, item, …] (an item may be nil);
    the first ``n_active - first`` items are active."""
    split = min(max(n_active - first, 0), len(flat) // 2)
    try:
        page = _active_and_inactive(flat, split)
    except TypeError:
        # A record missing under an index entry (drift that `chatsessions check`
        # reports, or a session not yet moved from a release before hashes) comes back
        # as None, which bytes.join refuses; such entries are left out.
        present = [n for n in range(0, len(flat), 2) if flat[n + 1] is not None]
        page = _active_and_inactive(
            [value for n in present for value in flat[n : n + 2]],
            sum(1 for n in present if n < 2 * split),
        )
    next_cursor = None
    last = flat[-1] if flat else None
    if more and last is not None:
        next_cursor = encode_cursor(
            Cursor(item_score(last), text_of(flat[-2]), first + len(flat) // 2)
        )
    return SessionPage(total=total, items_json=page, next_cursor=next_cursor)


# A reader's read mark: the session hash's field holding how many messages it has read.
READ_MARK = "read:"


def with_unread(item: bytes, mark: bytes | str | None) -> bytes:
    """The item with its ``unread_count`` for the reader whose read mark is ``mark``."""
    unread = max(item_message_count(item) - int(mark or 0), 0)
    return b'%b,"unread_count":%d' % (item, unread)


def marked_pairs(flat: Sequence[Any]) -> list[Any]:
    """[id, item, …] with each item's unread count, from [id, item, read mark, …] (an
    item may be nil: it stays so)."""
    pairs: list[Any] = []
    for n in range(0, len(flat), 3):
        item = flat[n + 1]
        pairs += [flat[n], item if item is None else with_unread(item, flat[n + 2])]
    return pairs


def scan_page_of(
    total: int, matches: Sequence[Any], cutoff: int, *, reader: bool, exact: bool
) -> SessionPage:
    """The page of a filtered walk's matches (id, score, item, read mark, …), most recent
    first; with a reader, each item gains its ``unread_count``."""
    flat: list[bytes] = []
    split = 0
    for n in range(0, len(matches), 4):
        session_id, score, item, mark = matches[n : n + 4]
        flat += [session_id, with_unread(item, mark) if reader else item]
        if int(score) >= cutoff:
            split += 1
    return SessionPage(
        total=total, items_json=_active_and_inactive(flat, split), next_cursor=None, exact=exact
    )


def script_page(reply: Sequence[Any], *, reader: bool = False) -> SessionPage:
    """The page page.lua answers; with a reader, each item gains its ``unread_count``."""
    total, more, first, n_active, ids, items = reply[:6]
    if reader:
        flat = marked_pairs(
            [value for row in zip(ids, items, reply[8], strict=True) for value in row]
        )
    else:
        flat = [value for pair in zip(ids, items, strict=True) for value in pair]
    return page_of(int(total), int(first), int(n_active), flat, more=bool(more))


def parse_time(text: str) -> int:
    """Epoch milliseconds of a time as :func:`format_time` wrote it."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def text_of(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
