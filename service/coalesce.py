"""Equal reads that overlap share one round trip, but never one that left before they came.

A read that arrives while an equal read is on its way to Redis waits for that one
to come back, then goes with every other equal read that arrived meanwhile: one
round trip answers them all. Nobody rides a round trip sent before it arrived, so
every answer is a state of Redis read after its request came in, and a write that
finished before a read began is always in that read's answer. A read with no equal
read in the air goes at once, in its own request's task.

The round trip for the reads that waited is made by a task of its own, so a waiting
read is a bare future: its request resumes straight from it, and one that goes away
(cancelled) takes nothing from the others.

Dashboards polling the same first page is the common case: under load one worker
answers many of them from one Redis reply, and Redis sees one page read per round
trip of the worker instead of one per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(slots=True)
class _Flight(Generic[V]):
    """One key's reads: a round trip in the air, and the reads waiting for the next."""

    # The latest clock reading among the waiting reads: the next round trip reads as of
    # then, which is no earlier than any of them arrived.
    now: int
    # Looked up once a flight, not by every read that boards it (each look-up asks the
    # system for the process id).
    loop: asyncio.AbstractEventLoop
    boarding: list[asyncio.Future[V]] = field(default_factory=list)
    # The task reading for those who waited (held here: the loop keeps only a weak
    # reference to a task).
    follower: asyncio.Task[None] | None = None


class Coalescer(Generic[K, V]):
    """Runs ``read(key, now)`` for concurrent reads of one key as few times as is safe."""

    def __init__(self, read: Callable[[K, int], Awaitable[V]]) -> None:
        self._read = read
        self._flights: dict[K, _Flight[V]] = {}

    def waiting(self, key: K) -> int:
        """How many reads of ``key`` wait for the next round trip."""
        flight = self._flights.get(key)
        return 0 if flight is None else len(flight.boarding)

    def read(self, key: K, now: int) -> Awaitable[V]:
        """``key`` read as of ``now`` or later. Not a coroutine: a read that waits is
        handed its future, with no frame of ours between it and its request."""
        flight = self._flights.get(key)
        if flight is None:
            return self._lead(key, now)
        return self._board(flight, now)

    def _board(self, flight: _Flight[V], now: int) -> asyncio.Future[V]:
        ticket: asyncio.Future[V] = flight.loop.create_future()
        flight.boarding.append(ticket)
        if now > flight.now:
            flight.now = now
        return ticket

    async def _lead(self, key: K, now: int) -> V:
        """The first read of a quiet key: its own round trip, in its own task. The key's
        flight begins when this runs, not when it was asked for, so that a read asked
        for and never awaited leaves nobody waiting behind it."""
        flight = self._flights.get(key)
        if flight is not None:
            # Another first read began in between: this one waits like any other.
            return await self._board(flight, now)
        flight = self._flights[key] = _Flight(now, asyncio.get_running_loop())
        try:
            return await self._read(key, now)
        finally:
            # Gone or answered, those who came meanwhile get their round trip.
            self._follow(key, flight)

    async def _read_for_waiting(self, key: K, flight: _Flight[V]) -> None:
        riders, flight.boarding = flight.boarding, []
        now, flight.now = flight.now, 0
        try:
            value = await self._read(key, now)
        except asyncio.CancelledError:
            # The loop is ending: nobody is left to answer.
            for ticket in (*riders, *flight.boarding):
                ticket.cancel()
            del self._flights[key]
            raise
        except Exception as error:
            for ticket in riders:
                if not ticket.done():
                    ticket.set_exception(error)
        else:
            for ticket in riders:
                if not ticket.done():
                    ticket.set_result(value)
        self._follow(key, flight)

    def _follow(self, key: K, flight: _Flight[V]) -> None:
        """After a round trip: the next one for the reads still waiting, or the key is
        quiet."""
        if any(not ticket.done() for ticket in flight.boarding):
            flight.follower = flight.loop.create_task(self._read_for_waiting(key, flight))
        else:
            flight.follower = None
            del self._flights[key]
