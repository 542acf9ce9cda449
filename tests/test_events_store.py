"""The change feed, the namespace version and counts, in the store, on fakeredis and a
real redis-server: every write appends its event in the same script, in commit order,
and nothing else does."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service.importers.records import MessageRecord, SessionRecord
from service.models import MessageIn, format_time
from service.store import PAGE_BYTES, SessionNotFound, SessionStore
from service.store.events import FIRST, InvalidEventId, event_id
from service.store.types import RedisClient

from conftest import ACTIVE_WINDOW_MS, CHANNEL_IDS

NOW = 1_705_315_500_000
HOUR = 3_600_000


def message(message_id: str, *, ts: int = NOW, channel: str | None = "web", **kw: Any) -> MessageIn:
    return MessageIn(message_id, kw.get("role", "user"), kw.get("content", "hi"), ts, None, channel)


async def all_events(store: SessionStore, namespace: str = "default") -> list[Any]:
    replay = await store.replay(namespace, FIRST, limit=10_000, now=NOW)
    assert not replay.reset
    return replay.events


def data(event: Any) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(event.data)
    return found


async def test_every_write_appends_its_event_in_order(store: SessionStore) -> None:
    await store.add_message("default", "s1", message("m1", ts=NOW - 1000), now=NOW)
    await store.add_message("default", "s1", message("m2"), now=NOW)
    await store.add_message("default", "s1", message("m2"), now=NOW)  # seen before: no event
    await store.create_session(
        "default", "s2", channel="slack", title="Made", metadata=None, now=NOW
    )
    await store.rename_session("default", "s2", "Renamed", now=NOW)
    await store.delete_session("default", "s2")
    with pytest.raises(SessionNotFound):
        await store.delete_session("default", "s2")  # nothing deleted: no event
    events = await all_events(store)
    assert [(e.type, e.session_id, e.channel) for e in events] == [
        ("session.created", "s1", "web"),
        ("session.updated", "s1", "web"),
        ("session.created", "s2", "slack"),
        ("session.updated", "s2", "slack"),
        ("session.deleted", "s2", "slack"),
    ]
    ids = [e.id for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split("-")))
    first, second, created, renamed, deleted = (data(e) for e in events)
    assert first["session"]["message_count"] == 1
    assert first["message"]["id"] == "m1"
    assert first["message"]["timestamp"] == format_time(NOW - 1000)
    assert second["session"]["message_count"] == 2
    assert second["session"]["updated_at"] == format_time(NOW)
    assert second["session"]["active"] is True
    assert second["message"] == {
        "id": "m2",
        "role": "user",
        "content": "hi",
        "timestamp": format_time(NOW),
        "metadata": {},
    }
    assert created == {
        "session": {
            "id": "s2",
            "title": "Made",
            "created_at": format_time(NOW),
            "updated_at": format_time(NOW),
            "message_count": 0,
            "channel": "slack",
            "pinned": False,
            "archived": False,
            "tags": [],
            "active": True,
        }
    }
    assert renamed["session"]["title"] == "Renamed"
    assert "message" not in renamed
    assert deleted == {"session": {"id": "s2"}}


async def test_event_session_is_the_list_item(store: SessionStore) -> None:
    for position, session_id in enumerate(CHANNEL_IDS):
        await store.add_message("default", session_id, message(f"m{position}"), now=NOW)
    page = await store.list_sessions("default", limit=500, now=NOW)
    items = {item["id"]: item for item in orjson.loads(b"[" + page.items_json + b"]")}
    for event in await all_events(store):
        assert data(event)["session"] == items[event.session_id]


async def test_a_batch_appends_one_event_per_message_stored(store: SessionStore) -> None:
    items = [("a", message("1")), ("b", message("1")), ("a", message("2")), ("a", message("1"))]
    await store.add_messages("default", items, now=NOW)
    events = await all_events(store)
    # The batch brings a session's messages together: a's two, then b's one.
    assert [(e.type, e.session_id, data(e)["message"]["id"]) for e in events] == [
        ("session.created", "a", "1"),
        ("session.updated", "a", "2"),
        ("session.created", "b", "1"),
    ]
    assert [data(e)["session"]["message_count"] for e in events] == [1, 2, 1]


async def test_restore_appends_one_event_per_call_that_writes(store: SessionStore) -> None:
    record = SessionRecord(
        id="r1",
        title="Imported",
        title_source="user",
        channel="web",
        created_at_ms=NOW - HOUR,
        updated_at_ms=NOW - HOUR,
        metadata=None,
        messages=[MessageRecord("m1", "user", "hi", NOW - HOUR, None)],
    )
    await store.restore_sessions("default", [record], now=NOW)
    await store.restore_sessions("default", [record], now=NOW)  # changes nothing
    events = await all_events(store)
    assert [(e.type, e.session_id) for e in events] == [("session.created", "r1")]
    assert data(events[0])["session"]["message_count"] == 1
    assert data(events[0])["session"]["active"] is False


async def test_replay_goes_on_after_a_position(store: SessionStore) -> None:
    for n in range(5):
        await store.add_message("default", "s", message(f"m{n}"), now=NOW)
    events = await all_events(store)
    replay = await store.replay("default", events[1].id, limit=2, now=NOW)
    assert [e.id for e in replay.events] == [events[2].id, events[3].id]
    assert replay.newest == events[-1].id and not replay.reset
    rest = await store.replay("default", events[3].id, limit=100, now=NOW)
    assert [e.id for e in rest.events] == [events[4].id]
    assert (await store.replay("default", events[4].id, limit=100, now=NOW)).events == []


async def test_a_position_not_kept_answers_reset(redis_client: RedisClient) -> None:
    store = SessionStore(redis_client, active_window_ms=ACTIVE_WINDOW_MS, events_retention=1000)
    items = [(f"s{n}", message("m")) for n in range(3000)]
    for start in range(0, len(items), 500):
        await store.add_messages("default", items[start : start + 500], now=NOW)
    events = await all_events(store)
    # Trimmed approximately: at least the retention kept, far from all of it.
    assert 1000 <= len(events) < 3000
    first_kept = events[0].id
    ms, seq = (int(p) for p in first_kept.split("-"))
    older = f"{ms}-{seq - 1}" if seq else f"{ms - 1}-99"
    assert (await store.replay("default", older, limit=10, now=NOW)).reset
    # The oldest kept is a position the stream goes on from.
    kept = await store.replay("default", first_kept, limit=10, now=NOW)
    assert not kept.reset and kept.events[0].id == events[1].id
    # A position after the newest was never this stream's.
    ms, seq = (int(p) for p in events[-1].id.split("-"))
    assert (await store.replay("default", f"{ms + 1}-0", limit=10, now=NOW)).reset
    # An empty namespace's stream can go on only from the start.
    assert (await store.replay("empty", "5-0", limit=10, now=NOW)).reset
    nothing = await store.replay("empty", FIRST, limit=10, now=NOW)
    assert not nothing.reset and nothing.events == [] and nothing.newest == FIRST
    await store.aclose()


async def test_wait_events_reads_after_a_position(store: SessionStore) -> None:
    assert await store.wait_events("default", FIRST, block_ms=10, limit=10, now=NOW) == []
    await store.add_message("default", "s", message("m1"), now=NOW)
    await store.add_message("default", "s", message("m2"), now=NOW)
    waited = await store.wait_events("default", FIRST, block_ms=10, limit=10, now=NOW)
    assert [data(e)["message"]["id"] for e in waited] == ["m1", "m2"]
    after = await store.wait_events("default", waited[0].id, block_ms=10, limit=10, now=NOW)
    assert [e.id for e in after] == [waited[1].id]


async def test_version_moves_with_every_write_and_with_time_alone(store: SessionStore) -> None:
    empty = await store.version("default", now=NOW)
    await store.add_message("default", "s", message("m1"), now=NOW)
    one = await store.version("default", now=NOW)
    assert one != empty
    assert await store.version("default", now=NOW) == one
    await store.add_message("default", "s", message("m1"), now=NOW)  # seen before
    assert await store.version("default", now=NOW) == one
    await store.rename_session("default", "s", "New", now=NOW)
    renamed = await store.version("default", now=NOW)
    assert renamed != one
    # The session leaves the active window: its item changes, so the version does.
    assert await store.version("default", now=NOW + ACTIVE_WINDOW_MS + 1) != renamed
    assert await store.version("other", now=NOW) == empty


async def test_counts_per_channel_and_hour(store: SessionStore) -> None:
    await store.add_message("default", "a", message("1", channel="web", ts=NOW), now=NOW)
    await store.add_message("default", "b", message("1", channel="web", ts=NOW - 2 * HOUR), now=NOW)
    await store.add_message("default", "c", message("1", channel="tg", ts=NOW - 30 * HOUR), now=NOW)
    counts = await store.counts("default", now=NOW)
    assert counts.as_dict() == {
        "total": 3,
        "active": 1,
        "archived": 0,
        "pinned": 0,
        "channels": {"tg": {"total": 1, "active": 0}, "web": {"total": 2, "active": 1}},
        "tags": {},
    }
    hourly = (await store.counts("default", now=NOW, hours=24)).as_dict()["activity"]
    assert len(hourly["hours"]) == 24
    assert hourly["hours"][-1] == format_time(NOW // HOUR * HOUR)
    assert hourly["channels"]["web"][-1] == 1 and hourly["channels"]["web"][-3] == 1
    assert sum(hourly["channels"]["web"]) == 2
    assert sum(hourly["channels"]["tg"]) == 0
    await store.delete_session("default", "c")
    after = (await store.counts("default", now=NOW)).as_dict()
    assert after["channels"] == {"web": {"total": 2, "active": 1}}
    assert after["total"] == 2


@pytest.mark.parametrize(
    "text", ["", "abc", "1-", "-1", "1-2-3", "01-1", " 1-x", "1-99999999999999999999"]
)
def test_malformed_event_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidEventId):
        event_id(text)


def test_event_ids_parse() -> None:
    assert event_id("0") == FIRST
    assert event_id(" 1705315500000-3 ") == "1705315500000-3"


async def test_replay_pages_are_bounded_in_bytes(store: SessionStore) -> None:
    big = "x" * (60 * 1024)
    for n in range(10):
        await store.add_message("default", "s", message(f"m{n}", content=big), now=NOW)
    page = await store.replay("default", FIRST, limit=100, now=NOW)
    # Each event holds the message twice over (its item's title and the message).
    assert 1 <= len(page.events) < 10
    assert sum(len(e.data) for e in page.events) < 2 * PAGE_BYTES
    seen = [e.id for e in page.events]
    while len(seen) < 10:
        more = await store.replay("default", seen[-1], limit=100, now=NOW)
        assert more.events
        seen += [e.id for e in more.events]
    assert len(set(seen)) == 10
