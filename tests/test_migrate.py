"""Sessions written by the first release (one hash of cards per namespace) are moved in
the background once serve listens, and by `chatsessions migrate`."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from serve_process import TEST_TOKEN, ServeProcess, serve_env, token_env

from service.app import create_app, migrate_first_release
from service.settings import Settings
from service.store import InvariantChecker, Keys, SessionStore, migrate_legacy_cards

from conftest import Api, Tokens
from redis_process import RedisProcess, free_port

pytestmark = pytest.mark.real

STAMP = "2024-01-15T10:30:00.000Z"
SCORE = 1705314600000
# Long enough for any step of a test; every test unpauses before it ends.
PAUSE_MS = 60_000


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
        # The move runs beside serving; it is done when the old hash is gone.
        for _ in range(100):
            if not await client.exists(keys.prefix + "sessions"):
                break
            await asyncio.sleep(0.05)
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
    async with client.pipeline(transaction=False) as pipe:
        for n in range(1234):
            pipe.hmget(keys.session(f"s{n}"), "channel", "message_count", "title_source")
        records = await pipe.execute()
    assert records == [[b"web", str(n).encode(), b"default"] for n in range(1234)]
    await client.aclose()


async def seed_legacy(client: Redis, namespace: str, count: int) -> list[str]:
    """``count`` first-release sessions in ``namespace``, as that release stored them."""
    keys = Keys(namespace)
    ids = [f"{namespace}-{n}" for n in range(count)]
    await client.hset(
        keys.prefix + "sessions",
        mapping={i: legacy_card("a", f"title {i}", STAMP, 0, "web") for i in ids},
    )
    await client.zadd(keys.index, dict.fromkeys(ids, SCORE))
    await client.zadd(keys.channel("web"), dict.fromkeys(ids, SCORE))
    return ids


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own: these tests pause its writes."""
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.stop()


