"""The store's one way to Redis: each call one round trip, under a deadline, with
outages and refusals turned into :class:`StoreUnavailable`.

Two paths carry the commands. The shared link (:mod:`service.redis_link`), one
pipelined connection per worker, carries the cheap, frequent requests (pages and
writes) of a plain TCP or Unix socket server. redis-py's client carries the rest:
expensive steps (search, history, export) on pooled connections of their own, so
that the link's queue never waits behind them; and everything on a Redis Cluster,
where the cluster client routes each command by its keys (a namespace's keys share a
slot). A lost connection is tried once more (:meth:`Transport.call`); a missing
script is loaded and sent again (:meth:`Transport.script_command`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from ..redis_link import Command, ConnectFailed, RedisLink, pack
from .errors import OutcomeUnknown, StoreUnavailable, refusal_of
from .types import RedisClient

T = TypeVar("T")

MULTI = pack([("MULTI",)])
EXEC = pack([("EXEC",)])


def raise_first_error(replies: Sequence[Any]) -> None:
    """Replies read with errors as values (a pipeline, EXEC) raise as a single call would."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


class Transport:
    def __init__(self, redis: RedisClient, timeout: float | None) -> None:
        """``timeout`` bounds each round trip as a whole; give it when the client itself
        has no socket timeout (see :func:`service.connections.open_redis`)."""
        self._redis = redis
        self._timeout = timeout
        self.cluster = isinstance(redis, RedisCluster)
        self._pool = None if isinstance(redis, RedisCluster) else redis.connection_pool
        self._link = (
            None if isinstance(redis, RedisCluster) else RedisLink.for_client(redis, timeout)
        )
        self._initialized = not self.cluster
        self._init_lock = asyncio.Lock()

    def register(self, source: str) -> AsyncScript:
        return self._redis.register_script(source)

    async def aclose(self) -> None:
        """Close the transport's own connection; the client passed in stays the caller's."""
        if self._link is not None:
            await self._link.aclose()

    async def _initialize_cluster(self) -> None:
        """Learn the cluster's slots once, before any concurrent use.

        redis-py's asyncio cluster client, first used by many requests at once, opens
        and closes node connections under each other and never recovers (measured
        here: thousands of 'Connection closed' and closed-transport errors out of
        6,400 pages); initialised first, the same load runs clean.
        """
        async with self._init_lock:
            if not self._initialized:
                assert isinstance(self._redis, RedisCluster)
                await self._redis.initialize()
                self._initialized = True

    async def call(
        self, operation: Callable[[], Awaitable[T]], *, write: bool = False, shared: bool = True
    ) -> T:
        """Run one Redis round trip, turning outages and refusals into
        :class:`StoreUnavailable`.

        A connection lost on the way is tried once more on a fresh one (a Redis restart
        closes every connection): a write's script recognises its own operation id, so
        the second try answers what the first did. A write that may have reached Redis
        and got no answer raises :class:`OutcomeUnknown`.
        """
        sent = False
        for attempt in (1, 2):
            try:
                return await self._round_trip(operation, shared)
            except ConnectFailed as error:
                failure: Exception = error
            except (redis_errors.ConnectionError, ConnectionError) as error:
                reason = refusal_of(error)
                if reason is not None:
                    raise StoreUnavailable(reason) from error
                sent, failure = True, error
            except (TimeoutError, redis_errors.TimeoutError) as error:
                # Not tried again: Redis is there but slow, and another try adds load.
                kind = OutcomeUnknown if write else StoreUnavailable
                raise kind("Redis did not answer in time") from error
            except redis_errors.RedisError as error:
                reason = refusal_of(error)
                if reason is None and isinstance(error, redis_errors.ClusterError):
                    reason = f"the Redis Cluster cannot serve this now ({error})"
                if reason is None:
                    raise
                raise StoreUnavailable(reason) from error
            except OSError as error:
                sent, failure = True, error
            if attempt == 2:
                kind = OutcomeUnknown if write and sent else StoreUnavailable
                raise kind(f"Redis is unreachable ({failure})") from failure
        raise AssertionError("unreachable")

    async def _round_trip(self, operation: Callable[[], Awaitable[T]], shared: bool) -> T:
        """``operation`` under its deadline: the shared link keeps its own (one watchdog
        per connection); other connections get one ``asyncio.timeout`` per round trip."""
        if self._link is not None and shared:
            return await operation()
        async with asyncio.timeout(self._timeout):
            if not self._initialized:
                await self._initialize_cluster()
            return await operation()

    def script(
        self,
        script: AsyncScript,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        shared: bool = True,
    ) -> Awaitable[Any]:
        """EVALSHA straight through the client, loading the script once if Redis lacks it.

        redis-py's Script wrapper does the same behind two more layers of calls, which
        show up in a profile of a list request.
        """
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        return self.script_command(script, command, shared=shared)

    async def script_command(
        self, script: AsyncScript, command: Command, *, shared: bool = True
    ) -> Any:
        """``command``, an EVALSHA of ``script``, loading the script if Redis lacks it."""
        # Not through _loading: every layer of coroutine is paid again per request.
        try:
            return (await self.exchange([command], shared=shared))[0]
        except redis_errors.NoScriptError:
            await self.load(script)
            return (await self.exchange([command], shared=shared))[0]

    async def _loading(self, script: AsyncScript, send: Callable[[], Awaitable[T]]) -> T:
        """``send()``, and once more after loading ``script`` if Redis did not have it."""
        try:
            return await send()
        except redis_errors.NoScriptError:
            await self.load(script)
            return await send()

    async def load(self, script: AsyncScript) -> None:
        if self.cluster:
            # On every master: the cluster client routes a bare SCRIPT LOAD to one node.
            await self._redis.script_load(script.script)
        else:
            await self.exchange([("SCRIPT", "LOAD", script.script)])

    async def exchange(self, commands: Sequence[Command], *, shared: bool = True) -> list[Any]:
        """Send ``commands`` in one write and read their replies: one round trip.

        This is the request path's way to Redis: through the worker's shared link
        (:mod:`service.redis_link`) when the client is a plain TCP or Unix socket one,
        else through a pooled redis-py connection without its per-command layers
        (retry wrapper, telemetry hooks, a task per write under a socket timeout).
        Expensive steps (``shared=False``) take a pooled connection too, so that the
        pages and writes pipelined on the link never wait behind them.
        The deadline is the link's watchdog, or one ``asyncio.timeout`` around the
        whole round trip (:meth:`_call`, which also tries a lost connection once more).
        The cluster client sends one command.
        """
        link = self._link if shared else None
        if link is not None:
            replies = await link.exchange(pack(commands), len(commands))
            raise_first_error(replies)
            return replies
        pool = self._pool
        if pool is None:
            assert len(commands) == 1, "the cluster path sends one command at a time"
            return [await self._redis.execute_command(*commands[0])]
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(pack(commands), check_health=False)
            return [await connection.read_response() for _ in commands]
        except BaseException:
            # Replies may be left unread: this connection cannot be used again.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)

    async def transaction(self, commands: Sequence[Command], script: AsyncScript) -> Any:
        """MULTI/EXEC of ``commands``, loading ``script`` if an EVALSHA among them lacks it."""

        async def send() -> list[Any]:
            # MULTI answers OK and each command QUEUED; EXEC answers with every reply.
            replies: list[Any] = (await self.exchange([MULTI, *commands, EXEC]))[-1]
            raise_first_error(replies)
            return replies

        return await self._loading(script, send)

    async def pipelined(
        self, script: AsyncScript, key: str, calls: Sequence[list[Any]]
    ) -> list[Sequence[Any]]:
        """``script`` called once per item of ``calls`` (its arguments after the one key
        ``key``), all in one round trip; the replies in order."""
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            commands = [("EVALSHA", script.sha, 1, key, *calls[p]) for p in pending]
            answers = await self.all_replies(commands)
            missing = []
            for position, answer in zip(pending, answers, strict=True):
                if isinstance(answer, redis_errors.NoScriptError) and attempt == 0:
                    missing.append(position)
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    replies[position] = answer
            if not missing:
                break
            # A restarted or new server has no scripts yet: load it and send those again.
            await self.load(script)
            pending = missing
        return replies

    async def all_replies(self, commands: Sequence[Command]) -> list[Any]:
        """One round trip of independent commands; a failed command's error is its reply."""
        if self._link is not None:
            return await self._link.exchange(pack(commands), len(commands))
        async with self._redis.pipeline(transaction=False) as pipe:
            for command in commands:
                # execute_command, not evalsha(): redis-py's cluster pipeline blocks the
                # method (keys could span slots) but routes the command by its keys, and
                # a namespace's keys share one slot.
                pipe.execute_command(*command)
            answers: list[Any] = await pipe.execute(raise_on_error=False)
        return answers
