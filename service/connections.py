"""Opening Redis clients: one server or a cluster, always with bounded timeouts."""

from __future__ import annotations

import os
import socket
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException

from .settings import ConfigError, Settings
from .store import RedisClient

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def redacted(url: str) -> str:
    """The URL with its password replaced, fit for messages and logs."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return url.split("://", 1)[0] + "://..."
    if not password:
        return url
    scheme, rest = url.split("://", 1)
    credentials, at, place = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***{at}{place}"


def open_redis(url: str, timeout: float, *, socket_timeout: bool = True) -> RedisClient:
    """A client whose every call gives up after ``timeout`` seconds, never hangs.

    With ``socket_timeout=False`` a single server's client only bounds connecting: the
    caller bounds each round trip itself (the store does, with one deadline per round
    trip instead of redis-py's timer per read and per write).

    A URL redis-py cannot read raises :class:`ConfigError` for ``redis_url``.
    """
    if "://" not in url:
        raise ConfigError(
            "redis_url", "not a URL; write it as redis://host:port/0 or unix:///path/to/socket"
        )
    try:
        return _open(url, timeout, socket_timeout)
    except (ValueError, RedisClusterException) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ConfigError("redis_url", f"{redacted(url)} is not a usable URL: {reason}") from None


def _open(url: str, timeout: float, socket_timeout: bool) -> RedisClient:
    scheme, rest = url.split("://", 1)
    if scheme in CLUSTER_SCHEMES:
        return RedisCluster.from_url(
            f"{CLUSTER_SCHEMES[scheme]}://{rest}",
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # A request may wait out one failover re-discovery, no more.
            retry=Retry(NoBackoff(), 1),
        )
    return Redis.from_url(
        url,
        socket_timeout=timeout if socket_timeout else None,
        socket_connect_timeout=timeout,
        # One retry on a fresh connection hides a pooled socket that died with a restart.
        retry=Retry(NoBackoff(), 1),
    )


def background_client(
    stack: AsyncExitStack, settings: Settings, client: RedisClient | None
) -> RedisClient:
    """The client a background task of the app uses: ``client`` when one was passed in
    (a test's, left open), else its own at ``settings.redis_url``, closed with ``stack``."""
    if client is not None:
        return client
    if settings.redis_url is None:
        raise ValueError("redis_url is settled before the app starts (serve does it)")
    opened = open_redis(settings.redis_url, settings.redis_timeout, socket_timeout=False)
    stack.push_async_callback(opened.aclose)
    return opened


def holder_name() -> str:
    """A name for what a worker holds in Redis (a lease): its host and process, and a
    random part, so that no two holders share one."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"
