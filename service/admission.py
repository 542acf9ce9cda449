"""Admission of expensive requests: at most ``limit`` of one namespace's expensive
requests (search, history, export, batch ingest) run at once in a worker,
WAITING_PER_SLOT times as many more wait for a slot, and one more answers 429 with
Retry-After at once, before it reaches Redis.

Each of these requests holds Redis and the worker far longer than a page of the list.
Counted per namespace, a namespace that floods them gets ``limit`` running at a time
and queues behind itself for the rest, while another namespace's requests find their
own slots free and Redis between the flood's steps. Waiting, not refusing, is what
holds a flood back: a client that sends its next request when the last is answered
is slowed to the pace of its namespace's slots, where a refusal at once would send
it round again to spend the worker's time on refusals. A wait is bounded in time
(``wait``) and in length, so a flood cannot pile up requests in the worker; beyond
either the answer is 429. The queue is longer than the slots so that the usual
flood, a few clients each sending its next request when the last is answered, waits
instead of turning refused requests round at the worker's expense.

The count lives in the worker, with no Redis round trip, so with N workers a namespace
runs at most N times ``limit`` at once. A slot is held until the handler returns (an
export: until its last byte is written) and given back however it ends, to the
longest waiter first.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from .appkeys import PRINCIPAL
from .errors import ApiError
from .handlers import Handler

# Requests that may wait for each slot.
WAITING_PER_SLOT = 4


@dataclass(slots=True)
class _Slots:
    running: int = 0
    # Requests waiting for a slot, oldest first: a slot passes to one by its result.
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)


class Admission:
    """Slots per namespace for one worker's expensive requests."""

    def __init__(self, limit: int, retry_after: int, wait: float) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.wait = wait
        self._headers = {"Retry-After": str(retry_after)}
        self._detail = (
            f"This namespace already has {limit} searches, histories, exports or batches "
            f"running on this server and {WAITING_PER_SLOT * limit} waiting; retry after the "
            "pause that Retry-After gives."
        )
        # A namespace with nothing running is not kept.
        self._slots: dict[str, _Slots] = {}

    def running(self, namespace: str) -> int:
        slots = self._slots.get(namespace)
        return slots.running if slots else 0

    def waiting(self, namespace: str) -> int:
        slots = self._slots.get(namespace)
        return len(slots.waiting) if slots else 0

    def admitted(self, handler: Handler) -> Handler:
        """``handler`` run only once its caller's namespace has a slot for it."""

        async def admit(request: web.Request) -> web.StreamResponse:
            namespace = request[PRINCIPAL].namespace
            await self._acquire(namespace)
            try:
                return await handler(request)
            finally:
                self._release(namespace)

        return admit

    async def _acquire(self, namespace: str) -> None:
        slots = self._slots.get(namespace)
        if slots is None:
            slots = self._slots[namespace] = _Slots()
        if slots.running < self.limit:
            slots.running += 1
            return
        if len(slots.waiting) >= WAITING_PER_SLOT * self.limit:
            raise ApiError(429, self._detail, self._headers)
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        slots.waiting.append(granted)
        try:
            async with asyncio.timeout(self.wait):
                await granted
        except (TimeoutError, asyncio.CancelledError) as error:
            if granted.done() and not granted.cancelled():
                # The slot came as the wait ended: it is this request's to use or give back.
                if isinstance(error, TimeoutError):
                    return
                self._release(namespace)
                raise
            if granted in slots.waiting:
                slots.waiting.remove(granted)
            if isinstance(error, TimeoutError):
                raise ApiError(429, self._detail, self._headers) from None
            raise

    def _release(self, namespace: str) -> None:
        """One slot of ``namespace`` is free: it passes to the oldest waiter, if any."""
        slots = self._slots[namespace]
        while slots.waiting:
            waiter = slots.waiting.popleft()
            # One whose wait just ended (timed out, cancelled) is leaving: the next.
            if not waiter.done():
                waiter.set_result(None)
                return
        slots.running -= 1
        if not slots.running:
            del self._slots[namespace]
