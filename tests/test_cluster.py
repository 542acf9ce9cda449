"""chatsessions on a real local Redis Cluster: the API unchanged, namespaces spread, failover."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from serve_process import TEST_TOKEN, ServeProcess, token_env

from service.app import create_app
from service.connections import open_redis
from service.models import MessageIn
from service.settings import Settings
from service.store import InvariantChecker, Keys, SessionStore

from cluster_process import ClusterProcess
from conftest import Api, Tokens

pytestmark = [pytest.mark.real, pytest.mark.slow]

NOW = 1_705_315_500_000
HANG_GUARD = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterProcess]:
    """Three masters, each with a replica; shared by this module's tests, flushed per test."""
    running = ClusterProcess(tmp_path_factory.mktemp("cluster"), masters=3, replicas=1)
    try:
        yield running.start()
    finally:
        running.stop()


@pytest.fixture
async def cluster_client(cluster: ClusterProcess) -> AsyncIterator[RedisCluster]:
    cluster.flush()
    client = open_redis(cluster.url, 2.0)
    assert isinstance(client, RedisCluster)
    yield client
    await client.aclose()


@pytest.fixture
async def cluster_api(
    cluster_client: RedisCluster, cluster: ClusterProcess, settings: Settings, tokens: Tokens
) -> AsyncIterator[Api]:
    app = create_app(replace(settings, redis_url=cluster.url, redis_timeout=1.0))
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens)


async def test_the_api_works_unchanged_on_the_cluster(cluster_api: Api) -> None:
    for n in range(12):
        await cluster_api.ingest(
            f"s:{n}/x",
            content=f"message {n}",
            timestamp=1_705_315_500 + n,
            channel="web" if n % 2 else "slack",
        )
    status, body = await cluster_api.call("GET", "/api/sessions?limit=5")
    assert status == 200 and body["total"] == 12
    seen = [s["id"] for s in body["sessions"]]
    cursor = body["next_cursor"]
    while cursor:
        status, body = await cluster_api.call("GET", f"/api/sessions?limit=5&cursor={cursor}")
        seen += [s["id"] for s in body["sessions"]]
        cursor = body["next_cursor"]
    assert seen == [f"s:{n}/x" for n in range(11, -1, -1)]
    status, body = await cluster_api.call("GET", "/api/sessions?channel=slack")
    assert body["total"] == 6
    status, batch = await cluster_api.call(
        "POST",
        "/api/messages",
        json={
            "messages": [
                {
                    "session_id": "batch",
                    "channel": "web",
                    "role": "user",
                    "content": f"b{n}",
                    "id": f"b{n}",
                }
                for n in range(50)
            ]
        },
    )
    assert (status, batch["created"]) == (200, 50)
    assert (await cluster_api.call("PATCH", "/api/sessions/batch", json={"title": "Renamed"}))[
        0
    ] == 200
    status, hits = await cluster_api.call("GET", "/api/sessions/search?q=renamed")
    assert [h["id"] for h in hits["sessions"]] == ["batch"]
    status, history = await cluster_api.call("GET", "/api/sessions/batch/messages?limit=20")
    assert [m["id"] for m in history["messages"]] == [f"b{n}" for n in range(30, 50)]
    assert await cluster_api.call("DELETE", "/api/sessions/batch") == (200, {"status": "ok"})
    assert (await cluster_api.call("GET", "/api/sessions/batch"))[0] == 404
    status, other = await cluster_api.call("GET", "/api/sessions", token="other")
    assert other["total"] == 0
    assert (await cluster_api.call("GET", "/readyz", token=None))[0] == 200


async def test_store_and_checker_on_the_cluster(cluster_client: RedisCluster) -> None:
    store = SessionStore(cluster_client, active_window_ms=900_000)
    for namespace in ("alpha", "beta"):
        for n in range(5):
            message = MessageIn(f"m{n}", "user", "hi", NOW + n, None, "web")
            await store.add_message(namespace, f"s{n % 2}", message, now=NOW)
    checker = InvariantChecker(cluster_client)
    assert await checker.namespaces() == ["alpha", "beta"]
    report = await checker.check("alpha")
    assert report.ok and (report.sessions, report.messages) == (2, 5)


