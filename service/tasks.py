"""Stopping background tasks for good."""

from __future__ import annotations

import asyncio
from typing import Any

# Seconds between the cancellations of a task that has not ended yet.
CANCEL_AGAIN_AFTER = 0.1


async def stopped(*tasks: asyncio.Task[Any]) -> None:
    """Cancel ``tasks`` until each has ended: a cancellation that lands inside a redis-py
    command can come out as another error, after which a task may wait on Redis again.
    What a task raised stays with it (and is marked retrieved)."""
    while pending := [task for task in tasks if not task.done()]:
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=CANCEL_AGAIN_AFTER)
    for task in tasks:
        if not task.cancelled():
            task.exception()
