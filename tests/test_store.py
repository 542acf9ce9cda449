"""The store on fakeredis and on a real redis-server: ordering, paging, ingest rules."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from service.models import MessageIn, auto_title, format_time
from service.store import (
    ChannelRequired,
    Cursor,
    InvalidCursor,
    Keys,
    SessionNotFound,
    SessionStore,
    decode_cursor,
    encode_cursor,
)
from service.store import parse_time as card_time

from conftest import ACTIVE_WINDOW_MS, CHANNEL_IDS
from redis_process import RedisProcess

NOW = 1_705_315_500_000  # 2024-01-15T10:45:00Z
ODD_IDS = [
    *CHANNEL_IDS,
    '100% sure {tag} "quoted" \\back',
    'x,"title":"y","channel":"z"',
    "ünïcødé 🤖 日本語",
]


def message(
    message_id: str,
    *,
    ts: int = NOW,
    role: str = "user",
    content: str = "hello there",
    channel: str | None = "web",
) -> MessageIn:
    return MessageIn(message_id, role, content, ts, None, channel)


async def page_ids(store: SessionStore, **kwargs: object) -> list[str]:
    page = await store.list_sessions("default", limit=500, now=NOW, **kwargs)  # type: ignore[arg-type]
    return [item["id"] for item in orjson.loads(b"[" + page.items_json + b"]")]


async def test_ingest_creates_session_and_counts(store: SessionStore) -> None:
    first = await store.add_message("default", "s1", message("m1", ts=NOW - 5000), now=NOW)
    assert first.created
    assert first.session.message_count == 1
    assert first.session.created_at == format_time(NOW - 5000)
    second = await store.add_message("default", "s1", message("m2", ts=NOW), now=NOW)
    assert second.session.message_count == 2
    assert second.session.updated_at == format_time(NOW)
    assert second.session.created_at == format_time(NOW - 5000)


async def test_repeated_message_id_changes_nothing(store: SessionStore) -> None:
    await store.add_message("default", "s1", message("m1", content="original"), now=NOW)
    again = await store.add_message(
        "default", "s1", message("m1", ts=NOW + 60_000, content="changed"), now=NOW
    )
    assert not again.created
    assert again.message.content == "original"
    assert again.session.message_count == 1
    assert again.session.updated_at == format_time(NOW)
    history = await store.history("default", "s1", limit=50)
    assert [m.content for m in history.messages] == ["original"]


async def test_backfilled_message_never_moves_updated_at_back(store: SessionStore) -> None:
    await store.add_message("default", "s1", message("new", ts=NOW), now=NOW)
    await store.add_message("default", "s2", message("other", ts=NOW - 1000), now=NOW)
    old = await store.add_message("default", "s1", message("old", ts=NOW - 86_400_000), now=NOW)
    assert old.session.updated_at == format_time(NOW)
    assert old.session.message_count == 2
    assert await page_ids(store) == ["s1", "s2"]


async def test_auto_title_from_first_user_message_only(store: SessionStore) -> None:
    r = await store.add_message(
        "default", "s1", message("a1", role="assistant", content="Hi! How can I help?"), now=NOW
    )
    assert r.session.title == "New session"
    assert r.session.title_source == "default"
    r = await store.add_message(
        "default", "s1", message("u1", content="  Python   prime\nnumbers "), now=NOW
    )
    assert (r.session.title, r.session.title_source) == ("Python prime numbers", "auto")
    r = await store.add_message("default", "s1", message("u2", content="something else"), now=NOW)
    assert r.session.title == "Python prime numbers"


async def test_long_auto_title_is_cut_at_a_word(store: SessionStore) -> None:
    words = "word " * 40
    r = await store.add_message("default", "s1", message("u1", content=words), now=NOW)
    assert r.session.title.endswith("…")
    assert len(r.session.title) <= 80
    assert "wor…" not in r.session.title


async def test_user_title_is_never_replaced(store: SessionStore) -> None:
    await store.create_session(
        "default", "s1", channel="web", title="My title", metadata=None, now=NOW
    )
    r = await store.add_message("default", "s1", message("u1", content="first words"), now=NOW)
    assert (r.session.title, r.session.title_source) == ("My title", "user")
    await store.add_message("default", "s2", message("u1", content="auto one"), now=NOW)
    renamed = await store.rename_session("default", "s2", "Renamed", now=NOW)
    assert renamed.title_source == "user"
    r = await store.add_message("default", "s2", message("u2", content="later"), now=NOW)
    assert r.session.title == "Renamed"


async def test_unknown_session_needs_a_channel(store: SessionStore) -> None:
    with pytest.raises(ChannelRequired):
        await store.add_message("default", "s1", message("m1", channel=None), now=NOW)
    await store.add_message("default", "s1", message("m1"), now=NOW)
    r = await store.add_message("default", "s1", message("m2", channel=None), now=NOW)
    assert r.session.channel == "web"


@pytest.mark.parametrize("odd", ODD_IDS)
async def test_odd_message_fields_reach_the_script_whole(store: SessionStore, odd: str) -> None:
    # The script gets a message's short fields joined by NUL bytes: none may split them.
    content = f"\x00 {odd} \x01\x1f"
    sent = MessageIn(odd, "user", content, NOW + 7, {"k": "\x00"}, "tele.gram_1-x")
    result = await store.add_message("default", odd, sent, now=NOW)
    assert result.created and result.message.id == odd
    session = result.session
    assert (session.id, session.channel) == (odd, "tele.gram_1-x")
    assert session.title == auto_title(content) and "\x00" in session.title
    assert session.updated_at == format_time(NOW + 7)
    [stored] = (await store.history("default", odd, limit=5, before=None)).messages
    assert (stored.id, stored.content, stored.metadata) == (odd, content, {"k": "\x00"})
    again = await store.add_message("default", odd, sent, now=NOW)
    assert not again.created and again.session.message_count == 1


@pytest.mark.parametrize("session_id", ODD_IDS)
async def test_odd_ids_and_titles_survive_the_card(store: SessionStore, session_id: str) -> None:
    await store.add_message("default", session_id, message("m1", content=session_id), now=NOW)
    got = await store.get_session("default", session_id, now=NOW)
    assert got.id == session_id
    assert got.title == " ".join(session_id.split())
    renamed = await store.rename_session("default", session_id, session_id.strip(), now=NOW)
    assert renamed.id == session_id
    assert await page_ids(store) == [session_id]
    assert await page_ids(store, channel="web") == [session_id]


async def test_order_is_updated_at_desc_with_ties_by_id(store: SessionStore) -> None:
    for session_id, ts in [("a", NOW), ("b", NOW), ("c", NOW - 1), ("d", NOW + 1), ("e", NOW)]:
        await store.add_message("default", session_id, message("m", ts=ts), now=NOW)
    assert await page_ids(store) == ["d", "e", "b", "a", "c"]
    # Paging one by one with cursors gives the same order: ties never disagree.
    seen, cursor = [], None
    while True:
        page = await store.list_sessions("default", limit=1, now=NOW, cursor=cursor)
        seen += [i["id"] for i in orjson.loads(b"[" + page.items_json + b"]")]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ["d", "e", "b", "a", "c"]
    for offset in range(5):
        page = await store.list_sessions("default", limit=1, now=NOW, offset=offset)
        assert orjson.loads(page.items_json)["id"] == seen[offset]


async def test_cursor_paging_is_stable_while_writes_interleave(store: SessionStore) -> None:
    for i in range(30):
        await store.add_message("default", f"s{i:02d}", message("m", ts=NOW - 1000 * i), now=NOW)
    seen: list[str] = []
    cursor = None
    page_number = 0
    while True:
        page = await store.list_sessions("default", limit=7, now=NOW, cursor=cursor)
        seen += [i["id"] for i in orjson.loads(b"[" + page.items_json + b"]")]
        page_number += 1
        # Between pages: new sessions appear, one not yet seen is deleted, one is updated.
        await store.add_message("default", f"new{page_number}", message("m", ts=NOW + 1), now=NOW)
        if page_number == 1:
            await store.delete_session("default", "s20")
            await store.add_message("default", "s25", message("m2", ts=NOW + 5), now=NOW)
            # A session already seen is updated: it moves to the top, out of this pass.
            await store.add_message("default", "s01", message("m2", ts=NOW + 6), now=NOW)
        cursor = page.next_cursor
        if cursor is None:
            break
    expected = [f"s{i:02d}" for i in range(30) if i not in (20, 25)]
    assert seen == expected
    assert len(seen) == len(set(seen))


async def test_cursor_survives_its_own_session_moving(store: SessionStore) -> None:
    for i in range(6):
        await store.add_message("default", f"s{i}", message("m", ts=NOW - i), now=NOW)
    page = await store.list_sessions("default", limit=3, now=NOW)
    assert page.next_cursor is not None
    # The last session of the page (s2) is updated and deleted-and-recreated elsewhere.
    await store.add_message("default", "s2", message("m2", ts=NOW + 10), now=NOW)
    rest = await store.list_sessions("default", limit=3, now=NOW, cursor=page.next_cursor)
    assert [i["id"] for i in orjson.loads(b"[" + rest.items_json + b"]")] == ["s3", "s4", "s5"]
    await store.delete_session("default", "s3")
    rest = await store.list_sessions("default", limit=3, now=NOW, cursor=page.next_cursor)
    assert [i["id"] for i in orjson.loads(b"[" + rest.items_json + b"]")] == ["s4", "s5"]


@pytest.mark.real
async def test_a_cursor_still_in_place_is_paged_by_sort_alone(redis_server: RedisProcess) -> None:
    """The page script's check answers the common case without building the page: the
    member and score Redis answers at the cursor's rank are compared as the strings the
    cursor carries."""
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
    try:
        for i in range(6):
            await store.add_message("default", f"s{i}", message("m", ts=NOW - 1000 * i), now=NOW)
        cursor = (await store.list_sessions("default", limit=3, now=NOW)).next_cursor

        async def next_page() -> tuple[list[str], set[str]]:
            await client.config_resetstat()
            rest = await store.list_sessions("default", limit=3, now=NOW, cursor=cursor)
            called = {name.removeprefix("cmdstat_") for name in await client.info("commandstats")}
            return [i["id"] for i in orjson.loads(b"[" + rest.items_json + b"]")], called

        ids, called = await next_page()
        assert ids == ["s3", "s4", "s5"]
        # The SORT's page stands: the script looked at one rank and fetched no items.
        assert "zrevrange" in called
        assert not called & {"zrevrank", "hget"}
        # A session from below moves above the cursor: the script builds the page itself.
        await store.add_message("default", "s4", message("m2", ts=NOW + 1), now=NOW)
        ids, called = await next_page()
        assert ids == ["s3", "s5"]
        assert {"zrevrank", "hget"} <= called
    finally:
        await store.aclose()
        await client.aclose()


async def test_cursor_with_tied_scores_after_the_cursor_moved(store: SessionStore) -> None:
    for session_id in ["a", "b", "c", "d", "e"]:
        await store.add_message("default", session_id, message("m", ts=NOW), now=NOW)
    page = await store.list_sessions("default", limit=2, now=NOW)
    assert [i["id"] for i in orjson.loads(b"[" + page.items_json + b"]")] == ["e", "d"]
    await store.delete_session("default", "d")
    rest = await store.list_sessions("default", limit=10, now=NOW, cursor=page.next_cursor)
    assert [i["id"] for i in orjson.loads(b"[" + rest.items_json + b"]")] == ["c", "b", "a"]


async def test_total_filters_and_active(store: SessionStore) -> None:
    window = 900_000
    await store.add_message("default", "t1", message("m", ts=NOW, channel="telegram"), now=NOW)
    await store.add_message(
        "default", "t2", message("m", ts=NOW - window - 1, channel="telegram"), now=NOW
    )
    await store.add_message("default", "w1", message("m", ts=NOW - 10, channel="web"), now=NOW)
    await store.add_message("default", "w2", message("m", ts=NOW - window, channel="web"), now=NOW)
    page = await store.list_sessions("default", limit=50, now=NOW)
    assert page.total == 4
    assert await page_ids(store, active=True) == ["t1", "w1", "w2"]
    assert await page_ids(store, active=False) == ["t2"]
    assert await page_ids(store, channel="telegram") == ["t1", "t2"]
    assert await page_ids(store, channel="telegram", active=False) == ["t2"]
    assert await page_ids(store, channel="slack") == []
    inactive = await store.list_sessions("default", limit=50, now=NOW, active=False)
    assert inactive.total == 1
    flags = {i["id"]: i["active"] for i in orjson.loads(b"[" + page.items_json + b"]")}
    assert flags == {"t1": True, "t2": False, "w1": True, "w2": True}


async def test_offset_past_the_end_is_empty_with_total(store: SessionStore) -> None:
    await store.add_message("default", "s1", message("m"), now=NOW)
    page = await store.list_sessions("default", limit=10, now=NOW, offset=5)
    assert (page.total, page.items_json, page.next_cursor) == (1, b"", None)


async def test_next_cursor_only_when_more(store: SessionStore) -> None:
    for i in range(4):
        await store.add_message("default", f"s{i}", message("m", ts=NOW - i), now=NOW)
    assert (await store.list_sessions("default", limit=4, now=NOW)).next_cursor is None
    page = await store.list_sessions("default", limit=3, now=NOW)
    assert decode_cursor(page.next_cursor or "") == Cursor(NOW - 2, "s2", 3)


@pytest.mark.parametrize(
    "cursor", ["", "!!!", "bm90IGpzb24", encode_cursor(Cursor(1, "x", 1))[:-3] + "@@@"]
)
async def test_bad_cursor_is_refused(store: SessionStore, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await store.list_sessions("default", limit=3, now=NOW, cursor=cursor)


async def test_namespaces_are_isolated(store: SessionStore) -> None:
    await store.add_message("ns-a", "same", message("m", content="from a"), now=NOW)
    await store.add_message("ns-b", "same", message("m", content="from b"), now=NOW)
    a = await store.history("ns-a", "same", limit=10)
    assert [m.content for m in a.messages] == ["from a"]
    await store.delete_session("ns-a", "same")
    with pytest.raises(SessionNotFound):
        await store.get_session("ns-a", "same", now=NOW)
    assert (await store.get_session("ns-b", "same", now=NOW)).message_count == 1


async def test_all_keys_of_a_namespace_share_its_hash_tag() -> None:
    keys = Keys("tenant-7")
    names = [
        keys.session("x"),
        keys.index,
        keys.channel("web"),
        keys.messages("x{y}"),
        keys.seen("x"),
        keys.operation("x"),
        keys.card("x"),
        keys.meta("x"),
    ]
    assert all(name.startswith("cs:{tenant-7}:") for name in names)


async def pages(store: SessionStore, limit: int, **filters: Any) -> list[list[dict[str, Any]]]:
    """Every page, by cursor from the first."""
    found, cursor = [], None
    while True:
        page = await store.list_sessions("default", limit=limit, now=NOW, cursor=cursor, **filters)
        found.append(orjson.loads(b"[" + page.items_json + b"]"))
        cursor = page.next_cursor
        if cursor is None:
            return found


@pytest.mark.parametrize("filters", [{}, {"active": True}, {"channel": "web", "active": True}])
async def test_sort_pages_agree_with_the_page_script(
    store: SessionStore, filters: dict[str, Any]
) -> None:
    window = 900_000
    for n in range(23):
        # Ties (n % 4), both sides of the active window, two channels.
        ts = NOW - (n % 4) - (window if n % 3 == 0 else 0)
        channel = "web" if n % 2 else "telegram"
        await store.add_message(
            "default", f"s{n:02d}", message("m", ts=ts, channel=channel), now=NOW
        )
    by_cursor = await pages(store, 4, **filters)
    # Offsets read the same pages through the same SORT, cursors without a rank (as made
    # before ranks were kept) through the page script alone.
    for number, expected in enumerate(by_cursor):
        page = await store.list_sessions("default", limit=4, now=NOW, offset=4 * number, **filters)
        assert orjson.loads(b"[" + page.items_json + b"]") == expected
        if number:
            last = by_cursor[number - 1][-1]
            legacy = encode_cursor(Cursor(card_time(last["updated_at"]), last["id"]))
            page = await store.list_sessions("default", limit=4, now=NOW, cursor=legacy, **filters)
            assert orjson.loads(b"[" + page.items_json + b"]") == expected
    items = [item for page in by_cursor for item in page]
    assert len({i["id"] for i in items}) == len(items)
    assert all(i["active"] for i in items) or "active" not in filters
    assert [i["updated_at"] for i in items] == sorted(
        (i["updated_at"] for i in items), reverse=True
    )
    inactive = [i for page in await pages(store, 4, active=False) for i in page]
    everything = [i for page in await pages(store, 50) for i in page]
    assert {i["id"] for i in inactive} == {i["id"] for i in everything if not i["active"]}
