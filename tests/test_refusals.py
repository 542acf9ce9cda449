"""Redis refusing work: every refusal answers 503 with Retry-After and a detail naming its
cause, never a 500, and the service recovers by itself once the refusal ends (SPEC §3
"Errors", issue 19 item 2).

The refusals are real where a real redis-server can be made to refuse: a large
append-only file replayed at start (LOADING), ``maxmemory`` with ``noeviction`` (OOM),
a password set or changed under a running service (NOAUTH, WRONGPASS) and a script that
runs too long (BUSY). The rest (READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, and LOADING
and BUSY again) come from the fault proxy answering every command with Redis's own
error reply, as a node does while it fails over.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio
from aiohttp.test_utils import TestClient, TestServer
from fault_proxy import (
    BUSY,
    CLUSTERDOWN,
    EXECABORT,
    LOADING,
    MASTERDOWN,
    READONLY,
    TRYAGAIN,
    FaultProxy,
    frame_end,
    named,
    parse_request,
    replies_of,
)

from service.app import create_app
from service.settings import Settings

from conftest import Tokens
from redis_process import RedisProcess

pytestmark = pytest.mark.real

# A guard against a hang, far above every Redis timeout: never a speed assertion.
HANG_GUARD = 30.0
# Bounds on the loops that wait for a real server to reach or leave a state.
WAIT_STEPS = 600
WAIT_PAUSE = 0.05

MESSAGE = {"role": "user", "content": "hello there", "channel": "web"}


class Answer:
    def __init__(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self.status = status
        self.body = body
        self.headers = headers

    def __repr__(self) -> str:
        return f"{self.status} {self.body!r}"


class Service:
    """An in-process service on a Redis URL, opened as ``serve`` opens it."""

    def __init__(self, client: TestClient[Any, Any], tokens: Tokens) -> None:
        self.client = client
        self.tokens = tokens
        self.sent = 0

    async def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        headers = {"Authorization": f"Bearer {self.tokens['admin']}"}

        async def once() -> Answer:
            async with self.client.request(method, path, headers=headers, **kwargs) as response:
                raw = await response.read()
                body = orjson.loads(raw) if response.content_type == "application/json" else raw
                return Answer(response.status, body, dict(response.headers))

        return await asyncio.wait_for(once(), HANG_GUARD)

    async def ingest(self, session_id: str = "s1") -> Answer:
        """A new message (an id never sent before) to ``session_id``."""
        self.sent += 1
        message = {**MESSAGE, "id": f"m{self.sent}"}
        return await self.call("POST", f"/api/sessions/{session_id}/messages", json=message)


@asynccontextmanager
async def served(settings: Settings, tokens: Tokens, url: str) -> AsyncIterator[Service]:
    app = create_app(replace(settings, redis_url=url))
    async with TestClient(TestServer(app)) as client:
        yield Service(client, tokens)


def assert_refused(answer: Answer, causes: tuple[str, ...], what: str) -> None:
    """503, Retry-After, and a JSON detail naming one of ``causes``."""
    assert answer.status == 503, (what, answer)
    assert answer.headers.get("Retry-After", "").isdigit(), (what, answer.headers)
    assert isinstance(answer.body, dict) and isinstance(answer.body.get("detail"), str), (
        what,
        answer,
    )
    assert any(cause in answer.body["detail"] for cause in causes), (what, answer)


async def assert_refused_everywhere(service: Service, *causes: str) -> None:
    """The list, an ingest and the readiness probe each answer 503 naming the cause."""
    assert_refused(await service.call("GET", "/api/sessions"), causes, "list")
    assert_refused(await service.ingest(), causes, "ingest")
    assert_refused(await service.call("GET", "/readyz"), causes, "readyz")
    # The process itself is alive all along.
    assert (await service.call("GET", "/healthz")).status == 200


async def assert_serving(service: Service, messages: int) -> None:
    """Reads, a write and the probe all succeed, and s1 holds ``messages`` messages."""
    assert (await service.call("GET", "/readyz")).status == 200
    listed = await service.call("GET", "/api/sessions")
    assert listed.status == 200, listed
    written = await service.ingest()
    assert written.status == 201, written
    session = await service.call("GET", "/api/sessions/s1")
    assert session.status == 200, session
    assert session.body["message_count"] == messages + 1


# --- the fault proxy: every command answered with Redis's error --------------------------


@pytest.mark.parametrize(
    "error",
    [LOADING, READONLY, MASTERDOWN, CLUSTERDOWN, TRYAGAIN, BUSY],
    ids=lambda error: error.split()[0],
)
async def test_every_refusal_is_a_503_naming_it_then_the_service_recovers(
    fault_proxy: FaultProxy, settings: Settings, tokens: Tokens, error: str
) -> None:
    async with served(settings, tokens, fault_proxy.url) as service:
        assert (await service.ingest()).status == 201
        rule = fault_proxy.refuse(error)
        await assert_refused_everywhere(service, error.split()[0])
        # Each request met the refusal: none was served from anywhere else.
        assert rule.fired >= 3
        fault_proxy.clear()
        await assert_serving(service, 1)


async def test_a_refused_page_inside_a_transaction_is_a_503(
    fault_proxy: FaultProxy, settings: Settings, tokens: Tokens
) -> None:
    """A replica refusing only the page's read command, while MULTI and EXEC pass."""
    async with served(settings, tokens, fault_proxy.url) as service:
        assert (await service.ingest()).status == 201
        fault_proxy.refuse(MASTERDOWN, named("SORT_RO", "SORT", "EVALSHA", "EVAL", "ZREVRANGE"))
        answer = await service.call("GET", "/api/sessions")
        assert_refused(answer, ("MASTERDOWN",), "list")
        fault_proxy.clear()
        await assert_serving(service, 1)


