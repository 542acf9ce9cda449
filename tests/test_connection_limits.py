"""Connection-level limits on the real runner: slow senders and readers are cut, huge
headers refused, and a pile of half-sent requests frees its descriptors."""

from __future__ import annotations

import asyncio
import resource
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiohttp import ClientSession, web
from serve_process import ServeProcess, token_env

from service import deadlines
from service.app import create_app, make_runner
from service.appkeys import SETTINGS
from service.auth import new_token
from service.settings import Settings
from service.store import RedisClient

from conftest import Tokens
from redis_process import RedisProcess, free_port

CLIENT_TIMEOUT = 1.0
# How long the test is willing to trickle bytes: far beyond the timeout it checks.
TRICKLE_LIMIT = 60
# How often a test looks at a connection it waits on, and how long at most it waits for
# one that does not read to be dropped: a hang guard, twenty deadlines.
POLL = 0.05
DROP_LIMIT = 20 * CLIENT_TIMEOUT
# A receive buffer this small keeps what the kernel holds for a client that does not
# read well below the answers the tests send it.
SMALL_RECEIVE_BUFFER = 16 * 1024


@pytest.fixture
async def served(
    redis_client: RedisClient, settings: Settings
) -> AsyncIterator[tuple[web.AppRunner, int]]:
    app = create_app(replace(settings, client_timeout=CLIENT_TIMEOUT), redis_client=redis_client)
    runner = make_runner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield runner, port
    await runner.cleanup()


@pytest.fixture
def served_port(served: tuple[web.AppRunner, int]) -> int:
    return served[1]


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


def half_sent_body(token: str, session_id: str = "slow") -> bytes:
    """Headers announcing 1000 bytes of JSON, then only its first byte."""
    return (
        f"POST /api/sessions/{session_id}/messages HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{"
    ).encode()


def parse_answer(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines)}
    return int(status_line.split(" ", 2)[1]), headers, body


async def test_a_body_that_stops_arriving_is_answered_408_and_closed(
    served_port: int, tokens: Tokens
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served_port)
    writer.write(half_sent_body(tokens["admin"]))
    await writer.drain()
    answer = await read_all(reader)  # returns at end of stream: the server closed
    writer.close()
    status, headers, body = parse_answer(answer)
    assert status == 408
    assert headers["content-type"].startswith("application/json")
    assert headers["connection"] == "close"
    assert "did not arrive" in orjson.loads(body)["detail"]
    # Nothing was stored from the half body, and the service answers others.
    reader, writer = await asyncio.open_connection("127.0.0.1", served_port)
    writer.write(
        b"GET /api/sessions/slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        + f"Authorization: Bearer {tokens['admin']}\r\n\r\n".encode()
    )
    status, _, _ = parse_answer(await read_all(reader))
    writer.close()
    assert status == 404


async def test_a_body_trickled_in_is_cut_at_the_deadline(served_port: int, tokens: Tokens) -> None:
    """The deadline is on the whole body, not on each byte: a client that keeps sending,
    one byte at a time, is answered 408 all the same."""
    reader, writer = await asyncio.open_connection("127.0.0.1", served_port)
    writer.write(half_sent_body(tokens["admin"]))
    padding = b" " * 998
    answered = b""
    for byte in padding:
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            break
        try:
            answered += await asyncio.wait_for(reader.read(65536), POLL)
        except TimeoutError:
            continue
        if answered.startswith(b"HTTP/") or reader.at_eof():
            break
    answered += await read_all(reader)
    writer.close()
    assert parse_answer(answered)[0] == 408


