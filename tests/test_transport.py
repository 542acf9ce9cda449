"""One contract, both paths to Redis: the pipelined link and redis-py's public API give
the store the same replies, errors as values, transactions and scripts; on fakeredis
(redis-py only) and on a real redis-server (both)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakeredis import FakeServer
from fakeredis.aioredis import FakeRedis
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from service.redis_link import RedisLink, _Protocol
from service.store import RedisClient
from service.store.transport import ClientPath, LinkPath, Path, Transport

from redis_process import RedisProcess

SCRIPT = "return {KEYS[1], ARGV[1], redis.call('ZCARD', KEYS[1])}"


PATHS = [
    "client-fake",
    pytest.param("client-real", marks=pytest.mark.real),
    pytest.param("link-real", marks=pytest.mark.real),
]


@pytest.fixture(params=PATHS)
async def path_and_client(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Path, RedisClient]]:
    kind, server = request.param.split("-")
    client: RedisClient
    if server == "fake":
        client = FakeRedis(server=FakeServer())
    else:
        redis_server: RedisProcess = request.getfixturevalue("redis_server")
        client = Redis.from_url(redis_server.url)
        await client.flushall()
    found: Path
    if kind == "client":
        found = ClientPath(client)
    else:
        assert isinstance(client, Redis)
        link = RedisLink.for_client(client, 2.0)
        assert link is not None
        found = LinkPath(link)
    yield found, client
    await found.aclose()
    await client.aclose()


def text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list):
        return [text(v) for v in value]
    return value


async def test_replies_in_order_with_errors_as_values(
    path_and_client: tuple[Path, RedisClient],
) -> None:
    path, redis_client = path_and_client
    await redis_client.zadd("z", {"a": 1, "b": 2})
    await redis_client.set("plain", "x")
    replies = await path.exchange(
        [("ZCARD", "z"), ("ZCARD", "plain"), ("ZREVRANGE", "z", 0, -1), ("ZCOUNT", "z", 2, "+inf")]
    )
    assert replies[0] == 2 and replies[3] == 1
    assert isinstance(replies[1], redis_errors.ResponseError) and "WRONGTYPE" in str(replies[1])
    assert text(replies[2]) == ["b", "a"]


async def test_a_transaction_answers_every_reply(
    path_and_client: tuple[Path, RedisClient],
) -> None:
    path, redis_client = path_and_client
    await redis_client.zadd("z", {"a": 1, "b": 2})
    replies = await path.transaction([("ZCARD", "z"), ("ZREVRANGE", "z", 0, 0)])
    assert [replies[0], text(replies[1])] == [2, ["b"]]


async def test_scripts_are_loaded_once_and_answer_alike(
    path_and_client: tuple[Path, RedisClient],
) -> None:
    path, redis_client = path_and_client
    await redis_client.zadd("z", {"a": 1})
    transport = Transport(redis_client, 2.0)
    script = transport.register(SCRIPT)
    await redis_client.script_flush()
    # A server without the script: the transport loads it and sends it again.
    reply = await transport.call(lambda: transport.script(script, ["z"], ["arg"]))
    assert text(reply) == ["z", "arg", 1]
    replies = await path.exchange([("EVALSHA", script.sha, 1, "z", "again")])
    assert text(replies[0]) == ["z", "again", 1]
    await transport.aclose()


@pytest.mark.real
async def test_a_connection_closed_under_the_transport_is_opened_again(
    redis_client: RedisClient,
) -> None:
    transport = Transport(redis_client, 2.0)
    script = transport.register(SCRIPT)
    for shared in (True, False):
        first = functools.partial(transport.script, script, ["z"], ["1"], shared=shared)
        await transport.call(first, shared=shared)
        await redis_client.client_kill_filter(_type="normal", skipme=True)
        again = functools.partial(transport.script, script, ["z"], ["2"], shared=shared)
        reply = await transport.call(again, shared=shared)
        assert text(reply)[:2] == ["z", "2"]
    await transport.aclose()


class HeldTransport:
    """A transport whose writes are recorded; it says when its buffer is full."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        pass


async def test_the_link_holds_commands_while_the_socket_buffer_is_full() -> None:
    protocol = _Protocol(asyncio.get_running_loop(), None)
    held = HeldTransport()
    protocol.connection_made(held)  # type: ignore[arg-type]
    protocol.pause_writing()
    futures = [protocol.send(b"*1\r\n$4\r\nPING\r\n", 1) for _ in range(10)]
    await asyncio.sleep(0)
    assert held.written == [], "nothing is written while the transport is full"
    protocol.resume_writing()
    assert b"".join(held.written) == b"*1\r\n$4\r\nPING\r\n" * 10
    protocol.data_received(b"+PONG\r\n" * 10)
    assert [await f for f in futures] == [[b"PONG"]] * 10
