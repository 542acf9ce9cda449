"""What every part of the store shares: the transport, the scripts, the clock's rules
and operation ids. :class:`.sessions.SessionStore` is made of these parts."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Any

from redis.commands.core import AsyncScript

from .keys import READY_KEY
from .limits import EVENTS_RETENTION
from .record import session_of_fields
from .scripts import script_text
from .transport import Transport
from .types import RedisClient, Session


class StoreBase:
    """The store's transport and scripts; the parts add their calls."""

    def __init__(
        self,
        redis: RedisClient,
        *,
        active_window_ms: int,
        timeout: float | None = None,
        events_retention: int = EVENTS_RETENTION,
    ) -> None:
        """``timeout`` bounds each round trip as a whole; give it when the client itself
        has no socket timeout (see :func:`service.connections.open_redis`).
        ``events_retention``: the events each namespace's feed keeps at least."""
        self._redis = redis
        self._active_window_ms = active_window_ms
        self._timeout = timeout
        self._transport = Transport(redis, timeout)

        def register(name: str) -> AsyncScript:
            return self._transport.register(script_text(name, events_retention))

        self._ingest = register("ingest")
        self._ingest_many = register("ingest_many")
        self._page = register("page")
        self._read = register("read")
        self._create = register("create")
        self._patch = register("patch")
        self._delete = register("delete")
        self._history = register("history")
        self._search = register("search")
        self._messages_range = register("messages_range")
        self._ready = register("ready")
        self._restore = register("restore")
        self._replay = register("replay")
        self._counts = register("counts")
        self._filter = register("filter")
        self._mark_read = register("mark_read")
        self._bulk = register("bulk")
        self._erase = register("erase")
        self._scrub = register("scrub")
        self._sweep = register("sweep")
        # Operation ids: unique across workers and replicas by a random prefix per store.
        self._operation_prefix = os.urandom(8).hex()
        self._operation_numbers = itertools.count()

    def _operation_id(self) -> str:
        return f"{self._operation_prefix}.{next(self._operation_numbers)}"

    async def aclose(self) -> None:
        """Close the store's own connection; the client passed in stays the caller's."""
        await self._transport.aclose()

    async def ready(self) -> None:
        """Raise :class:`StoreUnavailable` unless Redis runs a script that writes now."""
        await self._transport.call(lambda: self._transport.script(self._ready, [READY_KEY], []))

    def _active(self, score: bytes | None, now: int) -> bool:
        return score is not None and int(score) >= now - self._active_window_ms

    def _session(self, session_id: str, found: Sequence[Any], now: int) -> Session:
        """The session of a READ or RENAME reply: {its record's fields, its score}."""
        fields, score = found
        return session_of_fields(session_id, fields, self._active(score, now))