# --- real refusals from a real redis-server ------------------------------------------------


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.stop()


# Sessions written before Redis runs out of memory, s1 first.
SEEDED = ("s1", "s2", "s3")


async def test_out_of_memory_refuses_writes_and_still_serves_reads(
    own_redis: RedisProcess, settings: Settings, tokens: Tokens
) -> None:
    control = redis.Redis(port=own_redis.port)
    try:
        async with served(settings, tokens, own_redis.url) as service:
            for session_id in SEEDED:
                assert (await service.ingest(session_id)).status == 201
            first = await service.call("GET", "/api/sessions?limit=1")
            cursor = first.body["next_cursor"]
            assert cursor
            control.config_set("maxmemory-policy", "noeviction")
            control.config_set("maxmemory", 1)
            # Redis itself refuses a write now.
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                control.set("probe", "x")

            assert_refused(await service.ingest("s1"), ("OOM",), "ingest")
            assert_refused(await service.ingest("new"), ("OOM",), "ingest creating a session")
            created = await service.call("POST", "/api/sessions", json={"channel": "web"})
            assert_refused(created, ("OOM",), "create")
            renamed = await service.call("PATCH", "/api/sessions/s2", json={"title": "x"})
            assert_refused(renamed, ("OOM",), "rename")

            # Every way of reading a page, one session, its history and search still work.
            reads = [
                "/api/sessions",
                "/api/sessions?channel=web",
                "/api/sessions?active=true",
                "/api/sessions?active=false",
                "/api/sessions?offset=1&limit=1",
                f"/api/sessions?limit=1&cursor={cursor}",
                "/api/sessions/s1",
                "/api/sessions/s1/messages",
                "/api/sessions/s1/export",
                "/api/sessions/search?q=hello",
            ]
            for path in reads:
                answer = await service.call("GET", path)
                assert answer.status == 200, (path, answer)
            listed = await service.call("GET", "/api/sessions")
            assert listed.body["total"] == len(SEEDED)
            history = await service.call("GET", "/api/sessions/s1/messages")
            assert [m["id"] for m in history.body["messages"]] == ["m1"]
            ready = await service.call("GET", "/readyz")
            # Whether a Redis that serves only reads is "ready" is the service's call; a
            # refusal must still be a 503 naming the cause.
            if ready.status != 200:
                assert_refused(ready, ("OOM",), "readyz")

            control.config_set("maxmemory", 0)
            await assert_serving(service, 1)
    finally:
        control.config_set("maxmemory", 0)
        control.close()


def auth_control(port: int, password: str | None) -> redis.Redis:
    return redis.Redis(port=port, password=password)


async def test_a_password_set_under_the_service_is_a_503_naming_noauth(
    own_redis: RedisProcess, settings: Settings, tokens: Tokens
) -> None:
    async with served(settings, tokens, own_redis.url) as service:
        assert (await service.ingest()).status == 201
        plain = auth_control(own_redis.port, None)
        plain.config_set("requirepass", "s3cret-now")
        plain.close()
        guarded = auth_control(own_redis.port, "s3cret-now")
        try:
            # The service's connections were made before the password: they go, and every
            # new one must authenticate (it has no password to give).
            guarded.client_kill_filter(_type="normal", skipme=True)
            # Redis 7 answers a command of more than ten arguments from a client that has
            # not authenticated with a protocol error naming that, and closes the
            # connection, before NOAUTH would be said.
            await assert_refused_everywhere(service, "NOAUTH", "authenticat")
            guarded.config_set("requirepass", "")
        finally:
            guarded.close()
        await assert_serving(service, 1)


