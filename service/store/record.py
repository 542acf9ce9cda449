"""The session record: how a session is stored (its card), how it is written, and how
it becomes JSON. No other module parses or renders a card; the scripts' Lua twin
(scripts/card.lua) is tested for equality with it.

A session card is one string: a title-source byte (``\\x06`` default, ``\\x07``
auto, ``\\x0e`` set by a user), the title as JSON, then created_at, updated_at,
message_count and channel, each after its own marker byte (``\\x01`` to ``\\x04``)::

    \\x0e"Python primes"\\x012024-01-15T10:30:00.000Z\\x022024-01-15T11:45:00.000Z\\x0312\\x04web

A page wraps each card as ``{"id":…,"title":<card>,"active":…}`` and turns the
markers into field names over the whole page. The markers occur nowhere else:
titles and ids are JSON from orjson (control bytes escaped), times and counts are
digits, channels are letters, digits, ``_``, ``.`` and ``-``. A stored message is
the JSON array ``[id, role, content, timestamp_ms, metadata]``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ..models import DEFAULT_TITLE, MessageIn, auto_title
from .cursor import Cursor, encode_cursor
from .types import Message, Session, SessionPage

DEFAULT_TITLE_JSON = orjson.dumps(DEFAULT_TITLE)

# A card's first byte says where its title came from: a control byte, so that a page
# can drop it with one bytes.replace per kind (see _page_of).
TITLE_DEFAULT = "\x06"

TITLE_AUTO = "\x07"

TITLE_USER = "\x0e"

TITLE_SOURCES = {TITLE_DEFAULT: "default", TITLE_AUTO: "auto", TITLE_USER: "user"}

TITLE_SOURCE_FLAGS = tuple(flag.encode() for flag in TITLE_SOURCES)


def markers_to_json(cards: bytes) -> bytes:
    """Cards with their markers replaced by the JSON between their fields, as a list
    item has them (the replaces spelled out: a loop over pairs took thirty more
    bytecodes a request)."""
    return (
        cards.replace(b"\x01", b',"created_at":"')
        .replace(b"\x02", b'","updated_at":"')
        .replace(b"\x03", b'","message_count":')
        .replace(b"\x04", b',"channel":"')
    )


# A user message whose content is ASCII sends this instead of its auto title: the
# script derives the title itself, and only for the message that gets to set it (the
# first stored user message of a session without a title). Working out every user
# message's title in Python was a sixth of a batch's instructions. Content beyond
# ASCII is titled in Python, where str.split knows Unicode's whitespace.
DERIVE_TITLE = "+"


@dataclass(slots=True)
class IngestResult:
    """A message's ingest and its session as the script left it, still as stored: the
    answer is joined from the card's bytes as a list item is (building the Session and
    two dicts for orjson was a fifth of a single ingest's own work), and the Session is
    parsed only when asked for."""

    created: bool
    message: Message
    session_id: str
    card: bytes
    active: bool
    metadata_json: bytes | None

    @property
    def session(self) -> Session:
        return session_of(self.session_id, self.card, self.active, self.metadata_json)

    @property
    def message_count(self) -> int:
        return card_message_count(self.card)

    @property
    def began_session(self) -> bool:
        """Whether the message was the session's first."""
        return self.created and self.message_count == 1

    def json(self) -> bytes:
        """The answer: ``{"message": …, "session": …}``."""
        return b"".join(
            [
                b'{"message":',
                # A dict, not the dataclass: orjson reads a slotted dataclass twice as slowly.
                orjson.dumps(self.message.as_dict()),
                b',"session":',
                session_json(self.session_id, self.card, self.active, self.metadata_json),
                b"}",
            ]
        )


def stored_message(message: MessageIn) -> bytes:
    return orjson.dumps(
        [message.id, message.role, message.content, message.timestamp_ms, message.metadata]
    )


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


def render_card(
    source: str,
    title: str,
    created_at: str,
    updated_at: str,
    message_count: int,
    channel: str,
) -> bytes:
    """The card as the Lua ``card_render`` writes it."""
    return (
        f"{source}{orjson.dumps(title).decode()}\x01{created_at}\x02{updated_at}"
        f"\x03{message_count}\x04{channel}"
    ).encode()


def card_item(card: bytes) -> dict[str, Any]:
    """A card's fields (without the id, which is its key)."""
    b = card.index(b"\x01")
    c = card.index(b"\x02", b)
    d = card.index(b"\x03", c)
    e = card.index(b"\x04", d)
    return {
        "title": orjson.loads(card[1:b]),
        "created_at": card[b + 1 : c].decode(),
        "updated_at": card[c + 1 : d].decode(),
        "message_count": int(card[d + 1 : e]),
        "channel": card[e + 1 :].decode(),
    }


def card_message_count(card: bytes) -> int:
    return int(card[card.index(b"\x03") + 1 : card.index(b"\x04")])


def session_of(session_id: str, card: bytes, active: bool, meta: bytes | None) -> Session:
    """The session of a card, its activity and its metadata JSON (None: none set)."""
    item = card_item(card)
    return Session(
        id=session_id,
        title=item["title"],
        title_source=TITLE_SOURCES[chr(card[0])],
        channel=item["channel"],
        created_at=item["created_at"],
        updated_at=item["updated_at"],
        message_count=item["message_count"],
        active=active,
        metadata=orjson.loads(meta) if meta else None,
    )


