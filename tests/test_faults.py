"""Faults injected for real: Redis stopped and SIGKILLed mid-ingest, the service SIGKILLed.

Every test ends by reading everything back: each message that ever got a 2xx is
stored exactly once, counts match, and the invariant checker finds no drift.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from serve_process import TEST_TOKEN, ServeProcess, token_env

from service.app import create_app
from service.settings import Settings
from service.store import InvariantChecker, SessionStore

from redis_process import RedisProcess

pytestmark = [pytest.mark.real, pytest.mark.slow]

REDIS_TIMEOUT = 0.5
HANG_GUARD = 30.0  # far above every timeout: a guard against a hang, not a speed test
RETRY_PAUSE = 0.05
MAX_ATTEMPTS = 2000


@dataclass
class Ledger:
    """What the clients were told: acknowledged ids per session, and every status seen."""

    acked: dict[str, set[str]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    retries: int = 0

    def saw(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


async def post_until_acked(
    session: aiohttp.ClientSession,
    url: str,
    session_id: str,
    message_id: str,
    ledger: Ledger,
    headers: dict[str, str],
) -> None:
    """What a well-behaved bot does: retry the same message id until it is acknowledged."""
    body = {"role": "user", "content": f"text {message_id}", "channel": "web", "id": message_id}
    for _ in range(MAX_ATTEMPTS):
        try:
            async with asyncio.timeout(HANG_GUARD):
                async with session.post(
                    f"{url}/api/sessions/{session_id}/messages", json=body, headers=headers
                ) as response:
                    await response.read()
                    ledger.saw(response.status)
                    if response.status in (200, 201):
                        ledger.acked.setdefault(session_id, set()).add(message_id)
                        return
                    assert response.status == 503, response.status
                    assert response.headers["Retry-After"] == "1"
        except (aiohttp.ClientConnectionError, aiohttp.ServerDisconnectedError):
            ledger.saw(0)
        ledger.retries += 1
        await asyncio.sleep(RETRY_PAUSE)
    raise AssertionError(f"{message_id} was never acknowledged")


async def verify(redis_url: str, ledger: Ledger) -> int:
    """Every acknowledged message is stored once; counts and indexes agree."""
    client = Redis.from_url(redis_url)
    store = SessionStore(client, active_window_ms=900_000)
    try:
        checked = 0
        for session_id, acked in ledger.acked.items():
            page = await store.history("default", session_id, limit=500)
            stored = [m.id for m in page.messages]
            assert page.next_cursor is None
            assert len(stored) == len(set(stored)), "a message was stored twice"
            assert set(stored) == acked, "stored and acknowledged messages differ"
            session = await store.get_session("default", session_id, now=0)
            assert session.message_count == len(acked)
            checked += len(stored)
        report = await InvariantChecker(client).check("default")
        assert report.ok, report.problems
        return checked
    finally:
        await store.aclose()
        await client.aclose()


@pytest.fixture
async def api_on(tmp_path: Path, settings: Settings) -> AsyncIterator[Any]:
    """A factory: an in-process service on the given Redis URL."""
    clients: list[TestClient[Any, Any]] = []

    async def start(redis_url: str) -> TestClient[Any, Any]:
        app = create_app(replace(settings, redis_url=redis_url, redis_timeout=REDIS_TIMEOUT))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.close()


async def test_redis_stopped_during_steady_ingest(
    tmp_path: Path, api_on: Any, tokens: Any, settings: Settings
) -> None:
    redis = RedisProcess(tmp_path / "redis", appendonly=True).start()
    try:
        client = await api_on(redis.url)
        url = str(client.make_url("")).rstrip("/")
        ledger = Ledger()
        headers = tokens.header("admin")
        sent = 0

        async def steady() -> None:
            nonlocal sent
            async with aiohttp.ClientSession() as session:
                for n in range(400):
                    await post_until_acked(session, url, f"s{n % 5}", f"m{n}", ledger, headers)
                    sent += 1

        writer = asyncio.create_task(steady())
        while sent < 100:
            await asyncio.sleep(0.01)
        redis.stop()
        outage_started = dict(ledger.statuses)
        await asyncio.sleep(2.5)
        during = {k: v - outage_started.get(k, 0) for k, v in ledger.statuses.items()}
        assert during.get(503, 0) > 0, "requests during the outage must answer 503"
        assert set(during) <= {200, 201, 503}
        redis.start()
        await asyncio.wait_for(writer, HANG_GUARD * 4)
        assert 500 not in ledger.statuses
        assert await verify(redis.url, ledger) == 400
        print(
            f"\nredis stopped 2.5 s: statuses {ledger.statuses}, retries {ledger.retries}, lost 0"
        )
    finally:
        redis.stop()


async def test_nothing_acknowledged_is_lost_when_redis_is_killed(
    tmp_path: Path, api_on: Any, tokens: Any
) -> None:
    redis = RedisProcess(tmp_path / "redis", appendonly=True, appendfsync="always").start()
    try:
        client = await api_on(redis.url)
        url = str(client.make_url("")).rstrip("/")
        ledger = Ledger()
        headers = tokens.header("admin")
        progress = 0

        async def bot(worker: int) -> None:
            nonlocal progress
            async with aiohttp.ClientSession() as session:
                for n in range(300):
                    await post_until_acked(
                        session, url, f"chat{(worker + n) % 8}", f"w{worker}-{n}", ledger, headers
                    )
                    progress += 1

        bots = [asyncio.create_task(bot(w)) for w in range(4)]
        kills = 0
        for threshold in (250, 650):
            while progress < threshold:
                await asyncio.sleep(0.005)
            redis.stop(signal.SIGKILL)
            kills += 1
            await asyncio.sleep(0.5)
            redis.start()
        await asyncio.wait_for(asyncio.gather(*bots), HANG_GUARD * 4)
        assert kills == 2
        assert 500 not in ledger.statuses
        assert await verify(redis.url, ledger) == 1200
        print(
            f"\nredis SIGKILLed twice: statuses {ledger.statuses}, retries {ledger.retries}, lost 0"
        )
    finally:
        redis.stop()


async def test_service_killed_mid_ingest_leaves_no_half_session(tmp_path: Path) -> None:
    redis = RedisProcess(tmp_path / "redis", appendonly=True, appendfsync="always").start()
    env = {**token_env(), "CHATSESSIONS_REDIS_URL": redis.url}
    service = ServeProcess(tmp_path / "serve", env=env).start()
    headers = {"Authorization": f"Bearer {TEST_TOKEN}"}
    ledger = Ledger()
    try:
        progress = 0

        async def bot(worker: int) -> None:
            nonlocal progress
            async with aiohttp.ClientSession() as session:
                for n in range(150):
                    await post_until_acked(
                        session,
                        service.url,
                        f"c{(worker * 3 + n) % 6}",
                        f"k{worker}-{n}",
                        ledger,
                        headers,
                    )
                    progress += 1

        bots = [asyncio.create_task(bot(w)) for w in range(4)]
        while progress < 200:
            await asyncio.sleep(0.005)
        service.stop(signal.SIGKILL)
        await asyncio.sleep(0.3)
        service.start()
        await asyncio.wait_for(asyncio.gather(*bots), HANG_GUARD * 4)
        assert 500 not in ledger.statuses
        assert ledger.statuses.get(0, 0) > 0, "the kill should have cut some requests"
        assert await verify(redis.url, ledger) == 600
        print(f"\nservice SIGKILLed: statuses {ledger.statuses}, retries {ledger.retries}, lost 0")
    finally:
        service.stop()
        redis.stop()
