"""Opening Redis clients: one server or a cluster, always with bounded timeouts."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .store import RedisClient

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def open_redis(url: str, timeout: float, *, socket_timeout: bool = True) -> RedisClient:
    """A client whose every call gives up after ``timeout`` seconds, never hangs.

    With ``socket_timeout=False`` a single server's client only bounds connecting: the
    caller bounds each round trip itself (the store does, with one deadline per round
    trip, which costs less than redis-py's per-read and per-write timers).
    """
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
