"""SessionStore.restore_session: one session written exactly as its record gives it,
idempotent, in bounded atomic script calls; on fakeredis and a real redis-server."""

from __future__ import annotations

from typing import Any

import orjson

from service.importers.records import MessageRecord, SessionRecord
from service.models import MessageIn, format_time
from service.store import (
    BATCH_CHUNK,
    PAGE_BYTES,
    InvariantChecker,
    RedisClient,
    SessionStore,
)
from service.store.record import record_fields

from conftest import snapshot

NS = "default"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def message(n: int, content: str | None = None, at: int | None = None) -> MessageRecord:
    return MessageRecord(
        id=f"m-{n}",
        role=("user", "assistant")[n % 2],
        content=content if content is not None else f"message {n}",
        timestamp_ms=at if at is not None else T0 + 1000 * n,
        metadata={"n": n} if n % 3 == 0 else None,
    )


def record(
    session_id: str = "s-1",
    messages: list[MessageRecord] | None = None,
    **fields: Any,
) -> SessionRecord:
    given = messages if messages is not None else [message(n) for n in range(5)]
    values: dict[str, Any] = {
        "channel": "telegram",
        "title": "Kept as given",
        "title_source": "user",
        "created_at_ms": T0 - 60_000,
        "updated_at_ms": max((m.timestamp_ms for m in given), default=T0) + 500,
        "metadata": {"lang": "de", "tags": ["a"]},
    }
    values.update(fields)
    return SessionRecord(id=session_id, messages=given, **values)


