"""The shared pipelined connection, against real redis-server processes."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
import uvloop
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from service.redis_link import FLUSH_EVERY, RedisLink, pack
from service.store import SessionStore, StoreUnavailable

from redis_process import RedisProcess

pytestmark = pytest.mark.real


@pytest.fixture
async def link(redis_server: RedisProcess) -> AsyncIterator[RedisLink]:
    client = Redis.from_url(redis_server.url)
    opened = RedisLink.for_client(client)
    assert opened is not None
    yield opened
    await opened.aclose()
    await client.aclose()


async def test_concurrent_callers_each_get_their_own_replies(link: RedisLink) -> None:
    async def echo(n: int) -> None:
        await asyncio.sleep(random.random() / 100)
        # Sizes from a few bytes to past one socket read, so replies split across reads.
        values = [f"{n}:".encode() + b"x" * random.choice([1, 100, 70_000]) for _ in range(3)]
        replies = await link.exchange(pack([("ECHO", v) for v in values]), 3)
        assert replies == values

    await asyncio.gather(*(echo(n) for n in range(300)))


async def test_error_replies_come_back_as_values(link: RedisLink) -> None:
    replies = await link.exchange(
        pack([("EVALSHA", "0" * 40, 0), ("MULTI",), ("INCR", "x"), ("LPUSH", "x", 1), ("EXEC",)]),
        5,
    )
    assert isinstance(replies[0], redis_errors.NoScriptError)
    assert replies[1:4] == [b"OK", b"QUEUED", b"QUEUED"]
    counted, wrong_type = replies[4]
    assert counted == 1
    assert isinstance(wrong_type, redis_errors.ResponseError)
    assert str(wrong_type).startswith("WRONGTYPE")


async def test_a_full_batch_leaves_before_the_pass_ends(
    link: RedisLink, redis_server: RedisProcess
) -> None:
    """Redis starts on the first FLUSH_EVERY commands of an event-loop pass while the pass
    goes on; the rest leave when it ends."""
    await link.exchange(pack([("PING",)]), 1)
    watcher = redis.Redis(port=redis_server.port)
    sent = [link.exchange(pack([("INCR", "gathered")]), 1) for _ in range(FLUSH_EVERY + 1)]
    # No await since the sends: the pass has not ended. Redis is watched from outside it.
    full = str(FLUSH_EVERY).encode()
    give_up = time.monotonic() + 10
    while watcher.get("gathered") != full and time.monotonic() < give_up:
        # Blocking on purpose: an await would end the pass.
        time.sleep(0.005)  # noqa: ASYNC251
    seen_during_pass = watcher.get("gathered")
    replies = await asyncio.gather(*sent)
    watcher.close()
    assert seen_during_pass == full
    assert replies == [[n] for n in range(1, FLUSH_EVERY + 2)]


def test_a_full_batch_on_a_closed_connection_fails_as_a_lost_one(
    redis_server: RedisProcess,
) -> None:
    """The send that fills a batch writes at once, so it can meet a connection closed
    under it (by the watchdog or at shutdown) before connection_lost has run: its
    callers get the lost connection's error, on the event loop the service runs."""

    async def scenario() -> list[BaseException | list[Any]]:
        client = Redis.from_url(redis_server.url)
        link = RedisLink.for_client(client)
        assert link is not None
        await link.exchange(pack([("PING",)]), 1)
        protocol = link._protocol
        assert protocol is not None and protocol.transport is not None
        protocol.transport.close()
        sent = [link.exchange(pack([("PING",)]), 1) for _ in range(FLUSH_EVERY)]
        outcomes = await asyncio.gather(*sent, return_exceptions=True)
        await client.aclose()
        return outcomes

    outcomes = uvloop.run(scenario())
    assert len(outcomes) == FLUSH_EVERY
    assert all(isinstance(outcome, redis_errors.ConnectionError) for outcome in outcomes)


