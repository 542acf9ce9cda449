"""The store's one way to Redis: each call one round trip, under a deadline, with
outages and refusals turned into :class:`StoreUnavailable`.

Two paths carry the commands, behind one :class:`Path` interface:

- :class:`LinkPath`, the pipelined link (:mod:`service.redis_link`): one connection
  per worker shared by every request, for a plain TCP or Unix socket server. It
  speaks RESP2 with AUTH and SELECT, and does not do TLS or Redis Cluster.
- :class:`ClientPath`, redis-py's public API (``pipeline()``): TLS, the cluster
  client, and whatever else redis-py supports.

Cheap, frequent requests (pages and writes) take the link where there is one.
Expensive steps (search, history, export) take redis-py's pooled connections, so that
the link's queue never waits behind them; a Redis Cluster takes redis-py for all.
A lost connection is tried once more (:meth:`Transport.call`); a missing script is
loaded and sent again (:meth:`Transport.script_command`, :meth:`Transport.pipelined`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from redis import exceptions as redis_errors
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from ..redis_link import Command, ConnectFailed, RedisLink, pack
from .errors import OutcomeUnknown, StoreUnavailable, refused
from .types import RedisClient

T = TypeVar("T")

MULTI = pack([("MULTI",)])
EXEC = pack([("EXEC",)])


def raise_first_error(replies: Sequence[Any]) -> None:
    """Replies read with errors as values (a pipeline, EXEC) raise as a single call would."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


class Path(Protocol):
    """A way to send commands to Redis, each exchange one round trip."""

    def exchange(self, commands: Sequence[Command]) -> Awaitable[list[Any]]:
        """The commands' replies in order; a failed command's error is its reply."""

    async def transaction(self, commands: Sequence[Command]) -> list[Any]:
        """The commands in MULTI/EXEC; their replies in order, errors as values."""

    async def aclose(self) -> None: ...


class LinkPath:
    """The shared pipelined link; commands may come packed already (bytes)."""

    def __init__(self, link: RedisLink) -> None:
        self._link = link

    def exchange(self, commands: Sequence[Command]) -> Awaitable[list[Any]]:
        # Not a coroutine: the caller awaits the link's reply itself, one coroutine less
        # per round trip.
        return self._link.exchange(pack(commands), len(commands))

    async def transaction(self, commands: Sequence[Command]) -> list[Any]:
        # MULTI answers OK and each command QUEUED (or its refusal); EXEC every reply.
        replies = await self.exchange([MULTI, *commands, EXEC])
        raise_first_error(replies[:-1])
        done = replies[-1]
        if isinstance(done, Exception):
            raise done
        return list(done)

    async def aclose(self) -> None:
        await self._link.aclose()


class ClientPath:
    """redis-py's client, through its public pipeline API; commands are tuples."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    async def exchange(self, commands: Sequence[Command]) -> list[Any]:
        return await self._pipeline(commands, transaction=False)

    async def transaction(self, commands: Sequence[Command]) -> list[Any]:
        return await self._pipeline(commands, transaction=True)

    async def _pipeline(self, commands: Sequence[Command], *, transaction: bool) -> list[Any]:
        pipeline = (
            self._client.pipeline()
            if isinstance(self._client, RedisCluster)
            else self._client.pipeline(transaction=transaction)
        )
        async with pipeline as pipe:
            for command in commands:
                assert isinstance(command, tuple), "redis-py takes commands as arguments"
                # execute_command, not evalsha(): the cluster pipeline refuses methods
                # whose keys could span slots, but routes a command by its keys.
                pipe.execute_command(*command)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def aclose(self) -> None:
        """The client is its owner's to close."""