async def all_messages(store: SessionStore, session_id: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(1000):
        total, page = await store.messages_from(NS, session_id, first=len(messages), count=500)
        messages += [m.as_dict() for m in page]
        if not page or len(messages) >= total:
            break
    return messages


def expected_messages(given: SessionRecord) -> list[dict[str, Any]]:
    return [
        {
            "id": m.id,
            "role": m.role,
            "content": m.content,
            "timestamp": format_time(m.timestamp_ms),
            "metadata": m.metadata or {},
        }
        for m in given.messages
    ]


async def assert_clean(client: RedisClient) -> None:
    report = await InvariantChecker(client).check(NS)
    assert report.problems == []


async def test_restore_gives_the_record_back(
    store: SessionStore, redis_client: RedisClient
) -> None:
    given = record()
    outcome = await store.restore_session(NS, given, now=T0)
    assert (outcome.created, outcome.stored, outcome.seen) == (True, 5, 0)
    session = await store.get_session(NS, "s-1", now=given.updated_at_ms)
    assert session.as_dict() == {
        "id": "s-1",
        "title": "Kept as given",
        "created_at": format_time(given.created_at_ms),
        "updated_at": format_time(given.updated_at_ms),
        "message_count": 5,
        "channel": "telegram",
        "pinned": False,
        "archived": False,
        "tags": [],
        "active": True,
        "title_source": "user",
        "metadata": {"lang": "de", "tags": ["a"]},
    }
    assert await all_messages(store, "s-1") == expected_messages(given)
    history = await store.history(NS, "s-1", limit=50)
    assert [m.as_dict() for m in history.messages] == expected_messages(given)
    for channel in (None, "telegram"):
        page = await store.list_sessions(NS, limit=10, now=given.updated_at_ms, channel=channel)
        assert page.total == 1
        assert page.json().count(b'"id":"s-1"') == 1
    assert (await redis_client.zscore("cs:{default}:index", "s-1")) == given.updated_at_ms
    fields = record_fields(
        title="Kept as given",
        title_source="user",
        channel="telegram",
        created_at=format_time(given.created_at_ms),
        updated_at=format_time(given.updated_at_ms),
        message_count=5,
        metadata=orjson.dumps(given.metadata),
    )
    written = {
        (k.encode() if isinstance(k, str) else k): (v.encode() if isinstance(v, str) else v)
        for k, v in zip(fields[0::2], fields[1::2], strict=True)
    }
    assert await redis_client.hgetall("cs:{default}:session:s-1") == written
    await assert_clean(redis_client)


async def test_restore_twice_changes_nothing(
    store: SessionStore, redis_client: RedisClient
) -> None:
    records = [
        record("a", title_source="auto", title="first words"),
        record("b", channel="web", metadata=None),
        record("empty", messages=[], title="New session", title_source="default", metadata=None),
    ]
    first = await store.restore_sessions(NS, records, now=T0)
    assert [(o.created, o.stored, o.seen) for o in first] == [
        (True, 5, 0),
        (True, 5, 0),
        (True, 0, 0),
    ]
    once = await snapshot(redis_client)
    again = await store.restore_sessions(NS, records, now=T0)
    assert [(o.created, o.stored, o.seen) for o in again] == [
        (False, 0, 5),
        (False, 0, 5),
        (False, 0, 0),
    ]
    assert await snapshot(redis_client) == once
    empty = await store.get_session(NS, "empty", now=T0)
    assert (empty.message_count, empty.title_source, empty.metadata) == (0, "default", None)
    await assert_clean(redis_client)


async def test_a_long_session_goes_in_bounded_calls(
    store: SessionStore, redis_client: RedisClient
) -> None:
    big = "x" * (PAGE_BYTES // 3)
    messages = [message(n) for n in range(2 * BATCH_CHUNK + 7)]
    messages += [message(1000 + n, content=big, at=T0 + 10_000_000 + n) for n in range(4)]
    given = record("long", messages=messages)
    outcome = await store.restore_session(NS, given, now=T0)
    assert (outcome.created, outcome.stored, outcome.seen) == (True, len(messages), 0)
    assert await all_messages(store, "long") == expected_messages(given)
    session = await store.get_session(NS, "long", now=T0)
    assert session.message_count == len(messages)
    assert session.updated_at == format_time(given.updated_at_ms)
    once = await snapshot(redis_client)
    await store.restore_session(NS, given, now=T0)
    assert await snapshot(redis_client) == once
    await assert_clean(redis_client)


async def test_an_existing_session_gets_only_unseen_messages(
    store: SessionStore, redis_client: RedisClient
) -> None:
    # The session begun through ingest: its title, channel and metadata stay its own.
    for n in range(2):
        m = message(n)
        await store.add_message(
            NS,
            "s-1",
            MessageIn(m.id, m.role, m.content, m.timestamp_ms, m.metadata, "web"),
            now=T0,
        )
    before = await store.get_session(NS, "s-1", now=T0)
    given = record(messages=[message(n) for n in range(6)], channel="telegram")
    outcome = await store.restore_session(NS, given, now=T0)
    assert (outcome.created, outcome.stored, outcome.seen) == (False, 4, 2)
    after = await store.get_session(NS, "s-1", now=T0)
    assert after.message_count == 6
    assert (after.title, after.channel, after.created_at) == (
        before.title,
        "web",
        before.created_at,
    )
    assert after.updated_at == format_time(given.updated_at_ms)
    assert [m["id"] for m in await all_messages(store, "s-1")] == [f"m-{n}" for n in range(6)]
    # An older record moves nothing back.
    older = record(messages=[message(0)], updated_at_ms=T0)
    outcome = await store.restore_session(NS, older, now=T0)
    assert (outcome.created, outcome.stored, outcome.seen) == (False, 0, 1)
    assert (await store.get_session(NS, "s-1", now=T0)).updated_at == after.updated_at
    await assert_clean(redis_client)


async def test_a_message_id_twice_in_a_record_is_stored_once(
    store: SessionStore, redis_client: RedisClient
) -> None:
    given = record(messages=[message(1), message(2), message(1)])
    outcome = await store.restore_session(NS, given, now=T0)
    assert (outcome.stored, outcome.seen) == (2, 1)
    assert [m["id"] for m in await all_messages(store, "s-1")] == ["m-1", "m-2"]
    await assert_clean(redis_client)


async def test_updated_at_is_never_before_a_stored_message(
    store: SessionStore, redis_client: RedisClient
) -> None:
    # A record whose updated_at lags its latest message, in two chunks: the latest
    # message's time wins, as ingest would have set it.
    messages = [message(n, at=T0 + n) for n in range(BATCH_CHUNK + 3)]
    given = record("late", messages=messages, updated_at_ms=T0)
    await store.restore_session(NS, given, now=T0)
    session = await store.get_session(NS, "late", now=T0)
    assert session.updated_at == format_time(T0 + BATCH_CHUNK + 2)
    assert await redis_client.zscore("cs:{default}:index", "late") == T0 + BATCH_CHUNK + 2
    assert await redis_client.zscore("cs:{default}:channel:telegram", "late") == (
        T0 + BATCH_CHUNK + 2
    )
    once = await snapshot(redis_client)
    await store.restore_session(NS, given, now=T0)
    assert await snapshot(redis_client) == once
    await assert_clean(redis_client)