async def test_a_body_sent_in_pieces_after_its_headers_is_read_whole(
    served_port: int, tokens: Tokens
) -> None:
    """A body that is not all there when the handler starts is waited for (a whole one
    is read at once): every piece arrives, and the message is stored as sent."""
    content = "pieces " * 40
    body = orjson.dumps({"role": "user", "content": content, "channel": "web", "id": "p1"})
    reader, writer = await asyncio.open_connection("127.0.0.1", served_port)
    writer.write(
        f"POST /api/sessions/pieces/messages HTTP/1.1\r\nHost: localhost\r\n"
        f"Authorization: Bearer {tokens['admin']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
    )
    for start in range(0, len(body), 100):
        await writer.drain()
        # A pause far shorter than the deadline: the handler has begun on a partial body.
        await asyncio.sleep(POLL)
        writer.write(body[start : start + 100])
    await writer.drain()
    status, _, answer = parse_answer(await read_all(reader))
    writer.close()
    assert status == 201
    assert orjson.loads(answer)["message"]["content"] == content


def open_descriptors(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def ask_healthz(port: int) -> bytes:
    """The answer to one GET /healthz; b"" when the connection is refused or reset (what
    a process out of descriptors does to the connections it cannot take)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TRICKLE_LIMIT) as client:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
            return answer
    except ConnectionError:
        return b""


def read_to_end(connection: socket.socket) -> bytes:
    connection.settimeout(TRICKLE_LIMIT)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except ConnectionError:
        pass
    return received


@pytest.mark.real
def test_half_sent_bodies_cannot_exhaust_descriptors(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    """More half-sent requests than the process may hold descriptors: each one it took is
    answered 408 and closed by the deadline, so a client that comes later is served."""
    token = new_token()
    env = {
        **token_env(token),
        "CHATSESSIONS_REDIS_URL": redis_server.url,
        "CHATSESSIONS_CLIENT_TIMEOUT": str(CLIENT_TIMEOUT),
    }
    service = ServeProcess(tmp_path, env=env).start()
    try:
        spare = 40
        limit = open_descriptors(service.pid) + spare
        resource.prlimit(service.pid, resource.RLIMIT_NOFILE, (limit, limit))
        held = []
        try:
            for _ in range(spare + 20):
                connection = socket.create_connection(("127.0.0.1", service.port), timeout=5)
                connection.sendall(half_sent_body(token))
                held.append(connection)
            # While the half-sent requests hold every descriptor, a new connection is
            # refused or reset: asked again, until the deadline has closed them.
            answer = b""
            for _ in range(int(TRICKLE_LIMIT / 0.1)):
                answer = ask_healthz(service.port)
                if answer:
                    break
                time.sleep(0.1)
            assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
            received = [read_to_end(connection) for connection in held]
        finally:
            for connection in held:
                connection.close()
    finally:
        service.stop()
    # Those the process took were answered 408; the others it could not take were reset.
    statuses = [parse_answer(answer)[0] for answer in received if answer]
    assert set(statuses) == {408}
    assert len(statuses) >= spare // 2


# --- the answer's deadline ------------------------------------------------------------------

ANSWER_CHUNKS = 512  # of CHUNK_BYTES each: 32 MiB, far beyond any socket buffer


class Streamed:
    """A route that streams ANSWER_CHUNKS chunks through service.deadlines, and what it saw."""

    def __init__(self) -> None:
        self.transports: list[asyncio.Transport] = []
        self.produced = 0
        self.closed = asyncio.Event()

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        try:
            for _ in range(ANSWER_CHUNKS):
                self.produced += 1
                yield b"x" * deadlines.CHUNK_BYTES
        finally:
            self.closed.set()

    async def handler(self, request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        self.transports.append(request.transport)
        return await deadlines.stream(request, web.StreamResponse(), self.chunks())


@pytest.fixture
async def streamed(settings: Settings) -> AsyncIterator[tuple[Streamed, int]]:
    route = Streamed()
    app = web.Application()
    app[SETTINGS] = replace(settings, client_timeout=CLIENT_TIMEOUT)
    app.router.add_get("/big", route.handler)
    runner = make_runner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield route, port
    await runner.cleanup()


async def open_not_reading(port: int) -> socket.socket:
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RECEIVE_BUFFER)
    client.setblocking(False)
    await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
    return client


async def test_a_client_that_does_not_read_is_dropped_holding_a_few_chunks(
    streamed: tuple[Streamed, int],
) -> None:
    route, port = streamed
    client = await open_not_reading(port)
    try:
        await asyncio.get_running_loop().sock_sendall(
            client, b"GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
        largest_buffer = 0
        deadline = time.monotonic() + DROP_LIMIT
        while not (route.transports and route.transports[0].is_closing()):
            assert time.monotonic() < deadline, "a client that never reads was never dropped"
            if route.transports:
                largest_buffer = max(largest_buffer, route.transports[0].get_write_buffer_size())
            await asyncio.sleep(POLL)
        await asyncio.wait_for(route.closed.wait(), TRICKLE_LIMIT)
    finally:
        client.close()
    # The process held a few chunks for it at most, and stopped making the answer.
    assert largest_buffer <= 4 * deadlines.CHUNK_BYTES
    assert route.produced < ANSWER_CHUNKS


async def test_a_client_that_reads_slowly_gets_the_whole_answer(
    streamed: tuple[Streamed, int],
) -> None:
    """The deadline is per write: a client that keeps reading, however slowly, is served."""
    route, port = streamed
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    received = 0
    reads = 0
    while chunk := await asyncio.wait_for(reader.read(1024 * 1024), TRICKLE_LIMIT):
        received += len(chunk)
        reads += 1
        if reads % 64 == 0:
            await asyncio.sleep(CLIENT_TIMEOUT / 4)
    writer.close()
    assert received > ANSWER_CHUNKS * deadlines.CHUNK_BYTES
    assert route.produced == ANSWER_CHUNKS


# The service's own large answers: 320 messages of 60,000 characters, about 19 MB.
LARGE_MESSAGES = 320
LARGE_CONTENT = 60_000
BATCH = 16  # messages per batch request, within the 1 MiB body limit


async def ingest_large_session(port: int, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with ClientSession(f"http://127.0.0.1:{port}", headers=headers) as client:
        for first in range(0, LARGE_MESSAGES, BATCH):
            batch = [
                {
                    "session_id": "large",
                    "id": f"m{n}",
                    "role": "user",
                    "content": f"{n:06d}" + "x" * (LARGE_CONTENT - 6),
                    "channel": "web",
                }
                for n in range(first, first + BATCH)
            ]
            async with client.post("/api/messages", json={"messages": batch}) as response:
                assert response.status == 200, await response.text()


@pytest.mark.real
@pytest.mark.parametrize("redis_client", ["real"], indirect=True)
@pytest.mark.parametrize("path", ["/api/sessions/large/export", "/api/sessions/large/messages"])
async def test_a_large_answer_to_a_client_that_does_not_read_is_dropped(
    served: tuple[web.AppRunner, int], tokens: Tokens, path: str
) -> None:
    runner, port = served
    await ingest_large_session(port, tokens["admin"])
    server = runner.server
    assert server is not None
    earlier = set(server.connections)
    client = await open_not_reading(port)
    try:
        await asyncio.get_running_loop().sock_sendall(
            client,
            f"GET {path}?limit=500 HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {tokens['admin']}\r\n\r\n".encode(),
        )
        ours = None
        largest_buffer = 0
        deadline = time.monotonic() + DROP_LIMIT
        while ours is None or ours in server.connections:
            assert time.monotonic() < deadline, "a client that never reads was never dropped"
            if ours is None:
                ours = next((c for c in server.connections if c not in earlier), None)
            elif ours.transport is not None:
                size = ours.transport.get_write_buffer_size()
                largest_buffer = max(largest_buffer, size)
            await asyncio.sleep(POLL)
    finally:
        client.close()
    assert largest_buffer <= 4 * deadlines.CHUNK_BYTES