async def test_a_changed_password_is_a_503_naming_wrongpass(
    own_redis: RedisProcess, settings: Settings, tokens: Tokens
) -> None:
    opened = auth_control(own_redis.port, None)
    opened.config_set("requirepass", "first")
    opened.close()
    url = f"redis://:first@127.0.0.1:{own_redis.port}/0"
    guarded = auth_control(own_redis.port, "first")
    try:
        async with served(settings, tokens, url) as service:
            assert (await service.ingest()).status == 201
            guarded.config_set("requirepass", "second")
            guarded.close()
            guarded = auth_control(own_redis.port, "second")
            guarded.client_kill_filter(_type="normal", skipme=True)
            await assert_refused_everywhere(service, "WRONGPASS")
            guarded.config_set("requirepass", "first")
            await assert_serving(service, 1)
    finally:
        guarded.close()


async def test_a_script_running_too_long_is_a_503_naming_busy(
    tmp_path: Path, settings: Settings, tokens: Tokens
) -> None:
    server = RedisProcess(tmp_path / "redis", extra_args=("--lua-time-limit", "50")).start()
    spinner = redis.Redis(port=server.port)
    control = redis.Redis(port=server.port)

    def spin() -> str:
        # Read-only, so SCRIPT KILL may end it.
        try:
            spinner.eval("while true do end", 0)
        except redis.exceptions.ResponseError as error:
            return str(error)
        return "ended by itself"

    try:
        async with served(settings, tokens, server.url) as service:
            assert (await service.ingest()).status == 201
            spinning = asyncio.create_task(asyncio.to_thread(spin))
            await wait_for_reply_error(server.port, "BUSY")
            await assert_refused_everywhere(service, "BUSY")
            control.script_kill()
            assert "killed" in (await asyncio.wait_for(spinning, HANG_GUARD)).lower()
            await assert_serving(service, 1)
    finally:
        spinner.close()
        control.close()
        server.stop()


async def wait_for_reply_error(port: int, code: str) -> None:
    """Until PING on a new connection is answered with the error ``code``."""
    for _ in range(WAIT_STEPS):
        if await asyncio.to_thread(ping_reply, port) == code:
            return
        await asyncio.sleep(WAIT_PAUSE)
    raise AssertionError(f"redis-server never answered {code}")


