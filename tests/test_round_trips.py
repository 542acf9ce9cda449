"""One Redis round trip per list page and per write, counted on the wire to a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any, ClassVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, ConnectionPool

from service.app import create_app
from service.redis_link import RedisLink
from service.settings import Settings

from conftest import Api, Tokens
from redis_process import RedisProcess

pytestmark = pytest.mark.real


HANDSHAKE = (b"HELLO", b"CLIENT")


class CountingConnection(Connection):
    """Counts every write of packed commands: one per round trip, however many commands."""

    sent: ClassVar[list[list[bytes]]] = []

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, bytes | str) else list(command)
        head = chunks[0] if chunks else b""
        first = (
            bytes(head) if isinstance(head, bytes | bytearray | memoryview) else str(head).encode()
        )
        # A new pooled connection says HELLO and CLIENT SETINFO first: not request work.
        if not first[:40].lstrip(b"*0123456789\r\n$").startswith(HANDSHAKE):
            CountingConnection.sent.append([first[:60]])
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted(
    redis_server: RedisProcess, settings: Settings, tokens: Tokens
) -> AsyncIterator[Api]:
    pool = ConnectionPool.from_url(redis_server.url, connection_class=CountingConnection)
    client = Redis(connection_pool=pool)
    await client.flushall()
    app = create_app(replace(settings, redis_url="redis://unused"), redis_client=client)
    async with TestClient(TestServer(app)) as test_client:
        yield Api(test_client, tokens)
    await client.aclose()


async def round_trips(api: Api, method: str, path: str, **kwargs: Any) -> int:
    CountingConnection.sent.clear()
    status, body = await api.call(method, path, **kwargs)
    assert status < 300, body
    # A write is one script; a page is one script or one MULTI/EXEC around a SORT.
    assert all(
        b"EVALSHA" in chunks[0] or b"MULTI" in chunks[0] for chunks in CountingConnection.sent
    ), CountingConnection.sent
    return len(CountingConnection.sent)


async def test_each_request_is_one_round_trip(counted: Api) -> None:
    message = {"role": "user", "content": "hi", "channel": "web"}
    # The first call may also load the script (NOSCRIPT, then SCRIPT LOAD, then again).
    await counted.call("POST", "/api/sessions/warm/messages", json=message)
    for n in range(60):
        await counted.call("POST", f"/api/sessions/s{n}/messages", json=message)
    # Every script once, so that the counts below see no first-use SCRIPT LOAD.
    await counted.call("GET", "/api/sessions")
    await counted.call("GET", "/api/sessions?active=false")
    await counted.call("GET", "/api/sessions/s1/messages")
    await counted.call("GET", "/api/sessions/s1")
    await counted.call("PATCH", "/api/sessions/s3", json={"title": "t"})
    await counted.call("POST", "/api/sessions", json={"channel": "web"})
    await counted.call("DELETE", "/api/sessions/s3")
    await counted.call("GET", "/api/sessions/search?q=hi")
    await counted.call("POST", "/api/messages", json={"messages": [{"session_id": "w", **message}]})
    page = (await counted.call("GET", "/api/sessions?limit=10"))[1]
    cursor = page["next_cursor"]
    assert await round_trips(counted, "GET", "/api/sessions?limit=50") == 1
    assert await round_trips(counted, "GET", "/api/sessions?limit=500&channel=web&active=true") == 1
    assert await round_trips(counted, "GET", f"/api/sessions?limit=20&cursor={cursor}") == 1
    assert await round_trips(counted, "GET", "/api/sessions?limit=20&active=false") == 1
    assert await round_trips(counted, "GET", "/api/sessions?limit=20&offset=30") == 1
    assert await round_trips(counted, "POST", "/api/sessions/s1/messages", json=message) == 1
    assert await round_trips(counted, "POST", "/api/sessions/new/messages", json=message) == 1
    assert await round_trips(counted, "GET", "/api/sessions/s1") == 1
    assert await round_trips(counted, "GET", "/api/sessions/s1/messages") == 1
    assert await round_trips(counted, "PATCH", "/api/sessions/s1", json={"title": "t"}) == 1
    assert await round_trips(counted, "POST", "/api/sessions", json={"channel": "web"}) == 1
    assert await round_trips(counted, "DELETE", "/api/sessions/s2") == 1
    assert await round_trips(counted, "GET", "/api/sessions/search?q=hi") == 1
    batch = [
        {"session_id": f"b{n % 7}", "channel": "web", "role": "user", "content": "x"}
        for n in range(1000)
    ]
    assert await round_trips(counted, "POST", "/api/messages", json={"messages": batch}) == 1
    # Sessions moved since the cursor was made: the page script takes over in the same trip.
    assert await round_trips(counted, "GET", f"/api/sessions?limit=20&cursor={cursor}") == 1


async def test_the_shared_link_takes_one_exchange_per_request(
    redis_server: RedisProcess, settings: Settings, tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The serving path (a plain client gets the pipelined link): one exchange per request."""
    exchanges: list[int] = []
    real_exchange = RedisLink.exchange

    async def counting(self: RedisLink, packed: bytes, expected: int) -> list[Any]:
        exchanges.append(expected)
        return await real_exchange(self, packed, expected)

    monkeypatch.setattr(RedisLink, "exchange", counting)
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    app = create_app(replace(settings, redis_url="redis://unused"), redis_client=client)
    message = {"role": "user", "content": "hi", "channel": "web"}
    async with TestClient(TestServer(app)) as test_client:
        api = Api(test_client, tokens)
        for n in range(60):
            await api.call("POST", f"/api/sessions/s{n}/messages", json=message)
        await api.call("GET", "/api/sessions?active=false")  # loads the page script
        cursor = (await api.call("GET", "/api/sessions?limit=10"))[1]["next_cursor"]
        for path in [
            "/api/sessions?limit=50",
            f"/api/sessions?limit=20&cursor={cursor}",
            "/api/sessions?limit=20&channel=web&offset=30",
            "/api/sessions/s1",
        ]:
            exchanges.clear()
            status, _ = await api.call("GET", path)
            assert (status, len(exchanges)) == (200, 1), path
        exchanges.clear()
        status, _ = await api.call("POST", "/api/sessions/s1/messages", json=message)
        assert (status, len(exchanges)) == (201, 1)
    await client.aclose()
