"""Races on one session: counts stay exact, user titles are never lost."""

from __future__ import annotations

import asyncio
import contextlib

from service.models import MessageIn
from service.store import InvariantChecker, RedisClient, SessionNotFound, SessionStore

NOW = 1_705_315_500_000


def message(message_id: str, content: str = "hello", role: str = "user") -> MessageIn:
    return MessageIn(message_id, role, content, NOW, None, "web")


async def test_concurrent_ingest_counts_each_distinct_id_once(
    store: SessionStore, redis_client: RedisClient
) -> None:
    # 16 writers, 60 messages each, drawing ids from 0..239: many ids are raced.
    async def writer(worker: int) -> list[bool]:
        created = []
        for n in range(60):
            message_id = f"m{(worker * 37 + n * 11) % 240}"
            result = await store.add_message("default", "hot", message(message_id), now=NOW)
            created.append(result.created)
        return created

    outcomes = await asyncio.gather(*(writer(w) for w in range(16)))
    distinct = {f"m{(w * 37 + n * 11) % 240}" for w in range(16) for n in range(60)}
    assert sum(sum(o) for o in outcomes) == len(distinct)
    session = await store.get_session("default", "hot", now=NOW)
    assert session.message_count == len(distinct)
    page = await store.history("default", "hot", limit=500)
    assert sorted(m.id for m in page.messages) == sorted(distinct)
    assert (await InvariantChecker(redis_client).check("default")).ok


async def test_batch_and_single_writers_race(
    store: SessionStore, redis_client: RedisClient
) -> None:
    items = [("hot", message(f"b{n}")) for n in range(300)]

    async def singles() -> None:
        for n in range(0, 300, 3):
            await store.add_message("default", "hot", message(f"b{n}"), now=NOW)

    await asyncio.gather(
        store.add_messages("default", items[:150], now=NOW),
        store.add_messages("default", items[100:], now=NOW),
        singles(),
    )
    assert (await store.get_session("default", "hot", now=NOW)).message_count == 300
    assert (await InvariantChecker(redis_client).check("default")).ok


async def test_rename_racing_ingest_keeps_the_user_title(store: SessionStore) -> None:
    await store.add_message("default", "s", message("first", "auto words"), now=NOW)

    async def ingest() -> None:
        for n in range(100):
            await store.add_message("default", "s", message(f"u{n}", f"user text {n}"), now=NOW)

    async def rename() -> None:
        for n in range(30):
            await store.rename_session("default", "s", f"Chosen {n}", now=NOW)
            await asyncio.sleep(0)

    await asyncio.gather(ingest(), rename(), ingest())
    session = await store.get_session("default", "s", now=NOW)
    assert (session.title, session.title_source) == ("Chosen 29", "user")
    assert session.message_count == 101


async def test_first_messages_racing_create_one_session(store: SessionStore) -> None:
    results = await asyncio.gather(
        *(
            store.add_message("default", "new", message(f"m{n}", f"text {n}"), now=NOW)
            for n in range(20)
        )
    )
    assert sorted(r.session.message_count for r in results) == list(range(1, 21))
    session = await store.get_session("default", "new", now=NOW)
    assert session.title_source == "auto" and session.title.startswith("text ")
    page = await store.list_sessions("default", limit=10, now=NOW)
    assert page.total == 1


async def test_deletes_racing_ingests_leave_each_session_whole_or_gone(
    store: SessionStore, redis_client: RedisClient
) -> None:
    sessions = [f"del-{n}" for n in range(15)]

    async def chat(session_id: str) -> None:
        for n in range(8):
            await store.add_message("default", session_id, message(f"m{n}"), now=NOW)

    async def delete(session_id: str) -> None:
        for _ in range(3):
            with contextlib.suppress(SessionNotFound):
                await store.delete_session("default", session_id)
            await asyncio.sleep(0)

    await asyncio.gather(*(chat(s) for s in sessions), *(delete(s) for s in sessions))
    assert (await InvariantChecker(redis_client).check("default")).ok
    page = await store.list_sessions("default", limit=500, now=NOW)
    for session_id in sessions:
        try:
            session = await store.get_session("default", session_id, now=NOW)
        except SessionNotFound:
            continue
        history = await store.history("default", session_id, limit=500)
        assert len(history.messages) == session.message_count
    assert page.total <= len(sessions)
