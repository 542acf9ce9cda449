"""The keys Redis keeps outside any namespace, and what ``serve`` asks Redis before it
listens.

Every other key carries a namespace's hash tag (``cs:{namespace}:...``). The keys
here belong to no namespace: each exists once per Redis (on a cluster, on the one
slot its name hashes to), so every process that serves from that Redis finds it.

- ``cs:generated-token``: the SHA-256 (64 hex digits) of the token ``serve``
  generates when no token is configured. It is written with SET NX, so that
  concurrent first starts agree on one token: the first write wins and the others
  adopt it.

Before it listens, ``serve`` also waits (boundedly) for Redis to answer and reads
each server's version: one older than :data:`MINIMUM_VERSION` is refused.
"""

from __future__ import annotations

import asyncio
import re
import time

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    AuthorizationError,
    RedisError,
)

from .store import RedisClient

GENERATED_TOKEN_KEY = "cs:generated-token"
MINIMUM_VERSION = (6, 2)
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")

# Pause between two attempts to reach Redis at start.
RETRY_PAUSE = 0.25
# A claim that finds the key gone again after losing SET NX tries again, this often.
CLAIM_ATTEMPTS = 3


class StartupError(Exception):
    """Serving cannot start; the message is one line that says what to do."""

    exit_code = 1


class RedisTooOld(StartupError):
    """A Redis server older than :data:`MINIMUM_VERSION`."""

    exit_code = 2


def parse_version(text: str) -> tuple[int, ...]:
    """``"7.2.4"`` -> ``(7, 2, 4)``; a part's trailing letters (``"0-rc1"``) are dropped."""
    parts = []
    for part in text.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def minimum_text() -> str:
    return ".".join(str(part) for part in MINIMUM_VERSION)


async def wait_until_answering(client: RedisClient, wait: float, where: str) -> None:
    """PING until Redis answers, for at most ``wait`` seconds.

    A refused password fails at once: waiting cannot fix it.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), RETRY_PAUSE)):
                await client.ping()
            return
        except (
            AuthenticationError,
            AuthenticationWrongNumberOfArgsError,
            AuthorizationError,
        ) as error:
            raise StartupError(f"Redis at {where} refused the credentials: {error}") from None
        except (RedisError, OSError, TimeoutError) as error:
            if time.monotonic() + RETRY_PAUSE >= deadline:
                reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                raise StartupError(
                    f"Redis at {where} did not answer within {wait:g} s ({reason}); "
                    f"start it, or set redis_url (CHATSESSIONS_REDIS_URL) to one that runs"
                ) from None
        await asyncio.sleep(RETRY_PAUSE)


async def server_versions(client: RedisClient) -> list[str]:
    """``redis_version`` of the server, or of every master of a cluster."""
    if isinstance(client, RedisCluster):
        replies = await client.info("server", target_nodes=RedisCluster.PRIMARIES)
        # One node answers with its own section; several with a section per node.
        infos = [replies] if "redis_version" in replies else list(replies.values())
    else:
        infos = [await client.info("server")]
    return [str(info["redis_version"]) for info in infos]


async def check_version(client: RedisClient) -> str:
    """The oldest server's version; :class:`RedisTooOld` names the minimum."""
    versions = await server_versions(client)
    oldest = min(versions, key=parse_version)
    if parse_version(oldest) < MINIMUM_VERSION:
        raise RedisTooOld(
            f"Redis {oldest} is too old: chatsessions needs Redis {minimum_text()} or later"
        )
    return oldest


async def generated_token_hash(client: RedisClient) -> str | None:
    """The generated token's SHA-256, if a start has made one."""
    stored = await client.get(GENERATED_TOKEN_KEY)
    if stored is None:
        return None
    text = stored.decode() if isinstance(stored, bytes) else str(stored)
    if not SHA256_PATTERN.match(text):
        raise StartupError(
            f"{GENERATED_TOKEN_KEY} in Redis holds no SHA-256; "
            f"replace it with: chatsessions token reset-generated"
        )
    return text


async def claim_generated_token(client: RedisClient, sha256: str) -> tuple[str, bool]:
    """Store ``sha256`` unless another start stored one first.

    Returns the hash every start now accepts, and whether it is ``sha256``.
    """
    for _ in range(CLAIM_ATTEMPTS):
        if await client.set(GENERATED_TOKEN_KEY, sha256, nx=True):
            return sha256, True
        stored = await generated_token_hash(client)
        if stored is not None:
            return stored, False
        # Removed between the two calls (a reset): whoever writes next decides.
    raise StartupError(
        f"{GENERATED_TOKEN_KEY} kept disappearing from Redis; configure tokens instead"
    )


async def replace_generated_token(client: RedisClient, sha256: str) -> None:
    await client.set(GENERATED_TOKEN_KEY, sha256)