async def test_namespaces_spread_over_the_masters(
    cluster: ClusterProcess, cluster_client: RedisCluster
) -> None:
    store = SessionStore(cluster_client, active_window_ms=900_000)
    holders: dict[int, int] = {}
    for n in range(30):
        namespace = f"tenant-{n}"
        await store.add_message(
            namespace, "s", MessageIn("m", "user", "hi", NOW, None, "web"), now=NOW
        )
        keys = Keys(namespace)
        slots = {
            key_slot(k.encode())
            for k in (
                keys.index,
                keys.session("s"),
                keys.channel("web"),
                keys.messages("s"),
                keys.seen("s"),
            )
        }
        assert len(slots) == 1, "every key of a namespace is on one slot"
        master = cluster.master_of_slot(slots.pop())
        holders[master.port] = holders.get(master.port, 0) + 1
    assert len(holders) == 3, holders
    assert all(count >= 3 for count in holders.values()), holders


async def test_failover_answers_503_then_recovers_losing_nothing(
    cluster: ClusterProcess, cluster_client: RedisCluster, settings: Settings, tokens: Tokens
) -> None:
    app = create_app(replace(settings, redis_url=cluster.url, redis_timeout=0.5))
    async with TestClient(TestServer(app)) as client:
        url = str(client.make_url("")).rstrip("/")
        headers = tokens.header("admin")
        acked: set[str] = set()
        statuses: dict[int, int] = {}

        async def bot() -> None:
            async with aiohttp.ClientSession() as session:
                for n in range(300):
                    body = {"role": "user", "content": f"n{n}", "channel": "web", "id": f"f{n}"}
                    for _ in range(2000):
                        try:
                            async with asyncio.timeout(HANG_GUARD):
                                async with session.post(
                                    f"{url}/api/sessions/failover/messages",
                                    json=body,
                                    headers=headers,
                                ) as response:
                                    await response.read()
                                    statuses[response.status] = statuses.get(response.status, 0) + 1
                                    if response.status in (200, 201):
                                        acked.add(body["id"])
                                        break
                                    assert response.status == 503
                        except aiohttp.ClientConnectionError:
                            pass
                        await asyncio.sleep(0.05)

        writer = asyncio.create_task(bot())
        while len(acked) < 100:
            await asyncio.sleep(0.01)
        slot = key_slot(Keys("default").index.encode())
        victim = cluster.master_of_slot(slot)
        # SIGTERM: Redis 7 waits for its replica to catch up before exiting, then the
        # replica is promoted once the other masters find the old one gone.
        victim.stop(signal.SIGTERM)
        await asyncio.wait_for(writer, HANG_GUARD * 3)
        assert 500 not in statuses
        assert statuses.get(503, 0) > 0, "the switch should have been seen as 503s"
        cluster.wait_ok()
        store = SessionStore(cluster_client, active_window_ms=900_000)
        page = await store.history("default", "failover", limit=500)
        stored = [m.id for m in page.messages]
        assert len(stored) == len(set(stored)) == 300
        assert set(stored) == acked
        assert (await store.get_session("default", "failover", now=NOW)).message_count == 300
        victim.start()  # it rejoins as a replica of the promoted node
        cluster.wait_ok()


async def test_workers_serve_against_the_cluster(cluster: ClusterProcess, tmp_path: Path) -> None:
    cluster.flush()
    env = {**token_env(), "CHATSESSIONS_REDIS_URL": cluster.url}
    service = ServeProcess(tmp_path, env=env, args=("--workers", "2")).start()
    try:
        headers = {"Authorization": f"Bearer {TEST_TOKEN}"}
        async with aiohttp.ClientSession(headers=headers) as session:
            for n in range(40):
                async with session.post(
                    f"{service.url}/api/sessions/w{n % 4}/messages",
                    json={"role": "user", "content": "x", "channel": "web"},
                ) as response:
                    assert response.status == 201
            async with session.get(f"{service.url}/api/sessions") as response:
                body: dict[str, Any] = await response.json()
        assert len(await asyncio.to_thread(service.worker_pids, 2)) == 2
        assert body["total"] == 4 and {s["message_count"] for s in body["sessions"]} == {10}
    finally:
        service.stop()


async def test_a_cold_cluster_client_survives_a_concurrent_first_burst(
    cluster: ClusterProcess,
) -> None:
    """Many first requests at once on a new cluster client: every one answered."""
    cluster.flush()
    seeded = open_redis(cluster.url, 2.0)
    store = SessionStore(seeded, active_window_ms=900_000)
    for n in range(6):
        await store.add_message(
            f"tenant{n}", "s", MessageIn("m", "user", "hi", NOW, None, "web"), now=NOW
        )
    await seeded.aclose()
    fresh = open_redis(cluster.url, 2.0)
    cold = SessionStore(fresh, active_window_ms=900_000)
    try:
        pages = await asyncio.gather(
            *(cold.list_sessions(f"tenant{n % 6}", limit=50, now=NOW) for n in range(64))
        )
        assert all(page.total == 1 for page in pages)
    finally:
        await fresh.aclose()
