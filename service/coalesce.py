"""Equal reads that overlap share one round trip, but never one that left before they came.

A read that arrives while an equal read is on its way to Redis waits for that one
to come back, then goes with every other equal read that arrived meanwhile: one
round trip answers them all. Nobody rides a round trip sent before it arrived, so
every answer is a state of Redis read after its request came in, and a write that
finished before a read began is always in that read's answer. A read with no equal
read in the air goes at once.

Dashboards polling the same first page is the common case: under load one worker
answers many of them from one Redis reply, and Redis sees one page read per round
trip of the worker instead of one per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar, cast

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Set on a waiting read's ticket: it leads the next round trip for its key.
_LEAD = object()


@dataclass(slots=True)
class _Flight:
    """One key's reads: a round trip in the air, and the reads waiting for the next."""

    # The latest clock reading among the waiting reads: the next round trip reads as of
    # then, which is no earlier than any of them arrived.
    now: int
    # Looked up once a flight, not by every read that boards it (each look-up asks the
    # system for the process id).
    loop: asyncio.AbstractEventLoop
    boarding: list[asyncio.Future[object]] = field(default_factory=list)


class Coalescer(Generic[K, V]):
    """Runs ``read(key, now)`` for concurrent reads of one key as few times as is safe."""

    def __init__(self, read: Callable[[K, int], Awaitable[V]]) -> None:
        self._read = read
        self._flights: dict[K, _Flight] = {}

    def waiting(self, key: K) -> int:
        """How many reads of ``key`` wait for the next round trip."""
        flight = self._flights.get(key)
        return 0 if flight is None else len(flight.boarding)

    async def read(self, key: K, now: int) -> V:
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight(now, asyncio.get_running_loop())
        else:
            ticket: asyncio.Future[object] = flight.loop.create_future()
            flight.boarding.append(ticket)
            flight.now = max(flight.now, now)
            try:
                outcome = await ticket
            except asyncio.CancelledError:
                if _leads(ticket):
                    # Cancelled just as it was to lead: the next one waiting leads.
                    self._hand_over(key, flight)
                raise
            if outcome is not _LEAD:
                return cast(V, outcome)
        return await self._lead(key, flight)

    async def _lead(self, key: K, flight: _Flight) -> V:
        riders, flight.boarding = flight.boarding, []
        now, flight.now = flight.now, 0
        try:
            value = await self._read(key, now)
        except asyncio.CancelledError:
            # Those riding got no answer: they wait again, and the first of them leads.
            flight.boarding[:0] = riders
            flight.now = max(flight.now, now)
            self._hand_over(key, flight)
            raise
        except Exception as error:
            for ticket in riders:
                if not ticket.done():
                    ticket.set_exception(error)
            self._hand_over(key, flight)
            raise
        for ticket in riders:
            if not ticket.done():
                ticket.set_result(value)
        self._hand_over(key, flight)
        return value

    def _hand_over(self, key: K, flight: _Flight) -> None:
        """Wake the first read still waiting to lead the next round trip, if any."""
        boarding = flight.boarding
        while boarding:
            ticket = boarding.pop(0)
            if not ticket.done():
                ticket.set_result(_LEAD)
                return
        del self._flights[key]


def _leads(ticket: asyncio.Future[object]) -> bool:
    return (
        ticket.done()
        and not ticket.cancelled()
        and ticket.exception() is None
        and ticket.result() is _LEAD
    )