def ping_reply(port: int) -> str:
    """PING on a raw connection: "PONG", an error's code, or "" for no answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.sendall(b"*1\r\n$4\r\nPING\r\n")
            line = connection.recv(256).split(b"\r\n")[0].decode()
    except OSError:
        return ""
    return line[1:].split()[0] if line else ""


# Keys replayed at start, each delayed by key-load-delay (µs), so that the replay lasts
# seconds on any host; the values are 1 KB so that a server which handles events only
# every 2 MB loaded (Redis 6.2 has no setting for it) still answers within the timeout.
FILLER_KEYS = 20_000
FILLER_VALUE = b"x" * 1000
KEY_LOAD_DELAY_US = 150


async def test_redis_replaying_a_large_aof_is_a_503_naming_loading(
    tmp_path: Path, settings: Settings, tokens: Tokens
) -> None:
    directory = tmp_path / "redis"
    first = RedisProcess(directory, appendonly=True).start()
    port = first.port
    control = redis.Redis(port=port)
    try:
        events_every = control.config_get("loading-process-events-interval-bytes")
        for start in range(0, FILLER_KEYS, 1000):
            control.mset({f"filler:{n}": FILLER_VALUE for n in range(start, start + 1000)})
        # The keys go into the file's RDB part, which key-load-delay slows at load.
        control.bgrewriteaof()
        for _ in range(WAIT_STEPS):
            persistence = control.info("persistence")
            if not (persistence["aof_rewrite_in_progress"] or persistence["aof_rewrite_scheduled"]):
                break
            await asyncio.sleep(WAIT_PAUSE)
        async with served(settings, tokens, first.url) as service:
            assert (await service.ingest()).status == 201
            control.close()
            first.stop()
            extra = ["--key-load-delay", str(KEY_LOAD_DELAY_US)]
            if events_every:
                extra += ["--loading-process-events-interval-bytes", "1024"]
            loading = RedisProcess(directory, port=port, appendonly=True, extra_args=tuple(extra))
            # start() returns once the server answers PING, which is once it has loaded.
            loaded = asyncio.create_task(asyncio.to_thread(loading.start))
            try:
                await wait_for_reply_error(port, "LOADING")
                await assert_refused_everywhere(service, "LOADING")
                assert ping_reply(port) == "LOADING", "the replay ended too early to tell"
                await asyncio.wait_for(loaded, HANG_GUARD)
                await assert_serving(service, 1)
            finally:
                if not loaded.done():
                    await asyncio.wait_for(loaded, HANG_GUARD)
                loading.stop()
    finally:
        control.close()
        first.stop()


# --- the proxy itself: what it injects is what Redis does ---------------------------------


def test_frames_and_requests_are_split_where_they_end() -> None:
    replies = b"+OK\r\n$3\r\nabc\r\n*2\r\n:1\r\n$-1\r\n-ERR x\r\n*-1\r\n%1\r\n+a\r\n:2\r\n"
    assert list(replies_of(replies)) == [
        b"+OK\r\n",
        b"$3\r\nabc\r\n",
        b"*2\r\n:1\r\n$-1\r\n",
        b"-ERR x\r\n",
        b"*-1\r\n",
        b"%1\r\n+a\r\n:2\r\n",
    ]
    assert frame_end(b"*2\r\n:1\r\n$3\r\nab", 0) is None
    request = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv\n\r\n*1\r\n$4\r\nPING\r\n"
    parsed = parse_request(request, 0)
    assert parsed is not None
    assert parsed[0] == [b"SET", b"k", b"v\n"]
    assert parse_request(request, parsed[1]) == ([b"PING"], len(request))
    assert parse_request(request[:-3], parsed[1]) is None
    assert parse_request(b"PING\r\n", 0) == ([b"PING"], 6)


async def test_the_proxy_keeps_replies_in_order_around_what_it_injects(
    fault_proxy: FaultProxy,
) -> None:
    client = redis.asyncio.Redis(port=fault_proxy.port)
    try:
        fault_proxy.refuse(READONLY, named("SET"))
        async with client.pipeline(transaction=False) as pipe:
            for command in (("INCR", "n"), ("SET", "k", "v"), ("INCR", "n"), ("GET", "k")):
                pipe.execute_command(*command)
            replies = await pipe.execute(raise_on_error=False)
        assert replies[0] == 1 and replies[2] == 2 and replies[3] is None
        assert isinstance(replies[1], redis.exceptions.ReadOnlyError)
        # Refused inside a transaction: Redis discards it, as a real refusal would.
        with pytest.raises(redis.exceptions.ReadOnlyError):
            async with client.pipeline(transaction=True) as pipe:
                pipe.execute_command("INCR", "n")
                pipe.execute_command("SET", "k", "v")
                await pipe.execute()
        assert await client.get("n") == b"2"
        raw = await asyncio.open_connection("127.0.0.1", fault_proxy.port)
        raw[1].write(
            b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$4\r\nEXEC\r\n"
        )
        expected = b"+OK\r\n-" + READONLY.encode() + b"\r\n" + EXECABORT
        assert await asyncio.wait_for(raw[0].readexactly(len(expected)), HANG_GUARD) == expected
        raw[1].close()
    finally:
        await client.aclose()


async def test_a_dropped_reply_belongs_to_a_command_that_ran(fault_proxy: FaultProxy) -> None:
    raw_reader, raw_writer = await asyncio.open_connection("127.0.0.1", fault_proxy.port)
    rule = fault_proxy.drop_reply(named("INCR"))
    # A pipeline: the reply before the dropped one arrives, then the connection closes.
    raw_writer.write(b"*2\r\n$3\r\nGET\r\n$1\r\nn\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n")
    received = await asyncio.wait_for(raw_reader.read(), HANG_GUARD)
    assert received == b"$-1\r\n"
    raw_writer.close()
    assert rule.fired == 1
    direct = redis.asyncio.Redis(port=fault_proxy.upstream_port)
    try:
        assert await direct.get("n") == b"1"
    finally:
        await direct.aclose()
    # Spent: the next one passes.
    client = redis.asyncio.Redis(port=fault_proxy.port)
    try:
        assert await client.incr("n") == 2
    finally:
        await client.aclose()


async def test_a_delayed_or_held_reply_keeps_the_ones_after_it_in_order(
    fault_proxy: FaultProxy,
) -> None:
    client = redis.asyncio.Redis(port=fault_proxy.port)
    try:
        delayed = fault_proxy.delay(0.05, named("GET"))
        async with client.pipeline(transaction=False) as pipe:
            for command in (("INCR", "n"), ("GET", "n"), ("INCR", "n")):
                pipe.execute_command(*command)
            assert await pipe.execute() == [1, b"1", 2]
        assert delayed.fired == 1
        held = fault_proxy.hold(named("INCR", "INCRBY"), times=1)
        answer = asyncio.ensure_future(client.incr("n"))
        for _ in range(WAIT_STEPS):
            if held.fired:
                break
            await asyncio.sleep(WAIT_PAUSE)
        # Redis ran it; its reply waits in the proxy until released.
        direct = redis.asyncio.Redis(port=fault_proxy.upstream_port)
        try:
            assert await direct.get("n") == b"3"
        finally:
            await direct.aclose()
        assert not answer.done()
        fault_proxy.release()
        assert await asyncio.wait_for(answer, HANG_GUARD) == 3
    finally:
        await client.aclose()
