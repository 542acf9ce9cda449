"""Per-token rate limit: off by default; when on, 429 with Retry-After, per token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.ratelimit import RateLimiter, retry_after_header
from service.settings import Settings
from service.store import RedisClient

from conftest import Api, Tokens


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_refills() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock=clock)
    assert [limiter.retry_after("bot") for _ in range(2)] == [0.0, 0.0]
    assert limiter.retry_after("bot") == pytest.approx(0.5)
    assert limiter.retry_after("other") == 0.0
    clock.now += 0.5
    assert limiter.retry_after("bot") == 0.0
    assert limiter.retry_after("bot") > 0
    clock.now += 60
    assert [limiter.retry_after("bot") for _ in range(3)][:2] == [0.0, 0.0]


def test_slow_rates_and_header() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.1, clock=clock)
    assert limiter.retry_after("bot") == 0.0
    assert limiter.retry_after("bot") == pytest.approx(10.0)
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(9.2) == "10"
    with pytest.raises(ValueError):
        RateLimiter(0)


@pytest.fixture
async def limited_api(
    redis_client: RedisClient, settings: Settings, tokens: Tokens
) -> AsyncIterator[Api]:
    app = create_app(replace(settings, rate_limit=0.5), redis_client=redis_client)
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens)


async def test_429_with_retry_after_per_token(limited_api: Api) -> None:
    status, _ = await limited_api.call("GET", "/api/sessions")
    assert status == 200
    async with limited_api.client.get(
        "/api/sessions", headers=limited_api.tokens.header("admin")
    ) as response:
        assert response.status == 429
        assert response.headers["Retry-After"] == "2"
        assert "Too many requests" in (await response.json())["detail"]
    status, _ = await limited_api.call("GET", "/api/sessions", token="reader")
    assert status == 200
    # Health probes are not rate limited.
    for _ in range(3):
        assert (await limited_api.call("GET", "/healthz", token=None))[0] == 200


async def test_off_by_default(api: Api) -> None:
    statuses = {(await api.call("GET", "/api/sessions"))[0] for _ in range(30)}
    assert statuses == {200}
