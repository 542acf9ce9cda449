"""The store's live reads (SPEC §6): the namespace's version (its ETag), counts, and
the change feed's events."""

from __future__ import annotations

import functools
from collections.abc import Awaitable

from ..coalesce import Coalescer
from ..redis_link import Command
from .base import StoreBase
from .events import FIRST, ChangeEvent, Replay, events_of
from .keys import Keys, keys_of
from .limits import PAGE_BYTES
from .record import text_of
from .types import Activity, ChannelCounts, Counts


def version_of(latest: bytes | str | None, n_active: int) -> str:
    """What every read of a namespace answers with: its latest event's id, which every
    write moves, and how many of its sessions (archived or not) are active, which time
    alone moves (sessions only leave the active window while nothing is written).
    Equal versions mean equal answers to equal reads."""
    return f"{text_of(latest) if latest else '0'}.{n_active}"


def version_commands(keys: Keys, cutoff: int) -> list[Command]:
    """What :func:`version_of` reads: the latest event, then the active of both halves."""
    return [
        ("GET", keys.version),
        ("ZCOUNT", keys.index, cutoff, "+inf"),
        ("ZCOUNT", keys.archived, cutoff, "+inf"),
    ]


class LiveReads(StoreBase):
    """Version, counts and events of a namespace."""

    @functools.cached_property
    def _versions(self) -> Coalescer[str, str]:
        """Overlapping version reads of a namespace, sharing one round trip (made on
        first use)."""
        return Coalescer(self._read_version)

    def version(self, namespace: str, *, now: int) -> Awaitable[str]:
        """The namespace's version (:func:`version_of`) as of ``now`` or later, in one
        small round trip that overlapping reads of the namespace share
        (:mod:`service.coalesce`), each reading Redis after it arrived.

        Not a coroutine: the caller awaits the shared read itself, one coroutine less on
        every conditional request."""
        return self._versions.read(namespace, now)

    async def _read_version(self, namespace: str, now: int) -> str:
        keys = keys_of(namespace)
        cutoff = now - self._active_window_ms
        latest, index_active, archived_active = await self._transport.call(
            lambda: self._transport.exchange(version_commands(keys, cutoff))
        )
        return version_of(latest, int(index_active) + int(archived_active))

    async def counts(
        self, namespace: str, *, now: int, hours: int = 0, reader: str | None = None
    ) -> Counts:
        """Sessions (not archived) in all, active, pinned, per channel and per tag, and
        archived ones; with ``hours``, sessions per hour of their latest activity over
        the last ``hours`` hours up to now, per channel; with ``reader``, the sessions
        with messages that reader has not read, in all and per channel. One round trip,
        whose work grows with the channels and tags, not the sessions."""
        keys = keys_of(namespace)
        hour_end = (now // 3_600_000 + 1) * 3_600_000
        count_keys = [
            keys.index,
            keys.channels,
            keys.tags,
            keys.archived,
            keys.listing(False, "pinned"),
            keys.empty,
            keys.read_through(reader or ""),
        ]
        args = [keys.prefix, now - self._active_window_ms, hours, hour_end, int(bool(reader))]
        reply = await self._transport.call(
            lambda: self._transport.script(self._counts, count_keys, args)
        )
        total, n_active, archived, pinned, per_channel, per_tag, activity = reply
        channels = {
            text_of(per_channel[n]): ChannelCounts(
                int(per_channel[n + 1]), int(per_channel[n + 2]), int(per_channel[n + 3])
            )
            for n in range(0, len(per_channel), 4)
        }
        tags = {text_of(per_tag[n]): int(per_tag[n + 1]) for n in range(0, len(per_tag), 2)}
        hourly = None
        if hours:
            starts = [hour_end - (hours - n) * 3_600_000 for n in range(hours)]
            hourly = Activity(
                starts,
                {
                    text_of(activity[n]): [int(c) for c in activity[n + 1]]
                    for n in range(0, len(activity), 2)
                },
            )
        return Counts(
            int(total),
            int(n_active),
            int(archived),
            int(pinned),
            channels,
            tags,
            hourly,
            reader is not None,
        )

    async def replay(self, namespace: str, after: str, *, limit: int, now: int) -> Replay:
        """Up to ``limit`` events and PAGE_BYTES of them (one at least) after the event id
        ``after`` (events.FIRST for every event kept), or a reset when that position is
        no longer kept."""
        keys = keys_of(namespace)
        reset, newest, *rest = await self._transport.call(
            lambda: self._transport.script(self._replay, [keys.events], [after, limit, PAGE_BYTES])
        )
        cutoff = now - self._active_window_ms
        events = events_of(rest[0], cutoff) if rest else []
        return Replay(events, bool(reset), text_of(newest) if newest else FIRST)

    async def wait_events(
        self, namespace: str, after: str, *, block_ms: int, limit: int, now: int
    ) -> list[ChangeEvent]:
        """Up to ``limit`` events after ``after``, waiting up to ``block_ms`` for the first
        (a blocking XREAD, on a connection of its own: shorter than a round trip's
        deadline). ``now`` is when the wait began; an event's session is active as of it."""
        keys = keys_of(namespace)
        if self._timeout is not None:
            block_ms = max(1, min(block_ms, int(self._timeout * 500)))
        command = ("XREAD", "COUNT", limit, "BLOCK", block_ms, "STREAMS", keys.events, after)
        [reply] = await self._transport.call(
            lambda: self._transport.exchange([command], shared=False), shared=False
        )
        if not reply:
            return []
        [[_, entries]] = reply
        return events_of(entries, now - self._active_window_ms)