def listed(url: str) -> list[str]:
    request = urllib.request.Request(
        url + "/api/sessions", headers={"Authorization": f"Bearer {TEST_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return [s["id"] for s in orjson.loads(response.read())["sessions"]]


async def test_serve_listens_while_the_move_waits_and_stops_cleanly(
    own_redis: RedisProcess, tmp_path: Path
) -> None:
    client = Redis.from_url(own_redis.url)
    legacy = Keys("default").prefix + "sessions"
    ids = await seed_legacy(client, "default", 3)
    env = {**token_env(), "CHATSESSIONS_REDIS_URL": own_redis.url}
    # With writes paused, the move cannot finish: serve must listen all the same.
    await client.client_pause(PAUSE_MS, all=False)  # writes only
    try:
        held = ServeProcess(tmp_path / "held", env=env)
        await asyncio.to_thread(held.start)  # returns once /healthz answers
        try:
            assert await client.exists(legacy) == 1
        finally:
            # Stopping cancels the move that is still waiting.
            assert await asyncio.to_thread(held.stop) == 0
        assert "stopped" in held.log().splitlines()[-1]
    finally:
        await client.client_unpause()
    service = ServeProcess(tmp_path / "free", env=env)
    await asyncio.to_thread(service.start)
    try:
        for _ in range(100):
            if not await client.exists(legacy):
                break
            await asyncio.sleep(0.05)
        assert sorted(await asyncio.to_thread(listed, service.url)) == sorted(ids)
    finally:
        service.stop()
        await client.aclose()


async def test_a_move_that_fails_is_logged_with_its_reason(
    own_redis: RedisProcess, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    client = Redis.from_url(own_redis.url)
    await seed_legacy(client, "default", 2)
    caplog.set_level(logging.WARNING, logger="chatsessions")
    await client.client_pause(PAUSE_MS, all=False)  # writes only
    try:
        await migrate_first_release(client, settings, budget=0.2)
    finally:
        await client.client_unpause()
        await client.aclose()
    assert "(TimeoutError: not done within 0.2 s)" in caplog.text
    caplog.clear()
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        await migrate_first_release(unreachable, settings)
    finally:
        await unreachable.aclose()
    assert "(ConnectionError: Error 111 connecting to 127.0.0.1" in caplog.text


def migrate(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "migrate", "--redis-url", url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_the_migrate_command_moves_each_namespace_once(own_redis: RedisProcess) -> None:
    client = Redis.from_url(own_redis.url)
    try:
        seeded = [
            (namespace, i)
            for namespace, count in (("default", 2), ("tenant", 1), ("third", 3))
            for i in await seed_legacy(client, namespace, count)
        ]
        only = await asyncio.to_thread(migrate, own_redis.url, "--namespace", "third")
        assert only.returncode == 0, only.stderr
        assert only.stdout.splitlines() == [
            "[1/1] namespace third: 3 sessions of an earlier release moved",
            "done: 3 sessions moved in 1 namespace",
        ]
        first = await asyncio.to_thread(migrate, own_redis.url)
        assert first.returncode == 0, first.stderr
        assert first.stdout.splitlines() == [
            "[1/3] namespace default: 2 sessions of an earlier release moved",
            "[2/3] namespace tenant: 1 session of an earlier release moved",
            "[3/3] namespace third: 0 sessions of an earlier release moved",
            "done: 3 sessions moved in 3 namespaces",
        ]
        for namespace in ("default", "tenant", "third"):
            assert not await client.exists(Keys(namespace).prefix + "sessions")
            assert (await InvariantChecker(client).check(namespace)).ok
        moved = await stored_sessions(client, seeded)
        assert [s["title"] for s in moved.values()] == [f"title {i}" for _, i in seeded]
        again = await asyncio.to_thread(migrate, own_redis.url)
        assert again.returncode == 0, again.stderr
        assert again.stdout.splitlines()[-1] == "done: 0 sessions moved in 3 namespaces"
        assert await stored_sessions(client, seeded) == moved
    finally:
        await client.aclose()


async def stored_sessions(
    client: Redis, seeded: list[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    store = SessionStore(client, active_window_ms=900_000)
    try:
        return {
            (namespace, i): (await store.get_session(namespace, i, now=SCORE)).as_dict()
            for namespace, i in seeded
        }
    finally:
        await store.aclose()


async def test_migrate_finds_the_embedded_redis_running_or_not(tmp_path: Path) -> None:
    service = ServeProcess(tmp_path, env=token_env())
    await asyncio.to_thread(service.start)
    try:
        client = Redis.from_url(f"unix://{tmp_path / 'data' / 'redis.sock'}")
        try:
            # A namespace no token names: serve's own move leaves it to the command.
            await seed_legacy(client, "tenant", 2)
        finally:
            await client.aclose()
        running = await asyncio.to_thread(migrate_in, tmp_path)
        assert running.returncode == 0, running.stderr
        assert "[2/2] namespace tenant: 2 sessions of an earlier release moved" in running.stdout
        # The command used serve's redis-server and started none of its own.
        socket_path = tmp_path / "data" / "redis.sock"
        assert len(await asyncio.to_thread(redis_servers_on, socket_path)) == 1
    finally:
        assert service.stop() == 0
    # Stopped: the command starts the data dir's redis-server for itself, then stops it.
    stopped = await asyncio.to_thread(migrate_in, tmp_path)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.splitlines()[-1] == "done: 0 sessions moved in 2 namespaces"
    assert await asyncio.to_thread(redis_servers_on, tmp_path / "data" / "redis.sock") == []


def redis_servers_on(socket_path: Path) -> list[bytes]:
    """The command lines of running redis-servers that listen on ``socket_path``."""
    found = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = path.read_bytes()
        except OSError:  # the process has exited meanwhile
            continue
        if b"redis-server" in command and str(socket_path).encode() in command:
            found.append(command)
    return found


def migrate_in(directory: Path) -> subprocess.CompletedProcess[str]:
    """``chatsessions migrate`` as run in ``directory``: its embedded Redis under ./data."""
    return subprocess.run(
        [sys.executable, "-m", "service", "migrate"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=directory,
        env=serve_env(),
    )
