"""Fixtures: every store and API test runs on fakeredis and on a real redis-server."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from fakeredis import FakeServer
from fakeredis.aioredis import FakeRedis
from fault_proxy import FaultProxy
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from redis.asyncio import Redis

from service.app import create_app
from service.auth import new_token
from service.settings import SCOPES, Settings, TokenConfig
from service.store import RedisClient, SessionStore

from redis_process import RedisProcess

# Property tests are judged by their examples, never by the clock: a busy host slows
# any example, and hypothesis's deadline per example would fail it for that.
hypothesis_settings.register_profile(
    "chatsessions", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("chatsessions")

ACTIVE_WINDOW_MS = 900_000
# Session ids as channels make them (SPEC §3), and the characters that break naive code.
CHANNEL_IDS = [
    "123456789",
    "123456789:topic:42",
    "dm:987654321",
    "C01ABC:1705123456.789",
    "+1234567890",
    "!abc:matrix.org",
    "19:abc@thread.v2",
    "spaces/abc123",
    "session_a1b2c3d4",
]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """One real redis-server for the whole run; tests flush it before use."""
    server = RedisProcess(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
async def fault_proxy(redis_server: RedisProcess) -> AsyncIterator[FaultProxy]:
    """A fault proxy (tests/fault_proxy.py) in front of the run's real redis-server,
    which is flushed first; closed with every connection it made."""
    flushing = Redis.from_url(redis_server.url)
    await flushing.flushall()
    await flushing.aclose()
    proxy = await FaultProxy(redis_server.port).start()
    yield proxy
    await proxy.close()


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.real)])
async def redis_client(
    request: pytest.FixtureRequest,
) -> AsyncIterator[RedisClient]:
    if request.param == "fake":
        client: RedisClient = FakeRedis(server=FakeServer())
    else:
        server: RedisProcess = request.getfixturevalue("redis_server")
        client = Redis.from_url(server.url)
        await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis_client: RedisClient) -> AsyncIterator[SessionStore]:
    opened = SessionStore(redis_client, active_window_ms=ACTIVE_WINDOW_MS)
    yield opened
    await opened.aclose()


class Tokens:
    """Named tokens of a test app: ``tokens["admin"]`` is a secret with all scopes."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.configs: list[TokenConfig] = []

    def add(self, name: str, scopes: tuple[str, ...] = SCOPES, namespace: str = "default") -> str:
        secret = new_token()
        self.secrets[name] = secret
        self.configs.append(
            TokenConfig(
                name=name,
                sha256=hashlib.sha256(secret.encode()).hexdigest(),
                scopes=frozenset(scopes),
                namespace=namespace,
            )
        )
        return secret

    def __getitem__(self, name: str) -> str:
        return self.secrets[name]

    def header(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[name]}"}


@pytest.fixture
def tokens() -> Tokens:
    found = Tokens()
    found.add("admin")
    found.add("reader", ("sessions:read",))
    found.add("writer", ("sessions:read", "sessions:write"))
    found.add("other", SCOPES, namespace="other")
    return found


@pytest.fixture
def settings(tokens: Tokens, tmp_path: Path) -> Settings:
    return Settings(tokens=tuple(tokens.configs), data_dir=tmp_path / "data")


class Api:
    """A test client that sends the admin token unless told otherwise."""

    def __init__(self, client: TestClient[Any, Any], tokens: Tokens) -> None:
        self.client = client
        self.tokens = tokens

    async def call(
        self, method: str, path: str, *, token: str | None = "admin", **kwargs: Any
    ) -> tuple[int, Any]:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {self.tokens[token]}")
        async with self.client.request(method, path, headers=headers, **kwargs) as response:
            body = await response.json() if response.content_type == "application/json" else None
            return response.status, body

    async def ingest(self, session_id: str, **message: Any) -> dict[str, Any]:
        message.setdefault("role", "user")
        message.setdefault("content", "hello")
        message.setdefault("channel", "web")
        status, body = await self.call(
            "POST", f"/api/sessions/{quote(session_id)}/messages", json=message
        )
        assert status in (200, 201), body
        result: dict[str, Any] = body
        return result


def quote(session_id: str) -> str:
    """A session id as it goes into a URL path: every reserved character encoded."""
    return url_quote(session_id, safe="")


@pytest.fixture
async def api(redis_client: RedisClient, settings: Settings, tokens: Tokens) -> AsyncIterator[Api]:
    app = create_app(replace(settings, redis_url="redis://unused"), redis_client=redis_client)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens)


async def snapshot(client: RedisClient) -> dict[bytes, Any]:
    """Every key and its value, operation records aside."""
    found: dict[bytes, Any] = {}
    async for key in client.scan_iter(match="*", count=1000):
        if b":op:" in key:
            continue
        kind = await client.type(key)
        if kind == b"hash":
            found[key] = await client.hgetall(key)
        elif kind == b"zset":
            found[key] = await client.zrange(key, 0, -1, withscores=True)
        elif kind == b"list":
            found[key] = await client.lrange(key, 0, -1)
        elif kind == b"set":
            found[key] = sorted(await client.smembers(key))
        elif kind == b"stream":
            found[key] = await client.xrange(key)
        else:
            found[key] = await client.get(key)
    return found
