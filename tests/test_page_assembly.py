"""A list page assembled from SORT's [id, item, …] reply is exactly the JSON orjson would
write for the same items: ids with quotes or backslashes, any title, any split between
active and inactive items, records gone missing under their index entries. So is the
session of an ingest answer, joined from its item; and the scripts' Lua twin writes
the item byte for byte as record.py does."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from service.models import format_time
from service.store import IngestResult, Message, RedisClient, decode_cursor
from service.store.record import (
    TITLE_AUTO,
    TITLE_DEFAULT,
    TITLE_USER,
    item_message_count,
    item_score,
    page_of,
    render_item,
    session_json,
    session_of,
)

# Session ids as check_session_id admits them: no control characters, no surrogates.
session_ids = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=20
).filter(lambda value: value not in (".", ".."))
titles = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)
channels = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True)
times = st.integers(min_value=0, max_value=4_102_444_800_000)


sources = st.sampled_from([TITLE_DEFAULT, TITLE_AUTO, TITLE_USER])


@st.composite
def items(draw: st.DrawFn) -> bytes:
    created, updated = sorted((draw(times), draw(times)))
    return render_item(
        draw(titles),
        format_time(created),
        format_time(updated),
        draw(st.integers(0, 3) | st.integers(0, 10**6)),
        draw(channels),
    )


@st.composite
def sort_replies(draw: st.DrawFn) -> tuple[list[Any], list[dict[str, Any] | None]]:
    """A SORT reply and, per index entry, the item it stands for (None: record missing)."""
    ids = draw(st.lists(session_ids, max_size=12, unique=True))
    flat: list[Any] = []
    expected: list[dict[str, Any] | None] = []
    for session_id in ids:
        flat.append(session_id.encode())
        if draw(st.integers(0, 9)) == 0:
            flat.append(None)
            expected.append(None)
            continue
        item = draw(items())
        flat.append(item)
        expected.append({"id": session_id, **orjson.loads(b"{" + item + b"}")})
    return flat, expected


@given(sort_replies(), st.integers(0, 20), st.integers(0, 15), st.booleans())
def test_pages_are_the_json_of_their_items(
    reply: tuple[list[Any], list[dict[str, Any] | None]], first: int, n_active: int, more: bool
) -> None:
    flat, expected = reply
    page = page_of(1000, first, n_active, flat, more=more)
    split = n_active - first
    items = [
        {**item, "active": position < split}
        for position, item in enumerate(expected)
        if item is not None
    ]
    assert b"[" + page.items_json + b"]" == orjson.dumps(items)
    assert page.total == 1000
    answer = {"sessions": items, "total": 1000, "next_cursor": page.next_cursor}
    assert page.json() == orjson.dumps(answer)
    # Built once: requests that shared the read get the same bytes object.
    assert page.json() is page.json()
    if more and flat and flat[-1] is not None:
        assert page.next_cursor is not None
        cursor = decode_cursor(page.next_cursor)
        assert cursor.member == flat[-2].decode()
        assert cursor.score == item_score(flat[-1])
        assert cursor.rank == first + len(expected)
    elif not more:
        assert page.next_cursor is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | titles,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(titles, inner, max_size=3),
    max_leaves=8,
)


@given(
    session_ids,
    items(),
    sources,
    st.booleans(),
    st.none() | st.dictionaries(titles, json_values, min_size=1, max_size=4),
    titles,
)
def test_an_ingest_answer_is_the_json_of_its_message_and_session(
    session_id: str,
    item: bytes,
    source: str,
    active: bool,
    metadata: dict[str, Any] | None,
    content: str,
) -> None:
    meta = orjson.dumps(metadata) if metadata else None
    session = session_of(session_id, item, source, active, meta)
    assert session_json(session_id, item, source, active, meta) == orjson.dumps(session.as_dict())
    message = Message("m-1", "user", content, "2024-01-15T10:30:00Z", metadata or {})
    result = IngestResult(True, message, session_id, item, source, active, meta)
    assert result.session == session
    assert result.message_count == item_message_count(item) == session.message_count
    assert result.began_session == (session.message_count == 1)
    answer = {"message": message.as_dict(), "session": session.as_dict()}
    assert result.json() == orjson.dumps(answer)


# Titles that JSON must escape, or must not: quotes, backslashes, every control
# character, DEL, "/", line and paragraph separators, and characters beyond the BMP.
AWKWARD_TITLES = [
    'say "hi"',
    "back\\slash",
    "".join(chr(c) for c in range(32)),
    "del\x7f",
    "a/b </script>",
    "\u2028\u2029",
    "Привет, мир",
    "🦜 parrot",
    "",
]
LUA_ITEM = """
--! include record.lua
local tags = {}
if ARGV[8] ~= '' then tags = split_tags(ARGV[8]) end
local user = nil
if ARGV[9] ~= '' then user = ARGV[9] end
return record_item({title = ARGV[1], created = ARGV[2], updated = ARGV[3],
  count = tonumber(ARGV[4]), channel = ARGV[5], pinned = ARGV[6] == '1',
  archived = ARGV[7] == '1', tags = tags, user = user})
"""


async def test_the_scripts_write_the_item_as_record_py_does(redis_client: RedisClient) -> None:
    from service.store.scripts import assembled

    script = redis_client.register_script(assembled(LUA_ITEM))
    created, updated = "2024-01-15T10:30:00.000Z", "2024-01-15T11:45:00.000Z"
    for title in AWKWARD_TITLES:
        written = await script(keys=[], args=[title, created, updated, 12, "web", "", "", "", ""])
        assert written == render_item(title, created, updated, 12, "web"), title
        # The person's id is any text, as awkward as a title ('' stands for none here);
        # tags are plain names.
        organised = await script(
            keys=[], args=[title, created, updated, 0, "tg", "1", "1", "vip,a:b.c-d_e", title]
        )
        expected = render_item(
            title,
            created,
            updated,
            0,
            "tg",
            pinned=True,
            archived=True,
            tags=["vip", "a:b.c-d_e"],
            user=title or None,
        )
        assert organised == expected, title