async def test_password_and_database_are_used(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path).start()
    admin = Redis(port=server.port)
    await admin.config_set("requirepass", "s3cret")
    await admin.aclose()
    try:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/3"
        client = Redis.from_url(url)
        store = SessionStore(client, active_window_ms=1000, timeout=2.0)
        await store.create_session("default", "a", channel="web", title=None, metadata=None, now=1)
        # The session went to database 3, through the link, authenticated.
        assert await client.exists("cs:{default}:session:a") == 1
        other = Redis(port=server.port, password="s3cret", db=0)
        assert await other.exists("cs:{default}:session:a") == 0
        await other.aclose()
        await store.aclose()
        wrong = SessionStore(
            Redis.from_url(f"redis://:nope@127.0.0.1:{server.port}/0"),
            active_window_ms=1000,
            timeout=2.0,
        )
        with pytest.raises(StoreUnavailable):
            await wrong.get_session("default", "a", now=1)
        await wrong.aclose()
        await client.aclose()
    finally:
        server.stop()


async def test_unix_socket(tmp_path: Path) -> None:
    socket_path = tmp_path / "redis.sock"
    server = RedisProcess(tmp_path, extra_args=("--unixsocket", str(socket_path))).start()
    try:
        client = Redis.from_url(f"unix://{socket_path}")
        store = SessionStore(client, active_window_ms=1000, timeout=2.0)
        await store.create_session("default", "a", channel="web", title=None, metadata=None, now=1)
        assert (await store.get_session("default", "a", now=1)).channel == "web"
        await store.aclose()
        await client.aclose()
    finally:
        server.stop()


async def test_a_restart_costs_no_request(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, appendonly=True, appendfsync="always").start()
    client = Redis.from_url(server.url)
    store = SessionStore(client, active_window_ms=1000, timeout=2.0)
    try:
        await store.create_session("default", "a", channel="web", title=None, metadata=None, now=1)
        server.stop()
        server.start()
        # The link's connection died with the server: the next call reconnects once.
        assert (await store.get_session("default", "a", now=1)).id == "a"
    finally:
        await store.aclose()
        await client.aclose()
        server.stop()


async def test_a_frozen_redis_gives_503_then_recovers(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path).start()
    assert server.process is not None
    client = Redis.from_url(server.url)
    store = SessionStore(client, active_window_ms=1000, timeout=0.5)
    try:
        await store.create_session("default", "a", channel="web", title=None, metadata=None, now=1)
        server.process.send_signal(signal.SIGSTOP)
        try:
            results = await asyncio.gather(
                *(store.get_session("default", "a", now=1) for _ in range(20)),
                return_exceptions=True,
            )
            assert all(isinstance(r, StoreUnavailable) for r in results), results
            # The watchdog's verdict, not a retry on a fresh connection.
            assert all("did not answer in time" in str(r) for r in results), results
        finally:
            server.process.send_signal(signal.SIGCONT)
        # The stuck connection was dropped; a fresh one answers.
        assert (await store.get_session("default", "a", now=1)).id == "a"
        page = await store.list_sessions("default", limit=5, now=1)
        assert page.total == 1
    finally:
        await store.aclose()
        await client.aclose()
        server.stop()


async def test_the_deadline_spares_a_busy_healthy_connection(redis_server: RedisProcess) -> None:
    """Round trips keep going for several deadlines: the watchdog only looks at the oldest
    waiter, so a connection that always has some waiter is not dropped."""
    client = Redis.from_url(redis_server.url)
    link = RedisLink.for_client(client, deadline=0.2)
    assert link is not None
    try:
        first = await link.exchange(pack([("CLIENT", "ID")]), 1)
        loop = asyncio.get_running_loop()
        ends = loop.time() + 1.0
        while loop.time() < ends:
            replies = await asyncio.gather(
                *(link.exchange(pack([("INCR", "n")]), 1) for _ in range(20))
            )
            assert len(replies) == 20
        assert await link.exchange(pack([("CLIENT", "ID")]), 1) == first
    finally:
        await link.aclose()
        await client.aclose()


async def test_the_deadline_drops_a_silent_connection(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path).start()
    assert server.process is not None
    client = Redis.from_url(server.url)
    link = RedisLink.for_client(client, deadline=0.3)
    assert link is not None
    try:
        first = await link.exchange(pack([("CLIENT", "ID")]), 1)
        server.process.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(redis_errors.TimeoutError):
                await link.exchange(pack([("PING",)]), 1)
        finally:
            server.process.send_signal(signal.SIGCONT)
        assert await link.exchange(pack([("CLIENT", "ID")]), 1) != first
    finally:
        await link.aclose()
        await client.aclose()
        server.stop()