class Transport:
    def __init__(self, redis: RedisClient, timeout: float | None) -> None:
        """``timeout`` bounds each round trip as a whole; give it when the client itself
        has no socket timeout (see :func:`service.connections.open_redis`)."""
        self._redis = redis
        self._timeout = timeout
        self.cluster = isinstance(redis, RedisCluster)
        link = None if isinstance(redis, RedisCluster) else RedisLink.for_client(redis, timeout)
        self._client_path = ClientPath(redis)
        self._link_path = LinkPath(link) if link is not None else None
        self._initialized = not self.cluster
        self._init_lock = asyncio.Lock()

    @property
    def packs(self) -> bool:
        """Whether shared calls go through the link, which takes commands packed."""
        return self._link_path is not None

    def _path(self, shared: bool) -> Path:
        return self._link_path if shared and self._link_path is not None else self._client_path

    def register(self, source: str) -> AsyncScript:
        return self._redis.register_script(source)

    async def aclose(self) -> None:
        """Close the transport's own connection; the client passed in stays the caller's."""
        if self._link_path is not None:
            await self._link_path.aclose()

    async def _initialize_cluster(self) -> None:
        """Learn the cluster's slots once, before any concurrent use.

        redis-py's asyncio cluster client, first used by many requests at once, opens
        and closes node connections under each other and does not recover; initialised
        first, it does not happen.
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
        # The shared link keeps its own deadline (one watchdog per connection); other
        # connections get one ``asyncio.timeout`` per round trip (:meth:`_bounded`).
        linked = shared and self._link_path is not None
        for attempt in (1, 2):
            try:
                if linked:
                    return await operation()
                return await self._bounded(operation)
            except ConnectFailed as error:
                failure: Exception = error
            except (redis_errors.ConnectionError, ConnectionError) as error:
                refusal = refused(error)
                if refusal is not None:
                    raise refusal from error
                sent, failure = True, error
            except (TimeoutError, redis_errors.TimeoutError) as error:
                # Not tried again: Redis is there but slow, and another try adds load.
                kind = OutcomeUnknown if write else StoreUnavailable
                raise kind("Redis did not answer in time") from error
            except redis_errors.RedisError as error:
                refusal = refused(error)
                if refusal is None and isinstance(error, redis_errors.ClusterError):
                    refusal = StoreUnavailable(f"the Redis Cluster cannot serve this now ({error})")
                if refusal is None:
                    raise
                raise refusal from error
            except OSError as error:
                sent, failure = True, error
            if attempt == 2:
                kind = OutcomeUnknown if write and sent else StoreUnavailable
                raise kind(f"Redis is unreachable ({failure})") from failure
        raise AssertionError("unreachable")

    async def _bounded(self, operation: Callable[[], Awaitable[T]]) -> T:
        """``operation`` on redis-py's connections, under the round trip's deadline."""
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
        """EVALSHA of ``script``, loading it once if Redis lacks it."""
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        return self.script_command(script, command, shared=shared)

    async def script_command(
        self, script: AsyncScript, command: Command, *, shared: bool = True
    ) -> Any:
        """``command``, an EVALSHA of ``script``, loading the script if Redis lacks it."""
        # What :meth:`exchange` and :meth:`_loading` do, without their coroutines: every
        # write comes this way.
        path = self._path(shared)
        try:
            replies = await path.exchange([command])
            raise_first_error(replies)
        except redis_errors.NoScriptError:
            # A new or restarted server lacks the script.
            await self.load(script)
            replies = await path.exchange([command])
            raise_first_error(replies)
        return replies[0]

    async def _loading(self, script: AsyncScript, send: Callable[[], Awaitable[T]]) -> T:
        """``send()``, and once more after loading ``script`` if Redis did not have it (a
        new or restarted server)."""
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
        """``commands`` in one round trip, their replies in order; the first error among
        them raises. The deadline is :meth:`call`'s."""
        replies = await self._path(shared).exchange(commands)
        raise_first_error(replies)
        return replies

    async def transaction(self, commands: Sequence[Command], script: AsyncScript) -> Any:
        """MULTI/EXEC of ``commands`` on the link, loading ``script`` if an EVALSHA among
        them lacks it; the first error among the replies raises."""

        async def send() -> list[Any]:
            replies = await self._path(True).transaction(commands)
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
            answers = await self._path(True).exchange(commands)
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
