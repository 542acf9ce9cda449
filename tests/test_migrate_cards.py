"""Sessions stored as cards by the release before hashes move to session hashes: by
`chatsessions migrate` in bounded batches, and by any write that meets one first. The
data is what that release's own code wrote (tests/data/legacy-cards.json, made by
tools/make_legacy_fixture.py), and so are the answers the moved data must give."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from service.models import MessageIn
from service.store import InvariantChecker, Keys, SessionStore, migrate_legacy_cards, move_cards
from service.store.types import SessionChange

from redis_process import RedisProcess

pytestmark = pytest.mark.real

FIXTURE = orjson.loads((Path(__file__).parent / "data" / "legacy-cards.json").read_bytes())
NAMESPACE: str = FIXTURE["namespace"]
NOW: int = FIXTURE["now"]


def raw(value: str) -> bytes:
    return base64.b64decode(value)


async def load_legacy(client: Redis) -> None:
    await client.flushall()
    async with client.pipeline(transaction=False) as pipe:
        for key, (kind, value) in FIXTURE["keys"].items():
            if kind == "string":
                pipe.set(key, raw(value))
            elif kind == "list":
                pipe.rpush(key, *[raw(v) for v in value])
            elif kind == "hash":
                pipe.hset(key, mapping={raw(k): raw(v) for k, v in value.items()})
            else:
                pipe.zadd(key, {raw(m): score for m, score in value})
        await pipe.execute()


# Members 0.3 added to every session, which sessions of earlier releases have unset.
ORGANISATION = {"pinned": False, "archived": False, "tags": []}


def as_earlier(session: dict[str, Any]) -> dict[str, Any]:
    """A session as an earlier release answered it: without what 0.3 added, which must
    read unset."""
    assert {name: session[name] for name in ORGANISATION} == ORGANISATION
    return {name: value for name, value in session.items() if name not in ORGANISATION}


async def answers(store: SessionStore) -> dict[str, Any]:
    page = await store.list_sessions(NAMESPACE, limit=500, now=NOW)
    found: dict[str, Any] = {"list": orjson.loads(page.json()), "sessions": {}, "histories": {}}
    found["list"]["sessions"] = [as_earlier(item) for item in found["list"]["sessions"]]
    for item in found["list"]["sessions"]:
        session_id = item["id"]
        session = await store.get_session(NAMESPACE, session_id, now=NOW)
        found["sessions"][session_id] = as_earlier(session.as_dict())
        history = await store.history(NAMESPACE, session_id, limit=500)
        found["histories"][session_id] = [m.as_dict() for m in history.messages]
    return found


async def test_migrate_moves_every_card_and_the_answers_stay_the_same(
    redis_server: RedisProcess,
) -> None:
    client = Redis.from_url(redis_server.url)
    await load_legacy(client)
    keys = Keys(NAMESPACE)
    cards = len([k for k in FIXTURE["keys"] if k.startswith(keys.card_prefix)])
    assert cards == len(FIXTURE["answers"]["sessions"]) > 0
    before = await InvariantChecker(client).check(NAMESPACE)
    assert sum("run chatsessions migrate" in problem for problem in before.problems) == cards
    progress: list[tuple[int, int]] = []
    assert await move_cards(client, NAMESPACE, batch=2, progress=lambda *p: progress.append(p)) == (
        cards
    )
    # The index's batches, then one over the archived sessions (none).
    assert progress[-1] == (cards, cards) and len(progress) == cards // 2 + 2
    # Nothing of the old layout is left, and running again moves nothing.
    assert not [k async for k in client.scan_iter(match=keys.card_prefix + "*")]
    assert not [k async for k in client.scan_iter(match=keys.meta_prefix + "*")]
    assert await migrate_legacy_cards(client, NAMESPACE) == 0
    store = SessionStore(client, active_window_ms=900_000)
    assert await answers(store) == FIXTURE["answers"]
    report = await InvariantChecker(client).check(NAMESPACE)
    assert report.ok and report.sessions == cards, report.problems
    # A session reads as fields in redis-cli.
    record = await client.hgetall(keys.session("123456789:topic:42"))
    assert record[b"title"] == b"Python prime numbers"
    assert record[b"title_source"] == b"auto"
    assert record[b"channel"] == b"telegram"
    assert record[b"message_count"] == b"4"
    await store.aclose()
    await client.aclose()


async def test_a_write_or_read_that_meets_a_card_first_moves_it(
    redis_server: RedisProcess,
) -> None:
    client = Redis.from_url(redis_server.url)
    await load_legacy(client)
    store = SessionStore(client, active_window_ms=900_000)
    expected = FIXTURE["answers"]["sessions"]
    # Read before any move: the session is moved by the read and reads as it did.
    session = await store.get_session(NAMESPACE, "spaces/abc123", now=NOW)
    assert as_earlier(session.as_dict()) == expected["spaces/abc123"]
    # A message to a session still a card goes on from it: counts, title, channel kept.
    message = MessageIn("new-1", "user", "one more", NOW + 5, None, None)
    result = await store.add_message(NAMESPACE, "session_plain", message, now=NOW + 5)
    session = result.session
    before = expected["session_plain"]
    assert (session.message_count, session.title, session.channel, session.title_source) == (
        before["message_count"] + 1,
        before["title"],
        before["channel"],
        before["title_source"],
    )
    # The session renamed by a person keeps its source when renamed again; delete works.
    renamed = await store.rename_session(NAMESPACE, "+1234567890", "Again", now=NOW)
    assert renamed.title_source == "user"
    await store.delete_session(NAMESPACE, "19:abc@thread.v2")
    assert await move_cards(client, NAMESPACE) == len(expected) - 4
    report = await InvariantChecker(client).check(NAMESPACE)
    assert report.ok, report.problems
    await store.aclose()
    await client.aclose()


async def test_migrate_names_the_readers_who_read_a_session_to_its_end(
    redis_server: RedisProcess,
) -> None:
    """0.3 kept no read_to_end: the move names the readers whose marks reach each count,
    archived sessions too, so that the next message moves their counts."""
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    store = SessionStore(client, active_window_ms=900_000)
    keys = Keys(NAMESPACE)
    for n in range(5):
        message = MessageIn("m1", "user", "hi", NOW, None, "web")
        await store.add_message(NAMESPACE, f"s{n}", message, now=NOW)
        await store.mark_read(NAMESPACE, f"s{n}", "ops", up_to=None, now=NOW)
    await store.mark_read(NAMESPACE, "s0", "ops", up_to=0, now=NOW)
    await store.update_session(NAMESPACE, "s4", SessionChange(archived=True), now=NOW)
    async with client.pipeline(transaction=False) as pipe:
        for n in range(5):
            pipe.hdel(keys.session(f"s{n}"), "read_to_end")
        pipe.set(keys.layout, "3")
        await pipe.execute()
    assert not (await InvariantChecker(client).check(NAMESPACE)).ok
    assert await migrate_legacy_cards(client, NAMESPACE, batch=2) == 0
    for n in range(5):
        read_to_end = await client.hget(keys.session(f"s{n}"), "read_to_end")
        assert read_to_end == (None if n == 0 else b'["ops"]')
    report = await InvariantChecker(client).check(NAMESPACE)
    assert report.ok, report.problems
    await store.aclose()
    await client.aclose()
