"""One pipelined connection to a Redis server, shared by every request of a worker.

Redis answers the commands of one connection in the order they came, so concurrent
requests can share one connection: each appends its packed commands and waits for
as many replies, in turn. Commands sent in the same event-loop pass leave in few
writes (FLUSH_EVERY at most a write), and replies that arrive together are parsed in
one read. This costs the worker less CPU per request than checking a connection out
of redis-py's pool and back (docs/benchmarks.md has the figures).

What it does: RESP2 over TCP or a Unix socket, AUTH (user and password) and SELECT
at connect, a deadline per round trip, and flow control: while the socket's buffer is
full, commands wait in the link instead of the transport's buffer growing. What it
does not: TLS, RESP3, Redis Cluster, client-side caching. :mod:`service.store.transport`
uses redis-py for those.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection

# A command to pack, or one packed already (by pack([command])).
Command = tuple[Any, ...] | bytes


def pack(commands: Sequence[Command]) -> bytes:
    """Commands in the Redis protocol; arguments are bytes, str or int.

    hiredis packs each command in C; a command packed already (bytes) goes as it is.
    """
    if len(commands) == 1:
        # A single command, as an ingest or a script page sends, needs no join.
        command = commands[0]
        return command if isinstance(command, bytes) else hiredis.pack_command(command)
    return b"".join(
        [
            command if isinstance(command, bytes) else hiredis.pack_command(command)
            for command in commands
        ]
    )


def pack_start(arguments: Sequence[Any], more: int) -> bytes:
    """The packed start of a command whose first ``arguments`` never change and which
    takes ``more`` after them, per call: :func:`pack_rest` adds those. For a command sent
    on every request, so that its fixed arguments are packed once."""
    packed = hiredis.pack_command(tuple(arguments))
    # The array's length comes first ("*3\r\n"): it must count the arguments to come.
    return b"*%d\r\n%b" % (len(arguments) + more, packed[packed.index(b"\r\n") + 2 :])


def pack_rest(start: bytes, first: bytes, second: bytes) -> bytes:
    """The command begun by ``start`` (from :func:`pack_start`, ``more`` = 2), ended with
    two arguments."""
    return b"%b$%d\r\n%b\r\n$%d\r\n%b\r\n" % (start, len(first), first, len(second), second)


def reply_error(message: str) -> redis_errors.ResponseError:
    """An error reply as the exception redis-py would give (the code kept in the text)."""
    if message.startswith("NOSCRIPT"):
        return redis_errors.NoScriptError(message)
    return redis_errors.ResponseError(message)


class ConnectFailed(redis_errors.ConnectionError):
    """No connection could be made: nothing was sent."""


FEED_BYTES = 8192

# Sends gathered into one write at most: fewer writes than one per send, while Redis
# starts on a pass's first commands before the pass ends (docs/benchmarks.md has how
# the number was chosen).
FLUSH_EVERY = 4


@dataclass(slots=True)
class _Waiter:
    future: asyncio.Future[list[Any]]
    expected: int
    replies: list[Any]
    sent_at: float


class _Protocol(asyncio.Protocol):
    """The connection's state; ``deadline`` bounds how long any caller waits for replies.

    One watchdog timer per connection enforces the deadline, instead of a timer per
    round trip. The watchdog sleeps until the oldest waiter's deadline; if that waiter is
    still there, Redis has stopped answering and the connection is dropped.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float | None) -> None:
        self.loop = loop
        self.deadline = deadline
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=reply_error)
        self.waiters: deque[_Waiter] = deque()
        self.outgoing: list[bytes] = []
        self.lost = False
        self.timed_out = False
        # The transport's buffer is above its high-water mark: write nothing more until
        # it drains (the deadline still holds for the replies awaited).
        self.paused = False
        self.watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        # Fed a slice at a time: hiredis moves its unread bytes to the front of its buffer
        # after each reply past the first kilobyte, so a large read fed whole would be
        # copied again after every reply.
        reader = self.reader
        for start in range(0, len(data), FEED_BYTES):
            reader.feed(data, start, min(FEED_BYTES, len(data) - start))
            while (reply := reader.gets()) is not False:
                waiter = self.waiters[0]
                waiter.replies.append(reply)
                if len(waiter.replies) == waiter.expected:
                    self.waiters.popleft()
                    # A caller that gave up (deadline, shutdown) left its future cancelled.
                    if not waiter.future.done():
                        waiter.future.set_result(waiter.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.watchdog is not None:
            self.watchdog.cancel()
        error: redis_errors.RedisError
        if self.timed_out:
            # Not a ConnectionError: a caller must not retry on a fresh connection to a
            # server that is not answering.
            error = redis_errors.TimeoutError("Redis did not answer in time")
        else:
            error = redis_errors.ConnectionError(f"Connection to Redis lost: {exc or 'closed'}")
            # Redis may say why before it closes (a protocol error after NOAUTH, say):
            # the first waiter is answered with what was said.
            said = (
                [r for r in self.waiters[0].replies if isinstance(r, Exception)]
                if self.waiters
                else []
            )
            if said:
                waiter = self.waiters.popleft()
                if not waiter.future.done():
                    waiter.future.set_exception(said[0])
        while self.waiters:
            future = self.waiters.popleft().future
            if not future.done():
                future.set_exception(error)

    def send(self, packed: bytes, expected: int) -> asyncio.Future[list[Any]]:
        loop = self.loop
        future: asyncio.Future[list[Any]] = loop.create_future()
        self.waiters.append(_Waiter(future, expected, [], loop.time()))
        outgoing = self.outgoing
        outgoing.append(packed)
        if len(outgoing) == 1:
            loop.call_soon(self.flush)
        elif len(outgoing) == FLUSH_EVERY:
            self.flush()
        if self.watchdog is None and self.deadline is not None:
            self.watchdog = loop.call_later(self.deadline, self.watch)
        return future

    def watch(self) -> None:
        """Drop the connection if its oldest waiter is past the deadline, else sleep on."""
        self.watchdog = None
        if not self.waiters or self.lost or self.deadline is None:
            return
        overdue_at = self.waiters[0].sent_at + self.deadline
        if self.loop.time() >= overdue_at:
            self.timed_out = True
            if self.transport is not None:
                self.transport.abort()
        else:
            self.watchdog = self.loop.call_at(overdue_at, self.watch)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.flush()

    def flush(self) -> None:
        if not self.outgoing or self.paused:
            # Written already (by the send that filled the batch), or held until the
            # transport drains (resume_writing flushes it).
            return
        data = b"".join(self.outgoing)
        self.outgoing.clear()
        if self.transport is not None and not self.lost:
            self.transport.write(data)


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """Where and how to connect: read from a redis-py client's settings."""

    host: str
    port: int
    path: str | None
    username: str | None
    password: str | None
    db: int
    connect_timeout: float | None


class RedisLink:
    """The shared connection: opened on first use, opened again after it is lost."""

    def __init__(self, target: LinkTarget, deadline: float | None = None) -> None:
        """``deadline``: seconds a round trip may take before the connection is dropped
        and its callers get :class:`redis.exceptions.TimeoutError`; None waits."""
        self._target = target
        self._deadline = deadline
        self._protocol: _Protocol | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def for_client(cls, client: Redis, deadline: float | None = None) -> RedisLink | None:
        """A link to the server ``client`` talks to, or None when it is not a plain TCP or
        Unix socket connection (TLS, or a test double)."""
        pool = client.connection_pool
        if pool.connection_class not in (Connection, UnixDomainSocketConnection):
            return None
        kwargs = pool.connection_kwargs
        return cls(
            LinkTarget(
                host=kwargs.get("host") or "localhost",
                port=int(kwargs.get("port", 6379)),
                path=kwargs.get("path"),
                username=kwargs.get("username"),
                password=kwargs.get("password"),
                db=int(kwargs.get("db") or 0),
                connect_timeout=kwargs.get("socket_connect_timeout"),
            ),
            deadline,
        )

    def exchange(self, packed: bytes, expected: int) -> Awaitable[list[Any]]:
        """Send packed commands; awaited, their ``expected`` replies (errors as values).

        Not a coroutine: while connected, the caller awaits the reply's future itself,
        one coroutine less per round trip.
        """
        protocol = self._protocol
        if protocol is None or protocol.lost:
            return self._connect_and_send(packed, expected)
        return protocol.send(packed, expected)

    async def _connect_and_send(self, packed: bytes, expected: int) -> list[Any]:
        protocol = await self._connect()
        return await protocol.send(packed, expected)

    async def aclose(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None

    async def _connect(self) -> _Protocol:
        async with self._lock:
            if self._protocol is not None and not self._protocol.lost:
                return self._protocol
            target = self._target
            loop = asyncio.get_running_loop()

            def made() -> _Protocol:
                return _Protocol(loop, self._deadline)

            try:
                async with asyncio.timeout(target.connect_timeout):
                    if target.path is not None:
                        _, protocol = await loop.create_unix_connection(made, target.path)
                    else:
                        _, protocol = await loop.create_connection(made, target.host, target.port)
                    await self._handshake(protocol)
            except (OSError, TimeoutError) as error:
                raise ConnectFailed(f"Cannot connect to Redis: {error}") from error
            self._protocol = protocol
            return protocol

    async def _handshake(self, protocol: _Protocol) -> None:
        commands: list[tuple[Any, ...]] = []
        if self._target.password is not None:
            user = () if self._target.username is None else (self._target.username,)
            commands.append(("AUTH", *user, self._target.password))
        if self._target.db:
            commands.append(("SELECT", self._target.db))
        if not commands:
            return
        for reply in await protocol.send(pack(commands), len(commands)):
            if isinstance(reply, Exception):
                assert protocol.transport is not None
                protocol.transport.close()
                # A ConnectionError, as redis-py raises for a refused login: Redis is
                # unusable until the settings change, and callers answer 503.
                raise redis_errors.AuthenticationError(str(reply))
