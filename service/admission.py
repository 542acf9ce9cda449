"""Admission of expensive requests: at most ``limit`` of one namespace's expensive
requests (search, history, export, batch ingest) run at once in a worker; one more
answers 429 with Retry-After at once, before it reaches Redis.

Each of these requests holds Redis and the worker far longer than a page of the list.
Counted per namespace, a namespace that floods them gets ``limit`` running at a time
and waits on itself for the rest, while another namespace's requests find their own
slots free and Redis between the flood's steps. The count lives in the worker, with
no Redis round trip, so with N workers a namespace runs at most N times ``limit`` at once.
A slot is held until the handler returns (an export: until its last byte is written)
and given back however it ends.
"""

from __future__ import annotations

from aiohttp import web

from .appkeys import PRINCIPAL
from .errors import ApiError
from .handlers import Handler


class Admission:
    """Slots per namespace for one worker's expensive requests."""

    def __init__(self, limit: int, retry_after: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.retry_after = retry_after
        # Namespace -> its expensive requests running now; a namespace with none is not kept.
        self._running: dict[str, int] = {}

    def running(self, namespace: str) -> int:
        return self._running.get(namespace, 0)

    def admitted(self, handler: Handler) -> Handler:
        """``handler`` run only while its caller's namespace has a slot free."""
        running = self._running
        limit = self.limit
        detail = (
            f"This namespace already has {limit} searches, histories, exports or batches "
            "running on this server; retry after the pause that Retry-After gives."
        )
        headers = {"Retry-After": str(self.retry_after)}

        async def admit(request: web.Request) -> web.StreamResponse:
            namespace = request[PRINCIPAL].namespace
            count = running.get(namespace, 0)
            if count >= limit:
                raise ApiError(429, detail, headers)
            running[namespace] = count + 1
            try:
                return await handler(request)
            finally:
                left = running[namespace] - 1
                if left:
                    running[namespace] = left
                else:
                    del running[namespace]

        return admit
