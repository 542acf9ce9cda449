"""Redis going away: 503 with Retry-After, never a hang or a 500, and recovery after."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.settings import Settings

from conftest import Api, Tokens
from redis_process import RedisProcess

pytestmark = pytest.mark.real

REDIS_TIMEOUT = 0.5
# A guard against a hang, far above the configured timeout: never a speed assertion.
HANG_GUARD = 30.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", appendonly=True).start()
    yield server
    server.stop()


async def serve(settings: Settings, url: str, tokens: Tokens) -> AsyncIterator[Api]:
    app = create_app(replace(settings, redis_url=url, redis_timeout=REDIS_TIMEOUT))
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens)


async def call(api: Api, method: str, path: str, **kwargs: Any) -> tuple[int, Any, str]:
    async def once() -> tuple[int, Any, str]:
        headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
        async with api.client.request(method, path, headers=headers, **kwargs) as response:
            return response.status, await response.json(), response.headers.get("Retry-After", "")

    return await asyncio.wait_for(once(), HANG_GUARD)


MESSAGE = {"role": "user", "content": "hello", "channel": "web"}


async def test_stopped_redis_gives_503_then_recovers(
    own_redis: RedisProcess, settings: Settings, tokens: Tokens
) -> None:
    async for api in serve(settings, own_redis.url, tokens):
        status, _, _ = await call(
            api, "POST", "/api/sessions/s1/messages", json={**MESSAGE, "id": "a"}
        )
        assert status == 201
        own_redis.stop()
        requests = [
            ("GET", "/api/sessions", {}),
            ("GET", "/api/sessions/s1", {}),
            ("GET", "/api/sessions/s1/messages", {}),
            ("POST", "/api/sessions/s1/messages", {"json": {**MESSAGE, "id": "b"}}),
            ("GET", "/readyz", {}),
        ]
        for method, path, kwargs in requests:
            status, body, retry_after = await call(api, method, path, **kwargs)
            assert status == 503, (method, path, body)
            assert isinstance(body, dict) and body["detail"]
            assert retry_after == "1"
        status, body, _ = await call(api, "GET", "/healthz")
        assert status == 200
        own_redis.start()
        # The first request after the restart may meet a pooled socket that died; the
        # client retries once on a fresh connection, so it succeeds.
        status, body, _ = await call(
            api, "POST", "/api/sessions/s1/messages", json={**MESSAGE, "id": "b"}
        )
        assert status == 201, body
        status, body, _ = await call(api, "GET", "/api/sessions/s1")
        assert status == 200 and isinstance(body, dict)
        assert body["message_count"] == 2


async def test_redis_that_never_answers_gives_503_not_a_hang(
    settings: Settings, tokens: Tokens
) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections complete in the kernel, but nothing ever answers
    port = silent.getsockname()[1]
    try:
        async for api in serve(settings, f"redis://127.0.0.1:{port}/0", tokens):
            for path in ["/api/sessions", "/api/sessions/x", "/readyz"]:
                status, body, retry_after = await call(api, "GET", path)
                assert status == 503, (path, body)
                assert retry_after == "1"
    finally:
        silent.close()


async def test_refused_connection_gives_503(settings: Settings, tokens: Tokens) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    async for api in serve(settings, f"redis://127.0.0.1:{port}/0", tokens):
        status, _, retry_after = await call(api, "POST", "/api/sessions/s/messages", json=MESSAGE)
        assert (status, retry_after) == (503, "1")
