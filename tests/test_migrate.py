"""Sessions written by the first release (one hash of cards per namespace) are moved at start."""

from __future__ import annotations

from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from service.app import create_app
from service.settings import Settings
from service.store import Keys, migrate_legacy_cards

from conftest import Api, Tokens
from redis_process import RedisProcess

pytestmark = pytest.mark.real


def legacy_card(source: str, title: str, stamp: str, count: int, channel: str) -> bytes:
    """A card exactly as the first release wrote it."""
    return (
        f'{source}"title":"{title}","created_at":"{stamp}","updated_at":"{stamp}",'
        f'"message_count":{count},"channel":"{channel}"'
    ).encode()


async def test_first_release_sessions_are_moved_at_start(
    redis_server: RedisProcess, settings: Settings, tokens: Tokens
) -> None:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    keys = Keys("default")
    stamps = {"old-a": ("2024-01-15T10:30:00.000Z", 1705314600000)}
    stamps["spaces/b c"] = ("2024-01-15T11:00:00.000Z", 1705316400000)
    await client.hset(
        keys.prefix + "sessions",
        mapping={
            "old-a": legacy_card("a", "Python primes", stamps["old-a"][0], 3, "web"),
            "spaces/b c": legacy_card(
                "u", 'Named \\"by\\" me', stamps["spaces/b c"][0], 1, "slack"
            ),
        },
    )
    for session_id, (_, score) in stamps.items():
        await client.zadd(keys.index, {session_id: score})
    await client.zadd(keys.channel("web"), {"old-a": stamps["old-a"][1]})
    await client.zadd(keys.channel("slack"), {"spaces/b c": stamps["spaces/b c"][1]})
    app = create_app(replace(settings, redis_url=redis_server.url))
    async with TestClient(TestServer(app)) as test_client:
        api = Api(test_client, tokens)
        status, body = await api.call("GET", "/api/sessions")
        assert status == 200
        assert [(s["id"], s["title"], s["message_count"]) for s in body["sessions"]] == [
            ("spaces/b c", 'Named "by" me', 1),
            ("old-a", "Python primes", 3),
        ]
        status, one = await api.call("GET", "/api/sessions/old-a")
        assert (one["title_source"], one["created_at"]) == ("auto", "2024-01-15T10:30:00.000Z")
        status, renamed = await api.call("GET", "/api/sessions/spaces%2Fb%20c")
        assert renamed["title_source"] == "user"
    assert await client.exists(keys.prefix + "sessions") == 0
    # Running again moves nothing and changes nothing.
    assert await migrate_legacy_cards(client, "default") == 0
    await client.aclose()


async def test_many_legacy_sessions_move_in_batches(redis_server: RedisProcess) -> None:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    keys = Keys("tenant")
    stamp = "2024-01-15T10:30:00.000Z"
    await client.hset(
        keys.prefix + "sessions",
        mapping={f"s{n}": legacy_card("d", "New session", stamp, n, "web") for n in range(1234)},
    )
    assert await migrate_legacy_cards(client, "tenant", batch=100) == 1234
    assert await client.exists(keys.prefix + "sessions") == 0
    cards = await client.mget([keys.card(f"s{n}") for n in range(1234)])
    assert all(isinstance(card, bytes) and card.endswith(b"\x04web") for card in cards)
    await client.aclose()