# What follows a session's card fields, by the card's flag byte and whether it is active.
SESSION_TAILS = {
    (flag[0], active): b'","active":%b,"title_source":"%b","metadata":'
    % (orjson.dumps(active), source.encode())
    for flag, source in zip(TITLE_SOURCE_FLAGS, TITLE_SOURCES.values(), strict=True)
    for active in (True, False)
}


def session_json(session_id: str, card: bytes, active: bool, meta: bytes | None) -> bytes:
    """``Session.as_dict()`` as JSON, joined from the card: the card's fields are already
    JSON once its markers are replaced, and the metadata is stored as orjson wrote it."""
    return b"".join(
        [
            b'{"id":',
            orjson.dumps(session_id),
            b',"title":',
            markers_to_json(card[1:]),
            SESSION_TAILS[card[0], active],
            meta or b"{}",
            b"}",
        ]
    )


def card_score(card: bytes) -> int:
    """The card's updated_at in epoch ms: exactly the session's score in the index."""
    return parse_card_time(card[card.index(b"\x02") + 1 : card.index(b"\x03")].decode())


# A page is joined, not formatted: an item is
# ``{"id":"<id>","title":<card>","active":true}``, so the ids and cards go into one list
# between TITLE_AFTER_ID and the separator that closes one item and opens the next, and
# one bytes.join runs over it in C (``bytes %`` per item cost twice as much, and a join
# per item a twentieth of a page read alone). The cards' flag bytes and markers are then
# replaced over the whole page, one byte value at a time (a replace of a longer pattern
# cost ten times more here).
ITEM_OPEN = b'{"id":"'

TITLE_AFTER_ID = b'","title":'

ITEM_CLOSE = {True: b'","active":true}', False: b'","active":false}'}

ITEM_SEPARATOR = {active: close + b"," + ITEM_OPEN for active, close in ITEM_CLOSE.items()}


def _item_parts(flat: list[bytes], active: bool) -> list[bytes]:
    """The parts of the items of sessions that are all active or all inactive, from
    SORT's id-card pairs, for one join.

    Stored ids are valid UTF-8 without control characters; only an id holding a quote
    or a backslash needs orjson, and then the items are built one by one. (``find``,
    not ``in``: a bytes ``in`` first tries its operand as an integer and formats the
    TypeError it catches.)
    """
    if not flat:
        return []
    ids = b"".join(flat[0::2])
    if ids.find(b'"') >= 0 or ids.find(b"\\") >= 0:
        close = ITEM_CLOSE[active]
        items = [
            b'{"id":%b,"title":%b%b' % (orjson.dumps(text_of(i)), c, close)
            for i, c in zip(flat[0::2], flat[1::2], strict=True)
        ]
        return [b",".join(items)]
    # [open, id, after id, card, separator, id, after id, card, …, close]: the slots
    # left empty are the odd ones, which take the ids and cards as SORT gave them.
    parts = [ITEM_OPEN, *[b"", TITLE_AFTER_ID, b"", ITEM_SEPARATOR[active]] * (len(flat) // 2)]
    parts[1::2] = flat
    parts[-1] = ITEM_CLOSE[active]
    return parts


def _active_and_inactive(flat: list[bytes], split: int) -> bytes:
    """Items of the first ``split`` sessions marked active, the rest inactive."""
    active, inactive = _item_parts(flat[: 2 * split], True), _item_parts(flat[2 * split :], False)
    return b"".join([*active, b",", *inactive] if active and inactive else active or inactive)


def _page_of(total: int, first: int, n_active: int, flat: list[Any], *, more: bool) -> SessionPage:
    """The page from ranks ``first`` on, from SORT's [id, card, …] (a card may be nil);
    the first ``n_active - first`` items are active."""
    split = min(max(n_active - first, 0), len(flat) // 2)
    try:
        page = _active_and_inactive(flat, split)
    except TypeError:
        # A card missing under an index entry (drift that `chatsessions check` reports)
        # comes back as None, which bytes.join refuses; such entries are left out.
        present = [n for n in range(0, len(flat), 2) if flat[n + 1] is not None]
        page = _active_and_inactive(
            [value for n in present for value in flat[n : n + 2]],
            sum(1 for n in present if n < 2 * split),
        )
    # The title-source flags are control bytes found nowhere else in a page (titles are
    # JSON, ids and channels hold no control characters): they are dropped (a replace
    # that finds none returns the page itself, without a copy).
    for flag in TITLE_SOURCE_FLAGS:
        page = page.replace(flag, b"")
    page = markers_to_json(page)
    next_cursor = None
    last = flat[-1] if flat else None
    if more and last is not None:
        next_cursor = encode_cursor(
            Cursor(card_score(last), text_of(flat[-2]), first + len(flat) // 2)
        )
    return SessionPage(total=total, items_json=page, next_cursor=next_cursor)


def _script_page(reply: Sequence[Any]) -> SessionPage:
    total, more, first, n_active, ids, cards = reply
    flat = [value for pair in zip(ids, cards, strict=True) for value in pair]
    return _page_of(int(total), int(first), int(n_active), flat, more=bool(more))


def parse_card_time(text: str) -> int:
    """Epoch milliseconds of a time as :func:`format_time` wrote it."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def text_of(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
