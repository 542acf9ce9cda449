"""Connection-level limits on the real runner: slow clients are cut, huge headers refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import web

from service.app import create_app, make_runner
from service.settings import Settings
from service.store import RedisClient

from redis_process import free_port

CLIENT_TIMEOUT = 1.0
# How long the test is willing to trickle bytes: far beyond the timeout it checks.
TRICKLE_LIMIT = 60


@pytest.fixture
async def served_port(redis_client: RedisClient, settings: Settings) -> AsyncIterator[int]:
    app = create_app(replace(settings, client_timeout=CLIENT_TIMEOUT), redis_client=redis_client)
    runner = make_runner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), TRICKLE_LIMIT)


async def test_client_trickling_headers_is_cut_off(served_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served_port)
    request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 1000
    sent = 0
    closed = False
    for byte in request:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        sent += 1
        await asyncio.sleep(0.05)
        if reader.at_eof() or writer.transport.is_closing():
            closed = True
            break
        try:
            chunk = await asyncio.wait_for(reader.read(1), 0.001)
        except TimeoutError:
            continue
        if chunk == b"":
            closed = True
            break
    writer.close()
    assert closed, "the server kept a connection that never finished its headers"
    assert sent < len(request)


async def test_idle_connection_is_closed_and_others_still_served(served_port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served_port)
    assert await read_all(reader) == b""  # nothing sent: closed by the server
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", served_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    answer = await read_all(reader)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    "header",
    [b"X-Big: " + b"a" * 20_000, b"".join(b"X-H%d: v\r\n" % n for n in range(300)).rstrip()],
)
async def test_oversized_headers_are_refused_with_4xx(served_port: int, header: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + header + b"\r\n\r\n")
    answer = await read_all(reader)
    writer.close()
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500
