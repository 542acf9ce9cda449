"""The retention sweep's lease (SPEC §7): which sweeper may sweep a namespace now.

``cs:{ns}:sweep-lease``  the owner sweeping the namespace; expires unless renewed

The invariant: the lease is taken only when no one holds it (SET NX), and renewed or
given back only by a script that finds the caller's own name in it, so a sweeper never
extends or ends another's lease, and one whose lease ran out learns so at its next
renewal.
"""

from __future__ import annotations

from .keys import keys_of
from .record import text_of
from .scripts import script_text
from .transport import Transport
from .types import RedisClient


def sweep_lease_key(namespace: str) -> str:
    return keys_of(namespace).prefix + "sweep-lease"


class SweepLease:
    """Sweep leases, one per namespace; every call one round trip, Redis outages and
    refusals raised as :class:`~.errors.StoreUnavailable`."""

    def __init__(self, redis: RedisClient, timeout: float | None) -> None:
        """``timeout`` bounds each round trip (the client passed in stays the caller's)."""
        self._transport = Transport(redis, timeout)
        self._renew = self._transport.register(script_text("sweep_renew"))
        self._release = self._transport.register(script_text("sweep_release"))

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def acquire(self, namespace: str, owner: str, lease_ms: int) -> bool:
        """Take the namespace's lease for ``lease_ms`` when no one holds it; whether
        ``owner`` holds it now."""
        key = sweep_lease_key(namespace)
        # The GET tells a try repeated after a lost reply that its first try took it.
        commands = [("SET", key, owner, "NX", "PX", lease_ms), ("GET", key)]
        _, holder = await self._transport.call(
            lambda: self._transport.exchange(commands, shared=False), write=True, shared=False
        )
        return holder is not None and text_of(holder) == owner

    async def renew(self, namespace: str, owner: str, lease_ms: int) -> bool:
        """Extend the lease to ``lease_ms`` from now, only while ``owner`` holds it; False
        when it does not (nothing changed)."""
        keys = [sweep_lease_key(namespace)]
        renewed = await self._transport.call(
            lambda: self._transport.script(self._renew, keys, [owner, lease_ms], shared=False),
            write=True,
            shared=False,
        )
        return bool(renewed)

    async def release(self, namespace: str, owner: str) -> bool:
        """Give the lease up if ``owner`` holds it; whether it did."""
        keys = [sweep_lease_key(namespace)]
        released = await self._transport.call(
            lambda: self._transport.script(self._release, keys, [owner], shared=False),
            write=True,
            shared=False,
        )
        return bool(released)

    async def holder(self, namespace: str) -> str | None:
        """The owner holding the namespace's lease now, if any."""
        command = ("GET", sweep_lease_key(namespace))
        [found] = await self._transport.call(
            lambda: self._transport.exchange([command], shared=False), shared=False
        )
        return None if found is None else text_of(found)
