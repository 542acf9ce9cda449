"""Webhook delivery state (SPEC §6): per endpoint, how far delivery has gone and which
worker delivers, in Redis, so that a restart or another worker goes on where it stopped.

``cs:{ns}:webhook:<name>:position``  the id of the last event the endpoint is done with
                                     (acknowledged, filtered out or dropped)
``cs:{ns}:webhook:<name>:lease``     the owner delivering to it now; expires unless renewed

Both carry the namespace's hash tag, with its events stream, so each script runs on one
slot. The invariant: the position moves only in a script that finds the caller's lease
in place (scripts/webhook_advance.lua), so while one owner holds the lease no other
moves the position, and an owner that lost it learns so at its next call.
"""

from __future__ import annotations

from dataclasses import dataclass

from .keys import keys_of
from .record import text_of
from .scripts import script_text
from .transport import Transport
from .types import RedisClient


def webhook_keys(namespace: str, name: str) -> tuple[str, str]:
    """The endpoint's lease and position keys."""
    prefix = f"{keys_of(namespace).prefix}webhook:{name}:"
    return prefix + "lease", prefix + "position"


@dataclass(frozen=True, slots=True)
class Held:
    """A lease taken or renewed: the endpoint's stored position, and whether it was set
    just now (a new endpoint starts after the stream's newest event)."""

    position: str
    new: bool


class WebhookState:
    """Leases and positions of webhook endpoints; every call one round trip, Redis
    outages and refusals raised as :class:`~.errors.StoreUnavailable`."""

    def __init__(self, redis: RedisClient, timeout: float | None) -> None:
        """``timeout`` bounds each round trip (the client passed in stays the caller's)."""
        self._transport = Transport(redis, timeout)
        self._acquire = self._transport.register(script_text("webhook_acquire"))
        self._advance = self._transport.register(script_text("webhook_advance"))
        self._release = self._transport.register(script_text("webhook_release"))

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def acquire(self, namespace: str, name: str, owner: str, lease_ms: int) -> Held | None:
        """Take the endpoint's lease for ``lease_ms``, or renew it when ``owner`` holds it;
        None when another owner holds it."""
        lease, position = webhook_keys(namespace, name)
        keys = [lease, position, keys_of(namespace).events]
        reply = await self._transport.call(
            lambda: self._transport.script(self._acquire, keys, [owner, lease_ms], shared=False),
            shared=False,
        )
        if reply is None:
            return None
        return Held(text_of(reply[0]), bool(int(reply[1])))

    async def advance(
        self, namespace: str, name: str, owner: str, position: str, lease_ms: int
    ) -> bool:
        """Move the position to ``position`` and renew the lease, only while ``owner``
        holds it; False when it does not (nothing moved)."""
        keys = list(webhook_keys(namespace, name))
        moved = await self._transport.call(
            lambda: self._transport.script(
                self._advance, keys, [owner, position, lease_ms], shared=False
            ),
            write=True,
            shared=False,
        )
        return bool(moved)

    async def release(self, namespace: str, name: str, owner: str) -> bool:
        """Give up the lease if ``owner`` holds it; whether it did."""
        lease, _ = webhook_keys(namespace, name)
        released = await self._transport.call(
            lambda: self._transport.script(self._release, [lease], [owner], shared=False),
            shared=False,
        )
        return bool(released)

    async def position(self, namespace: str, name: str) -> str | None:
        """The endpoint's stored position; None before its first delivery began."""
        _, position = webhook_keys(namespace, name)
        [found] = await self._transport.call(
            lambda: self._transport.exchange([("GET", position)], shared=False), shared=False
        )
        return None if found is None else text_of(found)

    async def holder(self, namespace: str, name: str) -> str | None:
        """The owner holding the endpoint's lease now, if any."""
        lease, _ = webhook_keys(namespace, name)
        [found] = await self._transport.call(
            lambda: self._transport.exchange([("GET", lease)], shared=False), shared=False
        )
        return None if found is None else text_of(found)
