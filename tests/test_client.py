"""The async client against a live service on a real redis-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiohttp.test_utils import TestServer

from chatsessions_client import (
    BadRequest,
    ChatSessionsClient,
    Conflict,
    NotFound,
    Unauthorized,
    Unavailable,
)
from service.app import create_app
from service.settings import Settings

from conftest import Tokens
from redis_process import RedisProcess

pytestmark = pytest.mark.real


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


@pytest.fixture
async def server(redis: RedisProcess, settings: Settings) -> AsyncIterator[TestServer]:
    app = create_app(replace(settings, redis_url=redis.url, redis_timeout=0.5))
    test_server = TestServer(app)
    await test_server.start_server()
    yield test_server
    await test_server.close()


def client_for(server: TestServer, token: str, **options: float) -> ChatSessionsClient:
    return ChatSessionsClient(str(server.make_url("")), token, **options)  # type: ignore[arg-type]


async def test_every_call(server: TestServer, tokens: Tokens) -> None:
    async with client_for(server, tokens["admin"]) as client:
        made = await client.create_session("web", title="Planning")
        assert made["id"].startswith("session_") and made["title_source"] == "user"
        with pytest.raises(Conflict) as conflict:
            await client.create_session("web", session_id=made["id"])
        assert conflict.value.detail == "A session with this id already exists."
        first = await client.add_message(
            "spaces/abc123", role="user", content="hello", channel="web"
        )
        assert first["created"] and first["message"]["id"].startswith("msg_")
        again = await client.add_message(
            "spaces/abc123", role="user", content="hello", message_id=first["message"]["id"]
        )
        assert again["created"] is False
        batch = await client.add_messages(
            [
                {"session_id": f"b{n}", "channel": "slack", "role": "user", "content": f"m{n}"}
                for n in range(120)
            ]
        )
        assert batch["created"] == 120
        seen = [s["id"] async for s in client.list_sessions(page_size=7)]
        assert len(seen) == len(set(seen)) == 122
        assert [s["id"] async for s in client.list_sessions(channel="web")] == [
            "spaces/abc123",
            made["id"],
        ]
        assert (await client.rename("spaces/abc123", "Renamed"))["title"] == "Renamed"
        assert (await client.get_session("spaces/abc123"))["message_count"] == 1
        assert [h["id"] for h in await client.search("renamed")] == ["spaces/abc123"]
        history = await client.history("spaces/abc123")
        assert [m["content"] for m in history["messages"]] == ["hello"]
        exported = orjson.loads(await client.export("spaces/abc123"))
        assert exported["session"]["title"] == "Renamed"
        assert (await client.export("spaces/abc123", export_format="md")).startswith(b"# Renamed")
        await client.delete("spaces/abc123")
        with pytest.raises(NotFound):
            await client.get_session("spaces/abc123")
        with pytest.raises(BadRequest) as bad:
            await client.add_message("x", role="robot", content="?", channel="web")
        assert "role must be one of" in bad.value.detail


async def test_errors_are_typed(server: TestServer, tokens: Tokens) -> None:
    async with client_for(server, "cs_wrong") as client:
        with pytest.raises(Unauthorized) as caught:
            await client.page()
        assert caught.value.status == 401
    async with client_for(server, tokens["reader"]) as client:
        with pytest.raises(Unauthorized) as caught:
            await client.add_message("s", role="user", content="x", channel="web")
        assert caught.value.status == 403 and "sessions:write" in caught.value.detail


async def test_unreachable_service_gives_up_after_bounded_retries(tokens: Tokens) -> None:
    async with ChatSessionsClient(
        "http://127.0.0.1:9", tokens["admin"], retries=3, backoff=0.01
    ) as client:
        with pytest.raises(Unavailable) as caught:
            await client.page()
    assert caught.value.status == 0 and client.retried == 3


async def test_messages_survive_a_redis_restart_exactly_once(
    server: TestServer, redis: RedisProcess, tokens: Tokens
) -> None:
    sent: list[str] = []

    async def outage() -> None:
        while len(sent) < 60:
            await asyncio.sleep(0.01)
        redis.stop()
        await asyncio.sleep(2.0)
        redis.start()

    async with client_for(
        server, tokens["admin"], retries=60, backoff=0.05, max_backoff=0.5
    ) as client:
        breaker = asyncio.create_task(outage())
        for n in range(200):
            result = await client.add_message(
                f"chat{n % 4}", role="user", content=f"n{n}", channel="web"
            )
            sent.append(result["message"]["id"])
        await breaker
        assert client.retried > 0, "the outage should have made the client retry"
        stored: list[str] = []
        for chat in range(4):
            history = await client.history(f"chat{chat}", limit=500)
            stored += [m["id"] for m in history["messages"]]
            assert (await client.get_session(f"chat{chat}"))["message_count"] == 50
    assert sorted(stored) == sorted(sent) and len(set(stored)) == 200


async def test_retry_after_is_honoured_on_429(
    redis: RedisProcess, settings: Settings, tokens: Tokens
) -> None:
    app = create_app(replace(settings, redis_url=redis.url, rate_limit=2.0))
    server = TestServer(app)
    await server.start_server()
    try:
        async with client_for(server, tokens["admin"], retries=10, backoff=0.01) as client:
            for n in range(6):
                await client.add_message("limited", role="user", content=f"{n}", channel="web")
            assert client.retried > 0
            assert (await client.get_session("limited"))["message_count"] == 6
    finally:
        await server.close()
